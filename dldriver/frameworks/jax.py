"""JAX: an iterator of jax.Array batches over a workload's dataset, read by the native thread pool and
put on the device ahead of use (prefetch_buffer_size batches deep), optionally with a sharding.

    from dldriver.frameworks.jax import DlioJaxDataset
    data = DlioJaxDataset.from_config("workload.yaml")
    for epoch in (1, 2):
        data.set_epoch(epoch)
        for batch in data: ...        # jax.Array of shape (batch_size, *sample_shape)
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from dldriver.frameworks.common import FrameworkDataset
from dldriver.loaders.jax import JaxLoader

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
        self.sharding = sharding
        self._loader = None

    def _batches(self):
        if self._loader is None:
            read_threads = max(1, self.workload.reader.read_threads)
            self._loader = JaxLoader(self.reading.source, read_threads, self.profile.prefetch_buffer_size)
        return self._loader

    def __iter__(self):
        import jax

        for batch in self._batches().epoch(self.reading.sampler.batches(self.epoch)):
            self.counts.add(batch.nbytes, len(batch.keys))
            data = batch.data
            if self.profile.writable:
                yield np.array(data)
            elif self.sharding is not None:
                yield jax.device_put(data, self.sharding)
            else:
                yield data

    def __len__(self) -> int:
        return len(self.reading.sampler.batches(self.epoch))

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None
