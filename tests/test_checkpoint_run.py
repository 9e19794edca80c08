"""Checkpoint schedules, the checkpoint-only run (ranks as processes) and its results."""
import json

import pytest

from dldriver.checkpoint import checkpoint_layout
from dldriver.config.model import Checkpoint, Parallelism, Transformer, Workload
from dldriver.engine.checkpointing import should_checkpoint_after_epoch, should_checkpoint_after_step
from dldriver.engine.results import combine_ops
from dldriver.engine.run import run_workload
from dldriver.metrics.summary import checkpoint_metric
from dldriver.errors import ConfigError

from test_run_helpers import make_dataset, workload_doc


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
    ops = combine_ops([[{"duration": 2.0, "bytes": 2 * gib}, {"duration": 1.0, "bytes": 2 * gib}],
                   [{"duration": 4.0, "bytes": 2 * gib}, {"duration": 1.0, "bytes": 2 * gib}]])
    assert [(op.seconds, op.gib_per_second) for op in ops] == [(4.0, 1.0), (1.0, 4.0)]
    metric = checkpoint_metric(ops, [], 4.0)
    assert metric == {"save_checkpoint_io_mean_GB_per_second": 2.5, "save_checkpoint_io_stdev_GB_per_second": 1.5,
                      "save_checkpoint_duration_mean_seconds": 2.5,
                      "save_checkpoint_duration_stdev_seconds": 1.5, "checkpoint_size_GB": 4.0}


def workload(folder, writes=2, reads=1):
    w = Workload()
    w.framework = "pytorch"  # as the llama checkpoint-only configs
    w.workflow.train, w.workflow.checkpoint = False, True
    w.model.type, w.model.num_layers = "transformer", 2
    w.model.transformer = Transformer(500, 64, 128, 8, 2)
    w.model.parallelism = Parallelism(2, 1, -1, 1)
    w.checkpoint = Checkpoint(checkpoint_folder=folder, num_checkpoints_write=writes, num_checkpoints_read=reads,
                              time_between_checkpoints=0.01, fsync=True)
    return w


def test_checkpoint_only_run_with_two_ranks(tmp_path):
    out = tmp_path / "out"
    summary = run_workload(workload(str(tmp_path / "ckpt")), ranks=2, output=str(out), quiet=True,
                           drop_caches=True, checkpoint_scale=0.5)
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


def test_recovery_rank_shift_on_one_host_reads_back_each_ranks_own_files(tmp_path):
    """Ranks count their host's ranks (a gather and a broadcast); with every rank on one host, rank +
    ranks-per-host is the rank itself, as in DLIO."""
    w = workload(str(tmp_path / "ckpt"))
    w.checkpoint.recovery_rank_shift = True
    summary = run_workload(w, ranks=2, output=str(tmp_path / "out"), quiet=True, checkpoint_scale=0.5)
    ranks = summary["dldriver"]["ranks"]
    assert [r["loads"][0]["bytes"] for r in ranks] == [r["bytes_per_checkpoint"] for r in ranks]


def test_reads_beyond_writes_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint.num_checkpoints_read"):
        run_workload(workload(str(tmp_path), writes=1, reads=2), ranks=2, quiet=True, output=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="checkpoint.num_checkpoints_write"):
        run_workload(workload(str(tmp_path), writes=-1, reads=0), ranks=2, quiet=True, output=str(tmp_path / "o"))


def test_bad_parallelism_fails_before_any_rank_starts(tmp_path):
    with pytest.raises(ConfigError, match="model.parallelism.tensor"):
        run_workload(workload(str(tmp_path)), ranks=3, quiet=True, output=str(tmp_path / "o"))


@pytest.mark.parametrize("randomize", [True, False])
@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("zero", [0, 3])
@pytest.mark.parametrize("framework, per_checkpoint", [("pytorch", lambda n: 3 * n),
                                                       ("tensorflow", lambda n: 3 * n * 2 + 1)])
def test_dlio_test_checkpoint_epoch(tmp_path, framework, per_checkpoint, zero, ranks, randomize):
    # DLIO's test_checkpoint_epoch through `dldriver run`: 8 epochs, a checkpoint every 2, TP = world size;
    # DLIO counts checkpoints/*/* = 4 x 3*nranks (pytorch) and 4 x (3*nranks*2 + 1) (tensorflow)
    doc = workload_doc(tmp_path / "d", "npz", files=2 * ranks, samples=1, batch=1,
                       workflow={"checkpoint": True}, train={"epochs": 8, "computation_time": 0},
                       checkpoint={"checkpoint_folder": str(tmp_path / "checkpoints"),
                                   "epochs_between_checkpoints": 2, "randomize_tensor": randomize},
                       model={"model_size_bytes": 1024, "optimization_groups": [1024, 128], "num_layers": 2,
                              "layer_parameters": [16], "parallelism": {"tensor": ranks, "zero_stage": zero}})
    doc["framework"] = framework  # the native loader goes with either framework
    w = make_dataset(tmp_path, doc)
    summary = run_workload(w, ranks=ranks, output=tmp_path / "out", quiet=True)
    folders = sorted((tmp_path / "checkpoints").iterdir())
    assert [f.name for f in folders] == [f"global_epoch{e}_step{summary['dldriver']['steps_per_epoch']}"
                                         for e in (1, 3, 5, 7)]
    files = [p for f in folders for p in f.iterdir()]
    assert len(files) == 4 * per_checkpoint(ranks)
    assert sum(p.name == "checkpoint" for p in files) == (4 if framework == "tensorflow" else 0)
    # what was written is what the layout says, and every save was timed
    expected = {n: b for per_rank in checkpoint_layout(w, ranks) for n, b in per_rank}
    assert all(p.stat().st_size == expected[p.name] for p in files)
    assert summary["metric"]["save_checkpoint_duration_mean_seconds"] > 0


def run_folder_files(ranks: int) -> list[str]:
    """What docs/internals.md promises in every run folder, whatever the run kind."""
    per_rank = [f"{r}_{name}" for r in range(ranks) for name in ("output.json", "per_epoch_stats.json")]
    return sorted(["summary.json", "provenance.json", "dlio.log", ".dldriver-run", *per_rank])


@pytest.mark.parametrize("kind", ["train", "train+checkpoint", "checkpoint-only"])
def test_every_run_kind_writes_the_same_run_folder(tmp_path, kind):
    if kind == "checkpoint-only":
        w = workload(str(tmp_path / "ckpt"), writes=1, reads=1)
    else:
        extra = ({"workflow": {"checkpoint": True},
                  "checkpoint": {"checkpoint_folder": str(tmp_path / "ckpt"), "steps_between_checkpoints": 1}}
                 if kind == "train+checkpoint" else {})
        w = make_dataset(tmp_path, workload_doc(tmp_path / "d", "npy", files=2, samples=1, batch=1, **extra))
    out = tmp_path / "out"
    summary = run_workload(w, ranks=2, output=out, quiet=True, checkpoint_scale=0.5)
    assert sorted(p.name for p in out.iterdir()) == run_folder_files(2)
    log = (out / "dlio.log").read_text()
    assert "[METRIC] Number of Simulated Accelerators: 2" in log
    outputs = [json.loads((out / f"{r}_output.json").read_text()) for r in range(2)]
    assert all(o["hostname"] == summary["hostname"] for o in outputs)
    if kind != "train":
        assert "Checkpoint save I/O Throughput (GB/second)" in log
        assert summary["metric"]["save_checkpoint_duration_mean_seconds"] > 0
    if kind == "checkpoint-only":
        assert "Saved checkpoint 1/1" in log and "Loaded checkpoint 1/1" in log


@pytest.mark.parametrize("store", ["s3", "azure"])
def test_first_timed_save_on_an_object_store_finds_its_client_and_bucket_made(request, tmp_path, monkeypatch, store):
    """Client and bucket / container set-up happens before the first timed save, in every rank: at the
    start of each save the bucket exists, and no client is made nor bucket created during one."""
    import os

    from dldriver.checkpoint import Checkpointer
    from dldriver.storage import azure, s3

    request.getfixturevalue({"s3": "s3_env", "azure": "azure_env"}[store])
    cache, storage_class = {"s3": (s3._clients, s3.S3Storage), "azure": (azure._services, azure.AzureStorage)}[store]
    events = tmp_path / "events"

    def record(what):
        with open(events, "a") as f:  # one short append per event: ranks' lines do not interleave
            f.write(f"{os.getpid()} {what}\n")

    make_client, create_root, save = cache._make, storage_class._create_root, Checkpointer.save
    monkeypatch.setattr(cache, "_clients", {})  # rank 0 is this process: no client from an earlier test
    monkeypatch.setattr(cache, "_make", lambda settings: (record("client"), make_client(settings))[1])
    monkeypatch.setattr(storage_class, "_create_root", lambda self: (record("create"), create_root(self))[1])

    def timed_save(self, *args):
        record("save")
        record(f"exists={self.storage._root_exists()}")
        timing = save(self, *args)
        record("saved")
        return timing

    monkeypatch.setattr(Checkpointer, "save", timed_save)
    from conftest import unique_name
    w = workload(f"{store[:2]}://{unique_name('first-save')}/ckpt", writes=2, reads=1)
    run_workload(w, ranks=2, output=str(tmp_path / "out"), quiet=True, checkpoint_scale=0.5)
    by_rank = {}
    for line in events.read_text().splitlines():
        pid, what = line.split(" ", 1)
        by_rank.setdefault(pid, []).append(what)
    assert len(by_rank) == 2
    assert sum(seq.count("create") for seq in by_rank.values()) == 1  # one rank created it, once
    for seq in by_rank.values():
        first = seq.index("save")
        assert "client" in seq[:first]
        assert seq[first:] == ["save", "exists=True", "saved"] * 2
