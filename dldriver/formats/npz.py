"""npz: `np.savez(x=records, y=labels)`, x of shape (*sample_shape, num_samples) -- samples on the LAST
axis, as DLIO writes it -- and y the num_samples zero labels. compression: zip writes savez_compressed
(DLIO means to, but its enum comparison never matches, §10).

The archive is written here with zipfile rather than by np.savez: the same entries (x.npy and y.npy, each
a .npy header and the raw array, zip64 as savez forces it), but written into a list of pieces joined once
at the end (savez into a BytesIO copies the data twice more, a third of the generation time), and with a
fixed timestamp, where savez stamps the current time, so that the same seed gives the same bytes on every
rerun. zipfile writes an unseekable stream with data descriptors (sizes after the data); every zip
reader, numpy's included, reads them.
"""
from __future__ import annotations

import io
import zipfile

import numpy as np

from dldriver.formats.base import Format, file_rng, random_array
from dldriver.formats.npyparse import ArrayFileReader, npy_layout, stored_member_start, zip_complete


def records(spec) -> np.ndarray:
    return random_array(file_rng(spec), (*spec.shape, spec.num_samples), spec.dtype)


class _Pieces:
    """A write-only stream that keeps what it is given, without copying, for one join at the end."""

    def __init__(self):
        self.pieces = []

    def write(self, data) -> int:
        self.pieces.append(data)
        return memoryview(data).nbytes

    def flush(self) -> None:
        pass


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)   # the earliest time a zip entry can hold


def _add_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    """Add `name`.npy as np.savez does (format 1.0 header, then the C-ordered data)."""
    info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
    info.compress_type = archive.compression
    info.external_attr = 0o600 << 16     # the mode zipfile gives entries opened by name, as savez's are
    with archive.open(info, "w", force_zip64=True) as entry:
        np.lib.format.write_array_header_1_0(entry, np.lib.format.header_data_from_array_1_0(array))
        entry.write(memoryview(np.ascontiguousarray(array)).cast("B"))


class NpzFormat(Format):
    name = "npz"

    def write_file(self, spec) -> dict[str, bytes]:
        compression = zipfile.ZIP_DEFLATED if spec.compression == "zip" else zipfile.ZIP_STORED
        out = _Pieces()
        with zipfile.ZipFile(out, "w", compression=compression, allowZip64=True) as archive:
            _add_array(archive, "x", records(spec))
            _add_array(archive, "y", np.zeros(spec.num_samples, dtype=np.int64))
        return {spec.key: b"".join(out.pieces)}

    def open_file(self, storage, spec) -> FileReader:
        return NpzReader(storage, spec)


class NpzReader(ArrayFileReader):
    """x.npy read in place when it is the archive's first entry, stored (np.savez); np.load otherwise."""

    format_name = "npz"

    def _layout(self, head):
        start = stored_member_start(head, "x.npy")
        return None if start is None else npy_layout(head, start)

    def _whole_layout(self, data):
        if not zip_complete(data):
            raise ValueError("truncated: no end of central directory record")
        return self._layout(data)

    def _load(self, data):
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return archive["x"]


FORMAT = NpzFormat()
