"""npy: `np.save` of the same array as npz's x: (*sample_shape, num_samples), samples on the LAST axis."""
from __future__ import annotations

import io

import numpy as np

from dldriver.formats.base import FileReader, Format
from dldriver.formats.npz import records


class NpyFormat(Format):
    name = "npy"

    def write_file(self, spec) -> dict[str, bytes]:
        buf = io.BytesIO()
        np.save(buf, records(spec))
        return {spec.key: buf.getvalue()}

    def open_file(self, storage, spec) -> FileReader:
        return NpyReader(storage, spec)


class NpyReader(FileReader):
    format_name = "npy"

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        data = self.get(spec.key)
        with self.decoding():
            x = np.load(io.BytesIO(data), allow_pickle=False)
            if not isinstance(x, np.ndarray):
                raise ValueError("an npz archive, not a single array")
        self.x = self.check(x, (*spec.shape, spec.num_samples), spec.dtype)

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        return self.x[..., i]


FORMAT = NpyFormat()
