"""The native loader: a pool of read_threads threads, each reading whole batches, with a bounded number
of batches in flight; numpy batches out. No framework: the baseline the others are compared with."""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

from dldriver.engine.source import SampleSource
from dldriver.loaders.base import Batch, Key, Loader, prefetch_factor, read_batch


class NativeLoader(Loader):
    name = "native"

    def __init__(self, source: SampleSource, read_threads: int = 1, prefetch_size: int = 2):
        self.source = source
        self.threads = read_threads
        # As many batches in flight as torch would keep (workers x prefetch_factor), so the two
        # loaders are compared at the same depth.
        self.depth = max(1, read_threads) * prefetch_factor(prefetch_size, read_threads)
        self._pool = ThreadPoolExecutor(read_threads, thread_name_prefix="dldriver-read") \
            if read_threads > 0 else None

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        if self._pool is None:  # read_threads 0: the caller's thread reads, no overlap (as DLIO)
            for keys in batches:
                yield read_batch(self.source, keys)
            return
        pending = deque()
        todo = iter(batches)
        try:
            for keys in todo:
                pending.append(self._pool.submit(read_batch, self.source, keys))
                if len(pending) >= self.depth:
                    break
            while pending:
                batch = pending.popleft().result()
                for keys in todo:
                    pending.append(self._pool.submit(read_batch, self.source, keys))
                    break
                yield batch
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
