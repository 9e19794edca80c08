"""hdf5: h5py, libver='latest'; datasets `records_0..records_{k-1}` (k = hdf5.num_dset_per_record) each of
shape (num_samples, *dims) -- samples FIRST -- where dims is the sample shape with its first axis divided
by k and dropped when that leaves 1 (DLIO's rule), plus `labels` (zeros). Optional gzip (with level) or
lzf compression, `chunks=hdf5.chunk_dims`, `maxshape=(num_samples, *hdf5.max_shape)`.

Written into memory (h5py accepts a file object), read through ranged gets so only the chunks of the
samples asked for are fetched.
"""
from __future__ import annotations

import io
import weakref

import h5py
import numpy as np

from dldriver.errors import FormatError
from dldriver.formats.base import FileReader, Format, StorageFile, file_rng, random_array

_COMPRESSION = {"none": None, "gzip": "gzip", "lzf": "lzf"}


def dataset_dims(spec) -> tuple:
    first, *rest = spec.shape
    first //= spec.num_dset_per_record
    return tuple(rest) if first == 1 and rest else (first, *rest)


class Hdf5Format(Format):
    name = "hdf5"

    def write_file(self, spec) -> dict[str, bytes]:
        if spec.compression not in _COMPRESSION:
            raise FormatError(f"{spec.key}: hdf5 supports compression none, gzip or lzf, "
                              f"not {spec.compression!r} (dataset.compression)")
        options = {"compression": _COMPRESSION[spec.compression]}
        if spec.compression == "gzip":
            options["compression_opts"] = spec.compression_level
        if spec.chunk_dims:
            options["chunks"] = tuple(spec.chunk_dims)
        if spec.max_shape:
            options["maxshape"] = (spec.num_samples, *spec.max_shape)
        shape = (spec.num_samples, *dataset_dims(spec))
        rng = file_rng(spec)
        buf = io.BytesIO()
        with h5py.File(buf, "w", libver="latest") as f:
            for j in range(spec.num_dset_per_record):
                f.create_dataset(f"records_{j}", data=random_array(rng, shape, spec.dtype), **options)
            f.create_dataset("labels", data=np.zeros(spec.num_samples, dtype=np.int64))
        return {spec.key: buf.getvalue()}

    def open_file(self, storage, spec) -> FileReader:
        return Hdf5Reader(storage, spec)


class Hdf5Reader(FileReader):
    format_name = "hdf5"

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        expected = (spec.num_samples, *dataset_dims(spec))
        with self.decoding():
            self.file = h5py.File(StorageFile(self, spec.key), "r")
            # HDF5 must let go of the Python file object before interpreter teardown, or it crashes.
            self.close = weakref.finalize(self, self.file.close)
            self.dsets = [self.file[f"records_{j}"] for j in range(spec.num_dset_per_record)]
        for d in self.dsets:
            if d.shape != expected or d.dtype != np.dtype(spec.dtype):
                raise self.fail(f"{d.name} holds {d.dtype}{list(d.shape)}, the config expects "
                                f"{np.dtype(spec.dtype)}{list(expected)}")

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        with self.decoding():
            parts = [d[i] for d in self.dsets]
        # The k datasets hold consecutive slices of the sample's first axis.
        return np.concatenate([p.reshape(-1) for p in parts]).reshape(self.spec.shape)


FORMAT = Hdf5Format()
