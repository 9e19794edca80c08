"""The torch API over torch.distributed: two real processes (gloo on 127.0.0.1) take their rank and world
size from the process group, and one measured run folder, written by rank 0, holds both ranks' steps."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import torch
import torch.multiprocessing as mp

from dldriver.frameworks.measure import Measurement
from dldriver.frameworks.pytorch import DlioPyTorchDataLoader
from dldriver.storage import open_storage

from conftest import free_port_block
from test_run_helpers import make_dataset, workload_doc

FILES, SAMPLES, WORLD, EPOCHS = 4, 3, 2, 2


def _rank_main(rank: int, port: int, doc: dict, out: str, seen: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        loader = DlioPyTorchDataLoader.from_config(doc, num_workers=0)  # rank and world from the group
        assert (loader.dataset.rank, loader.dataset.world_size) == (rank, WORLD)
        read = {}
        with Measurement(loader, out) as run:
            for epoch in range(1, EPOCHS + 1):
                read[epoch] = [row.numpy().tobytes().hex() for batch in run.epoch(epoch) for row in batch]
        with open(f"{seen}.{rank}.json", "w") as f:
            json.dump(read, f)
    finally:
        dist.destroy_process_group()


def _run_ranks(*args, deadline: float = 180.0) -> None:
    # forkserver: a clean server process imports torch once and forks both ranks (two spawned ranks
    # would each import torch, seconds on a shared machine); fork could copy the test process's threads.
    mp.get_context("forkserver").set_forkserver_preload(["torch", "dldriver.frameworks.pytorch", __name__])
    context = mp.start_processes(_rank_main, args=args, nprocs=WORLD, join=False, start_method="forkserver")
    stop = time.monotonic() + deadline
    while not context.join(timeout=5):  # raises with the rank's traceback when one fails
        if time.monotonic() > stop:
            for process in context.processes:
                process.kill()
            raise AssertionError(f"the {WORLD} ranks did not finish within {deadline:.0f} s")


def test_two_ranks_over_torch_distributed_write_one_measured_run_folder(tmp_path):
    doc = workload_doc(tmp_path / "d", "npz", loader="pytorch", files=FILES, samples=SAMPLES,
                       reader={"file_shuffle": "random", "sample_shuffle": "random"})
    make_dataset(tmp_path, doc)
    storage = open_storage(f"file://{tmp_path}/d")
    expected = {}
    for f in range(FILES):
        x = np.load(io.BytesIO(storage.get(f"train/img_{f}_of_{FILES}.npz")))["x"]
        for s in range(SAMPLES):
            expected[np.ascontiguousarray(x[..., s]).tobytes().hex()] = (f, s)
    out = tmp_path / "measured"
    _run_ranks(free_port_block(1), doc, str(out), str(tmp_path / "seen"))

    seen = [json.loads((tmp_path / f"seen.{r}.json").read_text()) for r in range(WORLD)]
    for epoch in map(str, range(1, EPOCHS + 1)):
        keys = [expected[h] for rank in seen for h in rank[epoch]]
        # every sample exactly once over the two ranks: `random` shuffling drew one value, broadcast from
        # rank 0 through the process group, so both ranks shuffled alike
        assert sorted(keys) == sorted(expected.values())
    assert seen[0]["1"] != seen[0]["2"]  # another order (and shard) per epoch

    summary = json.loads((out / "summary.json").read_text())
    ours = summary["dldriver"]
    assert summary["num_accelerators"] == WORLD and ours["ranks"] == WORLD and ours["measured"]
    assert sorted(p.name for p in out.glob("*_output.json")) == ["0_output.json", "1_output.json"]
    assert sorted(p.name for p in out.glob("*_per_epoch_stats.json")) == ["0_per_epoch_stats.json",
                                                                          "1_per_epoch_stats.json"]
    for r in range(WORLD):  # each rank's own steps: 6 samples per epoch, batch 2
        steps = json.loads((out / f"{r}_output.json").read_text())
        assert [len(steps[str(e)]["compute"]["block1"]) for e in range(1, EPOCHS + 1)] == [3] * EPOCHS
    stored = sum(len(storage.get(f"train/img_{f}_of_{FILES}.npz")) for f in range(FILES))
    assert ours["coverage_ok"] and ours["steps_per_epoch"] == 3
    for epoch in ours["epochs"]:
        assert epoch["samples_read"] == FILES * SAMPLES  # both ranks' samples, summed
        assert epoch["coverage"]["samples_read_by_rank"] == [6, 6]
        assert epoch["bytes_read"] >= stored // 2  # each rank's real bytes, not rank 0's alone
    assert not list(tmp_path.glob("measured.*"))  # written once, no second (rank 1's) staging folder
