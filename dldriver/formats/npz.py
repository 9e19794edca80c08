"""npz: `np.savez(x=records, y=labels)`, x of shape (*sample_shape, num_samples) -- samples on the LAST
axis, as DLIO writes it -- and y the num_samples zero labels. compression: zip writes savez_compressed
(DLIO means to, but its enum comparison never matches, §10).

An uncompressed archive is built by formats.storedzip in one buffer, the random records written straight
into it: byte for byte the file np.savez writes of the same arrays (zip64 local headers, no data
descriptors, members dated 1980-01-01), so the same seed gives the same bytes on every rerun. A
compressed one (or one past 2 GiB, which needs zip64 end records) is written with zipfile, the same
entries into a list of pieces joined once at the end; zipfile writes that unseekable stream with data
descriptors (sizes after the data), which every zip reader, numpy's included, reads.
"""
from __future__ import annotations

import io
import math
import zipfile

import numpy as np

from dldriver.formats.base import Format, file_rng, fill_array, random_array
from dldriver.formats.npyparse import ArrayFileReader, npy_layout, stored_member_start, zip_complete
from dldriver.formats.storedzip import ZIP64_LIMIT, stored_zip


def records_shape(spec) -> tuple:
    return (*spec.shape, spec.num_samples)


def records(spec) -> np.ndarray:
    return random_array(file_rng(spec), records_shape(spec), spec.dtype)


def npy_header(shape: tuple, dtype) -> bytes:
    """The .npy header np.save writes before a C-ordered array of `shape` and `dtype` (format 1.0)."""
    out = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue()


def fill_npy(out, spec) -> None:
    """Write the .npy file of records(spec) into the buffer `out` (npy_size(spec) bytes), in place."""
    header = npy_header(records_shape(spec), spec.dtype)
    out[:len(header)] = header
    fill_array(file_rng(spec), out[len(header):], records_shape(spec), spec.dtype)


def npy_size(spec) -> int:
    data = math.prod(records_shape(spec)) * np.dtype(spec.dtype).itemsize
    return len(npy_header(records_shape(spec), spec.dtype)) + data


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

    def write_file(self, spec) -> dict[str, bytes | bytearray]:
        labels = npy_header((spec.num_samples,), np.int64)
        members = [("x.npy", npy_size(spec)), ("y.npy", len(labels) + 8 * spec.num_samples)]
        if spec.compression != "zip" and sum(size for _, size in members) < ZIP64_LIMIT - (1 << 20):
            def fill(member, out):
                if member == 0:
                    fill_npy(out, spec)
                else:  # y: its header, then zero labels, which the buffer already holds
                    out[:len(labels)] = labels

            return {spec.key: stored_zip(members, _ZIP_EPOCH, fill)}
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
        if not self._ends_well(data):
            raise ValueError("truncated: no end of central directory record")
        return self._layout(data)

    def _ends_well(self, tail) -> bool:
        return zip_complete(tail)

    def _load(self, data):
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return archive["x"]


FORMAT = NpzFormat()
