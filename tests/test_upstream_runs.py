"""Shrunk runs of upstream workload files as shipped (tests/data/upstream/), with the command lines their users
type: MLPerf Storage's checkpoint write phase then read phase, and a generate + run of an older file."""
import json
from pathlib import Path

import yaml

from dldriver.cli import main

UPSTREAM = Path(__file__).parent / "data" / "upstream"


def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


def _checkpoint(tmp_path, capsys, out, writes, reads):
    # mlpstorage's checkpointing line (mlpstorage/benchmarks/dlio.py), scaled to ~1 MB per checkpoint.
    code = main(["run", "-q", "--checkpoint-scale", "0.00001", str(UPSTREAM / "mlperf-main" / "llama3_8b.yaml"),
                 f"++hydra.run.dir={tmp_path / out}", "++hydra.output_subdir=dlio_config",
                 f"++workload.checkpoint.num_checkpoints_read={reads}",
                 f"++workload.checkpoint.num_checkpoints_write={writes}",
                 f"++workload.checkpoint.checkpoint_folder={tmp_path / 'ckpt' / 'llama3-8b'}",
                 "++workload.checkpoint.time_between_checkpoints=0"])
    return code, capsys.readouterr().err


def test_mlperf_checkpoint_write_phase_then_read_phase(tmp_path, capsys):
    code, err = _checkpoint(tmp_path, capsys, "write", writes=2, reads=0)
    assert code == 0, err
    written = _summary(tmp_path / "write")
    assert "load_checkpoint_io_mean_GB_per_second" not in written["metric"]
    code, err = _checkpoint(tmp_path, capsys, "read", writes=0, reads=2)
    assert code == 0, err
    read = _summary(tmp_path / "read")
    assert read["metric"]["load_checkpoint_io_mean_GB_per_second"] > 0
    assert [op["bytes"] for op in read["dldriver"]["loads"]] == [written["dldriver"]["checkpoint_bytes"]] * 2
    assert "save_checkpoint_io_mean_GB_per_second" not in read["metric"]
    # ++hydra.output_subdir names the run folder's subfolder for the resolved config, as in DLIO.
    resolved = yaml.safe_load((tmp_path / "read" / "dlio_config" / "config.yaml").read_text())
    assert resolved["workload"]["checkpoint"]["num_checkpoints_write"] == 0


def test_read_phase_of_a_checkpoint_never_written_names_the_file(tmp_path, capsys):
    assert _checkpoint(tmp_path, capsys, "write", writes=1, reads=0)[0] == 0
    code, err = _checkpoint(tmp_path, capsys, "read", writes=0, reads=2)
    assert code != 0
    assert "global_epoch1_step2/" in err and err.count("\n") == 1
    assert not (tmp_path / "read" / "summary.json").exists()


def test_read_phase_of_a_short_checkpoint_names_the_file(tmp_path, capsys):
    assert _checkpoint(tmp_path, capsys, "write", writes=1, reads=0)[0] == 0
    victim = sorted((tmp_path / "ckpt" / "llama3-8b" / "global_epoch1_step1").rglob("*.pt"))[0]
    victim.write_bytes(victim.read_bytes()[:-1])
    code, err = _checkpoint(tmp_path, capsys, "read", writes=0, reads=1)
    assert code != 0 and victim.name in err and "bytes" in err


def test_mlperf_v05_unet3d_generates_and_trains(tmp_path, capsys):
    # MLPerf Storage v0.5's unet3d.yaml (DLIO 1.0 spellings: model: unet3d, record_length, checkpoint.model_size),
    # with benchmark.sh's datagen and run lines, shrunk to 16 files of 4 KiB.
    config = str(UPSTREAM / "mlperf-v0.5" / "unet3d.yaml")
    shrink = [f"++workload.dataset.data_folder={tmp_path / 'data'}", "++workload.dataset.num_files_train=16",
              "++workload.dataset.record_length=4096", "++workload.dataset.record_length_stdev=0",
              "++workload.reader.read_threads=1", "++workload.train.epochs=1",
              "++workload.train.computation_time=0.001", "++workload.workflow.checkpoint=False",
              "++workload.reader.data_loader=native", f"++hydra.run.dir={tmp_path / 'run'}"]
    assert main(["generate", "-q", "-j", "1", config, "++workload.workflow.generate_data=True",
                 "++workload.workflow.train=False", *shrink]) == 0, capsys.readouterr().err
    assert main(["run", "-q", config, "++workload.workflow.generate_data=False",
                 "++workload.workflow.train=True", "++hydra.output_subdir=cfg", *shrink]) == 0, capsys.readouterr().err
    summary = _summary(tmp_path / "run")
    assert summary["num_files_train"] == 16
    assert summary["metric"]["train_au_mean_percentage"] > 0
    resolved = yaml.safe_load((tmp_path / "run" / "cfg" / "config.yaml").read_text())
    assert resolved["workload"]["dataset"]["record_length_bytes"] == 4096
