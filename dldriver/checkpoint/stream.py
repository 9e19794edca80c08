"""Stream checkpoint files to and from a Storage in bounded chunks.

The content is plain bytes under DLIO's file names, not a torch pickle: dl-driver emulates the I/O of a
checkpoint, and a pickle would only add a header of a few hundred bytes per file. Memory stays at one chunk
pool per process (CHUNK_BYTES plus a little) whatever the checkpoint size; the storage's own write buffer
comes on top (see docs/internals.md: open_writer streams with bounded memory).

On object stores (no local path) a request's latency, not bandwidth, bounds one stream, so requests are
kept in flight as the SDKs' own transfer managers keep them, `storage.threads` at once: files smaller
than a chunk are written by that many threads at once (one PUT each), larger ones one after another with
their parts sent in parallel (the storage's writer); reads fetch a file of up to READ_PART in one GET
(its size checked on arrival, no HEAD before it) and larger ones in READ_PART ranges, that many at
once. Local files keep one sequential stream per file, which is what their page cache and disks serve
best.
"""
from __future__ import annotations

import hashlib
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dldriver.errors import CheckpointError, StorageError
from dldriver.storage.base import MissingContainerError, MissingObjectError

CHUNK_BYTES = 16 * 1024 * 1024
# Chunks are windows into one random pool at shifting offsets, so consecutive chunks differ (no trivial
# block-level dedup) without paying for fresh random numbers on every chunk.
_SHIFT = 4096
# Ranges read at once from object stores: the SDKs' default part size (boto3's TransferConfig: 8 MiB).
READ_PART = 8 * 1024 * 1024


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


def file_key(folder: str, name: str) -> str:
    """A checkpoint file's key under the checkpoint URI; folder "" for layouts without a folder (2.0.0's)."""
    return f"{folder}/{name}" if folder else name


def write_files(storage, folder: str, files, source: ChunkSource, fsync: bool) -> int:
    """Write every (name, nbytes) of `files` under `folder`; returns bytes written.

    fsync is passed to the backend: file/direct fsync each file before it counts as written; for object
    stores the commit of the upload is the durability point.
    """
    def write(name, nbytes):
        key = file_key(folder, name)
        try:
            with storage.open_writer(key, fsync=fsync) as out:
                for chunk in source.chunks(name, nbytes):
                    out.write(chunk)
        except StorageError as err:
            raise CheckpointError(f"checkpoint file {storage.uri}/{key} could not be written: {err}") from err
        return nbytes

    files = list(files)
    total = 0
    with storage.batched_sync():  # one folder fsync per checkpoint folder, not one per file
        if _is_object_store(storage, folder, files):
            small = [f for f in files if f[1] < source.chunk_bytes]
            total += sum(_in_order(lambda f: write(*f), small, storage.threads))
            files = [f for f in files if f[1] >= source.chunk_bytes]
        for name, nbytes in files:
            total += write(name, nbytes)
    return total


def read_files(storage, folder: str, files, chunk_bytes: int = CHUNK_BYTES, verify: ChunkSource | None = None) -> int:
    """Read every byte of every file of `files` under `folder` back; returns bytes read.

    Sizes are checked against the layout; with `verify`, the content is compared with what the writer made.
    A missing file means the checkpoint was never (completely) written: CheckpointError naming it.
    """
    files = list(files)
    remote = _is_object_store(storage, folder, files)
    step = min(chunk_bytes, READ_PART) if remote else chunk_bytes
    # (name, offset, length): a range; (name, None, nbytes): a whole small object from an object store,
    # its size checked on arrival (one GET, as a plain download makes, instead of a HEAD and a GET).
    items = []
    for name, nbytes in files:
        if remote and nbytes <= step:
            items.append((name, None, nbytes))
            continue
        _check_size(storage, folder, name, _stat(storage, folder, file_key(folder, name)), nbytes)
        items.extend((name, offset, min(step, nbytes - offset)) for offset in range(0, nbytes, step))

    def fetch(item):
        name, offset, length = item
        key = file_key(folder, name)
        if offset is None:
            try:
                data = storage.get(key)
            except MissingObjectError as err:
                raise _never_written(storage, folder, key, err) from err
            _check_size(storage, folder, name, len(data), length)
        else:
            data = storage.get_range(key, offset, length)  # exact length or an error
        return data if verify is not None else len(data)

    total = 0
    digests = {name: hashlib.blake2b() for name, _ in files} if verify else {}
    # Chunks come back in order; where one stream reads, each is freed before the next is fetched: the
    # allocator then reuses its pages instead of faulting fresh ones in (a third of cached reads).
    for (name, _, _), data in zip(items, _in_order(fetch, items, storage.threads if remote else 1)):
        if verify is not None:
            digests[name].update(data)
            data = len(data)
        total += data
    for name, nbytes in files:
        if verify is not None and digests[name].digest() != _digest(verify.chunks(name, nbytes)):
            raise CheckpointError(f"checkpoint file {storage.uri}/{file_key(folder, name)} differs from what was "
                                  "written")
    return total


def _check_size(storage, folder: str, name: str, size: int, nbytes: int) -> None:
    if size != nbytes:
        raise CheckpointError(f"checkpoint file {storage.uri}/{file_key(folder, name)} holds {size} bytes, "
                              f"the layout says {nbytes}")


def _never_written(storage, folder: str, key: str, err: MissingObjectError) -> CheckpointError:
    where = f"{storage.uri}/{folder}" if folder else storage.uri
    # A missing bucket / container is named as such (its message names it), not as a missing file.
    missing = str(err).rsplit(": ", 1)[-1] if isinstance(err, MissingContainerError) else f"{key} is missing"
    return CheckpointError(f"checkpoint {where} was never written: {missing}")


def _is_object_store(storage, folder: str, files) -> bool:
    return bool(files) and storage.local_path(file_key(folder, files[0][0])) is None


def _in_order(fn, items, threads: int):
    """fn(item) for every item, results in order, up to `threads` calls in flight (1, or a single item: in
    this thread; a pool's threads start in milliseconds when the GIL is busy, a small file's PUT or GET
    takes a few)."""
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="dldriver-ckpt") as pool:
        pending = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _digest(chunks) -> bytes:
    digest = hashlib.blake2b()
    for chunk in chunks:
        digest.update(chunk)
    return digest.digest()


def _stat(storage, folder: str, key: str) -> int:
    try:
        return storage.stat(key)
    except MissingObjectError as err:
        raise _never_written(storage, folder, key, err) from err
