"""Where each dataset file lives and what it holds: DLIO's names, folders and per-file sample shapes.

DLIO names file i of N `{prefix}_{i}_of_{N}.{format}` with i zero-padded to len(str(N)), puts training files
in `train/` and evaluation files in `valid/`, and with num_subfolders > 1 round-robins them into numbered
subfolders `train/{i % S}/` padded to len(str(S)). Keys here are relative to the dataset root.
"""
from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field, replace

import numpy as np

from dldriver.errors import DatasetError

SPLITS = ("train", "valid")
# DLIO seeds numpy's global generator with 10 before drawing the per-file dimensions, so its file sizes are
# fixed whatever train.seed says; drawing them the same way gives dl-driver datasets DLIO's exact sizes.
DLIO_DIMENSION_SEED = 10
IMAGE_FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class FileSpec:
    """One dataset file: where it goes and everything needed to write or read it."""

    format: str
    split: str                      # 'train' or 'valid'
    index: int                      # position within its split
    num_files: int                  # files in its split (the N of `_of_N`)
    key: str                        # relative to the dataset root, e.g. 'train/1/img_01_of_64.npz'
    num_samples: int
    shape: tuple                    # one sample's shape
    dtype: str                      # numpy dtype name of a sample
    seed: int                       # content seed (train.seed); the bytes depend on (seed, split, index)
    compression: str = "none"
    compression_level: int = 4
    num_dset_per_record: int = 1    # hdf5 only
    chunk_dims: tuple = field(default_factory=tuple)
    max_shape: tuple = field(default_factory=tuple)

    @property
    def sample_bytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def basename(self) -> str:
        return posixpath.basename(self.key)


def _split_counts(workload, split: str) -> tuple[int, int]:
    ds = workload.dataset
    if split == "train":
        return ds.num_files_train, ds.num_subfolders_train
    if split == "valid":
        return ds.num_files_eval, ds.num_subfolders_eval
    raise ValueError(f"split must be one of {SPLITS}, not {split!r}")


def file_key(split: str, index: int, num_files: int, num_subfolders: int, prefix: str, ext: str) -> str:
    name = f"{prefix}_{str(index).zfill(len(str(num_files)))}_of_{num_files}.{ext}"
    if num_subfolders > 1:
        return f"{split}/{str(index % num_subfolders).zfill(len(str(num_subfolders)))}/{name}"
    return f"{split}/{name}"


def _drawn_dimensions(workload) -> np.ndarray | None:
    """DLIO's per-file (d1, d2) draws for train then valid files, or None when sizes do not vary.

    DLIO draws 2 * (train + eval files) values from N(d, stdev / 2 / sqrt(record_length)) with numpy's
    global generator seeded 10, truncates each to int (at least 1), and gives file g (eval files follow
    train files in one index space) the pair (2g, 2g+1).
    """
    ds = workload.dataset
    if ds.record_dims or ds.record_length_bytes_stdev <= 0:
        return None
    d = int(math.sqrt(ds.record_length_bytes))
    stdev = ds.record_length_bytes_stdev / 2.0 / math.sqrt(ds.record_length_bytes)
    total = ds.num_files_train + ds.num_files_eval
    draws = np.random.RandomState(DLIO_DIMENSION_SEED).normal(d, stdev, 2 * total)
    return np.maximum(draws.astype(np.int64), 1).reshape(total, 2)


def dataset_files(workload, split: str) -> list[FileSpec]:
    """Every file of one split in index order, as DLIO would name and size it."""
    ds = workload.dataset
    num_files, num_subfolders = _split_counts(workload, split)
    dtype = "uint8" if ds.format in IMAGE_FORMATS else str(np.dtype(ds.record_element_type))
    drawn = _drawn_dimensions(workload)
    offset = 0 if split == "train" else ds.num_files_train
    specs = []
    for i in range(num_files):
        if ds.record_dims:
            shape = tuple(int(x) for x in ds.record_dims)
        elif drawn is not None:
            shape = tuple(int(x) for x in drawn[offset + i])
        else:
            d = int(math.sqrt(ds.record_length_bytes))
            shape = (d, d)
        specs.append(FileSpec(
            format=ds.format, split=split, index=i, num_files=num_files,
            key=file_key(split, i, num_files, num_subfolders, ds.file_prefix, ds.format),
            num_samples=ds.num_samples_per_file, shape=shape, dtype=dtype, seed=workload.train.seed,
            compression=ds.compression, compression_level=ds.compression_level,
            num_dset_per_record=ds.hdf5.num_dset_per_record, chunk_dims=tuple(ds.hdf5.chunk_dims),
            max_shape=tuple(ds.hdf5.max_shape)))
    return specs


def discover_files(storage, workload, split: str) -> list[FileSpec]:
    """The files of a dataset written without a manifest (by DLIO, say), found the way DLIO finds them.

    Lists `{split}/`; when it holds numbered subfolders their files are used, else the files directly in
    it. Names ending in `.{format}` are kept and sorted by basename; the first N are used. The sample shapes
    are the configured ones, so a DLIO dataset is read with the config that generated it.
    """
    expected = dataset_files(workload, split)
    ext = "." + workload.dataset.format
    keys = [k for k in storage.list(split + "/") if k.endswith(ext)]
    nested = [k for k in keys if k.count("/") == 2]
    chosen = nested if nested else [k for k in keys if k.count("/") == 1]
    chosen.sort(key=posixpath.basename)
    if len(chosen) < len(expected):
        raise DatasetError(
            f"{storage.uri}/{split}: expected {len(expected)} *{ext} files but found {len(chosen)}; "
            f"run `dldriver generate` with this config first")
    return [replace(spec, key=key) for spec, key in zip(expected, chosen)]
