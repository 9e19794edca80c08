"""Stream checkpoint files to and from a Storage in bounded chunks.

The content is plain bytes under DLIO's file names, not a torch pickle: dl-driver emulates the I/O of a
checkpoint, and a pickle would only add a header of a few hundred bytes per file. Memory stays at one chunk
pool per process (CHUNK_BYTES plus a little) whatever the checkpoint size; the storage's own write buffer
comes on top (see docs/internals.md: open_writer streams with bounded memory).
"""
from __future__ import annotations

import hashlib
import zlib

import numpy as np

from dldriver.errors import CheckpointError, StorageError
from dldriver.storage.base import MissingObjectError

CHUNK_BYTES = 16 * 1024 * 1024
# Chunks are windows into one random pool at shifting offsets, so consecutive chunks differ (no trivial
# block-level dedup) without paying for fresh random numbers on every chunk.
_SHIFT = 4096


class ChunkSource:
    """The bytes of one rank's checkpoint files: random (randomize_tensor) or ones, regenerable for checks."""

    def __init__(self, randomize: bool, seed: int, chunk_bytes: int = CHUNK_BYTES):
        self.chunk_bytes = chunk_bytes
        size = chunk_bytes + _SHIFT
        pool = np.random.default_rng(seed).bytes(size) if randomize else b"\x01" * size
        self._pool = memoryview(pool)

    def chunks(self, name: str, nbytes: int):
        """Yield memoryviews that add up to `nbytes`; the same (name, nbytes) always gives the same bytes."""
        start = zlib.crc32(name.encode())
        done, index = 0, 0
        while done < nbytes:
            n = min(self.chunk_bytes, nbytes - done)
            offset = (start + index * 8) % _SHIFT
            yield self._pool[offset:offset + n]
            done += n
            index += 1


def write_files(storage, folder: str, files, source: ChunkSource, fsync: bool) -> int:
    """Write every (name, nbytes) of `files` under `folder`; returns bytes written.

    fsync is passed to the backend: file/direct fsync each file before it counts as written; for object
    stores the commit of the upload is the durability point.
    """
    total = 0
    with storage.batched_sync():  # one folder fsync per checkpoint folder, not one per file
        for name, nbytes in files:
            key = f"{folder}/{name}"
            try:
                with storage.open_writer(key, fsync=fsync) as out:
                    for chunk in source.chunks(name, nbytes):
                        out.write(chunk)
            except StorageError as err:
                raise CheckpointError(f"checkpoint file {storage.uri}/{key} could not be written: {err}") from err
            total += nbytes
    return total


def read_files(storage, folder: str, files, chunk_bytes: int = CHUNK_BYTES, verify: ChunkSource | None = None) -> int:
    """Read every byte of every file of `files` under `folder` back; returns bytes read.

    Sizes are checked against the layout; with `verify`, the content is compared with what the writer made.
    A missing file means the checkpoint was never (completely) written: CheckpointError naming it.
    """
    total = 0
    for name, nbytes in files:
        key = f"{folder}/{name}"
        size = _stat(storage, folder, key)
        if size != nbytes:
            raise CheckpointError(f"checkpoint file {storage.uri}/{key} holds {size} bytes, the layout says {nbytes}")
        digest = hashlib.blake2b() if verify else None
        offset = 0
        while offset < nbytes:
            data = storage.get_range(key, offset, min(chunk_bytes, nbytes - offset))  # exact length or an error
            if digest is not None:
                digest.update(data)
            offset += len(data)
            # Free the chunk before the next one is allocated: the allocator then reuses its pages instead of
            # mapping (and faulting in) fresh ones for every chunk, which costs about a third of cached reads.
            del data
        if digest is not None and digest.digest() != _digest(verify.chunks(name, nbytes)):
            raise CheckpointError(f"checkpoint file {storage.uri}/{key} differs from what was written")
        total += offset
    return total


def _digest(chunks) -> bytes:
    digest = hashlib.blake2b()
    for chunk in chunks:
        digest.update(chunk)
    return digest.digest()


def _stat(storage, folder: str, key: str) -> int:
    try:
        return storage.stat(key)
    except MissingObjectError as err:
        raise CheckpointError(f"checkpoint {storage.uri}/{folder} was never written: {key} is missing") from err
