"""JAX: an iterator of jax.Array batches over a workload's dataset, read by the native thread pool and
put on the device ahead of use (prefetch_buffer_size batches deep), optionally with a sharding.

    from dldriver.frameworks.jax import DlioJaxDataset
    data = DlioJaxDataset.from_config("workload.yaml")
    for epoch in (1, 2):
        data.set_epoch(epoch)
        for batch in data: ...        # jax.Array of shape (batch_size, *sample_shape)

The batches are put in the caller's thread: a put only dispatches the transfer (it returns at once on
an accelerator), so putting prefetch_buffer_size batches ahead of the one handed out overlaps their
transfers with the caller's step without a thread of its own. A putting thread and its queue (which
the run loader, loaders/jax.py, had until issue 15) cost ~0.2 CPU-s per GB more on the 2-core CPU bench
(1 MiB batches).
Each put is jax.device_put's placement at jaxlib's cost (loaders/device_put.py).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from dldriver.frameworks.common import FrameworkDataset
from dldriver.loaders.device_put import DevicePut, put_ahead
from dldriver.loaders.native import NativeLoader

__all__ = ["DlioJaxDataset"]


class DlioJaxDataset(FrameworkDataset):
    """This rank's batches of the current epoch, in the shared sampler's order. jax_config: batch_size,
    prefetch_buffer_size (batches put on the device ahead), seed (shuffle seed), writable (host numpy
    batches the caller may modify, instead of jax.Array). `sharding`: a jax.sharding.Sharding to put each
    batch with (over the local devices), else the default device."""

    framework = "jax"

    def __init__(self, config, overrides=(), *, split: str = "train", rank: Optional[int] = None,
                 world_size: Optional[int] = None, entropy: Optional[int] = None, sharding=None, **profile):
        self._setup(config, overrides, split, rank, world_size, entropy, profile)
        self._put = DevicePut(sharding)   # None: the default device
        self._loader = None

    @property
    def sharding(self):
        return self._put.sharding

    @sharding.setter
    def sharding(self, sharding) -> None:
        self._put = DevicePut(sharding)

    def _batches(self) -> NativeLoader:
        if self._loader is None:
            reader = self.workload.reader
            self._loader = NativeLoader(self.reading.source, max(1, reader.read_threads), reader.prefetch_size,
                                        held=1 + self.profile.prefetch_buffer_size)
        return self._loader

    def __iter__(self):
        batches = self._batches().epoch(self.reading.sampler.batches(self.epoch))
        count = self.counts.add
        if self.profile.writable:
            for batch in batches:
                count(batch.nbytes, len(batch.keys))
                yield np.array(batch.data)
            return
        put = self._put.put

        def puts():
            for batch in batches:
                count(batch.nbytes, len(batch.keys))
                yield put(batch.data)
        yield from put_ahead(puts(), self.profile.prefetch_buffer_size)

    def __len__(self) -> int:
        return len(self.reading.sampler.batches(self.epoch))

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None
