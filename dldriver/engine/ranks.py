"""Ranks: one process per emulated accelerator, and how they synchronise.

`Comm` is the little DLIO needs from MPI: barrier (its stand-in for the all-reduce after every step),
gather to rank 0, broadcast from rank 0. Two implementations: `LocalComm` for `run --ranks N` (N
processes forked on this host) and `MpiComm` under srun or mpiexec (each process takes its rank from
the launcher and talks through mpi4py). `launch(fn, ranks)` runs fn(comm) on every rank and returns
rank 0's result (None on other ranks).

Ranks are forked, not spawned: a fork costs milliseconds and keeps the parsed workload. The fork
happens before any framework is imported by the run (loaders import theirs inside each rank), so no
JAX or TensorFlow thread is copied into a rank.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import resource
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional

from dldriver.errors import ConfigError, DlDriverError
from dldriver.redact import redact_text

_POLL = 0.2
_ABORT_GRACE_S = 0.5


class RankFailed(DlDriverError):
    """Another rank stopped; the run is abandoned (its own error is reported by rank 0)."""


class Comm:
    """Rank identity and collectives; every rank calls the same collectives in the same order."""

    rank = 0
    size = 1
    shared_error: Optional[BaseException] = None   # the error every rank raised together (rank0_result)

    def barrier(self) -> None:
        """Return when every rank has called it."""

    def gather(self, obj: Any) -> Optional[list]:
        """Rank 0 gets [obj of rank 0, obj of rank 1, ...]; the others get None."""
        return [obj]

    def bcast(self, obj: Any) -> Any:
        """Every rank gets rank 0's obj."""
        return obj

    @property
    def kind(self) -> str:
        return "single"


class SharedFailure(DlDriverError):
    """Rank 0's error as the other ranks raise it: rank0_result sent it to them by a broadcast."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def rank0_result(comm: Comm, compute: Callable[[], Any]) -> Any:
    """compute() on rank 0 alone, its result broadcast to every rank. A DlDriverError it raises is
    broadcast instead and raised on every rank (as SharedFailure beyond rank 0), so all ranks end
    together and no launcher has to abort one that waits: an abort may drop rank 0's last line."""
    outcome = None
    if comm.rank == 0:
        try:
            outcome = (True, compute())
        except DlDriverError as err:
            comm.shared_error = err
            outcome = (False, (str(err), err.exit_code))
    ok, value = comm.bcast(outcome)
    if ok:
        return value
    if comm.rank == 0:
        raise comm.shared_error
    comm.shared_error = SharedFailure(*value)
    raise comm.shared_error


def ranks_on_this_host(comm: Comm) -> int:
    """How many ranks run on this rank's host (a collective: every rank calls it)."""
    hosts = comm.bcast(comm.gather(socket.gethostname()))
    return hosts.count(socket.gethostname())


def launcher_world() -> Optional[tuple[int, int]]:
    """(rank, world size) given by mpiexec/mpirun or srun, or None when not launched by one."""
    env = os.environ
    # SLURM_NTASKS is also set inside an sbatch script, where one process runs: only an srun step's
    # task count makes this process one of several ranks.
    for rank_var, size_var in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
                               ("PMIX_RANK", "PMIX_SIZE"), ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS")):
        if rank_var in env and size_var in env:
            return launcher_pair(rank_var, size_var)
    return None


def launcher_pair(rank_var: str, size_var: str) -> tuple[int, int]:
    """The launcher's (rank, size), checked: whole numbers, size >= 1, 0 <= rank < size."""
    values = []
    for name in (rank_var, size_var):
        text = os.environ[name].strip()
        if not text.isdigit():
            raise ConfigError(f"environment variable {name}={os.environ[name]!r}: expected a whole number "
                              "(set by a launcher: srun, mpiexec, torchrun; unset it to run without one)")
        values.append(int(text))
    rank, size = values
    if size < 1 or rank >= size:
        raise ConfigError(f"environment variables {rank_var}={rank} and {size_var}={size}: the rank must lie "
                          "in 0..size-1 (set by a launcher: srun, mpiexec, torchrun; unset them to run without one)")
    return rank, size


# Per local rank, the parent holds a queue (a pipe: two descriptors, and a lock); the shared barrier and
# error queue and the interpreter's own files take a few dozen more.
FDS_PER_RANK = 4
FDS_BASE = 64
# A forked rank's own memory once it runs (Python, numpy, a loader): a floor, not an estimate.
MIN_RANK_BYTES = 32 * 2**20


def check_host_limits(size: int) -> None:
    """Refuse, before any process starts, a local world this host's limits cannot hold: open files
    (RLIMIT_NOFILE) and processes (RLIMIT_NPROC, the kernel's pid_max)."""
    soft_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    files = FDS_BASE + FDS_PER_RANK * size
    if soft_files != resource.RLIM_INFINITY and files > soft_files:
        raise ConfigError(f"--ranks {size}: needs about {files} open files, over this host's limit of "
                          f"{soft_files} (ulimit -n); use fewer ranks or raise the limit")
    soft_procs = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    limits = [soft_procs] if soft_procs != resource.RLIM_INFINITY else []
    try:
        limits.append(int(open("/proc/sys/kernel/pid_max").read()))
    except (OSError, ValueError):
        pass
    if limits and size > min(limits):
        raise ConfigError(f"--ranks {size}: over this host's limit of {min(limits)} processes "
                          "(ulimit -u, /proc/sys/kernel/pid_max); use fewer ranks")
    available = _available_memory()
    if available is not None and size * MIN_RANK_BYTES > available:
        raise ConfigError(f"--ranks {size}: {size} rank processes need at least "
                          f"{size * MIN_RANK_BYTES / 2**30:.1f} GiB ({MIN_RANK_BYTES // 2**20} MiB each), "
                          f"this host has {available / 2**30:.1f} GiB available; use fewer ranks")


def _available_memory() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def world_size(ranks: Optional[int]) -> int:
    """The number of ranks a run will have: --ranks, or the launcher's world, or 1."""
    world = launcher_world()
    if world is not None and world[1] > 1:
        if ranks not in (None, world[1]):
            raise ConfigError(f"--ranks {ranks} contradicts the launcher's world size {world[1]} "
                              "(leave --ranks out under srun/mpiexec)")
        return world[1]
    if ranks is not None and ranks < 1:
        raise ConfigError(f"--ranks must be >= 1 (got {ranks})")
    if ranks is not None and ranks > 1:
        check_host_limits(ranks)
    return ranks or 1


def launch(fn: Callable[[Comm], Any], ranks: Optional[int] = None) -> Any:
    """Run fn(comm) on every rank; rank 0's return value, None on other ranks."""
    size = world_size(ranks)
    world = launcher_world()
    if world is not None and world[1] > 1:
        return _launch_mpi(fn)
    if size == 1:
        return fn(Comm())
    return _launch_local(fn, size)


class MpiComm(Comm):
    def __init__(self):
        from mpi4py import MPI  # imported only under a launcher: MPI_Init is not free

        self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def barrier(self) -> None:
        self._comm.Barrier()

    def gather(self, obj):
        return self._comm.gather(obj, root=0)

    def bcast(self, obj):
        return self._comm.bcast(obj, root=0)

    def abort(self, code: int) -> None:
        self._comm.Abort(code)

    @property
    def kind(self) -> str:
        return "mpi"


def _launch_mpi(fn):
    comm = MpiComm()
    try:
        return fn(comm)
    except DlDriverError as err:
        if err is not comm.shared_error:
            _abort_all(comm, err)
        # Every rank raised it together: rank 0 says it once, and each rank ends on its own.
        if comm.rank == 0:
            print(f"error: rank 0: {redact_text(str(err))}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
    except BaseException as err:
        _abort_all(comm, err)


def _abort_all(comm: MpiComm, err: BaseException) -> None:
    """This rank failed alone and other ranks wait in a collective it will never reach: say why, then
    end them all. One line for a DlDriverError (the traceback for a bug), and no more: MPI_Abort may
    return before the launcher ends this process, and the CLI would print the error a second time."""
    code = err.exit_code if isinstance(err, DlDriverError) else 1
    if not isinstance(err, DlDriverError):
        traceback.print_exc()
    print(f"error: rank {comm.rank}: {redact_text(str(err))}", file=sys.stderr, flush=True)
    # The launcher relays output and the abort on separate channels: give the line a moment to pass.
    time.sleep(_ABORT_GRACE_S)
    comm.abort(code)
    os._exit(code)


class LocalComm(Comm):
    """Collectives between forked processes: a multiprocessing Barrier and one inbox queue per rank.

    Any failure breaks the barrier, so no rank waits forever for one that has stopped.
    """

    def __init__(self, rank: int, size: int, barrier, inboxes, errors, alive: Callable[[], bool]):
        self.rank, self.size = rank, size
        self._barrier, self._inboxes, self._errors = barrier, inboxes, errors
        self._alive = alive
        self._seq = 0
        self._early: dict[int, list] = {}

    @property
    def kind(self) -> str:
        return "local"

    def barrier(self) -> None:
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            raise RankFailed("another rank stopped") from None

    def gather(self, obj):
        self._seq += 1
        if self.rank != 0:
            self._inboxes[0].put((self._seq, self.rank, obj))
            return None
        got = {0: obj}
        for rank, value in self._early.pop(self._seq, []):
            got[rank] = value
        while len(got) < self.size:
            seq, rank, value = self._receive()
            if seq == self._seq:
                got[rank] = value
            else:  # a fast rank already sent its part of a later gather
                self._early.setdefault(seq, []).append((rank, value))
        return [got[r] for r in range(self.size)]

    def bcast(self, obj):
        self._seq += 1
        if self.rank == 0:
            for r in range(1, self.size):
                self._inboxes[r].put((self._seq, 0, obj))
            return obj
        _, _, value = self._receive()
        return value

    def _receive(self):
        while True:
            try:
                return self._inboxes[self.rank].get(timeout=_POLL)
            except queue.Empty:
                if self._barrier.broken or not self._alive():
                    raise RankFailed("another rank stopped") from None

    def fail(self, err: BaseException) -> None:
        """Report this rank's error to rank 0 and release every rank from the barrier."""
        if not isinstance(err, RankFailed):
            try:
                self._errors.put((self.rank, err))
            except Exception:  # an error that cannot be pickled still needs to reach rank 0
                self._errors.put((self.rank, DlDriverError(f"{type(err).__name__}: {err}")))
        self._barrier.abort()


def _launch_local(fn, size: int):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(size)
    inboxes = [ctx.Queue() for _ in range(size)]
    errors = ctx.Queue()
    parent = os.getpid()
    children = []
    for rank in range(1, size):
        proc = ctx.Process(target=_child, name=f"dldriver-rank{rank}",
                           args=(fn, rank, size, barrier, inboxes, errors, parent))
        proc.start()
        children.append(proc)

    def children_alive() -> bool:
        return all(p.exitcode in (None, 0) for p in children)

    comm = LocalComm(0, size, barrier, inboxes, errors, children_alive)
    stop = threading.Event()
    watchdog = threading.Thread(target=_watch, args=(children, barrier, stop), daemon=True)
    watchdog.start()
    try:
        result = fn(comm)
    except BaseException as err:
        comm.fail(err)
        first = _first_child_error(errors, children) if isinstance(err, RankFailed) else None
        _end(children)
        if first is not None:
            raise first from None
        raise
    finally:
        stop.set()
    for proc in children:
        proc.join()
    return result


def _child(fn, rank, size, barrier, inboxes, errors, parent):
    # Not a daemon process: a rank starts its own loader workers (torch). The guard ends it instead
    # if rank 0's process goes away.
    threading.Thread(target=_orphan_guard, args=(parent,), daemon=True).start()
    comm = LocalComm(rank, size, barrier, inboxes, errors, lambda: os.getppid() == parent)
    code = 0
    try:
        fn(comm)
    except BaseException as err:  # every failure travels to rank 0, which reports it
        comm.fail(err)
        code = 1
    for q in [errors, *inboxes]:
        q.close()
        q.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the parent's atexit handlers and finalizers (pytest, logging, temp folders) in this copy.
    os._exit(code)


def _orphan_guard(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _watch(children, barrier, stop: threading.Event) -> None:
    """Break the barrier when a rank process dies (killed, out of memory) so rank 0 does not hang."""
    while not stop.wait(_POLL):
        if any(p.exitcode not in (None, 0) for p in children):
            barrier.abort()
            return


def _first_child_error(errors, children) -> Optional[BaseException]:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            _, err = errors.get(timeout=_POLL)
            return err
        except queue.Empty:
            if all(p.exitcode is not None for p in children) and errors.empty():
                break
    dead = [(i + 1, p.exitcode) for i, p in enumerate(children) if p.exitcode not in (None, 0)]
    if dead:
        return RankFailed(f"rank {dead[0][0]} died with exit code {dead[0][1]}")
    return None


def _end(children) -> None:
    for proc in children:
        proc.join(timeout=5.0)
        if proc.is_alive():
            proc.terminate()
            proc.join()
