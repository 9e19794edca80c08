"""Checkpoint schedules, the checkpoint-only run (ranks as processes) and its results."""
import json

import pytest

from dldriver.checkpoint import (run_checkpoint_only, should_checkpoint_after_epoch,
                                 should_checkpoint_after_step)
from dldriver.checkpoint.runner import checkpoint_metric, combine
from dldriver.config.model import Checkpoint, Parallelism, Transformer, Workload
from dldriver.errors import ConfigError


def test_epoch_schedule_matches_dlio():
    # DLIO's test_checkpoint_epoch: 8 epochs, a checkpoint every 2 from epoch 1 -> 4 checkpoints
    ckpt = Checkpoint(epochs_between_checkpoints=2)
    assert [e for e in range(1, 9) if should_checkpoint_after_epoch(ckpt, e)] == [1, 3, 5, 7]
    # unet3d: after epoch 5, every 2
    ckpt = Checkpoint(checkpoint_after_epoch=5, epochs_between_checkpoints=2)
    assert [e for e in range(1, 10) if should_checkpoint_after_epoch(ckpt, e)] == [5, 7, 9]
    # step mode turns the epoch schedule off
    assert not should_checkpoint_after_epoch(Checkpoint(steps_between_checkpoints=2), 1)


def test_step_schedule_matches_dlio():
    ckpt = Checkpoint(steps_between_checkpoints=2)
    assert [s for s in range(1, 8) if should_checkpoint_after_step(ckpt, s)] == [2, 4, 6]
    assert not any(should_checkpoint_after_step(Checkpoint(), s) for s in range(1, 10))


def test_mlperf_multi_rank_rule():
    # checkpoint 1: rank 1 is slowest (4 s); 2 GiB + 2 GiB over 4 s = 1 GiB/s
    gib = 1024 ** 3
    ops = combine([[{"duration": 2.0, "bytes": 2 * gib}, {"duration": 1.0, "bytes": 2 * gib}],
                   [{"duration": 4.0, "bytes": 2 * gib}, {"duration": 1.0, "bytes": 2 * gib}]])
    assert [(op.seconds, op.gib_per_second) for op in ops] == [(4.0, 1.0), (1.0, 4.0)]
    metric = checkpoint_metric(ops, [], 4 * gib)
    assert metric == {"save_checkpoint_io_mean_GB_per_second": 2.5, "save_checkpoint_io_stdev_GB_per_second": 1.5,
                      "save_checkpoint_duration_mean_seconds": 2.5,
                      "save_checkpoint_duration_stdev_seconds": 1.5, "checkpoint_size_GB": 4.0}


def workload(folder, writes=2, reads=1):
    w = Workload()
    w.workflow.train, w.workflow.checkpoint = False, True
    w.model.type, w.model.num_layers = "transformer", 2
    w.model.transformer = Transformer(500, 64, 128, 8, 2)
    w.model.parallelism = Parallelism(2, 1, -1, 1)
    w.checkpoint = Checkpoint(checkpoint_folder=folder, num_checkpoints_write=writes, num_checkpoints_read=reads,
                              time_between_checkpoints=0.01, fsync=True)
    return w


def test_checkpoint_only_run_with_two_ranks(tmp_path):
    out = tmp_path / "out"
    summary = run_checkpoint_only(workload(str(tmp_path / "ckpt")), ranks=2, output=str(out), quiet=True,
                                  drop_caches=True, scale=0.5)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["global_epoch1_step1", "global_epoch1_step2"]
    assert sorted(p.name for p in (tmp_path / "ckpt" / "global_epoch1_step1").iterdir()) == [
        "model_0_model_states.pt", "model_1_model_states.pt",
        "zero_pp_rank_0_mp_rank_0_optim_states.pt", "zero_pp_rank_0_mp_rank_1_optim_states.pt"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["metric"] == pytest.approx(summary["metric"])
    m = summary["metric"]
    for key in ("save_checkpoint_io_mean_GB_per_second", "save_checkpoint_io_stdev_GB_per_second",
                "save_checkpoint_duration_mean_seconds", "save_checkpoint_duration_stdev_seconds",
                "load_checkpoint_io_mean_GB_per_second", "load_checkpoint_duration_mean_seconds"):
        assert m[key] >= 0
    d = summary["dldriver"]
    assert d["checkpoint_scale"] == 0.5 and d["checkpoint_files"] == 4 and d["fsync"] is True
    assert m["checkpoint_size_GB"] == d["checkpoint_bytes"] / 1024 ** 3
    assert len(d["saves"]) == 2 and len(d["loads"]) == 1 and d["drop_caches"] in ("drop_caches", "fadvise")
    assert [len(r["saves"]) for r in d["ranks"]] == [2, 2] and d["peak_rss_bytes"] > 0
    stats = json.loads((out / "1_per_epoch_stats.json").read_text())["1"]
    assert {"save_ckpt1", "save_ckpt2", "load_ckpt1"} <= set(stats)


def test_reads_beyond_writes_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint.num_checkpoints_read"):
        run_checkpoint_only(workload(str(tmp_path), writes=1, reads=2), ranks=2, quiet=True, output=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="checkpoint.num_checkpoints_write"):
        run_checkpoint_only(workload(str(tmp_path), writes=-1, reads=0), ranks=2, quiet=True, output=str(tmp_path / "o"))


def test_bad_parallelism_fails_before_any_rank_starts(tmp_path):
    with pytest.raises(ConfigError, match="model.parallelism.tensor"):
        run_checkpoint_only(workload(str(tmp_path)), ranks=3, quiet=True, output=str(tmp_path / "o"))
