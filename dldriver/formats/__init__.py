"""DLIO's data formats: one module per format, each a writer and a reader of DLIO's exact layout.

`get_format(name)` returns the format object (see base.Format); a format's module, and so its library
(h5py, PIL, pandas, pyarrow), is imported only when that format is asked for.
"""
from __future__ import annotations

import importlib

from dldriver.errors import FormatError

# format name -> (module, attribute holding the format object)
_FORMATS = {
    "npz": ("npz", "FORMAT"),
    "npy": ("npy", "FORMAT"),
    "hdf5": ("hdf5", "FORMAT"),
    "tfrecord": ("tfrecord", "FORMAT"),
    "jpeg": ("image", "JPEG"),
    "png": ("image", "PNG"),
    "csv": ("csv", "FORMAT"),
    "indexed_binary": ("indexed_binary", "INDEXED"),
    "mmap_indexed_binary": ("indexed_binary", "MMAP_INDEXED"),
    "synthetic": ("synthetic", "FORMAT"),
    "parquet": ("parquet", "FORMAT"),
}
FORMAT_NAMES = tuple(_FORMATS)


def get_format(name: str):
    if name not in _FORMATS:
        raise FormatError(f"unknown dataset.format {name!r}; known: {', '.join(FORMAT_NAMES)}")
    module, attr = _FORMATS[name]
    return getattr(importlib.import_module(f"dldriver.formats.{module}"), attr)
