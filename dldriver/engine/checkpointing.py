"""When checkpoints happen: DLIO's schedules in a training run, and the checkpoint-only phases.

Checkpoint-only mode (workflow.train False, workflow.checkpoint True), as DLIO HEAD and MLPerf Storage
run it: num_checkpoints_write times (sleep time_between_checkpoints, barrier, save global_epoch1_step{i}),
then (with drop_caches, MLPerf's rule: write, drop caches, read) num_checkpoints_read loads of the first
of those. With num_checkpoints_write 0 (MLPerf Storage's read phase) the loads read checkpoints an
earlier run left in checkpoint_folder; a missing or short file is a CheckpointError naming it. The I/O
itself is dldriver.checkpoint's.
"""
from __future__ import annotations

import logging
import os
import resource
import shutil
import time

from dldriver.checkpoint import Checkpointer, checkpoint_layout
from dldriver.engine.ranks import Comm, ranks_on_this_host
from dldriver.errors import CheckpointError, ConfigError
from dldriver.outputs import existing_ancestor
from dldriver.storage import open_storage
from dldriver.uri import local_path

log = logging.getLogger("dldriver")


def should_checkpoint_after_epoch(ckpt, epoch: int) -> bool:
    """Epoch mode (steps_between_checkpoints < 0): after epoch e = checkpoint_after_epoch + k*epochs_between (1-based)."""
    if ckpt.steps_between_checkpoints >= 0 or ckpt.epochs_between_checkpoints <= 0:
        return False
    since = epoch - ckpt.checkpoint_after_epoch
    return since >= 0 and since % ckpt.epochs_between_checkpoints == 0


def should_checkpoint_after_step(ckpt, step: int) -> bool:
    """Step mode: every steps_between_checkpoints steps; `step` is 1-based and restarts each epoch, as in DLIO."""
    return ckpt.steps_between_checkpoints > 0 and step % ckpt.steps_between_checkpoints == 0


def open_checkpointer(comm: Comm, workload, uri: str, options: dict, scale: float,
                      writes: bool = True) -> Checkpointer:
    """This rank's Checkpointer on the checkpoint storage at `uri` with `options` (the run's
    config.uri.locations), connected (a collective: every rank calls it, and with recovery_rank_shift it
    counts the ranks on each host).

    The SDK client and, when the run writes, the bucket / container are made here, before the first
    timed save: they are set-up, paid once per process, not checkpoint I/O. Rank 0 creates a missing
    bucket while the others wait, so that N ranks do not all try at once.
    """
    per_host = ranks_on_this_host(comm) if workload.checkpoint.recovery_rank_shift else None
    storage = open_storage(uri, options)
    prepare = storage.prepare_writes if writes else storage.connect
    if comm.rank == 0:
        prepare()
    comm.barrier()
    if comm.rank != 0:
        prepare()
    return Checkpointer(workload, comm.rank, comm.size, storage, scale, ranks_per_host=per_host)


def layout_bytes(workload, world_size: int, scale: float) -> int:
    """One checkpoint's bytes over every rank, as the layout writes them; a ConfigError for a layout that
    cannot run on `world_size` ranks."""
    return sum(n for files in checkpoint_layout(workload, world_size, scale) for _, n in files)


def scheduled_checkpoints(ckpt, epochs: int, steps: int) -> int:
    """How many checkpoints a training run of `epochs` x `steps` saves: after each step the step schedule
    names (the step count restarts each epoch) and after each epoch the epoch schedule names."""
    k = ckpt.steps_between_checkpoints
    per_epoch = steps // k if k > 0 else 0   # the steps should_checkpoint_after_step names: k, 2k, ...
    return epochs * per_epoch + sum(1 for e in range(1, epochs + 1) if should_checkpoint_after_epoch(ckpt, e))


def check_local_room(uri: str, need: int, writes: int,
                     count_key: str = "checkpoint.num_checkpoints_write") -> None:
    """On a local file system (file://, direct://), `need` bytes for `writes` checkpoints must fit in its free
    space, counting what the folder already holds as rewritten (dl-driver's own checkpoints, by name)."""
    folder = local_path(uri)
    if folder is None or need == 0:
        return
    held = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
    base = existing_ancestor(folder)
    free = shutil.disk_usage(base).free
    if need - held > free:
        raise CheckpointError(f"checkpoint.checkpoint_folder: {folder}: {writes} checkpoint(s) "
                              f"({count_key}) need {_gb(need - held)} more but the file "
                              f"system of {base} has {_gb(free)} free; shrink them with --checkpoint-scale or "
                              "free space; nothing was written")


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def checkpoint_counts(workload) -> tuple[int, int]:
    """(writes, reads) of a checkpoint-only run; a ConfigError naming the keys when they cannot run."""
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


def checkpoint_only_rank(comm: Comm, checkpointer: Checkpointer, writes: int, reads: int, pause: float,
                         drop_caches: bool) -> dict:
    """One rank's checkpoint-only run: `writes` saves, then (after an optional cache drop) `reads` loads,
    each after `pause` seconds (checkpoint.time_between_checkpoints)."""
    start = time.time()
    cache = None
    saves = _timed_ops(comm, checkpointer.save, writes, pause, "Saved")
    if reads:
        comm.barrier()
        if drop_caches and comm.rank == 0:
            cache = checkpointer.drop_page_cache([(1, i) for i in range(1, max(writes, reads) + 1)])
        comm.barrier()
    loads = _timed_ops(comm, checkpointer.load, reads, pause, "Loaded")
    return {"rank": comm.rank, "start": start, "end": time.time(), "files": len(checkpointer.files),
            "bytes_per_checkpoint": sum(n for _, n in checkpointer.files),
            "saves": saves, "loads": loads, "drop_caches": cache,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _timed_ops(comm: Comm, op, count: int, pause: float, verb: str) -> list[dict]:
    """`count` saves or loads (checkpoint i is global_epoch1_step{i}), each after the pause and a barrier."""
    records = []
    for i in range(1, count + 1):
        if pause > 0:
            time.sleep(pause)
        comm.barrier()
        records.append(op(1, i, comm.barrier))
        log.info("%s checkpoint %d/%d: %d bytes in %.3f s", verb, i, count, records[-1]["bytes"],
                 records[-1]["duration"])
    return records
