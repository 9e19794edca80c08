"""indexed_binary and mmap_indexed_binary: the file is num_samples raw samples back to back (random
bytes), with `{file}.off.idx` and `{file}.sz.idx` holding each sample's offset and size as uint64.
The reader loads both indexes and fetches each sample with one ranged get; the mmap variant maps the file
when the storage has a local path. Files of these formats can be far larger than memory (DLIO's dlrm and
megatron configs), so they can also be streamed."""
from __future__ import annotations

import numpy as np

from dldriver.formats.base import FileReader, Format, file_rng, iter_random_bytes


def _indexes(spec) -> dict[str, bytes]:
    size = spec.sample_bytes
    offsets = np.arange(spec.num_samples, dtype="<u8") * np.uint64(size)
    sizes = np.full(spec.num_samples, size, dtype="<u8")
    return {spec.key + ".off.idx": offsets.tobytes(), spec.key + ".sz.idx": sizes.tobytes()}


class IndexedBinaryFormat(Format):
    def __init__(self, name: str, mmap: bool):
        self.name = name
        self.mmap = mmap

    def stream_file(self, spec):
        data = iter_random_bytes(file_rng(spec), spec.num_samples * spec.sample_bytes)
        return {spec.key: data, **{k: iter([v]) for k, v in _indexes(spec).items()}}

    def write_file(self, spec) -> dict[str, bytes]:
        return {key: b"".join(chunks) for key, chunks in self.stream_file(spec).items()}

    def open_file(self, storage, spec) -> FileReader:
        return IndexedBinaryReader(storage, spec, self.name, self.mmap)


class IndexedBinaryReader(FileReader):
    def __init__(self, storage, spec, format_name: str, mmap: bool):
        super().__init__(storage, spec)
        self.format_name = format_name
        self.offsets = self._index(".off.idx")
        self.sizes = self._index(".sz.idx")
        path = storage.local_path(spec.key) if mmap else None
        with self.decoding():
            self.map = np.memmap(path, dtype=np.uint8, mode="r") if path else None
        end = int((self.offsets + self.sizes).max(initial=0))
        size = len(self.map) if self.map is not None else storage.stat(spec.key)
        if end != size:
            what = "truncated: " if end > size else ""
            raise self.fail(f"{what}the index describes {end} bytes but the file holds {size}")

    def _index(self, suffix: str) -> np.ndarray:
        data = self.get(self.spec.key + suffix)
        if len(data) != 8 * self.spec.num_samples:
            raise self.fail(f"{self.spec.key}{suffix} holds {len(data)} bytes, "
                            f"{self.spec.num_samples} samples need {8 * self.spec.num_samples}")
        return np.frombuffer(data, dtype="<u8").astype(np.int64)

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        offset, size = int(self.offsets[i]), int(self.sizes[i])
        if size != self.spec.sample_bytes:
            raise self.fail(f"sample {i} is {size} bytes, the config expects {self.spec.sample_bytes}")
        if self.map is not None:
            data = np.array(self.map[offset:offset + size])
            self.bytes_read += size
        else:
            data = np.frombuffer(self.get_range(self.spec.key, offset, size), dtype=np.uint8)
        if data.size != size:
            raise self.fail(f"sample {i} truncated: {data.size} of {size} bytes")
        return data.view(self.spec.dtype).reshape(self.spec.shape)


INDEXED = IndexedBinaryFormat("indexed_binary", mmap=False)
MMAP_INDEXED = IndexedBinaryFormat("mmap_indexed_binary", mmap=True)
