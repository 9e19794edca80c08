"""npy: `np.save` of the same array as npz's x: (*sample_shape, num_samples), samples on the LAST axis."""
from __future__ import annotations

import io

import numpy as np

from dldriver.formats.base import Format
from dldriver.formats.npyparse import ArrayFileReader, npy_layout
from dldriver.formats.npz import records


class NpyFormat(Format):
    name = "npy"

    def write_file(self, spec) -> dict[str, bytes]:
        buf = io.BytesIO()
        np.save(buf, records(spec))
        return {spec.key: buf.getvalue()}

    def open_file(self, storage, spec) -> FileReader:
        return NpyReader(storage, spec)


class NpyReader(ArrayFileReader):
    format_name = "npy"

    def _layout(self, head):
        return npy_layout(head)


FORMAT = NpyFormat()
