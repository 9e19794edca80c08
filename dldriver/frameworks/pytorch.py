"""PyTorch: a map-style and an iterable Dataset over a workload's dataset, a Sampler that shards and
shuffles as `dldriver run` does, and a DataLoader factory that applies the config and its profile.

    from dldriver.frameworks.pytorch import DlioPyTorchDataLoader
    loader = DlioPyTorchDataLoader.from_config("workload.yaml", ["dataset.data_folder=s3://b/d"])
    for epoch in range(1, 3):
        loader.set_epoch(epoch)
        for batch in loader: ...

Samples are read and decoded by the same sample source as `dldriver run` (storage + format reader),
so every worker process opens its own storage client after a fork or spawn. Epochs are numbered as in
`dldriver run` (the first is 1), so epoch e of a run and set_epoch(e) read the same order.
"""
from __future__ import annotations

import logging
import math
import weakref
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, default_collate, get_worker_info

from dldriver.config.profiles import PyTorchProfile
from dldriver.dataset.sampler import split_among_workers
from dldriver.errors import DlDriverError
from dldriver.frameworks.common import FrameworkDataset, uri_config
from dldriver.loaders.base import read_batch
# The run loader's batch ring (shared-memory slots a worker reads a batch into; see loaders/pytorch.py).
from dldriver.loaders.pytorch import _RINGS, _Ring, _SlotRef
from dldriver.loaders.pytorch import _empty as batch_tensor

log = logging.getLogger("dldriver")
PROFILE_KEYS = tuple(PyTorchProfile.__dataclass_fields__)

__all__ = ["DlioPyTorchDataset", "DlioPyTorchIterableDataset", "DlioSampler", "DlioPyTorchDataLoader",
           "DlioDataLoader", "make_dataloader", "collate"]


def _convert(data: np.ndarray, return_type: str):
    if return_type == "bytes":
        return np.ascontiguousarray(data).tobytes()
    if return_type == "reader":
        return data
    if not data.flags.writeable:
        data = data.copy()  # torch.from_numpy refuses read-only memory
    return torch.from_numpy(data)


class _Base(FrameworkDataset):
    framework = "pytorch"

    def _read(self, file_idx: int, sample_idx: int):
        read = self.reading.source.fetch(file_idx, sample_idx)
        self.counts.add(read.nbytes, 1)
        return _convert(read.data, self.return_type)


class DlioPyTorchDataset(_Base, Dataset):
    """Map-style: index k is sample k % samples_per_file of file k // samples_per_file, over the whole
    split. `sampler` (a DlioSampler) yields this rank's indices for the current epoch; give it to the
    DataLoader (the factory does)."""

    def __init__(self, config, overrides=(), *, split: str = "train", rank: Optional[int] = None,
                 world_size: Optional[int] = None, entropy: Optional[int] = None, **profile):
        self._setup(config, overrides, split, rank, world_size, entropy, profile)
        self.return_type = self.reading.profile.return_type
        self.sampler = DlioSampler(self)

    def __len__(self) -> int:
        return self.reading.sampler.total_samples

    def __getitem__(self, index: int):
        total = len(self)
        if not -total <= index < total:
            raise IndexError(f"sample {index} is outside 0..{total - 1}")
        file_idx, sample_idx = divmod(index % total, self.reading.sampler.samples_per_file)
        return self._read(file_idx, sample_idx)

    def __getitems__(self, indices: list[int]) -> list:
        """A whole batch at once (torch's fetcher calls this in the worker): each sample is read straight
        into its row of one batch tensor, made in shared memory when in a worker (so it leaves the worker
        without a copy). The rows go to collate as a BatchRows list: `collate` hands its batch tensor on
        as it is, torch's default_collate stacks the rows as for any dataset."""
        if self.return_type == "bytes" or not indices:
            return [self[i] for i in indices]
        spf = self.reading.sampler.samples_per_file
        keys = [divmod(i, spf) for i in indices]
        if isinstance(indices, RingIndices):  # the factory's DataLoader: read into the batch's ring slot
            ring = _RINGS[indices.token]
            batch = read_batch(self.reading.source, keys, lambda shape, dtype: ring.view(indices.slot, shape[0]))
            self.counts.add(batch.nbytes, len(indices))
            return _SlotRef(indices.token, indices.slot, len(indices))
        tensors = self.return_type == "tensor"
        batch = read_batch(self.reading.source, keys, batch_tensor if tensors else np.empty)
        self.counts.add(batch.nbytes, len(indices))
        if isinstance(batch.data, list):  # ragged: one array per sample, for a collate that takes them
            return batch.data
        return BatchRows(batch.data) if tensors else list(batch.data)

    def key(self, index: int) -> tuple[int, int]:
        """(file, sample) of an index."""
        return divmod(index, self.reading.sampler.samples_per_file)


class BatchRows(list):
    """The rows of one batch tensor read by __getitems__; `batch` is that tensor."""

    def __init__(self, batch: torch.Tensor):
        super().__init__(batch.unbind(0))
        self.batch = batch

    def __reduce__(self):  # a plain list when pickled on (collate normally takes it in the worker)
        return list, (list(self),)


def _rows(batch: torch.Tensor) -> tuple:
    """The rows of a batch tensor the iterable dataset read whole, each knowing its batch, so that
    `collate` can hand on the batch itself when the rows come back together."""
    rows = batch.unbind(0)
    for row in rows:
        row._dldriver_batch = batch
    return rows


def _whole_batch(data) -> Optional[torch.Tensor]:
    """The batch tensor `data` is every row of, in order (as the iterable dataset yields them), or None."""
    batch = getattr(data[0], "_dldriver_batch", None) if data and isinstance(data, list) else None
    if batch is None or len(data) != len(batch):
        return None
    if all(getattr(row, "_dldriver_batch", None) is batch for row in data):
        return batch
    return None


def collate(data):
    """The factory's collate_fn: a batch read whole (by __getitems__, a ring slot, or the iterable
    dataset's rows of one batch) is returned as it is (no second copy into shared memory); anything else
    goes through default_collate."""
    if isinstance(data, BatchRows):
        return data.batch
    if isinstance(data, _SlotRef):
        return data
    batch = _whole_batch(data)
    return default_collate(data) if batch is None else batch


class RingIndices(list):
    """One batch's sample indices and the ring slot its worker reads the batch into."""

    def __init__(self, indices, token: int, slot: int):
        super().__init__(indices)
        self.token, self.slot = token, slot


class _RingCollate:
    """`collate` carrying the ring to the workers: unpickled in a spawned worker, it registers the ring
    (its shared memory) there, as a forked worker inherits it."""

    def __init__(self, ring: _Ring):
        self.ring = ring

    def __setstate__(self, state):
        self.__dict__.update(state)
        _RINGS[self.ring.token] = self.ring

    def __call__(self, data):
        return collate(data)


class RingBatchSampler(Sampler):
    """The sampler's indices in batches of batch_size (as torch's BatchSampler), batch i of an epoch
    going to ring slot i % slots."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool, ring: _Ring):
        self.sampler, self.batch_size, self.drop_last, self.ring = sampler, batch_size, drop_last, ring

    def __iter__(self):
        indices = list(self.sampler)
        stop = len(self) * self.batch_size if self.drop_last else len(indices)
        for i, start in enumerate(range(0, stop, self.batch_size)):
            yield RingIndices(indices[start:start + self.batch_size], self.ring.token, i % self.ring.slots)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


class DlioSampler(Sampler):
    """This rank's sample indices of the dataset's current epoch, in the shared sampler's order."""

    def __init__(self, dataset: DlioPyTorchDataset):
        self.dataset = dataset

    def indices(self, epoch: Optional[int] = None) -> list[int]:
        sampler = self.dataset.reading.sampler
        spf = sampler.samples_per_file
        return [f * spf + s for f, s in sampler.for_epoch(self.dataset.epoch if epoch is None else epoch)]

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        sampler = self.dataset.reading.sampler
        if sampler.drop_last:
            return sampler.steps_per_epoch * sampler.batch_size
        return len(sampler.for_epoch(1))


class DlioPyTorchIterableDataset(_Base, IterableDataset):
    """Iterable: yields this rank's samples of the current epoch in the sampler's order. With DataLoader
    workers, each worker takes whole batches (batch b goes to worker b % num_workers), so the DataLoader's
    batches are the sampler's batches, in order.

    Tensor samples are read a batch at a time into one batch tensor (in shared memory in a worker) and
    yielded as its rows: `collate` (the factory's) hands that tensor on when a DataLoader batch is all of
    its rows, with no per-sample stacking; torch's default_collate stacks the rows as for any dataset."""

    def __init__(self, config, overrides=(), *, split: str = "train", rank: Optional[int] = None,
                 world_size: Optional[int] = None, entropy: Optional[int] = None, **profile):
        self._setup(config, overrides, split, rank, world_size, entropy, profile)
        self.return_type = self.reading.profile.return_type

    def worker_batches(self) -> list:
        """This epoch's batches of sample keys for the calling DataLoader worker (all of them outside one)."""
        batches = self.reading.sampler.batches(self.epoch)
        worker = get_worker_info()
        if worker is not None:
            batches = split_among_workers(batches, worker.num_workers)[worker.id]
        return batches

    def __iter__(self):
        for keys in self.worker_batches():
            if self.return_type != "tensor":
                for file_idx, sample_idx in keys:
                    yield self._read(file_idx, sample_idx)
                continue
            batch = read_batch(self.reading.source, keys, batch_tensor)
            self.counts.add(batch.nbytes, len(keys))
            if isinstance(batch.data, list):  # ragged: one tensor per sample
                yield from batch.data
            else:
                yield from _rows(batch.data)

    def __len__(self) -> int:
        sampler = self.reading.sampler
        return sum(len(b) for b in sampler.batches(self.epoch))


def _one_line(err: DlDriverError) -> DlDriverError:
    """A dl-driver error re-raised by torch from a worker carries the worker's traceback in its
    message; the user gets the error's own line."""
    lines = str(err).splitlines()
    if len(lines) > 1 and lines[0].startswith("Caught "):
        name = type(err).__name__
        own = [line.split(": ", 1)[1] for line in lines if line.split(": ", 1)[0].endswith(name)]
        if own:
            return type(err)(own[-1])
    return err


class DlioDataLoader(DataLoader):
    """A torch DataLoader over a dl-driver dataset, with `set_epoch` and one-line dl-driver errors.

    With a batch ring (`ring`, made by make_dataloader), workers read each batch into a ring slot of
    shared memory and send back only its number, as `dldriver run`'s loader does; a batch is then a view
    of its slot, valid until the next batch is requested (clone() one to keep it; with pin_memory the
    pinned copy is the batch). batch_size and drop_last read as the batches are made."""

    def __init__(self, dataset, *args, ring: Optional[_Ring] = None, **kwargs):
        self._ring = ring
        if ring is None:
            super().__init__(dataset, *args, **kwargs)
            return
        batch_size, drop_last = kwargs.pop("batch_size"), kwargs.pop("drop_last")
        batches = RingBatchSampler(kwargs.pop("sampler"), batch_size, drop_last, ring)
        kwargs.pop("collate_fn", None)
        super().__init__(dataset, *args, batch_sampler=batches, collate_fn=_RingCollate(ring), **kwargs)
        object.__setattr__(self, "batch_size", batch_size)  # DataLoader forbids setting them after init
        object.__setattr__(self, "drop_last", drop_last)
        _RINGS[ring.token] = ring
        weakref.finalize(self, _RINGS.pop, ring.token, None)
        self._live = None  # the iterator of the current pass, when workers are not persistent

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self):
        if self._ring is not None and not self.persistent_workers:
            # A pass begun before this one must stop writing into the ring before this one starts.
            old = self._live() if self._live is not None else None
            if old is not None:
                old._shutdown_workers()
        iterator = super().__iter__()
        if self._ring is not None and not self.persistent_workers:
            self._live = weakref.ref(iterator)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except DlDriverError as err:
                raise _one_line(err) from None
            yield batch.tensor() if isinstance(batch, _SlotRef) else batch


def make_dataloader(dataset, *, batch_ring: bool = True, **kwargs) -> DlioDataLoader:
    """A DataLoader with the dataset's profile: batch size, workers (reader.read_threads), prefetch factor
    (derived from reader.prefetch_size as DLIO does), pin_memory (off without CUDA), drop_last,
    persistent_workers, reader.multiprocessing_context. Keyword arguments are passed to DataLoader and
    win over the profile.

    batch_ring (map-style dataset, tensors, workers > 0, every sample of one shape, no sampler,
    batch_sampler or collate_fn given): workers read batches into a ring of shared-memory buffers, and
    each batch is a view of its buffer, valid until the next batch is requested. batch_ring=False: each
    batch is a fresh tensor (read straight into shared memory by the worker), which may be kept."""
    p = dataset.profile
    workers = kwargs.get("num_workers", p.num_workers)
    options = dict(batch_size=p.batch_size, num_workers=p.num_workers, pin_memory=p.pin_memory,
                   drop_last=p.drop_last, collate_fn=collate)
    if isinstance(dataset, DlioPyTorchDataset):
        options["sampler"] = dataset.sampler
    if workers > 0:
        options.update(prefetch_factor=p.prefetch_factor, persistent_workers=p.persistent_workers,
                       multiprocessing_context=dataset.workload.reader.multiprocessing_context)
    options.update(kwargs)
    if options.get("pin_memory") and not torch.cuda.is_available():
        log.warning("pin_memory: no CUDA device, so batches are not pinned")
        options["pin_memory"] = False
    ring = _ring_for(dataset, options, kwargs) if batch_ring else None
    return DlioDataLoader(dataset, ring=ring, **options)


def _ring_for(dataset, options: dict, given: dict) -> Optional[_Ring]:
    """The batch ring of a DataLoader with these options, or None where it does not apply. A DataLoader
    (in_order) has at most num_workers x prefetch_factor batches in flight and asks for batch i + that
    only when it hands out batch i, so that many slots plus one never reuse a slot still in use."""
    workers = options.get("num_workers", 0)
    if (not isinstance(dataset, DlioPyTorchDataset) or dataset.return_type != "tensor" or workers <= 0
            or {"sampler", "batch_sampler", "collate_fn"} & set(given) or not options.get("in_order", True)
            or options.get("batch_size") is None):
        return None
    source = dataset.reading.source
    layout = source.sample_layout(range(len(source.files)))
    if layout is None:
        return None
    return _Ring(workers * (options.get("prefetch_factor") or 2) + 1, options["batch_size"], *layout)


class DlioPyTorchDataLoader:
    """The predecessor's name for the DataLoader factory: `from_config` and `from_uri` return a
    DlioDataLoader (a torch DataLoader) over a DlioPyTorchDataset (iterable=True: the iterable form)."""

    @staticmethod
    def _split(kwargs: dict) -> tuple[dict, dict]:
        dataset_keys = {"split", "rank", "world_size", "entropy", *PROFILE_KEYS}
        return ({k: v for k, v in kwargs.items() if k in dataset_keys},
                {k: v for k, v in kwargs.items() if k not in dataset_keys})

    @classmethod
    def from_config(cls, config, overrides=(), *, iterable: bool = False, **kwargs) -> DlioDataLoader:
        """kwargs: split, rank, world_size, entropy, pytorch_config keys, batch_ring (make_dataloader),
        else DataLoader arguments."""
        ds_kwargs, dl_kwargs = cls._split(kwargs)
        kind = DlioPyTorchIterableDataset if iterable else DlioPyTorchDataset
        return make_dataloader(kind(config, overrides, **ds_kwargs), **dl_kwargs)

    @classmethod
    def from_uri(cls, uri: str, format: Optional[str] = None, overrides=(), *, iterable: bool = False,
                 **kwargs) -> DlioDataLoader:
        return cls.from_config(uri_config(uri, format), overrides, iterable=iterable, **kwargs)
