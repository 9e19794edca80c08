"""Decoding .npy and stored .npz members straight from their bytes, without np.load's copies.

np.load of an npz goes through zipfile, which copies every member through 8 KiB-ish reads (about
1 GB/s). A member numpy writes uncompressed (np.savez, our writer) is the .npy bytes themselves at an
offset the zip's local header gives, so the array can be a view of the fetched bytes, or be read
straight into the caller's buffer (a batch slot) when the file is a local POSIX file.
"""
from __future__ import annotations

import functools
import io
import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from dldriver.formats.base import FileReader

HEAD_BYTES = 1024           # holds a zip local header and a .npy header as numpy writes them
_LOCAL = struct.Struct("<4sHHHHHIIIHH")   # zip local file header, 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"
_STORED = 0
_NPY_MAGIC = b"\x93NUMPY"
_HEADER_LENGTH = {1: struct.Struct("<H"), 2: struct.Struct("<I")}   # by .npy major version
_END_MAGIC = b"PK\x05\x06"
_END_SEARCH = 22 + 65535    # the end record, after at most a 64 KiB comment
# Where the data of x started in the last file read in place, per (reader class, shape, dtype): the next
# file most likely has the same headers, and then one preadv reads headers and data together.
_DATA_OFFSETS: dict = {}


@dataclass(frozen=True)
class NpyLayout:
    """Where an array's data lies in a file, and what it is."""

    offset: int             # of the first data byte, from the start of the file
    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    nbytes: int


def npy_layout(head, start: int = 0) -> NpyLayout:
    """The layout of the .npy that begins at `start` in `head` (which must hold its whole header)."""
    preamble = bytes(head[start:start + 12])
    if preamble[:6] != _NPY_MAGIC:
        raise ValueError("no .npy magic string")
    length = _HEADER_LENGTH.get(preamble[6])
    if length is None:
        raise ValueError(f".npy format version {preamble[6]} is not supported")
    size = 8 + length.size + length.unpack_from(preamble, 8)[0]
    if len(head) < start + size:
        raise ValueError("truncated in the .npy header")
    shape, fortran, dtype, nbytes = _parse_header(bytes(head[start:start + size]))
    return NpyLayout(start + size, shape, dtype, fortran, nbytes)


@functools.lru_cache(maxsize=256)
def _parse_header(header: bytes) -> tuple[tuple, bool, np.dtype, int]:
    """numpy's own parse of a whole .npy header. Its dict literal costs ~60 us to evaluate, as much as
    reading 128 KiB; the files of a dataset share a few headers, so each is parsed once."""
    fp = io.BytesIO(header)
    version = np.lib.format.read_magic(fp)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}[version]
    shape, fortran, dtype = read_header(fp)
    if dtype.hasobject:
        raise ValueError("holds Python objects (pickled), not raw numbers")
    return tuple(shape), fortran, dtype, math.prod(shape) * dtype.itemsize


def stored_member_start(head, name: str) -> int | None:
    """Offset of the data of `name`, when it is the zip's first entry and stored uncompressed; else None
    (the caller falls back to np.load). Raises ValueError when `head` is not a zip at all."""
    if len(head) < _LOCAL.size:
        raise ValueError("too short for a zip file")
    magic, _version, _flags, method, *_rest, name_len, extra_len = _LOCAL.unpack_from(head, 0)
    if magic != _LOCAL_MAGIC:
        raise ValueError("no zip local file header at offset 0")
    start = _LOCAL.size + name_len + extra_len
    if method != _STORED or bytes(head[_LOCAL.size:_LOCAL.size + name_len]) != name.encode():
        return None
    return start


def zip_complete(data) -> bool:
    """Whether the zip's end of central directory record is there (a truncated archive lacks it)."""
    return data.rfind(_END_MAGIC, max(0, len(data) - _END_SEARCH)) >= 0


def array_view(data, layout: NpyLayout) -> np.ndarray:
    """The array as a view of `data` (no copy); ValueError when `data` ends before the array does."""
    if layout.offset + layout.nbytes > len(data):
        raise ValueError(f"truncated: the array needs {layout.offset + layout.nbytes} bytes, "
                         f"the file has {len(data)}")
    flat = np.frombuffer(data, dtype=layout.dtype, count=layout.nbytes // layout.dtype.itemsize,
                         offset=layout.offset)
    return flat.reshape(layout.shape, order="F" if layout.fortran_order else "C")


def local_file(storage, key: str) -> str | None:
    """The POSIX path to read `key` through the page cache, or None. Only the file backend: direct's
    files must go through its O_DIRECT reads, object stores have no path."""
    return storage.local_path(key) if getattr(storage, "scheme", "") == "file" else None


def pread_into(fd: int, offset: int, out: np.ndarray) -> int:
    """Fill `out` (a flat uint8 array) with the file's bytes from `offset`, in place: one copy, from the
    page cache into `out`, with the GIL released. Returns the bytes read (short at end of file)."""
    view = memoryview(out)
    done = 0
    while done < len(view):  # preadv may return less than asked (signals, over 2 GiB)
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done


class ArrayFileReader(FileReader):
    """A reader of one array x of shape (*sample_shape, num_samples) stored as .npy bytes in a file.

    Nothing is fetched at open. read_sample fetches the whole file once and decodes x as a view of it.
    read_sample_into fills a caller's buffer (a slot of the batch) and, for a one-sample file on the file
    backend, reads the sample's bytes from the page cache straight into it: the sample is then copied
    once in all, as a raw read copies it. (With more samples per file a sample is strided, samples lying
    on the last axis, so it is gathered from the fetched file.) Subclasses say where x lies.
    """

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        self.x = None
        self._path = local_file(storage, spec.key)
        self._shape = (*spec.shape, spec.num_samples)

    def _layout(self, head) -> NpyLayout | None:
        """Where x's data lies, from the file's first bytes; None when only np.load can decode it."""
        raise NotImplementedError

    def _whole_layout(self, data: bytes) -> NpyLayout | None:
        """_layout, given the whole file (which lets a subclass check more than the head holds)."""
        return self._layout(data)

    def _load(self, data: bytes) -> np.ndarray:
        """x decoded by numpy, for what _layout cannot locate (compressed members)."""
        raise NotImplementedError

    def _array(self) -> np.ndarray:
        if self.x is None:
            self._decode_whole(self.get(self.spec.key))
        return self.x

    def _decode_whole(self, data) -> None:
        with self.decoding():
            layout = self._whole_layout(data)
            x = array_view(data, layout) if layout is not None else self._load(data)
        self.x = self.check(x, self._shape, self.spec.dtype)
        if layout is not None:
            _DATA_OFFSETS[self._kind()] = layout.offset

    def _kind(self) -> tuple:
        """What files share a layout: the reader's class, x's shape and dtype."""
        return (type(self), self._shape, self.spec.dtype)

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        return self._array()[..., i]

    def read_sample_into(self, i: int, out: np.ndarray) -> None:
        """Sample i written into `out` (C-contiguous, the sample's shape and dtype)."""
        self.check_index(i)
        if self.x is not None or self.num_samples != 1:
            out[...] = self.read_sample(i)
        elif self._path is not None:
            if not self._read_direct(out):
                out[...] = self.read_sample(i)
        elif not self._fetch_into(out):
            out[...] = self.read_sample(i)

    def _fetch_into(self, out: np.ndarray) -> bool:
        """Fetch the one-sample file from an object store with its sample's bytes going straight into
        `out` (Storage.get_into), when its data starts where the last file's of the same kind did; the
        headers and what follows x are fetched beside it and checked as a whole fetch checks them. False
        when there is no such file yet (the caller fetches and decodes this one whole, which records
        where its data starts). A file laid out otherwise is decoded whole from the pieces fetched."""
        offset = _DATA_OFFSETS.get(self._kind())
        if offset is None:
            return False
        flat = out.reshape(-1).view(np.uint8)
        pieces = []

        def buffers(size: int) -> list:
            if size < offset + len(flat):
                pieces.append(bytearray(size))
            else:
                pieces.extend((bytearray(offset), flat, bytearray(size - offset - len(flat))))
            return pieces

        self.bytes_read += self.storage.get_into(self.spec.key, buffers)
        if len(pieces) == 3:
            head, _, tail = pieces
            try:
                layout = self._layout(head)
            except ValueError:  # the whole decode below names what is wrong
                layout = None
            if self._fits(layout, flat) and layout.offset == offset and self._ends_well(tail):
                return True
        self._decode_whole(b"".join(bytes(p) for p in pieces))
        out[...] = self.read_sample(0)
        return True

    def _ends_well(self, tail) -> bool:
        """Whether what follows x's data ends the file as the format requires (npz: the zip's end
        record); a subclass whose files end with x has nothing to check."""
        return True

    def _read_direct(self, out: np.ndarray) -> bool:
        """Read the one sample from the local file into `out`; False when the file must be fetched and
        decoded whole instead (unreadable, not laid out as expected: that path names the error)."""
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except OSError:
            return False
        try:
            return self._read_fd(fd, out)
        finally:
            os.close(fd)

    def _read_fd(self, fd: int, out: np.ndarray) -> bool:
        flat = out.reshape(-1).view(np.uint8)
        kind = self._kind()
        guess = _DATA_OFFSETS.get(kind)
        if guess is not None and self._read_guessed(fd, flat, guess):
            return True
        try:
            head = os.pread(fd, HEAD_BYTES, 0)
            layout = self._layout(head)
        except (OSError, ValueError):
            return False
        if not self._fits(layout, flat):
            return False
        self.bytes_read += len(head)
        known = head[layout.offset:layout.offset + layout.nbytes]
        flat[:len(known)] = np.frombuffer(known, np.uint8)
        rest = layout.nbytes - len(known)
        if rest:
            got = pread_into(fd, len(head), flat[len(known):])
            self.bytes_read += got
            if got != rest:
                raise self.fail(f"truncated: {layout.offset + layout.nbytes} bytes expected, "
                                f"the file ends at {len(head) + got}")
        _DATA_OFFSETS[kind] = layout.offset
        return True

    def _read_guessed(self, fd: int, flat: np.ndarray, offset: int) -> bool:
        """Headers and data in one preadv, the data straight into `flat`, when this file's data starts
        at `offset` as the last file's of the same kind did (the files of a dataset share a layout);
        the header read is then checked as carefully as on the slower path."""
        head = bytearray(offset)
        try:
            got = os.preadv(fd, [head, flat], 0)
            layout = self._layout(head)
        except (OSError, ValueError):
            return False
        self.bytes_read += got
        return got == offset + len(flat) and self._fits(layout, flat) and layout.offset == offset

    def _fits(self, layout: NpyLayout | None, flat: np.ndarray) -> bool:
        """Whether the file holds x as the config describes it, its bytes fitting the caller's buffer."""
        return (layout is not None and layout.shape == self._shape and layout.dtype == self.spec.dtype
                and not layout.fortran_order and layout.nbytes == len(flat))
