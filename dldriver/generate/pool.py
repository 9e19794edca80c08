"""The worker pool: forked processes, each with its own storage connection, that take files one at a time
from a shared count (the job list comes with the fork) and report each file as its write completes, so
the work spreads evenly whatever the file sizes. A worker that dies (killed, out of memory) stops the run
with an error that says so, not a hang; a worker dies with its parent.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import traceback
from contextlib import contextmanager

from dldriver.errors import DatasetError, DlDriverError
from dldriver.generate.pipeline import written
from dldriver.heap import keep_freed_buffers
from dldriver.lifetime import die_with_parent, parent_gone
from dldriver.storage import open_storage

WATCH_S = 0.5               # how often the parent checks that its workers still live, while none reports


def _connect_quietly(storage) -> None:
    try:
        storage.connect()
    except Exception:  # noqa: BLE001 -- the first put meets the same failure and reports it, naming the file
        pass


def _in_process(storage, jobs):
    """Events (see _worker) of writing every job in this process."""
    try:
        for done in written(storage, jobs):
            yield "file", done
    except DlDriverError as err:
        yield "error", err


def _taken(jobs: list, taken, parent: int):
    """The jobs this worker takes, one at a time, each the next that no worker has taken yet (`taken`:
    a shared count of jobs taken; `jobs` came with the fork, so nothing is sent but that count). None
    once the parent has died: nobody would record the file."""
    while not parent_gone(parent):
        with taken.get_lock():
            index = taken.value
            taken.value = index + 1
        if index >= len(jobs):
            return
        yield jobs[index]


def _worker(uri: str, options: dict, jobs: list, taken, events, parent: int) -> None:
    """A worker process: write the jobs it takes until none is left, sending ("file", done) per file
    written, ("error", DlDriverError) or ("crash", traceback text) when it stops on one, and
    ("exit", None) last. It dies with its parent (`parent`, the pid of the process recording the files)."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and when it does, we end at once
    keep_freed_buffers()
    try:
        storage = open_storage(uri, options)
        # Making the connection (an SDK client: tens of milliseconds) is a worker's fixed cost: pay it
        # while the worker builds its first file instead of before its first put.
        threading.Thread(target=_connect_quietly, args=(storage,), daemon=True).start()
        for event in _in_process(storage, _taken(jobs, taken, parent)):
            events.put(event)
    except BaseException:  # noqa: BLE001 -- a bug: the parent reports it, with where it happened
        events.put(("crash", traceback.format_exc()))
    events.put(("exit", None))


def _check_alive(workers) -> None:
    for process in workers:
        if process.exitcode is not None and process.exitcode != 0:
            how = (f"killed by signal {-process.exitcode} ({signal.Signals(-process.exitcode).name}"
                   f"{', out of memory?' if process.exitcode == -signal.SIGKILL else ''})"
                   if process.exitcode < 0 else f"exited with status {process.exitcode}")
            raise DatasetError(f"generate: worker process {process.pid} {how}; the files written so far "
                               "are recorded, rerun to write the rest")


def _from_workers(workers, events):
    """Every worker's events as they come, until all have exited; raises if one dies without a word."""
    running = len(workers)
    while running:
        try:
            kind, payload = events.get(timeout=WATCH_S)
        except queue.Empty:
            _check_alive(workers)
            continue
        if kind == "exit":
            running -= 1
        elif kind == "crash":
            raise RuntimeError(f"a generate worker failed:\n{payload}")
        else:
            yield kind, payload


@contextmanager
def file_events(storage, jobs: list, processes: int, uri: str, options: dict):
    """("file", done) per file written and ("error", err) for a write that failed, as they happen; on
    leaving, the workers are killed at once (after an error, the others would only go on writing files
    nobody records). One process writes in this one (`storage`); more are forked workers, each opening
    its own storage from `uri` and `options`."""
    if processes == 1:
        yield _in_process(storage, jobs)
        return
    context = multiprocessing.get_context("fork")
    taken, events = context.Value("q", 0), context.Queue()
    args = (uri, options, jobs, taken, events, os.getpid())
    workers = [context.Process(target=_worker, args=args, daemon=True) for _ in range(processes)]
    try:
        for process in workers:
            process.start()
        yield _from_workers(workers, events)
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            if process.pid is not None:
                process.join()
        events.close()
