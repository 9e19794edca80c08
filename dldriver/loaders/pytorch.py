"""The PyTorch loader: a torch Dataset over the shared source in one DataLoader, built once.

Each epoch hands the DataLoader that epoch's batches from the shared sampler (a sampler whose batches
change per epoch; each index it yields is one whole batch), so persistent workers stay alive across
epochs as in DLIO, and torch reads exactly the sampler's samples in the sampler's batches. A worker reads
a whole batch straight into one shared-memory tensor (read_batch), so the bytes are copied once, by the
read. Workers return bytes fetched and read times with each batch, because counters in a worker process
would be lost.
"""
from __future__ import annotations

import logging
import math
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from dldriver.engine.source import SampleSource
from dldriver.loaders.base import Batch, Key, Loader, prefetch_factor, read_batch

log = logging.getLogger("dldriver")


class _BatchDataset(Dataset):
    """Indexed by a whole batch of (file, sample) keys: a worker reads a whole batch into one tensor,
    which crosses to the main process once, rather than sample by sample through a collate."""

    def __init__(self, source: SampleSource):
        self.source = source

    def __getitem__(self, keys):
        batch = read_batch(self.source, keys, _empty)
        return batch.data, batch.keys, batch.nbytes, batch.sample_seconds


def _empty(shape, dtype) -> torch.Tensor:
    """A tensor for read_batch to read into. In a worker it lives in shared memory from the start, as
    torch's default collate makes its batches, so handing it to the main process copies nothing (a
    tensor in private memory is copied into shared memory when it is sent)."""
    elem = torch.from_numpy(np.empty(0, dtype))
    if get_worker_info() is None:
        return torch.empty(shape, dtype=elem.dtype)
    storage = elem._typed_storage()._new_shared(math.prod(shape), device=elem.device)
    return elem.new(storage).resize_(shape)


def _as_is(item):
    """The worker's batch unchanged: it is already tensors (torch's default would walk every key)."""
    return item


class _EpochBatches:
    """A sampler of whole batches, replaced at the start of every epoch."""

    def __init__(self):
        self.batches: list = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class PyTorchLoader(Loader):
    name = "pytorch"

    def __init__(self, source: SampleSource, read_threads: int = 1, prefetch_size: int = 2,
                 pin_memory: bool = True, multiprocessing_context: str = "fork"):
        self.source = source
        self._batches = _EpochBatches()
        if pin_memory and not torch.cuda.is_available():
            log.warning("reader.pin_memory: no CUDA device, so batches are not pinned")
            pin_memory = False
        workers = max(0, read_threads)
        extra = {}
        if workers > 0:
            extra = dict(prefetch_factor=prefetch_factor(prefetch_size, workers), persistent_workers=True,
                         multiprocessing_context=multiprocessing_context)
        self._loader = DataLoader(_BatchDataset(source), batch_size=None, sampler=self._batches,
                                  num_workers=workers, collate_fn=_as_is, pin_memory=pin_memory, **extra)

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        self._batches.batches = [[tuple(k) for k in b] for b in batches]
        for data, keys, nbytes, seconds in self._loader:
            yield Batch(data, keys, nbytes, seconds)

    def close(self) -> None:
        # Dropping the loader ends persistent workers; an iterator torch kept alive goes with it.
        iterator = getattr(self._loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self._loader = None
