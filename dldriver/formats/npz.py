"""npz: `np.savez(x=records, y=labels)`, x of shape (*sample_shape, num_samples) -- samples on the LAST
axis, as DLIO writes it -- and y the num_samples zero labels. compression: zip writes savez_compressed
(DLIO means to, but its enum comparison never matches, §10).

An uncompressed archive is built by formats.storedzip: byte for byte the file np.savez writes (zip64
local headers, no data descriptors, members dated 1980-01-01), joined once from its pieces, so the same
seed gives the same bytes on every rerun. A compressed one (or one past 2 GiB, which needs zip64 end
records) is written with zipfile, the same entries into a list of pieces joined once at the end; zipfile
writes that unseekable stream with data descriptors (sizes after the data), which every zip reader,
numpy's included, reads.
"""
from __future__ import annotations

import io
import zipfile

import numpy as np

from dldriver.formats.base import Format, file_rng, random_array
from dldriver.formats.npyparse import ArrayFileReader, npy_layout, stored_member_start, zip_complete
from dldriver.formats.storedzip import ZIP64_LIMIT, stored_zip


def records(spec) -> np.ndarray:
    return random_array(file_rng(spec), (*spec.shape, spec.num_samples), spec.dtype)


def npy_header(array: np.ndarray) -> bytes:
    """The .npy header np.save writes before `array`'s C-ordered data (format 1.0)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, np.lib.format.header_data_from_array_1_0(array))
    return out.getvalue()


def npy_pieces(array: np.ndarray) -> list:
    """A .npy file as pieces to join: the header, then the array's bytes (no copy)."""
    return [npy_header(array), memoryview(np.ascontiguousarray(array)).cast("B")]


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
        x, y = records(spec), np.zeros(spec.num_samples, dtype=np.int64)
        if spec.compression != "zip" and x.nbytes + y.nbytes < ZIP64_LIMIT - (1 << 20):
            return {spec.key: stored_zip([("x.npy", npy_pieces(x)), ("y.npy", npy_pieces(y))], _ZIP_EPOCH)}
        compression = zipfile.ZIP_DEFLATED if spec.compression == "zip" else zipfile.ZIP_STORED
        out = _Pieces()
        with zipfile.ZipFile(out, "w", compression=compression, allowZip64=True) as archive:
            _add_array(archive, "x", x)
            _add_array(archive, "y", y)
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
