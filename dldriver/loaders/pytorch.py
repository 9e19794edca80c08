"""The PyTorch loader: a torch Dataset over the shared source in one DataLoader, built once.

Each epoch hands the DataLoader that epoch's batches from the shared sampler (a sampler whose batches
change per epoch; each index it yields is one whole batch), so persistent workers stay alive across
epochs as in DLIO, and torch reads exactly the sampler's samples in the sampler's batches. Workers return
bytes fetched and read times with each batch, because counters in a worker process would be lost.

Where a batch's bytes go. A batch must leave a worker in shared memory, and shared memory written for the
first time costs a page fault per 4 KiB page (~2.7 ms per 4 MiB, as much as reading it from the page
cache several times over). So when every sample has the same shape, the loader makes a ring of batch
buffers in shared memory before the workers start and reuses it for its whole life: a worker reads a
batch straight into its slot (read_batch), and sends back only the slot's number. A batch handed out
is a view of its slot and stays valid until the next batch is requested (the emulation loop never keeps
one longer; a consumer that must keep it copies it). Ragged batches (sizes drawn per file) and batches
larger than the first epoch's are read into fresh shared memory instead, as torch's collate would.

Why a slot is never overwritten while in use, without any signalling: the DataLoader (in_order=True)
keeps at most depth = num_workers x prefetch_factor batches outstanding and sends batch i + depth to a
worker only when it returns batch i to the consumer. So when batch j is sent, the consumer has asked for
batch j - depth and is done with every earlier one; the batches alive are j - depth .. j, depth + 1 of
them. A ring of depth + 1 slots with batch i in slot i % (depth + 1) therefore never gives a live slot to
a new batch. A new epoch first drains whatever the workers still had (torch's _ResumeIteration) and
starts when the consumer asks for its first batch, so slots restart at 0. With pin_memory, torch's pin
thread copies the slot into pinned memory before the batch reaches the main loop, which only shortens a
slot's life.
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from dldriver.dataset.source import SampleSource
from dldriver.errors import DlDriverError
from dldriver.loaders.base import Batch, Key, Loader, prefetch_factor, read_batch

log = logging.getLogger("dldriver")

# The main process's rings by token, for torch's pin-memory thread, which sees only a _SlotRef.
_RINGS: dict = {}
_TOKENS = itertools.count()


def _shared_empty(shape, dtype) -> torch.Tensor:
    """An uninitialised CPU tensor in shared memory (no copy: share_memory_() would write it once)."""
    elem = torch.from_numpy(np.empty(0, dtype))
    storage = elem._typed_storage()._new_shared(math.prod(shape), device=elem.device)
    return elem.new(storage).resize_(shape)


class _Ring:
    """`slots` batch buffers of up to `rows` samples each, in one shared-memory tensor."""

    def __init__(self, slots: int, rows: int, shape: tuple, dtype):
        self.slots = slots
        self.rows = rows
        self.buffers = _shared_empty((slots, rows, *shape), dtype)
        self.token = next(_TOKENS)

    def view(self, slot: int, rows: int) -> torch.Tensor:
        return self.buffers[slot, :rows]


@dataclass(frozen=True)
class _SlotRef:
    """What a worker sends for a batch it read into the ring: a few integers instead of a tensor."""

    token: int
    slot: int
    rows: int

    def tensor(self) -> torch.Tensor:
        return _RINGS[self.token].view(self.slot, self.rows)

    def pin_memory(self, device=None) -> torch.Tensor:
        """Called by torch's pin-memory thread: the batch copied into pinned memory, freeing its slot."""
        return self.tensor().pin_memory()


class _BatchDataset(Dataset):
    """Indexed by (slot, keys): a worker reads a whole batch of (file, sample) keys into its ring slot
    (or, slot None, into a fresh tensor), rather than sample by sample through a collate.

    A read that fails with a DlDriverError (a damaged file, a storage that stopped answering) comes back
    as that error, a value: raised in a worker, torch would wrap it in a RuntimeError holding the
    worker's traceback, and the user would see that instead of the one line naming the file."""

    def __init__(self, source: SampleSource):
        self.source = source
        self.ring: _Ring | None = None

    def __getitem__(self, item):
        try:
            return self._read(*item)
        except DlDriverError as err:
            return err

    def _read(self, slot, keys):
        if slot is None:
            batch = read_batch(self.source, keys, _empty)
            return batch.data, batch.keys, batch.nbytes, batch.sample_seconds
        batch = read_batch(self.source, keys, lambda shape, dtype: self.ring.view(slot, shape[0]))
        return _SlotRef(self.ring.token, slot, len(keys)), batch.keys, batch.nbytes, batch.sample_seconds


def _empty(shape, dtype) -> torch.Tensor:
    """A tensor for read_batch to read into outside the ring. In a worker it lives in shared memory from
    the start, as torch's default collate makes its batches, so handing it to the main process copies
    nothing (a tensor in private memory is copied into shared memory when it is sent)."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype)
    return _shared_empty(shape, dtype)


def _as_is(item):
    """The worker's batch unchanged: it is already tensors (torch's default would walk every key)."""
    return item


class _EpochBatches:
    """A sampler of whole batches as (slot, keys), replaced at the start of every epoch."""

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
        self._dataset = _BatchDataset(source)
        self._ring: _Ring | None = None
        self._started = False  # workers start with the first epoch and keep the ring they were given
        if pin_memory and not torch.cuda.is_available():
            log.warning("reader.pin_memory: no CUDA device, so batches are not pinned")
            pin_memory = False
        self._workers = max(0, read_threads)
        self._depth = 0
        extra = {}
        if self._workers > 0:
            factor = prefetch_factor(prefetch_size, self._workers)
            self._depth = self._workers * factor
            extra = dict(prefetch_factor=factor, persistent_workers=True,
                         multiprocessing_context=multiprocessing_context)
        self._loader = DataLoader(self._dataset, batch_size=None, sampler=self._batches,
                                  num_workers=self._workers, collate_fn=_as_is, pin_memory=pin_memory,
                                  **extra)

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        batches = [[tuple(k) for k in b] for b in batches]
        if not self._started:
            self._ring = self._make_ring(batches)
            self._dataset.ring = self._ring
            self._started = True
        self._batches.batches = [(self._slot(i, keys), keys) for i, keys in enumerate(batches)]
        for item in self._loader:
            if isinstance(item, DlDriverError):
                raise item
            data, keys, nbytes, seconds = item
            yield Batch(data.tensor() if isinstance(data, _SlotRef) else data, keys, nbytes, seconds)

    def _make_ring(self, batches: list) -> _Ring | None:
        """The ring for batches like the first epoch's, when workers read and samples share one layout."""
        layout = self.source.sample_layout(range(len(self.source.files)))
        if self._workers == 0 or not batches or layout is None:
            return None
        ring = _Ring(self._depth + 1, max(len(b) for b in batches), *layout)
        _RINGS[ring.token] = ring
        return ring

    def _slot(self, position: int, keys: list) -> int | None:
        if self._ring is None or len(keys) > self._ring.rows:
            return None
        return position % self._ring.slots

    def close(self) -> None:
        # Dropping the loader ends persistent workers; an iterator torch kept alive goes with it.
        iterator = getattr(self._loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self._loader = None
        if self._ring is not None:
            _RINGS.pop(self._ring.token, None)
