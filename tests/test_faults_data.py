"""Damaged data under every loader, a store that dies during a run, and datasets too large for the host:
each is one line naming the file, object or config key, a non-zero exit, no traceback, and no run folder
or dataset file left behind that could pass for finished."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

import faults
from faults import error_lines, mount_tmpfs, unmount
from test_run_helpers import generated_config, make_dataset, workload_doc, write_config


def dldriver(*args, env=None, timeout=300):
    """`dldriver ARGS` in a fresh process (faults.dldriver); no fault may end in a traceback."""
    done = faults.dldriver(*args, env=env, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done

LOADER_FORMATS = [("native", "npz"), ("pytorch", "npz"), ("jax", "npz"), ("tensorflow", "npz"),
                  ("tensorflow", "tfrecord")]


def _no_run_folder(out) -> None:
    assert not out.exists() and not list(out.parent.glob(out.name + ".partial-*"))


@pytest.mark.parametrize("loader, fmt", LOADER_FORMATS)
def test_truncated_file_under_each_loader_is_one_line_naming_it(tmp_path, loader, fmt):
    doc = workload_doc(tmp_path / "data", fmt, loader=loader, files=4, samples=2, reader={"read_threads": 2})
    make_dataset(tmp_path, doc)
    damaged = tmp_path / "data" / "train" / f"img_1_of_4.{fmt}"
    with open(damaged, "r+b") as f:
        f.truncate(100)
    out = tmp_path / "out"
    done = dldriver("run", str(write_config(tmp_path / "run.yaml", doc)), "-o", str(out), "-q")
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: file://{damaged}: not a valid {fmt} file ("), lines
    _no_run_folder(out)


def test_s3_server_killed_during_a_pytorch_run_is_one_line_naming_endpoint_and_object(tmp_path, private_s3):
    options = {**private_s3.options, "s3_max_attempts": 2, "connect_timeout": 1}
    doc = workload_doc("s3://killed/data", "npz", loader="pytorch", files=40, samples=1, batch=1,
                       reader={"read_threads": 2}, train={"computation_time": 0.1},
                       storage={"storage_type": "s3", "storage_root": "killed", "storage_options": options})
    make_dataset(tmp_path, doc)
    config = write_config(tmp_path / "run.yaml", doc)
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "dldriver.cli", "run", str(config), "-o", str(out)],
                           stderr=subprocess.PIPE, text=True)
    seen = []
    for line in run.stderr:  # the epoch has started (4 s of compute): the workers are reading
        seen.append(line)
        if "Starting epoch 1" in line:
            break
    private_s3.stop()
    seen += run.stderr.readlines()
    run.wait(timeout=120)
    stderr = "".join(seen)
    assert "Traceback" not in stderr, stderr
    done = subprocess.CompletedProcess(run.args, run.returncode, "", stderr)
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    endpoint = re.escape(private_s3.options["endpoint_url"])
    assert re.match(rf"error: s3://killed/data/train/img_\d+_of_40\.npz: cannot reach the S3 endpoint "
                    rf"{endpoint} after 2 attempt\(s\)$", lines[0]), lines
    _no_run_folder(out)


def _config(tmp_path, **dataset) -> str:
    doc = workload_doc(tmp_path / "data", "npz", files=4, samples=1, dataset=dataset)
    return str(write_config(tmp_path / "workload.yaml", doc))


def test_generate_of_a_trillion_files_is_refused_before_any_list_is_made(tmp_path):
    began = time.monotonic()
    done = dldriver("generate", _config(tmp_path, num_files_train=10**12), "-q", timeout=60)
    assert done.returncode == 1 and time.monotonic() - began < 20
    assert error_lines(done.stderr) == [
        f"error: dataset.num_files_train + dataset.num_files_eval: {10**12} files need about 1536.0 TB of "
        "memory for their list and manifest; this host has " + error_lines(done.stderr)[0].split("host has ")[1]]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["generate", "run"])
def test_a_one_tib_sample_is_refused_up_front_naming_the_key(tmp_path, command):
    done = dldriver(command, _config(tmp_path, record_length_bytes=2**40), "-q", timeout=60)
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: dataset.record_length_bytes"), lines
    assert "1.1 TB" in lines[0] and "available" in lines[0]
    assert not (tmp_path / "data").exists()


def test_a_sample_by_record_dims_names_that_key(tmp_path):
    done = dldriver("generate", _config(tmp_path, record_dims=[1 << 20, 1 << 20], record_element_type="float32"),
                    "-q", timeout=60)
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: dataset.record_dims"), lines


@pytest.mark.parametrize("mount, dataset, expect", [
    ("size=1m", {"num_files_train": 8, "record_length_bytes": 1 << 20}, "the dataset needs 8.4 MB more"),
    ("size=10m,nr_inodes=20", {"num_files_train": 40, "record_length_bytes": 64}, "the dataset needs 40 more files"),
])
def test_generate_into_a_file_system_too_small_is_refused_before_writing(tmp_path, mount, dataset, expect):
    mnt = tmp_path / "mnt"
    mount_tmpfs(mnt, mount)
    try:
        doc = workload_doc(mnt / "data", "npz", samples=1, dataset=dataset)
        done = dldriver("generate", str(write_config(tmp_path / "workload.yaml", doc)), "-q", timeout=60)
        lines = error_lines(done.stderr)
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert lines[0].startswith(f"error: {mnt}/data: {expect}"), lines
        assert list(mnt.iterdir()) == []
    finally:
        unmount(mnt)


# ---- the framework API (dldriver.torch / .tensorflow / .jax share open_reading and uri_config) ------

@pytest.fixture(scope="module")
def api_dataset(tmp_path_factory):
    """A generated four-file dataset (8 samples) and its config."""
    return generated_config(tmp_path_factory.mktemp("faults-api"), fmt="npz", files=4, samples=2)


@pytest.mark.parametrize("kwargs, env, named", [
    ({"rank": "0", "world_size": "2"}, {}, "rank: expected a whole number"),         # was a TypeError
    ({"rank": 0.5, "world_size": 2}, {}, "rank: expected a whole number"),           # was accepted
    ({"rank": 0, "world_size": 0}, {}, "world_size: must be at least 1"),
    ({"rank": 0, "world_size": 64}, {}, "give no full batch"),                        # was 0 batches
    ({}, {"RANK": "abc", "WORLD_SIZE": "2"}, "RANK='abc'"),                           # was a ValueError
    ({}, {"RANK": "5", "WORLD_SIZE": "2"}, "RANK=5 and WORLD_SIZE=2"),                # was accepted
])
def test_framework_api_refuses_a_wrong_rank_or_world_in_one_line(api_dataset, monkeypatch, kwargs, env, named):
    from dldriver.errors import DlDriverError
    from dldriver.frameworks.common import open_reading

    config, _ = api_dataset
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DlDriverError) as err:
        open_reading(config, framework="pytorch", **kwargs)
    assert named in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("damage, named", [
    (lambda m: m | {"config": 5}, "manifest.json is damaged: config is not an object"),     # AttributeError
    (lambda m: m | {"config": {"dataset": 7}}, "config.dataset is not an object"),          # TypeError
    (lambda m: m | {"config": m["config"] | {"dataset": m["config"]["dataset"] | {"format": "zzz"}}},
     "manifest.json: config: dataset.format"),                                              # named <mapping>
])
def test_framework_api_names_a_damaged_manifest(api_dataset, tmp_path, damage, named):
    import json
    import shutil

    from dldriver.errors import DlDriverError
    from dldriver.frameworks.common import open_reading, uri_config

    _, data = api_dataset
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(damage(manifest)))
    with pytest.raises(DlDriverError) as err:
        open_reading(uri_config(str(copy), None))
    assert named in str(err.value) and len(str(err.value).splitlines()) == 1
    with pytest.raises(DlDriverError, match="uri: expected a dataset URI"):
        uri_config("", "npz")      # was the working folder


def test_generate_force_replaces_a_damaged_manifest_as_its_message_says(api_dataset, tmp_path):
    """The damaged-manifest line says `run dldriver generate --force`; that command refused the same way."""
    import json
    import shutil

    config, data = api_dataset
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(manifest | {"config": 5}))
    where = f"dataset.data_folder={copy}"
    line = faults.refused(faults.in_process("generate", config, where, "-q", "-j", "1"), "manifest.json is damaged")
    assert "generate --force" in line
    assert faults.in_process("generate", config, where, "-q", "-j", "1", "--force").returncode == 0
    rewritten = json.loads((copy / "manifest.json").read_text())
    assert rewritten["config"] == manifest["config"] and rewritten["files"] == manifest["files"]
    done = faults.in_process("verify", config, where)
    assert done.returncode == 0, done.stderr


# ---- checkpoints the host cannot hold ------------------------------------------------------------

CHECKPOINT_ONLY = {"model": {"name": "ck", "model_size_bytes": 4096}, "framework": "pytorch",
                   "workflow": {"train": False, "checkpoint": True},
                   "checkpoint": {"num_checkpoints_write": 2, "num_checkpoints_read": 1}}


def test_a_checkpoint_larger_than_the_local_disk_is_refused_before_writing(tmp_path):
    """Was written until the disk filled (12 GB in 30 s of a 1 PB checkpoint)."""
    config = write_config(tmp_path / "ck.yaml", CHECKPOINT_ONLY)
    folder = tmp_path / "ckpt"
    r = faults.in_process("checkpoint", config, f"checkpoint.checkpoint_folder={folder}",
                          "model.model_size_bytes=1000000000000000000", "-o", tmp_path / "out", "-q")
    line = faults.refused(r, "checkpoint.checkpoint_folder", str(folder), "free")
    assert "checkpoint.num_checkpoints_write" in line
    assert not folder.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("generation", ["head", "2.0.0"])
def test_a_billion_layers_are_refused_before_any_list_is_made(tmp_path, generation):
    """Were a hang (validate, run and datasize built 10^9 per-layer tensors; 2.0.0 wrote 10^9 files)."""
    config = write_config(tmp_path / "ck.yaml", CHECKPOINT_ONLY)
    layers = ["model.num_layers=1000000000", "--dlio-defaults", generation]
    for command, *rest in (["validate"], ["datasize"], ["checkpoint", "-o", tmp_path / "out", "-q",
                                                         f"checkpoint.checkpoint_folder={tmp_path / 'ckpt'}"]):
        faults.refused(faults.in_process(command, config, *rest, *layers), "model.num_layers", code=2)
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "out").exists()


def test_a_training_runs_checkpoints_are_checked_against_the_local_disk(api_dataset, tmp_path):
    """The count checked is the count saved (scheduled_checkpoints), and too large a one is refused."""
    from dldriver.config import load_workload
    from dldriver.engine.checkpointing import scheduled_checkpoints

    config, _ = api_dataset
    folder = tmp_path / "ckpt"
    schedule = ["workflow.checkpoint=True", f"checkpoint.checkpoint_folder={folder}", "train.epochs=2",
                "checkpoint.steps_between_checkpoints=1", "model.model_size_bytes=4096"]
    r = faults.in_process("run", config, *schedule, "-o", tmp_path / "out", "-q")
    assert r.returncode == 0, r.stderr
    w = load_workload(str(config), schedule)
    assert len(list(folder.iterdir())) == scheduled_checkpoints(w.checkpoint, 2, 4) == 8   # 8 samples, batch 2
    huge = faults.in_process("run", config, *schedule, "model.model_size_bytes=1000000000000000000",
                             "-o", tmp_path / "out2", "-q")
    faults.refused(huge, "checkpoint.checkpoint_folder", "8 checkpoint(s)", "free")
    assert len(list(folder.iterdir())) == 8 and not (tmp_path / "out2").exists()
