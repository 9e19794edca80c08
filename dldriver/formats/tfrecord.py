"""tfrecord: one tf.train.Example per sample with features `image` (the sample's raw bytes) and `size`
(int64, its byte size), framed as TFRecord: uint64 length, masked CRC-32C of the length, the data, masked
CRC-32C of the data. Plus DALI's index `index/{split}/{basename}.idx` ("offset length" per record).

Written without TensorFlow: every Example of a file has the same length, so the protobuf header and
trailer are built once and the records of a file are laid out as rows of one array. The CRCs come from
the `crc32c` package (SSE4.2 / ARMv8 CRC instructions, over 10 GB/s; a numpy version managed ~300 MB/s).
"""
from __future__ import annotations

import threading

import crc32c
import numpy as np

from dldriver.formats.base import FileReader, Format, file_rng, random_array
from dldriver.storage.base import MissingObjectError

_LEN = 2  # protobuf wire type of length-delimited fields


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def _header(number: int, length: int) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(length)


def example_parts(sample_bytes: int) -> tuple[bytes, bytes]:
    """(prefix, suffix) so that prefix + image bytes + suffix is the serialized Example."""
    size_feature = _field(3, _field(1, _varint(sample_bytes)))          # Feature{int64_list{value}}
    size_entry = _field(1, b"size") + _field(2, size_feature)           # map entry {key, value}
    bytes_list_len = len(_header(1, sample_bytes)) + sample_bytes       # BytesList{value}
    feature_len = len(_header(1, bytes_list_len)) + bytes_list_len      # Feature{bytes_list}
    image_head = _field(1, b"image") + _header(2, feature_len) + _header(1, bytes_list_len) \
        + _header(1, sample_bytes)
    image_entry_len = len(image_head) + sample_bytes
    features_len = len(_header(1, image_entry_len)) + image_entry_len + len(_field(1, size_entry))
    prefix = _header(1, features_len) + _header(1, image_entry_len) + image_head
    return prefix, _field(1, size_entry)


def masked_crc(data) -> int:
    """TFRecord's masked CRC-32C: rotate right by 15 bits and add a constant (mod 2**32)."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def index_key(spec) -> str:
    return f"index/{spec.split}/{spec.basename}.idx"


class TfrecordFormat(Format):
    name = "tfrecord"

    def write_file(self, spec) -> dict[str, bytes]:
        n, nbytes = spec.num_samples, spec.sample_bytes
        prefix, suffix = example_parts(nbytes)
        data_len = len(prefix) + nbytes + len(suffix)
        images = random_array(file_rng(spec), (n, *spec.shape), spec.dtype).reshape(n, -1).view(np.uint8)
        rec = np.empty((n, 16 + data_len), dtype=np.uint8)
        rec[:, 0:8] = np.array([data_len], dtype="<u8").view(np.uint8)
        rec[:, 8:12] = np.array([masked_crc(rec[0, 0:8])], dtype="<u4").view(np.uint8)
        body = rec[:, 12:12 + data_len]
        body[:, :len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        body[:, len(prefix):len(prefix) + nbytes] = images
        body[:, len(prefix) + nbytes:] = np.frombuffer(suffix, dtype=np.uint8)
        crcs = np.array([masked_crc(row) for row in body], dtype="<u4")
        rec[:, 12 + data_len:] = crcs.view(np.uint8).reshape(n, 4)
        step = rec.shape[1]
        index = "".join(f"{i * step} {step}\n" for i in range(n)).encode()
        return {spec.key: rec.tobytes(), index_key(spec): index}

    def open_file(self, storage, spec) -> FileReader:
        return TfrecordReader(storage, spec)


def _read_varint(buf, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf):
    """(field number, payload) of each length-delimited field of a message; other wire types skipped."""
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        wire = tag & 7
        if wire == _LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("field runs past the end of its message")
            yield tag >> 3, buf[pos:pos + length]
            pos += length
        elif wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unknown protobuf wire type {wire}")


# Where the image lies in an Example, by the Example's length: (start, end, the bytes before, the bytes
# after); a few entries (a dataset's records share one or a few lengths).
_IMAGE_AT: dict[int, tuple[int, int, bytes, bytes]] = {}
_IMAGE_AT_LIMIT = 64


def image_bytes(example) -> memoryview:
    """The `image` feature's bytes of a serialized tf.train.Example.

    The records of a dataset are laid out alike. Once an Example of some length has been parsed, another
    of that length whose bytes outside the image are the same holds its image at the same place (the
    parse reads only those bytes, skipping the image by its length), which comparing those ~70 bytes
    tells without the parse in Python (~33 us a record)."""
    example = memoryview(example).cast("B")
    known = _IMAGE_AT.get(len(example))
    if known is not None:
        start, end, head, tail = known
        if example[:start] == head and example[end:] == tail:
            return example[start:end]
    value = _parse_image(example)
    if len(value) and len(_IMAGE_AT) < _IMAGE_AT_LIMIT:
        start = np.frombuffer(value, np.uint8).ctypes.data - np.frombuffer(example, np.uint8).ctypes.data
        end = start + len(value)
        _IMAGE_AT[len(example)] = (start, end, bytes(example[:start]), bytes(example[end:]))
    return value


def _parse_image(example: memoryview) -> memoryview:
    for number, features in _fields(example):
        if number != 1:
            continue
        for entry_number, entry in _fields(features):
            fields = dict(_fields(entry)) if entry_number == 1 else {}
            if bytes(fields.get(1, b"")) == b"image":
                bytes_list = dict(_fields(fields.get(2, b""))).get(1)
                value = dict(_fields(bytes_list)).get(1) if bytes_list is not None else None
                if value is not None:
                    return value
    raise ValueError("the Example has no bytes feature 'image'")


class _IndexCache:
    """Parsed indexes by (storage URI, file key), shared by a process's threads.

    Why: a reader lives while one thread reads consecutive samples of a file, so a file read in batches
    by several threads is opened once per batch; on an object store each open cost a HEAD, a GET of the
    index and another HEAD before the first record (7 requests for a batch of 4 records, issue 15).
    A dataset's files do not change during a run; a run's start has checked their sizes.
    """

    def __init__(self, limit: int = 100_000):
        self._limit = limit
        self._lock = threading.Lock()
        self._offsets: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def get(self, uri: str, key: str):
        with self._lock:
            return self._offsets.get((uri, key))

    def put(self, uri: str, key: str, offsets) -> None:
        with self._lock:
            if len(self._offsets) >= self._limit:
                self._offsets.clear()
            self._offsets[(uri, key)] = offsets


_INDEXES = _IndexCache()


class TfrecordReader(FileReader):
    format_name = "tfrecord"

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        self.records = None
        self.offsets = _INDEXES.get(storage.uri, spec.key)
        if self.offsets is None:
            self.offsets = self._load_index()
        if len(self.offsets) != spec.num_samples:
            raise self.fail(f"holds {len(self.offsets)} records, the config expects {spec.num_samples}")

    def _load_index(self) -> list[tuple[int, int]]:
        """The records' (offset, length), from the index object when there is one (kept for the other
        readers of this file in the process, checked against the file's size once), else by scanning
        the file, which is then kept whole by this reader."""
        spec = self.spec
        try:
            index = self.get(index_key(spec))
        except MissingObjectError:
            self.records = memoryview(self.get(spec.key))
            return self._scan(self.records)
        with self.decoding():
            offsets = [(int(o), int(n)) for o, n in (line.split() for line in index.decode().splitlines() if line)]
        self.offsets = offsets
        self._check_size(self.storage.stat(spec.key))
        _INDEXES.put(self.storage.uri, spec.key, offsets)
        return offsets

    def _check_size(self, size: int) -> None:
        end = max((o + n for o, n in self.offsets), default=0)
        if end > size:
            raise self.fail(f"truncated: the index ends at byte {end} but the file holds {size}")

    def _scan(self, data) -> list[tuple[int, int]]:
        offsets, pos = [], 0
        while pos < len(data):
            if pos + 12 > len(data):
                raise self.fail(f"truncated record header at byte {pos}")
            length = int(np.frombuffer(data[pos:pos + 8], dtype="<u8")[0])
            if pos + length + 16 > len(data):
                raise self.fail(f"truncated record at byte {pos}: needs {length + 16} bytes")
            offsets.append((pos, length + 16))
            pos += length + 16
        return offsets

    def _record(self, i: int) -> memoryview:
        offset, length = self.offsets[i]
        if self.records is not None:
            rec = self.records[offset:offset + length]
        else:
            rec = memoryview(self.get_range(self.spec.key, offset, length))
        if len(rec) != length or length < 16:
            raise self.fail(f"record {i} truncated: {len(rec)} of {length} bytes")
        if int(np.frombuffer(rec[:8], dtype="<u8")[0]) != length - 16:
            raise self.fail(f"record {i} length field does not match the index")
        for part, stored, what in ((rec[:8], rec[8:12], "length"), (rec[12:-4], rec[-4:], "data")):
            if masked_crc(part) != int.from_bytes(stored, "little"):
                raise self.fail(f"record {i} {what} CRC mismatch")
        return rec[12:-4]

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        example = self._record(i)
        with self.decoding():
            image = np.frombuffer(image_bytes(example), dtype=self.spec.dtype)
        if image.size != np.prod(self.spec.shape):
            raise self.fail(f"record {i} image holds {image.nbytes} bytes, the config expects "
                            f"{self.spec.sample_bytes}")
        return image.reshape(self.spec.shape)


FORMAT = TfrecordFormat()
