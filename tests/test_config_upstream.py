"""Real workload files of DLIO and MLPerf Storage, verbatim (tests/data/upstream/<source>/, each with its
SOURCE commit and SHA256SUMS), and the override lines mlpstorage and DLIO's docs type, as typed there."""
import hashlib
import json
import logging
from pathlib import Path

import pytest

from dldriver.cli import main
from dldriver.config import load_workload
from dldriver.errors import ConfigError

UPSTREAM = Path(__file__).parent / "data" / "upstream"
SOURCES = sorted(p.name for p in UPSTREAM.iterdir() if p.is_dir())
FILES = sorted((s, p.name) for s in SOURCES for p in (UPSTREAM / s).glob("*.yaml"))
# What a file as shipped gives instead of a workload: DLIO's llama_1t trains (a copy-paste slip) with no reader.
EXPECTED_ERRORS = {("dlio-main", "llama_1t.yaml"): "workflow.train: needs reader.data_loader"}


def upstream(source, name):
    return UPSTREAM / source / name


def test_the_corpus_is_what_upstream_shipped():
    assert SOURCES == ["dlio-main", "dlio-v2.0.0", "mlperf-main", "mlperf-v0.5", "mlperf-v1.0"]
    for source in SOURCES:
        meta = dict(line.split(": ", 1) for line in (UPSTREAM / source / "SOURCE").read_text().splitlines())
        assert len(meta["commit"]) == 40 and meta["repository"] in ("argonne-lcf/dlio_benchmark", "mlcommons/storage")
        sums = dict(line.split()[::-1] for line in (UPSTREAM / source / "SHA256SUMS").read_text().splitlines())
        assert sorted(sums) == sorted(p.name for p in (UPSTREAM / source).glob("*.yaml"))
        for name, digest in sums.items():
            assert hashlib.sha256(upstream(source, name).read_bytes()).hexdigest() == digest, f"{source}/{name}"


@pytest.mark.parametrize("source,name", FILES)
def test_every_upstream_file_validates(source, name):
    expected = EXPECTED_ERRORS.get((source, name))
    if expected:
        with pytest.raises(ConfigError, match=expected):
            load_workload(upstream(source, name))
    else:
        load_workload(upstream(source, name))


# Resolved values of keys the file's DLIO reads, worked out by hand from that DLIO's config.py
# (dlio_benchmark v2.0.0 = 866828ce for the older spellings; HEAD e1919d7b for the rest).
RESOLVED = {
    ("mlperf-v0.5", "unet3d.yaml"): {
        "dataset.record_length_bytes": 146600628, "dataset.record_length_bytes_stdev": 68341808,
        "model.model_size_bytes": 499153191, "reader.batch_size": 4, "train.epochs": 5,
        "checkpoint.checkpoint_after_epoch": 5, "checkpoint.epochs_between_checkpoints": 2},
    ("dlio-v2.0.0", "megatron_deepspeed.yaml"): {
        "model.num_layers": 44, "model.layer_parameters": [129761280, 20971520],
        "model.optimization_groups": [1009254400, 865075200, 793600], "model.model_size_bytes": 30102,
        "dataset.record_length_bytes": 2048, "checkpoint.type": "all_ranks",
        "checkpoint.steps_between_checkpoints": 1000},
    ("mlperf-v1.0", "unet3d_a100.yaml"): {
        "model.name": "unet3d", "dataset.record_length_bytes_resize": 2097152, "reader.batch_size": 7,
        "train.computation_time": 0.636, "metric.au": 0.90, "workflow.checkpoint": True},
    # DLIO 2.0.0 reads workflow.evaluation, never do_eval: this dlrm does not evaluate there either.
    ("dlio-v2.0.0", "dlrm.yaml"): {
        "workflow.evaluation": False, "dataset.num_samples_per_file": 4195198976,
        "dataset.record_length_bytes": 327680, "reader.batch_size_eval": 16384,
        "train.total_training_steps": 32768, "reader.sample_shuffle": "random"},
    ("mlperf-main", "llama3_8b.yaml"): {
        "model.num_layers": 32, "model.parallelism.zero_stage": 3, "model.transformer.vocab_size": 128256,
        "model.transformer.ffn_hidden_size": 14336, "checkpoint.num_checkpoints_write": 10,
        "checkpoint.num_checkpoints_read": 10, "checkpoint.fsync": True, "workflow.train": False},
    ("mlperf-main", "unet3d_datagen.yaml"): {
        "workflow.generate_data": True, "workflow.train": False, "framework": "pytorch",
        "dataset.record_length_bytes_resize": 2097152, "model.model_size_bytes": 499153191},
}


@pytest.mark.parametrize("key", sorted(RESOLVED))
def test_resolved_values_are_that_dlios(key):
    w = load_workload(upstream(*key))
    for path, value in RESOLVED[key].items():
        node = w
        for part in path.split("."):
            node = getattr(node, part)
        assert (node.expected() if hasattr(node, "expected") else node) == value, path


def _validate(capsys, path, *overrides):
    code = main(["validate", "--json", str(path), *overrides])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


# mlpstorage (main: mlpstorage/benchmarks/dlio.py; v1.0: benchmark.sh) puts these on every DLIO line.
HYDRA = ["++hydra.run.dir=results/unet3d/run1", "++hydra.output_subdir=dlio_config"]


def test_mlperf_v1_datagen_line_on_a_checkpointing_file(capsys):
    # benchmark.sh datagen: unet3d_a100 has checkpoint: True; DLIO writes the data and no checkpoint.
    code, data, err = _validate(capsys, upstream("mlperf-v1.0", "unet3d_a100.yaml"),
                                "++workload.workflow.generate_data=True", "++workload.workflow.train=False",
                                "++workload.dataset.num_files_train=56000",
                                "++workload.dataset.data_folder=/mnt/unet3d_data", *HYDRA,
                                "++workload.workflow.profiling=False", "++workload.profiling.profiler=none")
    assert code == 0, err
    assert data["config"]["dataset"]["num_files_train"] == 56000
    assert data["config"]["output"]["folder"] == "results/unet3d/run1"


def test_mlperf_run_line(capsys):
    code, data, err = _validate(capsys, upstream("mlperf-main", "unet3d_h100.yaml"), *HYDRA,
                                "++workload.dataset.num_files_train=42000",
                                "++workload.dataset.data_folder=unet3d_data",
                                "++workload.checkpoint.checkpoint_folder=unet3d_checkpoints/unet3d")
    assert code == 0, err
    assert data["config"]["checkpoint"]["checkpoint_folder"] == "unet3d_checkpoints/unet3d"


@pytest.mark.parametrize("writes,reads", [(10, 0), (0, 10), (10, 10)])
def test_mlperf_checkpoint_phases(capsys, writes, reads):
    # mlpstorage checkpointing run: add_checkpoint_params, with a subset run on fewer processes.
    code, data, err = _validate(capsys, upstream("mlperf-main", "llama3_8b.yaml"), *HYDRA,
                                f"++workload.checkpoint.num_checkpoints_read={reads}",
                                f"++workload.checkpoint.num_checkpoints_write={writes}",
                                "++workload.checkpoint.checkpoint_folder=checkpoints/llama3-8b",
                                "++workload.checkpoint.mode=subset", "++workload.model.parallelism.data=1")
    assert code == 0, err
    assert (data["config"]["checkpoint"]["num_checkpoints_write"],
            data["config"]["checkpoint"]["num_checkpoints_read"]) == (writes, reads)


def test_other_hydra_settings_are_ignored_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING):
        w = load_workload(upstream("dlio-main", "default.yaml"),
                          ["++hydra.job.chdir=True", "hydra.verbose=true", "++hydra.run.dir=out/x"])
    warnings = [r.getMessage() for r in caplog.records if "Hydra" in r.getMessage()]
    assert warnings == ["ignoring Hydra settings dl-driver has no use for: hydra.job.chdir, hydra.verbose"]
    assert w.output.folder == "out/x"


def test_output_folder_wins_over_hydra_run_dir(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("output: {folder: mine}\n")
    assert load_workload(path, ["++hydra.run.dir=theirs"]).output.folder == "mine"


def test_dlio_metric_exclusion_spelling(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("output:\n  metric:\n    exclude_start_steps: 3\n")
    w = load_workload(path, ["++workload.output.metric.exclude_end_steps=2"])
    assert (w.output.exclude_start_steps, w.output.exclude_end_steps) == (3, 2)
    with pytest.raises(ConfigError, match=r"output.metric.exclude_start_steps: must be >= 0, got -1"):
        load_workload(path, ["++workload.output.metric.exclude_start_steps=-1"])
    path.write_text("output:\n  metric: {exclude_start_steps: 3}\n  exclude_start_steps: 2\n")
    with pytest.raises(ConfigError, match=r"output.metric.exclude_start_steps: conflicts with output.exclude_start"):
        load_workload(path)


def test_dlio_2_checkpoint_spellings(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("checkpoint: {num_layers: 8, layer_parameters: [10, 20], optimization_groups: [5],\n"
                    "             tensor_parallelism: 2, pipeline_parallelism: 4}\n")
    m = load_workload(path).model
    assert (m.num_layers, m.layer_parameters, m.optimization_groups) == (8, [10, 20], [5])
    assert (m.parallelism.tensor, m.parallelism.pipeline) == (2, 4)
    path.write_text("checkpoint: {num_layers: 8}\nmodel: {num_layers: 4}\n")
    with pytest.raises(ConfigError, match="checkpoint.num_layers: conflicts with model.num_layers"):
        load_workload(path)


def test_resolved_config_for_hydra_output_subdir_masks_credentials(tmp_path):
    from dldriver.config.resolved import write_resolved_config

    path = tmp_path / "w.yaml"
    path.write_text("storage:\n  storage_type: s3\n  storage_root: bucket\n"
                    "  storage_options: {access_key_id: AKIDSECRET1, secret_access_key: SHHHSECRET2}\n")
    w = load_workload(path, ["++hydra.output_subdir=dlio_config"])
    write_resolved_config(tmp_path / "run", w)
    text = (tmp_path / "run" / "dlio_config" / "config.yaml").read_text()
    assert "storage_type: s3" in text
    assert "SECRET1" not in text and "SECRET2" not in text
