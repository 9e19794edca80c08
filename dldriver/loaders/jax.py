"""The JAX loader: batches read by the native thread pool become jax arrays in the consumer's thread,
prefetch_size batches put ahead of the one handed out, each put as jax.device_put places it at jaxlib's
cost (loaders/device_put.DevicePut: ~5 us a batch where jax.device_put spends 0.2-0.35 ms of Python
on this loaded machine, under the GIL the reader threads need), as the JAX API does (frameworks/jax.py).

Why in the consumer's thread: jax.device_put only dispatches the transfer (it returns at once on an
accelerator), so putting batches ahead overlaps their transfers with the step without a thread of its
own. A putting thread and its queue cost a GIL hand-off and a queue round trip per batch, in the
process whose reader threads need the GIL for every request.

JAX starts threads when it initialises: this module is imported only inside a rank process, after any
fork, and never before a torch DataLoader forks its workers.
"""
from __future__ import annotations

from typing import Iterator, Sequence

from dldriver.dataset.source import SampleSource
from dldriver.loaders.device_put import DevicePut, put_ahead
from dldriver.loaders.base import Batch, Key, Loader
from dldriver.loaders.native import NativeLoader


class JaxLoader(Loader):
    name = "jax"

    def __init__(self, source: SampleSource, read_threads: int = 1, prefetch_size: int = 2):
        self.depth = max(1, prefetch_size)
        # The batches put ahead hold their host memory (a CPU device_put may share it): kept for reuse.
        self._native = NativeLoader(source, read_threads, prefetch_size, held=1 + self.depth)
        self._put = DevicePut()  # the default device

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        read = self._native.epoch(batches)
        put = self._put.put

        def puts():
            for batch in read:
                batch.data = put(batch.data)
                yield batch
        try:
            yield from put_ahead(puts(), self.depth)
        finally:
            read.close()  # a consumer that stops early: the batches not yet read are cancelled

    def close(self) -> None:
        self._native.close()
