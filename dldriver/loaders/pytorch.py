"""The PyTorch loader: a torch Dataset over the shared source in one DataLoader, built once.

Each epoch hands the DataLoader that epoch's batches from the shared sampler (a batch sampler whose
contents change per epoch), so persistent workers stay alive across epochs as in DLIO, and torch reads
exactly the sampler's samples in the sampler's batches. Workers return bytes fetched and read times with
each batch, because counters in a worker process would be lost.
"""
from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dldriver.engine.source import SampleSource, collate
from dldriver.loaders.base import Batch, Key, Loader, prefetch_factor

log = logging.getLogger("dldriver")


class _SourceDataset(Dataset):
    """Indexed by (file, sample) keys, as the batch sampler hands them out."""

    def __init__(self, source: SampleSource):
        self.source = source

    def __len__(self) -> int:
        return sum(self.source.num_samples(i) for i in range(len(self.source.files)))

    def __getitem__(self, key):
        return key, self.source.fetch(*key)


def _tensor(data):
    return torch.from_numpy(np.ascontiguousarray(data))


def _collate(items):
    keys = [tuple(k) for k, _ in items]
    data = collate([r.data for _, r in items])
    data = [_tensor(a) for a in data] if isinstance(data, list) else _tensor(data)
    return data, keys, sum(r.nbytes for _, r in items), [r.seconds for _, r in items]


class _EpochBatches:
    """A batch sampler whose batches are replaced at the start of every epoch."""

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
        self._loader = DataLoader(_SourceDataset(source), batch_sampler=self._batches, num_workers=workers,
                                  collate_fn=_collate, pin_memory=pin_memory, **extra)

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
