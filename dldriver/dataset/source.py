"""The shared sample source: real bytes from the storage, decoded by the format's reader.

Every loader reads through one SampleSource, so every framework fetches and decodes the same way and
the bytes really fetched are counted in one place. A source is safe to use from several threads (state
that is not thread-safe, the open readers and the storage client, lives per thread) and from forked
loader workers (a process that did not open the storage re-opens it from its URI).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from dldriver.config.timespec import TimeSpec
from dldriver.errors import DlDriverError, FormatError
from dldriver.formats import get_format


@dataclass
class Read:
    """One decoded sample with what it cost: bytes really fetched and seconds spent (decode included)."""

    data: np.ndarray
    nbytes: int
    seconds: float


class SampleSource:
    """`read(file_idx, sample_idx)` over a list of file specs (dataset.layout.FileSpec) of one split.

    read_type "on_demand" keeps a file's reader open only while consecutive samples of that file are
    read (a multi-sample npz is then fetched once per run of samples, not once per sample);
    "memory" keeps every reader open for the life of the source, as DLIO's memory read type does.
    """

    def __init__(self, open_storage: Callable[[], object], files: Sequence, fmt, read_type: str = "on_demand",
                 preprocess_time: TimeSpec = TimeSpec(), seed: int = 0):
        self._open_storage = open_storage
        self.files = list(files)
        self.fmt = fmt
        self.read_type = read_type
        self.preprocess_time = preprocess_time
        self._seed = seed
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pid = os.getpid()
        self._storage = open_storage()
        self.uri = getattr(self._storage, "uri", "")
        self.bytes_read = 0
        self.samples_read = 0
        # The one (shape, dtype) of every sample, or None (sizes drawn per file): batches ask per batch.
        self._layout = _common_layout(self.files)

    def __getstate__(self):
        # spawn/forkserver workers get a copy without live clients; they re-open the storage.
        state = self.__dict__.copy()
        state.update(_lock=None, _local=None, _storage=None, _pid=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._local = threading.local()

    def name(self, file_idx: int) -> str:
        """The file's URI, for messages."""
        return f"{self.uri.rstrip('/')}/{self.files[file_idx].key}"

    def num_samples(self, file_idx: int) -> int:
        return self.files[file_idx].num_samples

    def read(self, file_idx: int, sample_idx: int) -> np.ndarray:
        """The decoded sample; counts its bytes into this source."""
        result = self.fetch(file_idx, sample_idx)
        self.account(result.nbytes, 1)
        return result.data

    def fetch(self, file_idx: int, sample_idx: int, out: np.ndarray | None = None) -> Read:
        """The decoded sample with its cost, without counting it (for workers in other processes).

        With `out` (a batch slot: C-contiguous, of sample_layout's shape and dtype) the sample is written
        there and Read.data is `out`: readers that have read_sample_into (npz, npy) read straight into
        it, the others' sample is copied in. read_type "memory" always decodes through the kept reader.
        """
        start = time.perf_counter()
        reader, fresh = self._reader(file_idx)
        before = 0 if fresh else reader.bytes_read
        try:
            data = self._decode(reader, file_idx, sample_idx, out)
        except DlDriverError:
            raise
        except Exception as err:  # any decoder failure: name the file, not the library's internals
            self._forget(file_idx)
            raise FormatError(f"{self.name(file_idx)}: cannot decode sample {sample_idx} as "
                              f"{self.fmt.name}: {type(err).__name__}: {err}") from err
        nbytes = reader.bytes_read - before
        self._preprocess()
        return Read(np.asarray(data), nbytes, time.perf_counter() - start)

    def _decode(self, reader, file_idx: int, sample_idx: int, out):
        if out is None:
            return reader.read_sample(sample_idx)
        into = getattr(reader, "read_sample_into", None)
        if into is not None and self.read_type != "memory":
            into(sample_idx, out)
            return out
        data = np.asarray(reader.read_sample(sample_idx))
        if data.shape != out.shape or data.dtype != out.dtype:
            raise FormatError(f"{self.name(file_idx)}: sample {sample_idx} decodes to {data.dtype}"
                              f"{list(data.shape)}, the config expects {out.dtype}{list(out.shape)}")
        out[...] = data
        return out

    def sample_layout(self, file_indices) -> tuple[tuple, np.dtype] | None:
        """(shape, dtype) shared by the samples of these files, from the config; None when they differ
        (record_length_bytes_stdev draws a size per file) and a batch of them stays ragged."""
        if self._layout is not None:
            return self._layout
        return _common_layout(self.files[f] for f in set(file_indices))

    def account(self, nbytes: int, samples: int) -> None:
        with self._lock:
            self.bytes_read += nbytes
            self.samples_read += samples

    def take_counts(self) -> tuple[int, int]:
        """(bytes, samples) read since the last call; the loop takes them once per epoch."""
        with self._lock:
            counts = (self.bytes_read, self.samples_read)
            self.bytes_read = self.samples_read = 0
        return counts

    def storage(self):
        """This process's storage client (a forked or unpickled copy opens its own)."""
        if self._pid != os.getpid() or self._storage is None:
            self._storage = self._open_storage()
            self._pid = os.getpid()
            self._local = threading.local()
        return self._storage

    def _readers(self) -> dict:
        if getattr(self._local, "pid", None) != os.getpid():
            self._local.pid = os.getpid()
            self._local.readers = {}
            self._local.rng = np.random.default_rng([self._seed, os.getpid(), threading.get_ident()])
        return self._local.readers

    def _reader(self, file_idx: int):
        """(reader, fresh): the open reader of this file, or a newly opened one."""
        readers = self._readers()
        reader = readers.get(file_idx)
        if reader is not None:
            return reader, False
        if self.read_type != "memory":
            for idx in list(readers):
                self._forget(idx)
        storage = self.storage()
        try:
            reader = self.fmt.open_file(storage, self.files[file_idx])
        except DlDriverError:
            raise
        except Exception as err:
            raise FormatError(f"{self.name(file_idx)}: cannot open as {self.fmt.name}: "
                              f"{type(err).__name__}: {err}") from err
        self._readers()[file_idx] = reader
        return reader, True

    def _forget(self, file_idx: int) -> None:
        reader = self._readers().pop(file_idx, None)
        if reader is not None:
            reader.close()

    def _preprocess(self) -> None:
        if self.preprocess_time.type == "constant":
            delay = self.preprocess_time.mean
        else:
            self._readers()
            delay = self.preprocess_time.sample(self._local.rng)
        if delay > 0:
            time.sleep(delay)

    def close(self) -> None:
        """Close this thread's open readers."""
        for idx in list(self._readers()):
            self._forget(idx)


def _common_layout(specs) -> tuple[tuple, np.dtype] | None:
    layouts = {(tuple(spec.shape), np.dtype(spec.dtype)) for spec in specs}
    return layouts.pop() if len(layouts) == 1 else None


def open_source(files: Sequence, storage_factory: Callable[[], object], format_name: str, reader,
                seed: int) -> SampleSource:
    """A source over one split's files in format `format_name` (dataset.format), read as `reader` (the
    config's reader section) says, its preprocess-time draws seeded with `seed` (train.seed)."""
    return SampleSource(storage_factory, files, get_format(format_name), read_type=reader.read_type,
                        preprocess_time=reader.preprocess_time, seed=seed)

