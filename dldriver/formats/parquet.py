"""parquet (not in DLIO upstream; users ask for it, #335): one row per sample, a fixed-size binary column
`data` with the sample's raw bytes and an int64 `label` (zeros), written with pyarrow. compression gzip
is parquet's gzip; anything else but none falls back to none."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dldriver.formats.base import FileReader, Format, file_rng, random_array


class ParquetFormat(Format):
    name = "parquet"

    def write_file(self, spec) -> dict[str, bytes]:
        n, size = spec.num_samples, spec.sample_bytes
        raw = random_array(file_rng(spec), (n, *spec.shape), spec.dtype).tobytes()
        data = pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), n, [None, pa.py_buffer(raw)])
        table = pa.table({"data": data, "label": pa.array(np.zeros(n, dtype=np.int64))})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="gzip" if spec.compression == "gzip" else "none")
        return {spec.key: buf.getvalue()}

    def open_file(self, storage, spec) -> FileReader:
        return ParquetReader(storage, spec)


class ParquetReader(FileReader):
    format_name = "parquet"

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        data = self.get(spec.key)
        with self.decoding():
            column = pq.read_table(io.BytesIO(data), columns=["data"]).column("data").combine_chunks()
            if column.type != pa.binary(spec.sample_bytes):
                raise ValueError(f"column data is {column.type}, expected {pa.binary(spec.sample_bytes)}")
            raw = np.frombuffer(column.buffers()[1], dtype=np.uint8)
            start = column.offset * spec.sample_bytes
            self.rows = raw[start:start + len(column) * spec.sample_bytes].reshape(len(column), -1)
        if len(self.rows) != spec.num_samples:
            raise self.fail(f"holds {len(self.rows)} rows, the config expects {spec.num_samples}")

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        return self.rows[i].view(self.spec.dtype).reshape(self.spec.shape)


FORMAT = ParquetFormat()
