"""The native loader: a pool of read_threads threads, each reading whole batches, with a bounded number
of batches in flight; numpy batches out. No framework: the baseline the others are compared with."""
from __future__ import annotations

import threading
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np

from dldriver.dataset.source import SampleSource
from dldriver.loaders.base import Batch, Key, Loader, prefetch_factor, read_batch


# Batch arrays start on a 64-byte boundary, Eigen's alignment: the tensorflow loader hands a batch to
# TensorFlow as a tensor over the same memory (DLPack), which TensorFlow takes only so aligned.
ALIGN = 64


class _BatchMemory:
    """Batch arrays whose memory is reused once the consumer has dropped every view of them.

    Why: a fresh np.empty of a batch (16 MiB of 4 MiB samples) is memory glibc gives back to the kernel
    when it is freed, so every batch paid a page fault per 4 KiB page (~12,000 in a 2 GiB epoch, about
    a sixth of its time). An array is released by a finalizer on the array that owns the view of the
    memory, which every view made from it keeps alive, so no batch is overwritten while anyone holds it,
    however long the consumer keeps it. The memory released last is handed out first (the likeliest
    still in cache).
    """

    def __init__(self, keep: int):
        self._keep = keep          # spare buffers kept: as many as can be live at once
        self._spare: dict[int, list[bytearray]] = {}   # by size in bytes
        # Reentrant: a garbage collection inside the lock may run a finalizer in the same thread.
        self._lock = threading.RLock()

    def empty(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        memory = self._take(nbytes)
        if memory is None:
            memory = bytearray(nbytes + ALIGN)
        offset = -np.frombuffer(memory, np.uint8, count=1).ctypes.data % ALIGN
        array = np.ndarray(shape, dtype, buffer=memory, offset=offset)
        weakref.finalize(array, self._give_back, memory).atexit = False
        return array

    def _take(self, nbytes: int) -> bytearray | None:
        with self._lock:
            stack = self._spare.get(nbytes)
            if not stack:
                return None
            memory = stack.pop()
            if not stack:
                del self._spare[nbytes]
            return memory

    def _give_back(self, memory: bytearray) -> None:
        with self._lock:
            # Beyond `keep` (ragged sizes, which rarely match), the memory is left to the allocator.
            if sum(map(len, self._spare.values())) < self._keep:
                self._spare.setdefault(len(memory) - ALIGN, []).append(memory)


class NativeLoader(Loader):
    name = "native"

    def __init__(self, source: SampleSource, read_threads: int = 1, prefetch_size: int = 2, held: int = 1):
        """held: the batches the consumer keeps at once (the one in use, plus any it holds ahead, as the
        JAX API's device prefetch does), whose memory is kept for reuse beside the ones in flight."""
        self.source = source
        self.threads = read_threads
        # As many batches in flight as torch would keep (workers x prefetch_factor), so the two
        # loaders are compared at the same depth.
        self.depth = max(1, read_threads) * prefetch_factor(prefetch_size, read_threads)
        self._memory = _BatchMemory(keep=self.depth + max(1, held))
        self._pool = ThreadPoolExecutor(read_threads, thread_name_prefix="dldriver-read") \
            if read_threads > 0 else None

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        if self._pool is None:  # read_threads 0: the caller's thread reads, no overlap (as DLIO)
            for keys in batches:
                yield read_batch(self.source, keys, self._memory.empty)
            return
        pending = deque()
        todo = iter(batches)
        try:
            for keys in todo:
                pending.append(self._submit(keys))
                if len(pending) >= self.depth:
                    break
            while pending:
                batch = pending.popleft().result()
                for keys in todo:
                    pending.append(self._submit(keys))
                    break
                yield batch
        finally:
            for future in pending:
                future.cancel()

    def _submit(self, keys):
        return self._pool.submit(read_batch, self.source, keys, self._memory.empty)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
