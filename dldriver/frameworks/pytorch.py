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
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info

from dldriver.config.profiles import PyTorchProfile
from dldriver.engine.sampler import split_among_workers
from dldriver.errors import DlDriverError
from dldriver.loaders.base import read_batch
from dldriver.frameworks.common import FrameworkDataset, uri_config

log = logging.getLogger("dldriver")
PROFILE_KEYS = tuple(PyTorchProfile.__dataclass_fields__)

__all__ = ["DlioPyTorchDataset", "DlioPyTorchIterableDataset", "DlioSampler", "DlioPyTorchDataLoader",
           "make_dataloader"]


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
        into its row of one batch array, and the rows are handed to collate."""
        if self.return_type == "bytes" or not indices:
            return [self[i] for i in indices]
        spf = self.reading.sampler.samples_per_file
        batch = read_batch(self.reading.source, [divmod(i, spf) for i in indices])
        self.counts.add(batch.nbytes, len(indices))
        if self.return_type == "reader":
            return list(batch.data)
        return [torch.from_numpy(row) for row in batch.data]

    def key(self, index: int) -> tuple[int, int]:
        """(file, sample) of an index."""
        return divmod(index, self.reading.sampler.samples_per_file)


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
    batches are the sampler's batches, in order."""

    def __init__(self, config, overrides=(), *, split: str = "train", rank: Optional[int] = None,
                 world_size: Optional[int] = None, entropy: Optional[int] = None, **profile):
        self._setup(config, overrides, split, rank, world_size, entropy, profile)
        self.return_type = self.reading.profile.return_type

    def __iter__(self):
        batches = self.reading.sampler.batches(self.epoch)
        worker = get_worker_info()
        if worker is not None:
            batches = split_among_workers(batches, worker.num_workers)[worker.id]
        for keys in batches:
            for file_idx, sample_idx in keys:
                yield self._read(file_idx, sample_idx)

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
    """A torch DataLoader over a dl-driver dataset, with `set_epoch` and one-line dl-driver errors."""

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self):
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except DlDriverError as err:
                raise _one_line(err) from None
            yield batch


def make_dataloader(dataset, **kwargs) -> DlioDataLoader:
    """A DataLoader with the dataset's profile: batch size, workers (reader.read_threads), prefetch factor
    (derived from reader.prefetch_size as DLIO does), pin_memory (off without CUDA), drop_last,
    persistent_workers, reader.multiprocessing_context. Keyword arguments are passed to DataLoader and
    win over the profile."""
    p = dataset.profile
    workers = kwargs.get("num_workers", p.num_workers)
    options = dict(batch_size=p.batch_size, num_workers=p.num_workers, pin_memory=p.pin_memory,
                   drop_last=p.drop_last)
    if isinstance(dataset, DlioPyTorchDataset):
        options["sampler"] = dataset.sampler
    if workers > 0:
        options.update(prefetch_factor=p.prefetch_factor, persistent_workers=p.persistent_workers,
                       multiprocessing_context=dataset.workload.reader.multiprocessing_context)
    options.update(kwargs)
    if options.get("pin_memory") and not torch.cuda.is_available():
        log.warning("pin_memory: no CUDA device, so batches are not pinned")
        options["pin_memory"] = False
    return DlioDataLoader(dataset, **options)


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
        """kwargs: split, rank, world_size, entropy, pytorch_config keys, else DataLoader arguments."""
        ds_kwargs, dl_kwargs = cls._split(kwargs)
        kind = DlioPyTorchIterableDataset if iterable else DlioPyTorchDataset
        return make_dataloader(kind(config, overrides, **ds_kwargs), **dl_kwargs)

    @classmethod
    def from_uri(cls, uri: str, format: Optional[str] = None, overrides=(), *, iterable: bool = False,
                 **kwargs) -> DlioDataLoader:
        return cls.from_config(uri_config(uri, format), overrides, iterable=iterable, **kwargs)
