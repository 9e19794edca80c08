"""npy: `np.save` of the same array as npz's x: (*sample_shape, num_samples), samples on the LAST axis, with
the header and the data joined once (np.save into a BytesIO copies the data twice)."""
from __future__ import annotations

import io

import numpy as np

from dldriver.formats.base import Format
from dldriver.formats.npyparse import ArrayFileReader, npy_layout
from dldriver.formats.npz import npy_pieces, records


class NpyFormat(Format):
    name = "npy"

    def write_file(self, spec) -> dict[str, bytes]:
        return {spec.key: b"".join(npy_pieces(records(spec)))}

    def open_file(self, storage, spec) -> FileReader:
        return NpyReader(storage, spec)


class NpyReader(ArrayFileReader):
    format_name = "npy"

    def _layout(self, head):
        return npy_layout(head)


FORMAT = NpyFormat()
