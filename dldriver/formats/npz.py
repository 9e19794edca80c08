"""npz: `np.savez(x=records, y=labels)`, x of shape (*sample_shape, num_samples) -- samples on the LAST
axis, as DLIO writes it -- and y the num_samples zero labels. compression: zip writes savez_compressed
(DLIO means to, but its enum comparison never matches, §10)."""
from __future__ import annotations

import io

import numpy as np

from dldriver.formats.base import FileReader, Format, file_rng, random_array


def records(spec) -> np.ndarray:
    return random_array(file_rng(spec), (*spec.shape, spec.num_samples), spec.dtype)


class NpzFormat(Format):
    name = "npz"

    def write_file(self, spec) -> dict[str, bytes]:
        buf = io.BytesIO()
        save = np.savez_compressed if spec.compression == "zip" else np.savez
        save(buf, x=records(spec), y=np.zeros(spec.num_samples, dtype=np.int64))
        return {spec.key: buf.getvalue()}

    def open_file(self, storage, spec) -> FileReader:
        return NpzReader(storage, spec)


class NpzReader(FileReader):
    format_name = "npz"

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        data = self.get(spec.key)
        with self.decoding():
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                x = archive["x"]
        self.x = self.check(x, (*spec.shape, spec.num_samples), spec.dtype)

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        return self.x[..., i]


FORMAT = NpzFormat()
