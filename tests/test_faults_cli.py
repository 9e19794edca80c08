"""Faults at the command line: folders a command must not replace, options in any order, malformed
launcher variables, host limits, and the services' state. Each case runs `dldriver` in a fresh process
and checks the exit code, that no traceback is printed, that the one line names the place, and what is
left on storage."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from dldriver.outputs import OutputFolderError, check_run_folder
from faults import ROOT, dldriver, in_process, refused, tree
from test_run_helpers import generated_config, workload_doc, write_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A generated two-file dataset and its config."""
    return generated_config(tmp_path_factory.mktemp("faults-cli"), fmt="npz", files=2, samples=2)


# ---- run folders: only an earlier run folder is replaced -------------------------------------------

def test_run_into_a_foreign_folder_is_refused_and_leaves_it_whole(tiny, tmp_path):
    config, _ = tiny
    keep = tmp_path / "keep"
    (keep / "sub").mkdir(parents=True)
    (keep / "thesis.txt").write_text("mine")
    before = tree(keep)
    line = refused(dldriver("run", config, "-o", keep, "-q"), str(keep), "not an earlier dl-driver run")
    assert "nothing was changed" in line
    assert tree(keep) == before and (keep / "sub").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]   # no partial folder left beside it


@pytest.mark.parametrize("where", ["home", "dataset", "file", "dot", "parent"])
def test_run_refuses_home_dataset_file_and_working_folder(tiny, tmp_path, where):
    config, data = tiny
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes/todo.txt").write_text("x")
    cwd = tmp_path / "work"
    (cwd / "sub").mkdir(parents=True)
    (cwd / "a.txt").write_text("a")
    target = {"home": home, "dataset": data, "file": cwd / "a.txt", "dot": ".", "parent": ".."}[where]
    watched = {"home": home, "dataset": data, "file": cwd, "dot": cwd, "parent": tmp_path}[where]
    before = tree(watched)
    r = dldriver("run", config, "-o", target, "-q", cwd=cwd / "sub" if where == "parent" else cwd,
                 env={"HOME": str(home)})
    refused(r, "--output", str(target))
    assert tree(watched) == before


def test_rerun_replaces_its_own_run_folder_and_options_go_anywhere(tiny, tmp_path):
    config, _ = tiny
    out = tmp_path / "out"
    first = dldriver("run", config, "-o", out, "-q")
    assert first.returncode == 0, first.stderr
    assert (out / ".dldriver-run").is_file()
    (out / "slurm.json").write_text("{}")  # what the workflow's cell script adds beside a run
    # Options between and after the overrides, as users type them: the overrides still apply, in order.
    second = dldriver("run", config, "train.epochs=1", "-o", out, "train.epochs=2", "--quiet")
    assert second.returncode == 0, second.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["dldriver"]["config"]["train"]["epochs"] == 2
    assert not (out / "slurm.json").exists()


def test_unknown_option_between_overrides_is_refused(tiny):
    config, _ = tiny
    r = dldriver("validate", config, "train.epochs=2", "--no-such-option", "train.epochs=3")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unrecognized arguments: --no-such-option" in r.stderr


def test_checkpoint_folder_holding_foreign_files_is_refused(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "paper.tex").write_text("mine")
    r = dldriver("checkpoint", ROOT / "configs/workloads/llama_7b.yaml", f"checkpoint.checkpoint_folder={ckpt}",
                 "checkpoint.num_checkpoints_write=1", "checkpoint.num_checkpoints_read=1",
                 "checkpoint.time_between_checkpoints=0", "--checkpoint-scale", "0.00002",
                 "-o", tmp_path / "out", "-q")
    refused(r, "checkpoint.checkpoint_folder", str(ckpt), "paper.tex")
    assert tree(ckpt) == {"paper.tex": b"mine"} and not (tmp_path / "out").exists()


def test_generate_into_a_folder_holding_foreign_files_is_refused(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "results.csv").write_text("1,2\n")
    config = write_config(tmp_path / "g.yaml", workload_doc(folder, "npz", files=2, samples=1))
    refused(dldriver("generate", config, "-j", "1", "-q"), "dataset.data_folder", str(folder), "results.csv")
    assert tree(folder) == {"results.csv": b"1,2\n"}


# ---- launcher variables and host limits ------------------------------------------------------------

@pytest.mark.parametrize("env, name", [
    ({"SLURM_PROCID": "abc", "SLURM_STEP_NUM_TASKS": "2"}, "SLURM_PROCID"),
    ({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "-1"}, "SLURM_STEP_NUM_TASKS"),
    ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "2"}, "OMPI_COMM_WORLD_RANK"),
    ({"PMI_RANK": "0", "PMI_SIZE": "2.5"}, "PMI_SIZE"),
])
def test_malformed_launcher_variables_are_one_line(tiny, tmp_path, env, name):
    config, _ = tiny
    refused(dldriver("run", config, "-o", tmp_path / "out", "-q", env=env), name, code=2)
    assert not (tmp_path / "out").exists()


def test_ranks_beyond_host_limits_are_refused_before_starting(tiny, tmp_path):
    config, _ = tiny
    r = dldriver("run", config, "--ranks", "100000", "-o", tmp_path / "out", "-q")
    line = refused(r, "--ranks 100000", code=2)
    assert "limit" in line or "available" in line
    assert not (tmp_path / "out").exists()


# ---- services ------------------------------------------------------------------------------------

def test_damaged_state_file_is_one_line(tmp_path):
    state = tmp_path / "sd" / "s3" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"pid": "abc", "port": 8333}))
    refused(dldriver("services", "status", "s3", "--state-dir", tmp_path / "sd"), str(state), "pid")
    state.write_text("{not json")
    refused(dldriver("services", "stop", "s3", "--state-dir", tmp_path / "sd"), str(state), "damaged")
    assert state.read_text() == "{not json"   # left for the user, who may have a server to stop


@pytest.mark.parametrize("value", ["abc", "70000", "0"])
def test_bad_service_port_variable_is_one_line(tmp_path, value):
    r = dldriver("services", "env", "s3", "--state-dir", tmp_path, env={"DLDRIVER_S3_PORT": value})
    refused(r, "DLDRIVER_S3_PORT", repr(value))
    r = dldriver("services", "env", "azure", "--state-dir", tmp_path, env={"DLDRIVER_AZURE_PORT": value})
    refused(r, "DLDRIVER_AZURE_PORT")


def test_state_dir_naming_a_file_is_one_line(tmp_path):
    path = tmp_path / "afile"
    path.write_text("x")
    refused(dldriver("services", "start", "s3", "--state-dir", path), str(path), "is a file")
    assert path.read_text() == "x"


def test_workflow_like_cell_folder_made_empty_by_snakemake_is_accepted(tiny, tmp_path):
    """Snakemake makes a cell's folder before the job: an empty folder is a new run folder."""
    config, _ = tiny
    out = tmp_path / "rep0"
    out.mkdir()
    r = dldriver("run", config, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load((out / "summary.json").read_text())["num_accelerators"] == 1
    assert os.listdir(tmp_path) == ["rep0"]


def test_run_folder_of_a_version_before_markers_is_recognised_by_its_files(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for name in ("summary.json", "0_output.json", "0_per_epoch_stats.json", "dlio.log", "slurm.json"):
        (old / name).write_text("{}")
    assert check_run_folder(old) == old.resolve()
    (old / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="notes.txt|not an earlier dl-driver run"):
        check_run_folder(old)


# ---- MLPerf commands: datasize, mlperf check, mlperf search-round -----------------------------------

UNET3D = str(ROOT / "configs/workloads/unet3d_a100.yaml")
LLAMA8B = str(ROOT / "configs/workloads/llama_8b_zero3.yaml")


@pytest.mark.parametrize("args, flag", [
    (["datasize", UNET3D, "--hosts", "0"], "--hosts"),
    (["datasize", UNET3D, "--accelerators-per-host", "0"], "--accelerators-per-host"),   # was taken as 1
    (["datasize", UNET3D, "--host-memory-gib", "nan"], "--host-memory-gib"),             # was a traceback
    (["datasize", UNET3D, "--host-memory-gib", "-1"], "got -1.0"),                        # as typed, not bytes
    (["datasize", LLAMA8B, "--ranks", "0"], "--ranks"),                                   # was the default
    (["mlperf", "check", UNET3D, "--hosts", "0"], "--hosts"),                             # ZeroDivisionError
    (["mlperf", "check", UNET3D, "--host-memory-gib", "inf"], "--host-memory-gib"),
    (["mlperf", "check", UNET3D, "--accelerators-per-host", "-2"], "--accelerators-per-host"),
    (["datasize", UNET3D, "--host-memory-gib", "1e300"], "--host-memory-gib"),          # an OverflowError
    (["mlperf", "check", UNET3D, "--host-memory-gib", "1e-30"], "--host-memory-gib"),   # was 0 bytes
    (["datasize", LLAMA8B, "--ranks", "1000000000"], "--ranks: 1000000000 ranks"),       # was a hang
])
def test_mlperf_options_out_of_range_are_one_line(args, flag):
    refused(in_process(*args), flag, code=2)


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    """One finished run folder of the tiny workload (in-process, one rank)."""
    config, _ = tiny
    out = tmp_path_factory.mktemp("faults-cli-run") / "run"
    r = in_process("run", config, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    return out


def test_search_round_out_never_replaces_a_foreign_file_nor_writes_half(tiny_run, tmp_path):
    thesis = tmp_path / "thesis.yaml"
    thesis.write_text("mine")
    line = refused(in_process("mlperf", "search-round", tiny_run, "--sweep", "1", "--out", thesis), str(thesis))
    assert "nothing was changed" in line and thesis.read_text() == "mine"
    refused(in_process("mlperf", "search-round", tiny_run, "--sweep", "1", "--out", tmp_path), "is a folder")
    refused(in_process("mlperf", "search-round", tiny_run, "--sweep", "1", "--out", tmp_path / "no/r.json"),
            "does not exist")
    for bad in (["--sweep", "0"], ["--sweep", "1", "--runs", "0"]):
        refused(in_process("mlperf", "search-round", tiny_run, *bad, "--out", tmp_path / "r.json"), bad[-2], code=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.yaml"]
    # A new file, then the same round again over its own file: replaced whole, nothing left beside it.
    for _ in range(2):
        r = in_process("mlperf", "search-round", tiny_run, "--sweep", "1", "--out", tmp_path / "r.json")
        assert r.returncode == 0, r.stderr
        assert json.loads((tmp_path / "r.json").read_text())["sweep"] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "thesis.yaml"]


@pytest.mark.parametrize("file, damage, named", [
    ("provenance.json", lambda d: [], "a JSON list"),
    ("provenance.json", lambda d: d | {"workload": 5}, "no workload.config"),
    ("provenance.json", lambda d: d | {"hosts": "two"}, "hosts is 'two'"),
    ("summary.json", lambda d: d | {"num_accelerators": "x"}, "num_accelerators is 'x'"),
    ("summary.json", lambda d: d | {"metric": {"train_au_mean_percentage": "high"}}, "train_au_mean_percentage"),
])
def test_mlperf_commands_name_a_damaged_run_folder(tiny, tiny_run, tmp_path, file, damage, named):
    config, _ = tiny
    run = tmp_path / "run"
    run.mkdir()
    for p in tiny_run.iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    (run / file).write_text(json.dumps(damage(json.loads((run / file).read_text()))))
    refused(in_process("mlperf", "check", config, "--runs", run), f"{run / file}", named)
    refused(in_process("mlperf", "search-round", run, "--sweep", "1", "--out", tmp_path / "r.json"), named)
    assert not (tmp_path / "r.json").exists()


def test_search_round_refuses_checkpoint_runs_and_other_workloads(tiny_run, tmp_path):
    """Were counted: a checkpoint-only run as a failing count (AU 0), another model's run in the same count."""
    doc = {"model": {"name": "ck", "model_size_bytes": 4096}, "framework": "pytorch",
           "workflow": {"train": False, "checkpoint": True},
           "checkpoint": {"checkpoint_folder": str(tmp_path / "c"), "num_checkpoints_write": 1,
                          "num_checkpoints_read": 1}}
    (tmp_path / "ck.yaml").write_text(yaml.safe_dump(doc))
    assert in_process("checkpoint", tmp_path / "ck.yaml", "-o", tmp_path / "ckrun", "-q").returncode == 0
    refused(in_process("mlperf", "search-round", tiny_run, tmp_path / "ckrun", "--sweep", "1",
                       "--out", tmp_path / "r.json"), str(tmp_path / "ckrun"), "checkpoint-only")
    other = tmp_path / "other"
    other.mkdir()
    for p in tiny_run.iterdir():
        (other / p.name).write_bytes(p.read_bytes())
    prov = json.loads((other / "provenance.json").read_text())
    prov["workload"]["config"]["model"]["name"] = "unet3d"
    (other / "provenance.json").write_text(json.dumps(prov))
    refused(in_process("mlperf", "search-round", tiny_run, other, "--sweep", "1", "--out", tmp_path / "r.json"),
            str(other), "one search reads one workload")
    # A search over 2 hosts whose run ran on one (a job Slurm did not spread) is not counted as 2 hosts' count.
    refused(in_process("mlperf", "search-round", tiny_run, "--sweep", "1", "--hosts", "2",
                       "--out", tmp_path / "r.json"), str(tiny_run), "ran on 1 host(s), not the search's 2")
    refused(in_process("mlperf", "search-round", tiny_run, "--sweep", "1", "--hosts", "0",
                       "--out", tmp_path / "r.json"), "--hosts", code=2)
    assert not (tmp_path / "r.json").exists()
