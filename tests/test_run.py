"""`dldriver run` end to end: every loader over every format, the backends, metrics, failures."""
from __future__ import annotations

import json

import pytest

from dldriver.engine.run import run_workload
from dldriver.errors import DatasetError, FormatError
from dldriver.metrics.summary import SUMMARY_KEYS

from test_run_helpers import FORMATS, LOADERS, make_dataset, workload, workload_doc

# The jax loader runs in this process before torch forks DataLoader workers; the workers never touch
# JAX, so its fork warning does not apply (whole runs in fresh processes are in test_ranks.py).
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

TRAIN_METRIC_KEYS = ("train_au_percentage", "train_au_mean_percentage", "train_au_stdev_percentage",
                     "train_au_meet_expectation", "train_throughput_samples_per_second",
                     "train_throughput_mean_samples_per_second", "train_io_mean_MB_per_second")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("run-data")
    return {fmt: make_dataset(root, workload_doc(root / fmt, fmt, files=3, samples=3)) for fmt in FORMATS}


def _check_folder(out, ranks=1, epochs=1) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary)
    assert set(TRAIN_METRIC_KEYS) <= set(summary["metric"])
    assert summary["num_accelerators"] == ranks and summary["epochs"] == epochs
    assert len(summary["metric"]["train_au_percentage"]) == epochs
    assert summary["metric"]["train_throughput_mean_samples_per_second"] > 0
    ours = summary["dldriver"]
    assert ours["coverage_ok"] and ours["bytes_read"] > 0 and ours["true_MB_per_second"] > 0
    assert set(ours["load_latency_seconds"]) == {"p50", "p90", "p99", "max"}
    assert len(ours["config_hash"]) == 16 and ours["config"]["dataset"]
    for rank in range(ranks):
        output = json.loads((out / f"{rank}_output.json").read_text())
        steps = sum(len(v) for k, v in output["1"]["load"].items() if k.startswith("block"))
        assert steps == ours["steps_per_epoch"]
        assert "block1" in json.loads((out / f"{rank}_per_epoch_stats.json").read_text())["1"]
    assert (out / "dlio.log").read_text()
    return summary


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_every_format(datasets, tmp_path, loader, fmt):
    w = datasets[fmt]
    w.reader.data_loader = loader
    summary = run_workload(w, output=tmp_path / "out", quiet=True)
    assert summary["dldriver"]["loader"] == loader
    _check_folder(tmp_path / "out")


def test_au_with_50ms_compute_over_40_steps(tmp_path):
    doc = workload_doc(tmp_path / "d", "npz", files=41, samples=1, batch=1,
                       train={"computation_time": 0.05}, reader={"read_threads": 2})
    w = make_dataset(tmp_path, doc)
    run_workload(w, output=tmp_path / "warm", quiet=True)  # the second run reads from the page cache
    summary = run_workload(w, output=tmp_path / "out", quiet=True)
    assert summary["dldriver"]["steps_per_epoch"] == 41
    assert summary["metric"]["train_au_mean_percentage"] >= 95
    assert summary["metric"]["train_au_meet_expectation"] == "success"


def test_eval_and_step_checkpoints(tmp_path):
    doc = workload_doc(tmp_path / "d", "npy", files=8, samples=1, batch=2,
                       workflow={"evaluation": True, "checkpoint": True},
                       dataset={"num_files_eval": 4}, reader={"batch_size_eval": 2},
                       evaluation={"eval_time": 0.001},
                       checkpoint={"checkpoint_folder": str(tmp_path / "ckpt"), "steps_between_checkpoints": 2},
                       train={"epochs": 2})
    w = make_dataset(tmp_path, doc)
    summary = run_workload(w, output=tmp_path / "out", quiet=True)
    _check_folder(tmp_path / "out", epochs=2)
    metric = summary["metric"]
    assert len(metric["eval_au_percentage"]) == 2 and metric["eval_throughput_mean_samples_per_second"] > 0
    assert metric["save_checkpoint_duration_mean_seconds"] > 0 and metric["checkpoint_size_GB"] > 0
    stats = json.loads((tmp_path / "out" / "0_per_epoch_stats.json").read_text())["1"]
    assert {"block1", "block2", "save_ckpt1", "save_ckpt2", "eval"} <= set(stats)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir())[:2] == ["global_epoch1_step2",
                                                                         "global_epoch1_step4"]


def test_missing_dataset_says_generate_first(tmp_path):
    w = workload(tmp_path, workload_doc(tmp_path / "nothing-here"))
    with pytest.raises(DatasetError, match="dldriver generate"):
        run_workload(w, output=tmp_path / "out", quiet=True)


def test_dataset_unlike_the_config_says_generate_first(tmp_path):
    make_dataset(tmp_path, workload_doc(tmp_path / "d", files=4))
    w = workload(tmp_path, workload_doc(tmp_path / "d", files=6))
    with pytest.raises(DatasetError, match="does not match the config.*dldriver generate"):
        run_workload(w, output=tmp_path / "out", quiet=True)


def test_corrupt_file_mid_run_stops_without_summary(tmp_path):
    w = make_dataset(tmp_path, workload_doc(tmp_path / "d", "npz", files=6, samples=1))
    path = tmp_path / "d" / "train" / "img_4_of_6.npz"
    raw = bytearray(path.read_bytes())
    raw[40:240] = b"\x00" * 200  # same size: the manifest's size check passes, decoding fails
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="img_4_of_6.npz"):
        run_workload(w, output=tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("out.partial-*"))


def _backend_uri(kind, tmp_path, request) -> str:
    if kind == "direct":
        return f"direct://{tmp_path}/data"
    return request.getfixturevalue({"s3": "s3_uri", "azure": "az_uri"}[kind]) + "/data"


@pytest.mark.parametrize("backend", ["direct", "s3", "azure"])
@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_on_every_backend(tmp_path, request, loader, backend):
    fmt = "tfrecord" if loader == "tensorflow" else "npz"
    doc = workload_doc(_backend_uri(backend, tmp_path, request), fmt, loader=loader, files=3, samples=2)
    w = make_dataset(tmp_path, doc)
    summary = run_workload(w, output=tmp_path / "out", quiet=True)
    assert summary["dldriver"]["dataset_uri"].startswith({"direct": "direct", "s3": "s3", "azure": "az"}[backend])
    _check_folder(tmp_path / "out")
