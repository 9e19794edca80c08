"""One worker's files: build, hash and put each, keeping one put in flight.

Each file is written once and atomically (storage.put / open_writer commit on success only), so a
half-written file never exists under its name. The next file is built and hashed while the current one
is put, so at most two files are in memory and a put follows the last one without a gap. A file is kept,
not rewritten, when the manifest lists it and the stored object still has the recorded size: a file
under its final name was committed whole (a killed write leaves no such file), and reading every file
back would make a resume as slow as a fresh run; content damage after the fact is what `dldriver verify`
finds (dldriver.dataset.verify). Contents are seeded, so a rewritten file has the same bytes as before.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

from dldriver.dataset.compare import compare, entry_keys, stat_listing
from dldriver.dataset.manifest import checksum, new_hasher
from dldriver.formats import get_format

STREAM_ABOVE = 256 << 20    # files bigger than this are streamed (when their format can) to bound memory


def _part(key: str, size: int, digest: dict) -> dict:
    return {"key": key, "size": size, **digest}


def _entries(spec, parts: list[dict]) -> list[dict]:
    """The manifest entries of one dataset file: the data file's first, then its index files."""
    parts.sort(key=lambda p: p["key"] != spec.key)
    parts[0].update(split=spec.split, index=spec.index, samples=spec.num_samples,
                    record_bytes=spec.sample_bytes, shape=list(spec.shape), dtype=spec.dtype)
    for p in parts[1:]:
        p["index_of"] = spec.key
    return parts


def _stream(storage, spec, streams) -> list[dict]:
    """Write a file too large to build in memory, chunk by chunk, hashing as it goes."""
    parts = []
    for key, chunks in streams.items():
        digest, size = new_hasher(), 0
        with storage.open_writer(key, fsync=True) as writer:
            for chunk in chunks:
                writer.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        parts.append(_part(key, size, {digest.name: digest.hexdigest()}))
    return _entries(spec, parts)


def _build(spec, storage) -> tuple[dict[str, bytes], list[dict]]:
    """One dataset file (and its index files) in memory, in the form the storage puts at once (here, in
    the building thread, not while the put before it waits), with their manifest entries."""
    objects = {key: storage.put_form(data) for key, data in get_format(spec.format).write_file(spec).items()}
    return objects, _entries(spec, [_part(key, len(data), checksum(data)) for key, data in objects.items()])


def _upload(storage, spec, objects: dict[str, bytes], parts: list[dict], before=None):
    """Put one built file; (data key, manifest entries, bytes written), or None when the put queued
    `before` it failed: the run stops at that error, so nothing more is sent to a store that just failed."""
    if before is not None and before.exception() is not None:
        return None
    for key, data in objects.items():
        # Only the data file is fsynced: index files are tiny and `verify` checks every checksum.
        storage.put(key, data, fsync=key == spec.key)
    return spec.key, parts, sum(p["size"] for p in parts)


def stored_whole(listing: dict, group: list[dict] | None) -> bool:
    """Whether a file and its index files (`group`, their manifest entries) are stored whole by the sizes
    `listing` tells ({key: size}: one listing of an object store, or a stat per file)."""
    return bool(group) and not compare(listing, group)


def _too_big(spec) -> bool:
    return spec.num_samples * spec.sample_bytes > STREAM_ABOVE


def written(storage, jobs):
    """Write files as `jobs` ((spec, the previous run's entries or None) pairs) yields them: (data key,
    manifest entries, bytes written: 0 for a complete file kept) per file, in order, as each write
    completes; a write's DlDriverError ends it.

    Building and hashing are our CPU time, the put is the storage's; overlapping them (AES, both CRCs and
    sockets all release the GIL) keeps one put in flight nearly all the time. A built file is
    queued on the putter at once, so that its put starts the moment the one before it ends (not when this
    thread next looks); the next job is taken, and its file built, only while that put runs, which
    bounds memory to two files and leaves the other jobs to whichever worker is free first.
    """
    puts = deque()
    with ThreadPoolExecutor(max_workers=1) as putter:
        for spec, known in jobs:
            if known and stored_whole(stat_listing(storage, entry_keys(known)), known):
                yield spec.key, known, 0
                continue
            streams = get_format(spec.format).stream_file(spec) if _too_big(spec) else None
            if streams:
                parts = _stream(storage, spec, streams)
                yield spec.key, parts, sum(p["size"] for p in parts)
                continue
            before = puts[-1] if puts else None
            puts.append(putter.submit(_upload, storage, spec, *_build(spec, storage), before))
            while len(puts) > 1:
                yield puts.popleft().result()
        while puts:
            yield puts.popleft().result()
