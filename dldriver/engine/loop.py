"""The emulation loop of one rank, with DLIO's semantics (docs/dlio-facts.md §0 and §5).

Per epoch: (optionally) drop the page cache, barrier, then for each step: wait for the batch (load),
sleep a computation_time draw (compute), barrier (DLIO's stand-in for the all-reduce), and a step
checkpoint when scheduled, which ends the current block. After the epoch: an epoch checkpoint when
scheduled, evaluation when scheduled (no barrier per step, as DLIO), and the coverage check: what every
rank really read is gathered at rank 0 and checked against the dataset.
"""
from __future__ import annotations

import gc
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from dldriver.config.model import Checkpoint, Evaluation
from dldriver.config.timespec import TimeSpec
from dldriver.dataset.sampler import Sampler, coverage
from dldriver.engine.checkpointing import should_checkpoint_after_epoch, should_checkpoint_after_step
from dldriver.engine.ranks import Comm
from dldriver.errors import DlDriverError
from dldriver.metrics.summary import Phase

log = logging.getLogger("dldriver")


@dataclass
class RankPlan:
    """What one rank runs, fixed before the ranks start (all ranks agree on it): the loop reads these
    values and nothing else of the workload."""

    epochs: int
    steps: int                       # training steps per epoch (total_training_steps applied)
    eval_steps: int                  # 0: no evaluation
    train_sampler: Sampler
    eval_sampler: Optional[Sampler]
    seed: int                        # train.seed: the compute-time draws' generator, with the rank
    batch_size: int                  # reader.batch_size, for the progress bar's rate
    computation_time: TimeSpec       # train.computation_time
    evaluation: Evaluation           # when evaluation runs, and its eval_time
    checkpoint: Checkpoint           # when checkpoints are taken (DLIO's schedules)
    drop_caches: Optional[Callable[[], None]] = None
    progress: bool = False

    @classmethod
    def from_workload(cls, workload, steps: int, eval_steps: int, train_sampler: Sampler,
                      eval_sampler: Optional[Sampler], **kwargs) -> "RankPlan":
        return cls(workload.train.epochs, steps, eval_steps, train_sampler, eval_sampler,
                   workload.train.seed, workload.reader.batch_size, workload.train.computation_time,
                   workload.evaluation, workload.checkpoint, **kwargs)


@dataclass
class EpochRecord:
    """What one rank did in one epoch."""

    start: float
    end: float = 0.0
    phases: dict = field(default_factory=dict)        # 'block<b>' / 'eval' -> metrics.summary.Phase
    checkpoints: list = field(default_factory=list)   # ('save_ckpt<b>', Checkpointer record)
    bytes_read: int = 0
    samples_read: int = 0
    eval_bytes_read: int = 0
    sample_seconds: list = field(default_factory=list)
    coverage: Optional[dict] = None                   # rank 0 only


def run_epochs(comm: Comm, plan: RankPlan, train_loader, eval_loader=None,
               checkpointer=None) -> list[EpochRecord]:
    """All epochs of one rank; each record's coverage is filled on rank 0."""
    rng = np.random.default_rng([plan.seed % 2**63, comm.rank])
    records = []
    for epoch in range(1, plan.epochs + 1):
        if plan.drop_caches is not None and comm.rank == 0:
            plan.drop_caches()
        batches = plan.train_sampler.batches(epoch)[:plan.steps]
        if len(batches) < plan.steps:
            raise DlDriverError(f"epoch {epoch}: the sampler gave rank {comm.rank} {len(batches)} batches, "
                                f"the plan needs {plan.steps}")
        _quiet_collector()
        comm.barrier()  # every rank starts the epoch together (DLIO #318: skewed first-epoch AU)
        record = EpochRecord(start=time.time())
        log.info("Starting epoch %d: %d steps expected", epoch, plan.steps)
        keys = _train(comm, plan, epoch, batches, train_loader, rng, record, checkpointer)
        if checkpointer is not None and should_checkpoint_after_epoch(plan.checkpoint, epoch):
            _checkpoint(comm, checkpointer, record, epoch, plan.steps)
        record.end = time.time()
        if eval_loader is not None and plan.eval_steps > 0 and _eval_due(plan.evaluation, epoch):
            _evaluate(epoch, plan, eval_loader, rng, record)
        record.coverage = _coverage(comm, plan, epoch, keys)
        records.append(record)
        log.info("Ending epoch %d - %d steps completed in %.2f s", epoch, plan.steps,
                 record.end - record.start)
    return records


def _train(comm, plan: RankPlan, epoch, batches, loader, rng, record, checkpointer):
    """The steps of one epoch; returns the (file, sample) keys this rank read, in order."""
    block = Phase(start=time.time())
    record.phases["block1"] = block
    keys: list = []
    bar = _progress_bar(plan.progress, epoch, len(batches))
    batches_iter = iter(loader.epoch(batches))
    try:
        t0 = time.perf_counter()
        for step in range(1, len(batches) + 1):
            batch = next(batches_iter)
            t_loaded = time.perf_counter()
            _emulate(plan.computation_time.sample(rng))
            t_done = time.perf_counter()
            block.load.append(t_loaded - t0)
            block.compute.append(t_done - t_loaded)
            block.proc.append(t_done - t0)
            keys.extend(batch.keys)
            record.bytes_read += batch.nbytes
            record.samples_read += len(batch.keys)
            record.sample_seconds.extend(batch.sample_seconds)
            comm.barrier()
            if bar is not None:
                _progress_update(bar, block, plan.batch_size, comm.size)
            if checkpointer is not None and should_checkpoint_after_step(plan.checkpoint, step):
                block.end = time.time()
                _checkpoint(comm, checkpointer, record, epoch, step)
                block = Phase(start=time.time())
                record.phases[f"block{len(record.phases) + 1}"] = block
            t0 = time.perf_counter()
    finally:
        if bar is not None:
            bar.close()
        getattr(batches_iter, "close", lambda: None)()
    block.end = time.time()
    if not block.proc and len(record.phases) > 1:  # a checkpoint on the last step leaves an empty block
        del record.phases[f"block{len(record.phases)}"]
    return keys


def _quiet_collector() -> None:
    """Collect now, outside the timed epoch, and freeze what survives.

    A framework holds hundreds of thousands of long-lived objects; a full collection that walks them
    in the middle of an epoch stalled a TensorFlow step by about 0.17 s (bench/bench_dlio.py). Frozen
    objects are skipped by later collections, so those collections stay short.
    """
    gc.collect()
    gc.freeze()


def _emulate(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def _checkpoint(comm, checkpointer, record, epoch, step):
    name = f"save_ckpt{len(record.checkpoints) + 1}"
    record.checkpoints.append((name, checkpointer.save(epoch, step, comm.barrier)))


def _eval_due(evaluation, epoch: int) -> bool:
    since = epoch - evaluation.eval_after_epoch
    return since >= 0 and evaluation.epochs_between_evals > 0 and since % evaluation.epochs_between_evals == 0


def _evaluate(epoch, plan: RankPlan, loader, rng, record):
    log.info("Starting eval after epoch %d: %d steps", epoch, plan.eval_steps)
    batches = plan.eval_sampler.batches(epoch)[:plan.eval_steps]
    phase = Phase(start=time.time())
    record.phases["eval"] = phase
    t0 = time.perf_counter()
    for batch in loader.epoch(batches):
        t_loaded = time.perf_counter()
        _emulate(plan.evaluation.eval_time.sample(rng))
        t_done = time.perf_counter()
        phase.load.append(t_loaded - t0)
        phase.compute.append(t_done - t_loaded)
        phase.proc.append(t_done - t0)
        record.eval_bytes_read += batch.nbytes
        t0 = time.perf_counter()
    phase.end = time.time()


def _coverage(comm: Comm, plan: RankPlan, epoch: int, keys: list) -> Optional[dict]:
    """Rank 0: every (file, sample) read once across ranks, and each rank read what it was given."""
    sampler = plan.train_sampler
    assigned = sampler.for_epoch(epoch)[:plan.steps * sampler.batch_size]
    mine_ok = sorted(map(tuple, keys)) == sorted(assigned)
    gathered = comm.gather((np.asarray(keys, dtype=np.int64).reshape(-1, 2), mine_ok))
    if gathered is None:
        return None
    per_rank = [list(map(tuple, arr.tolist())) for arr, _ in gathered]
    cov = coverage(per_rank, sampler.num_files, sampler.samples_per_file, sampler.batch_size,
                   steps=plan.steps).to_dict()
    cov["ranks_read_their_assignment"] = all(ok for _, ok in gathered)
    cov["ok"] = cov["ok"] and cov["ranks_read_their_assignment"]
    if not cov["ok"]:
        log.warning("epoch %d: coverage check failed: %s", epoch, cov)
    return cov


def _progress_bar(show: bool, epoch: int, steps: int):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=f"epoch {epoch}", unit="step", file=sys.stderr, leave=False,
                dynamic_ncols=True)


def _progress_update(bar, block: Phase, batch_size: int, ranks: int) -> None:
    """Steps, samples/s (rank 0's rate x ranks, as DLIO's console estimate) and AU so far."""
    elapsed = time.time() - block.start
    counted = elapsed - block.proc[0]  # the first step is excluded, as in the summary's AU
    au = 100 * sum(block.compute[1:]) / counted if counted > 0 else 0.0
    rate = len(block.proc) * batch_size * ranks / elapsed if elapsed > 0 else 0.0
    bar.set_postfix_str(f"{rate:.1f} samples/s, AU {au:.1f}%", refresh=False)
    bar.update(1)


