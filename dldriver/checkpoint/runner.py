"""Checkpoints in a run: DLIO's schedules, a per-rank Checkpointer, and the checkpoint-only run driver.

Checkpoint-only mode (workflow.train False, workflow.checkpoint True), as DLIO HEAD and MLPerf Storage run it:
num_checkpoints_write times (sleep time_between_checkpoints, barrier, save global_epoch1_step{i}), then
(with drop_caches, MLPerf's rule: write, drop caches, read) num_checkpoints_read loads of the first of those.
With num_checkpoints_write 0 (MLPerf Storage's read phase) the loads read checkpoints an earlier run left in
checkpoint_folder; a missing or short file is a CheckpointError naming it.
"""
from __future__ import annotations

import resource
import socket
import sys
import time

from dldriver.checkpoint import layout
from dldriver.checkpoint.stream import CHUNK_BYTES, ChunkSource, read_files, write_files
from dldriver.config.resolved import write_resolved_config
from dldriver.config.uri import checkpoint_uri
from dldriver.errors import ConfigError, DlDriverError
from dldriver.metrics import caching, summary as run_summary, system
from dldriver.metrics.formulas import GiB, checkpoint_op, checkpoint_stats
from dldriver.metrics.outdir import results_write_errors
from dldriver.outputs import check_checkpoint_folder, check_run_folder


def should_checkpoint_after_epoch(ckpt, epoch: int) -> bool:
    """Epoch mode (steps_between_checkpoints < 0): after epoch e = checkpoint_after_epoch + k*epochs_between (1-based)."""
    if ckpt.steps_between_checkpoints >= 0 or ckpt.epochs_between_checkpoints <= 0:
        return False
    since = epoch - ckpt.checkpoint_after_epoch
    return since >= 0 and since % ckpt.epochs_between_checkpoints == 0


def should_checkpoint_after_step(ckpt, step: int) -> bool:
    """Step mode: every steps_between_checkpoints steps; `step` is 1-based and restarts each epoch, as in DLIO."""
    return ckpt.steps_between_checkpoints > 0 and step % ckpt.steps_between_checkpoints == 0


def open_checkpoint_storage(workload):
    """The storage at the workload's checkpoint URI (file, direct, s3 or az)."""
    from dldriver.config.uri import checkpoint_uri, storage_options
    from dldriver.storage import open_storage

    return open_storage(checkpoint_uri(workload), storage_options(workload))


class Checkpointer:
    """One rank's checkpoint I/O: which files it owns, and timed saves and loads of them."""

    def __init__(self, workload, rank: int, world_size: int, scale: float = 1.0, storage=None,
                 chunk_bytes: int = CHUNK_BYTES, ranks_per_host: int | None = None):
        self.workload = workload
        self.rank = rank
        self.scale = scale
        self.layout = layout.checkpoint_layout(workload, world_size, scale)
        self.files = self.layout[rank]
        self.total_bytes = sum(n for files in self.layout for _, n in files)
        self.storage = storage if storage is not None else open_checkpoint_storage(workload)
        ckpt = workload.checkpoint
        # Seeded by rank so that ranks write different bytes, and a reader can regenerate them to check.
        self.source = ChunkSource(ckpt.randomize_tensor, seed=rank, chunk_bytes=chunk_bytes)
        # DLIO's recovery_rank_shift: a load reads the files that rank + ranks-per-host wrote, on another
        # host when ranks fill hosts in order, so that no host reads back what its own page cache holds.
        # (DLIO HEAD stores the key under another name and never shifts.) On one host it changes nothing.
        shift = (ranks_per_host or world_size) if ckpt.recovery_rank_shift else 0
        self.load_rank = (rank + shift) % world_size
        self.load_source = ChunkSource(ckpt.randomize_tensor, seed=self.load_rank, chunk_bytes=chunk_bytes)

    def save(self, epoch: int, step: int, barrier=None) -> dict:
        """Write this rank's files of global_epoch{epoch}_step{step}; returns its timing record."""
        folder = layout.checkpoint_folder(epoch, step)
        return self._timed(folder, lambda: write_files(self.storage, folder, self.files, self.source,
                                                       self.workload.checkpoint.fsync), barrier)

    def load(self, epoch: int, step: int, barrier=None, verify: bool = False) -> dict:
        """Read back every byte of global_epoch{epoch}_step{step}'s files of this rank (of load_rank, with
        recovery_rank_shift); returns its timing record."""
        folder = layout.checkpoint_folder(epoch, step)
        files, source = self.layout[self.load_rank], self.load_source
        return self._timed(folder, lambda: read_files(self.storage, folder, files, source.chunk_bytes,
                                                      source if verify else None), barrier)

    def _timed(self, folder: str, io, barrier) -> dict:
        start = time.time()
        t0 = time.perf_counter()
        nbytes = io()
        if barrier is not None and self.workload.checkpoint.rank_sync:
            barrier.wait()  # DLIO's rank_sync: the barrier after each save/load counts in its time
        duration = time.perf_counter() - t0
        return {"folder": folder, "start": start, "end": start + duration, "duration": duration, "bytes": nbytes}


def _counts(workload) -> tuple[int, int]:
    ckpt = workload.checkpoint
    writes, reads = max(ckpt.num_checkpoints_write, 0), max(ckpt.num_checkpoints_read, 0)
    problems = []
    if writes == 0 and reads == 0:
        problems.append("checkpoint.num_checkpoints_write: a checkpoint-only run needs at least 1 write "
                        f"(or 0 writes and reads of existing checkpoints), got {ckpt.num_checkpoints_write}")
    if 0 < writes < reads:
        problems.append(f"checkpoint.num_checkpoints_read: {reads} reads exceed checkpoint.num_checkpoints_write "
                        f"= {writes}; only written checkpoints can be read")
    if problems:
        raise ConfigError(problems)
    return writes, reads


class _Barrier:
    """The `.wait()` the Checkpointer takes, over the engine's Comm."""

    def __init__(self, comm):
        self.comm = comm

    def wait(self):
        self.comm.barrier()


def ranks_per_host(comm, workload) -> int | None:
    """How many ranks run on this rank's host, when recovery_rank_shift needs it (a collective: every
    rank calls it); None otherwise."""
    if not workload.checkpoint.recovery_rank_shift:
        return None
    hosts = comm.bcast(comm.gather(socket.gethostname()))
    return hosts.count(socket.gethostname())


def _rank_checkpoint_only(comm, workload, scale, drop_caches, quiet):
    rank, world, barrier = comm.rank, comm.size, _Barrier(comm)
    start = time.time()
    ck = Checkpointer(workload, rank, world, scale, ranks_per_host=ranks_per_host(comm, workload))
    writes, reads = _counts(workload)
    pause = workload.checkpoint.time_between_checkpoints
    cache = None
    saves = _timed_ops(ck.save, writes, pause, barrier, quiet, rank, "saved")
    if reads:
        barrier.wait()
        if drop_caches and rank == 0:
            cache = _drop_page_cache(ck, max(writes, reads))
        barrier.wait()
    loads = _timed_ops(ck.load, reads, pause, barrier, quiet, rank, "loaded")
    return {"rank": rank, "start": start, "end": time.time(), "files": len(ck.files),
            "bytes_per_checkpoint": sum(n for _, n in ck.files),
            "saves": saves, "loads": loads, "drop_caches": cache,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _timed_ops(op, count: int, pause: float, barrier, quiet: bool, rank: int, verb: str) -> list[dict]:
    """`count` saves or loads (checkpoint i is global_epoch1_step{i}), each after the pause and a barrier."""
    records = []
    for i in range(1, count + 1):
        if pause > 0:
            time.sleep(pause)
        barrier.wait()
        records.append(op(1, i, barrier))
        _progress(quiet, rank, f"{verb} checkpoint {i}/{count}: {records[-1]['bytes']} bytes in "
                               f"{records[-1]['duration']:.3f} s")
    return records


def _progress(quiet: bool, rank: int, line: str) -> None:
    if not quiet and rank == 0:
        print(f"[checkpoint] rank 0 {line}", file=sys.stderr, flush=True)


def _drop_page_cache(ck: Checkpointer, writes: int) -> str:
    """Evict the written checkpoints from the page cache; returns the method used.

    The whole cache needs root. Without it, the checkpoint's own files are evicted one by one (sync, then
    POSIX_FADV_DONTNEED), which is what the read phase needs. Object stores cache on the server side, out
    of the client's reach.
    """
    try:
        caching.drop_caches()
        return "drop_caches"
    except DlDriverError:
        pass
    paths = [ck.storage.local_path(f"{layout.checkpoint_folder(1, i)}/{name}")
             for i in range(1, writes + 1) for files in ck.layout for name, _ in files]
    if not paths or paths[0] is None:
        return "none (object store)"
    caching.evict_files(paths)
    return "fadvise"


def checkpoint_metric(saves: list, loads: list, checkpoint_bytes: int) -> dict:
    """DLIO's checkpoint keys of metric{} from combined operations (metrics.formulas.CheckpointOp)."""
    metric = {}
    for prefix, ops in (("save", saves), ("load", loads)):
        if ops:
            stats = checkpoint_stats(ops)
            metric |= {f"{prefix}_checkpoint_io_mean_GB_per_second": stats["gbps_mean"],
                       f"{prefix}_checkpoint_io_stdev_GB_per_second": stats["gbps_stdev"],
                       f"{prefix}_checkpoint_duration_mean_seconds": stats["duration_mean"],
                       f"{prefix}_checkpoint_duration_stdev_seconds": stats["duration_stdev"]}
    metric["checkpoint_size_GB"] = checkpoint_bytes / GiB
    return metric


def combine(per_rank_records: list) -> list:
    """Per operation i, MLPerf's rule over ranks: slowest rank's duration, all ranks' bytes."""
    return [checkpoint_op([r["duration"] for r in op], [r["bytes"] for r in op]) for op in zip(*per_rank_records)]


def _rank_epoch_stats(rank_result: dict) -> dict:
    records = {}
    for kind, runs in (("save_ckpt", rank_result["saves"]), ("load_ckpt", rank_result["loads"])):
        for i, r in enumerate(runs, 1):
            rate = r["bytes"] / GiB / r["duration"] if r["duration"] > 0 else 0.0
            records[f"{kind}{i}"] = (r["start"], r["end"], rate)
    return {"1": run_summary.epoch_stats(rank_result["start"], rank_result["end"], {}, records)}


def run_checkpoint_only(workload, ranks=None, output=None, drop_caches=False, quiet=False, scale=1.0) -> dict:
    """Run a checkpoint-only workload on `ranks` processes (or the srun/mpiexec world); write its run folder.

    Returns the summary (DLIO's keys) on rank 0, None on the other ranks of an MPI launch.
    """
    from dldriver.engine.ranks import launch, world_size

    layout.checkpoint_layout(workload, world_size(ranks), scale)  # fail on bad parallelism before any rank starts
    _counts(workload)
    check_run_folder(output or workload.output.folder or "output")
    check_checkpoint_folder(checkpoint_uri(workload))
    start = time.time()

    def rank_main(comm):
        per_rank = comm.gather(_rank_checkpoint_only(comm, workload, scale, drop_caches, quiet))
        if comm.rank == 0:
            return _finish(workload, per_rank, start, output, quiet, scale)
        return None

    return launch(rank_main, ranks)


def _finish(workload, per_rank, start, output, quiet, scale) -> dict:
    ranks = len(per_rank)
    end = time.time()
    saves, loads = combine([r["saves"] for r in per_rank]), combine([r["loads"] for r in per_rank])
    total = sum(r["bytes_per_checkpoint"] for r in per_rank)
    ds = workload.dataset
    result = run_summary.build_summary(
        start=start, end=end, num_accelerators=ranks, num_hosts=1, hosts=[system.host_info()],
        num_files_train=ds.num_files_train, num_files_eval=ds.num_files_eval,
        num_samples_per_file=ds.num_samples_per_file, data_size_per_host_GB=0.0, epochs=0,
        metric=checkpoint_metric(saves, loads, total),
        dldriver={
            "mode": "checkpoint_only",
            "checkpoint_scale": scale,
            "checkpoint_bytes": total,
            "checkpoint_files": sum(r["files"] for r in per_rank),
            "fsync": workload.checkpoint.fsync,
            "drop_caches": per_rank[0]["drop_caches"],
            "saves": [{"seconds": op.seconds, "bytes": op.bytes, "GB_per_second": op.gib_per_second} for op in saves],
            "loads": [{"seconds": op.seconds, "bytes": op.bytes, "GB_per_second": op.gib_per_second} for op in loads],
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in per_rank),
            "ranks": per_rank,
        })
    folder = output or workload.output.folder or "output"
    with results_write_errors(folder):
        run_summary.write_run_folder(folder, result, {}, {r["rank"]: _rank_epoch_stats(r) for r in per_rank},
                                     extra=lambda staged: write_resolved_config(staged, workload))
    if not quiet:
        m = result["metric"]
        print(f"[checkpoint] size {m['checkpoint_size_GB']:.3f} GB; save {m['save_checkpoint_io_mean_GB_per_second']:.3f}"
              f" GB/s" + (f"; load {m['load_checkpoint_io_mean_GB_per_second']:.3f} GB/s" if loads else "")
              + f"; results in {folder}", file=sys.stderr)
    return result
