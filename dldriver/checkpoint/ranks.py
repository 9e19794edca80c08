"""Run N emulated ranks as processes on one host, with a shared barrier.

One process per rank, as DLIO runs one MPI rank per accelerator: each rank has its own interpreter, its own
storage client and its own memory, so per-rank timings and peak RSS mean what they say. Processes are
spawned, not forked, so that no client thread or lock of the parent leaks into a rank.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import threading

from dldriver.errors import DlDriverError


def run_ranks(fn, ranks: int, *args) -> list:
    """Call fn(rank, ranks, barrier, *args) in `ranks` processes; return the results in rank order.

    `barrier` has `.wait()`. One rank runs in this process (no spawn cost, and tests can see its work).
    If any rank fails, the barrier is broken so the others stop instead of waiting forever, and the
    first failure is raised here.
    """
    if ranks == 1:
        return [fn(0, 1, _LocalBarrier(), *args)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(ranks)
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank_main, args=(fn, r, ranks, barrier, results, args), daemon=True)
             for r in range(ranks)]
    for p in procs:
        p.start()
    outcome, failure = {}, None
    while len(outcome) < ranks:
        try:
            rank, ok, value = results.get(timeout=1.0)
        except queue.Empty:
            dead = [i for i, p in enumerate(procs) if p.exitcode not in (None, 0) and i not in outcome]
            if dead:
                failure = failure or DlDriverError(f"rank {dead[0]} died with exit code {procs[dead[0]].exitcode}")
                barrier.abort()
                outcome.update({i: None for i in dead})
            continue
        outcome[rank] = value
        if not ok and not isinstance(value, threading.BrokenBarrierError):
            failure = failure or value
            barrier.abort()
    for p in procs:
        p.join()
    if failure is not None:
        raise failure
    return [outcome[r] for r in range(ranks)]


def _rank_main(fn, rank, ranks, barrier, results, args):
    try:
        results.put((rank, True, fn(rank, ranks, barrier, *args)))
    except BaseException as err:  # every failure travels to the parent, which reports it
        results.put((rank, False, err))


class _LocalBarrier:
    def wait(self):
        return 0
