"""The JAX loader: batches become jax arrays (jax.device_put) in a background thread that keeps
prefetch_size batches ready, fed by the native thread pool.

JAX starts threads when it initialises: this module is imported only inside a rank process, after any
fork, and never before a torch DataLoader forks its workers.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, Sequence

import jax

from dldriver.dataset.source import SampleSource
from dldriver.loaders.base import Batch, Key, Loader
from dldriver.loaders.native import NativeLoader

_DONE = object()


class JaxLoader(Loader):
    name = "jax"

    def __init__(self, source: SampleSource, read_threads: int = 1, prefetch_size: int = 2):
        self._native = NativeLoader(source, read_threads, prefetch_size)
        self.depth = max(1, prefetch_size)

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        ready: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(batches, ready, stop),
                                  name="dldriver-jax-put", daemon=True)
        worker.start()
        try:
            while True:
                item = ready.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    ready.get_nowait()
                except queue.Empty:
                    worker.join(0.05)

    def _produce(self, batches, ready: queue.Queue, stop: threading.Event) -> None:
        try:
            for batch in self._native.epoch(batches):
                if stop.is_set():
                    return
                batch.data = jax.device_put(batch.data)
                ready.put(batch)
            ready.put(_DONE)
        except BaseException as err:  # handed to the consumer, which raises it in the loop's thread
            ready.put(err)

    def close(self) -> None:
        self._native.close()
