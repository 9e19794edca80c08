"""csv: pandas, no header and no index; one row per sample holding its prod(dims) values in C order.
Compression (gzip, bz2, zip, xz) through pandas without adding an extension, as DLIO does."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from dldriver.formats.base import FileReader, Format, file_rng, random_array


def _compression(spec):
    return None if spec.compression in ("none", "lzf") else spec.compression


class CsvFormat(Format):
    name = "csv"

    def write_file(self, spec) -> dict[str, bytes]:
        rows = random_array(file_rng(spec), (spec.num_samples, *spec.shape), spec.dtype)
        buf = io.BytesIO()
        pd.DataFrame(rows.reshape(spec.num_samples, -1)).to_csv(
            buf, header=False, index=False, compression=_compression(spec))
        return {spec.key: buf.getvalue()}

    def open_file(self, storage, spec) -> FileReader:
        return CsvReader(storage, spec)


class CsvReader(FileReader):
    format_name = "csv"

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        data = self.get(spec.key)
        with self.decoding():
            table = pd.read_csv(io.BytesIO(data), header=None, compression=_compression(spec))
            values = table.to_numpy()
            if values.dtype == object:
                raise ValueError("non-numeric values")
            if np.dtype(spec.dtype).kind in "iu" and values.dtype.kind not in "iu":
                raise ValueError(f"non-integer values for {spec.dtype} samples")
            values = values.astype(spec.dtype)
        self.rows = self.check(values, (spec.num_samples, int(np.prod(spec.shape))), spec.dtype)

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        return self.rows[i].reshape(self.spec.shape)


FORMAT = CsvFormat()
