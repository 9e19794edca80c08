"""Every training workload file of the upstream corpus (DLIO main and v2.0.0, MLPerf Storage main, v1.0 and
v0.5), as shipped, shrunk with command-line overrides only and run end to end under the DLIO generation
it ran on: generate, then train, then the summary's numbers and the checkpoint's files.

The file is never edited: what makes it small (a few files of 4 KiB, one epoch, no compute, one reader
thread, one rank instead of the model's TP x PP, one checkpoint at the end, scaled down) is a list of
`++workload.KEY=VALUE` overrides in the spelling the file uses. The S3 files' storage options name the
session's SeaweedFS instead of the endpoint they ship with.
Runs are in-process (`dldriver.cli.main`); files whose shrunk datasets are the same share one, and files
whose shrunk runs are the same (they differed only in what the overrides replace) share one run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import unique_name
from dldriver.checkpoint.layout import checkpoint_folder, checkpoint_layout, layer_mode
from dldriver.cli import main
from dldriver.config import load_workload, resolved_dict

UPSTREAM = Path(__file__).parent / "data" / "upstream"
FILES, SAMPLES, BATCH, RECORD, SCALE = 4, 2, 2, 4096, 0.00001
STEPS = FILES * SAMPLES // BATCH
EVAL_FILES, EVAL_BATCH = 1, 1
# Files that train but cannot as shipped, with the reason (tests/test_config_upstream.py checks the error).
NOT_TRAINABLE = {"dlio-main/llama_1t.yaml": "trains with no reader.data_loader"}


# Each source with the DLIO generation its files ran on (--dlio-defaults): MLPerf Storage v1.0 ran DLIO
# 2.0.0, v0.5 DLIO 1.0.
GENERATION = {"dlio-main": "head", "mlperf-main": "head", "dlio-v2.0.0": "2.0.0", "mlperf-v1.0": "2.0.0",
              "mlperf-v0.5": "1.0"}


def training_files() -> list[str]:
    found = []
    for source in GENERATION:
        for path in sorted((UPSTREAM / source).glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            doc = doc.get("workload", doc)
            name = f"{source}/{path.name}"
            if (doc.get("workflow") or {}).get("train", True) and name not in NOT_TRAINABLE:
                found.append(name)
    return found


def spelled(doc: dict, section: str, head: str, old: str) -> str:
    """The key as the file spells it (DLIO 2.0.0's `old` or HEAD's `head`), HEAD's when it has neither."""
    return old if old in (doc.get(section) or {}) else head


def shrink(path: Path, tmp: Path, data: str) -> list[str]:
    """Overrides that make the file's run tiny, in the file's own spelling; an S3 file's storage options
    name the session's SeaweedFS (os.environ, from the s3_env fixture) instead of the file's endpoint."""
    doc = yaml.safe_load(path.read_text())
    doc = doc.get("workload", doc)
    record = spelled(doc, "dataset", "record_length_bytes", "record_length")
    overrides = {}
    if is_s3(doc):
        bucket = data.split("/")[2]
        overrides = {"storage.storage_root": bucket, "storage.storage_options.s3_force_path_style": True,
                     "storage.storage_options.endpoint_url": os.environ["AWS_ENDPOINT_URL"],
                     "storage.storage_options.access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                     "storage.storage_options.secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
    # One rank, not the TP x PP the file's job spans (HEAD's model.parallelism.*, 2.0.0's checkpoint.*).
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    for key in ("tensor", "pipeline"):
        if ((model.get("parallelism") or {}).get(key) or 1) > 1:
            overrides[f"model.parallelism.{key}"] = 1
        if ((doc.get("checkpoint") or {}).get(f"{key}_parallelism") or 1) > 1:
            overrides[f"checkpoint.{key}_parallelism"] = 1
    overrides |= {
        "dataset.data_folder": data, "dataset.num_files_train": FILES,
        "dataset.num_samples_per_file": SAMPLES, f"dataset.{record}": RECORD, f"dataset.{record}_stdev": 0,
        "reader.batch_size": BATCH, "reader.read_threads": 1, "train.epochs": 1, "train.computation_time": 0,
        "checkpoint.checkpoint_folder": str(tmp / "ckpt"), "output.folder": str(tmp / "run"),
    }
    if f"{record}_resize" in (doc.get("dataset") or {}):
        overrides[f"dataset.{record}_resize"] = RECORD
    if (doc.get("dataset") or {}).get("num_files_eval"):
        overrides["dataset.num_files_eval"] = EVAL_FILES
        overrides["reader.batch_size_eval"] = EVAL_BATCH
        overrides["evaluation.eval_time"] = 0
    if (doc.get("train") or {}).get("total_training_steps"):
        overrides["train.total_training_steps"] = STEPS
    # The checkpoint schedule shrunk with the run: one checkpoint, at its end.
    if (doc.get("workflow") or {}).get("checkpoint"):
        if "steps_between_checkpoints" in (doc.get("checkpoint") or {}):
            overrides["checkpoint.steps_between_checkpoints"] = STEPS
        else:
            overrides["checkpoint.checkpoint_after_epoch"] = 1
    return [f"++workload.{key}={value}" for key, value in overrides.items()]


def is_s3(doc: dict) -> bool:
    return (doc.get("storage") or {}).get("storage_type") == "s3"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The datasets generated so far, {canonical JSON of the shrunk storage and dataset sections: folder}."""
    return {"root": tmp_path_factory.mktemp("upstream-data")}


def data_folder(datasets, path: Path, tmp: Path, bucket: str | None, generation: str) -> list[str]:
    """The overrides of this file's shrunk run, on a dataset shared by every file that shrinks to the same
    one (generated on first use)."""
    probe = resolved_dict(load_workload(path, shrink(path, tmp, f"s3://{bucket}/probe" if bucket else "/probe"),
                                        dlio_defaults=generation))
    probe["dataset"].pop("data_folder")
    key = json.dumps([probe["storage"], probe["dataset"]], sort_keys=True)
    if key not in datasets:
        name = f"d{len(datasets)}"
        datasets[key] = f"s3://{bucket}/{name}" if bucket else str(datasets["root"] / name)
        code = main(["generate", "-q", "-j", "1", "--dlio-defaults", generation, str(path),
                     *shrink(path, tmp, datasets[key])])
        assert code == 0
    return shrink(path, tmp, datasets[key])


@pytest.fixture(scope="module")
def bucket(request):
    """One bucket on the session's SeaweedFS for the S3 files' datasets."""
    from dldriver.storage.s3 import S3Storage

    request.getfixturevalue("s3_env")
    name = unique_name("up")
    S3Storage(name).create_bucket()
    return name


@pytest.fixture(scope="module")
def runs():
    """The runs made so far, {run_key: the test folder it ran in}."""
    return {}


def run_key(workload) -> str:
    """What makes two shrunk runs the same run: the resolved config and generation, less names and folders
    (several upstream files differ only in what the shrinking overrides replace, such as computation_time)."""
    config = resolved_dict(workload)
    for section, key in (("model", "name"), ("dataset", "data_folder"), ("checkpoint", "checkpoint_folder"),
                         ("output", "folder")):
        config[section].pop(key)
    return json.dumps([workload.dlio_defaults, config], sort_keys=True)


@pytest.mark.parametrize("name", training_files())
def test_upstream_training_file_runs_shrunk(name, tmp_path, datasets, runs, capsys, request):
    path, generation = UPSTREAM / name, GENERATION[name.split("/")[0]]
    shipped = load_workload(path, dlio_defaults=generation)
    s3 = shipped.storage.storage_type == "s3"
    overrides = data_folder(datasets, path, tmp_path, request.getfixturevalue("bucket") if s3 else None, generation)
    run = load_workload(path, overrides, dlio_defaults=generation)
    key = run_key(run)
    if key not in runs:
        code = main(["run", "-q", "--dlio-defaults", generation, "--checkpoint-scale", str(SCALE), str(path),
                     *overrides])
        assert code == 0, capsys.readouterr().err
        runs[key] = tmp_path
    summary = json.loads((runs[key] / "run" / "summary.json").read_text())
    ours = summary["dldriver"]
    assert summary["num_files_train"] == FILES and summary["num_samples_per_file"] == SAMPLES
    assert summary["epochs"] == 1 and summary["num_accelerators"] == 1
    assert ours["loader"] == shipped.reader.data_loader
    assert ours["dataset_uri"].startswith("s3://" if s3 else "file://")
    assert ours["steps_per_epoch"] == STEPS
    (epoch,) = ours["epochs"]
    assert epoch["samples_read"] == FILES * SAMPLES and epoch["coverage"]["ok"]
    assert ours["bytes_read"] >= FILES * SAMPLES * RECORD
    metric = summary["metric"]
    assert metric["train_throughput_mean_samples_per_second"] > 0
    assert metric["train_io_mean_MB_per_second"] == pytest.approx(
        metric["train_throughput_mean_samples_per_second"] * RECORD / 2**20)
    assert 0 <= metric["train_au_mean_percentage"] <= 100
    if shipped.workflow.checkpoint:
        assert metric["save_checkpoint_duration_mean_seconds"] > 0
        # the files of the generation's layout (2.0.0's flat model-/layer- files, HEAD's folder per checkpoint)
        folder = checkpoint_folder(1, STEPS, layer_mode(run))
        want = {f"{folder}/{n}" if folder else n: size for n, size in checkpoint_layout(run, 1, SCALE, 1, STEPS)[0]}
        ckpt = runs[key] / "ckpt"
        assert {str(p.relative_to(ckpt)): p.stat().st_size for p in ckpt.rglob("*") if p.is_file()} == want
    if shipped.workflow.evaluation:
        assert ours["eval_steps"] == EVAL_FILES * SAMPLES // EVAL_BATCH
        assert metric["eval_throughput_mean_samples_per_second"] > 0
