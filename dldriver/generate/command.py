"""`dldriver generate` and `dldriver verify`: write a workload's dataset in parallel, record it, check it.

Files are written by worker processes (forked, each with its own storage connection) that take files one
at a time from a shared queue, so the work spreads evenly whatever the file sizes, and report each file
as its write completes. Each file is written once and atomically (storage.put / open_writer commit on
success only), so a half-written file never exists under its name. Inside a worker the next file is
built and hashed while the current one is put, so at most two files per worker are in memory and a
worker's put follows its last one without a gap. A worker that dies (killed, out of memory) stops the
run with an error that says so, not a hang. The manifest is saved every few seconds, after a failure
(when the store still takes it) and at the end, and only names files whose writes completed: a killed
or failed run resumes where it stopped. On a rerun a file is skipped when the manifest lists it and the
stored object still has the recorded size; any other file is rewritten. Size alone is enough there
because a file under its final name was committed whole (a killed write leaves no such file), and
reading every file back would make a resume as slow as a fresh run: content damage after the fact is
what `dldriver verify` finds, by recomputing every checksum (manifest.CHECKSUM). Contents are seeded, so
a rewritten file has the same bytes as before.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from dldriver.config.uri import dataset_uri, storage_options
from dldriver.dataset import resources
from dldriver.dataset.compare import compare, stat_listing
from dldriver.dataset.layout import SPLITS, dataset_files
from dldriver.dataset.manifest import (GENERATOR_VERSION, MANIFEST_KEY, checksum, checksum_problem,
                                       dataset_config, dataset_hash, load_manifest, new_hasher, save_manifest,
                                       stored_dataset_hash)
from dldriver.errors import DatasetError, DlDriverError
from dldriver.formats import get_format
from dldriver.formats.base import Format, warm_random
from dldriver.heap import keep_freed_buffers
from dldriver.lifetime import die_with_parent, parent_gone
from dldriver.outputs import check_dataset_folder
from dldriver.storage import open_storage
from dldriver.storage.base import MissingContainerError
from dldriver.storage.file import TMP_MARK

SAVE_EVERY_S = 5.0
SAVE_COST_FACTOR = 20       # ... and at least 20 times as long as the last save took (a million files make
                            # a manifest of 200 MB): saving never takes more than 1/20 of the parent's time
STREAM_ABOVE = 256 << 20    # files bigger than this are streamed (when their format can) to bound memory
WATCH_S = 0.5               # how often the parent checks that its workers still live, while none reports
_DATA_PREFIXES = ("train/", "valid/", "index/")
OBJECTS_PER_FILE = {"tfrecord": 2, "indexed_binary": 3, "mmap_indexed_binary": 3}  # the data file + its indexes


def _connect_quietly(storage) -> None:
    try:
        storage.connect()
    except Exception:  # noqa: BLE001 -- the first put meets the same failure and reports it, naming the file
        pass


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


def _kept(storage, known: list[dict] | None) -> bool:
    """Whether a file and its index files are stored whole, by a stat of each (see _kept_by_listing)."""
    return bool(known) and not compare(stat_listing(storage, _group_keys(known)), known)


def _written(storage, jobs):
    """Write files as `jobs` yields them: (data key, manifest entries, bytes written: 0 for a complete
    file kept) per file, in order, as each write completes; a write's DlDriverError ends it.

    Building and hashing are our CPU time, the put is the storage's; overlapping them (AES, both CRCs and
    sockets all release the GIL) keeps one put in flight nearly all the time. A built file is
    queued on the putter at once, so that its put starts the moment the one before it ends (not when this
    thread next looks); the next job is taken, and its file built, only while that put runs, which
    bounds memory to two files and leaves the other jobs to whichever worker is free first.
    """
    puts = deque()
    with ThreadPoolExecutor(max_workers=1) as putter:
        for spec, known in jobs:
            if _kept(storage, known):
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


def _too_big(spec) -> bool:
    return spec.num_samples * spec.sample_bytes > STREAM_ABOVE


def _in_process(storage, jobs):
    """Events (see _worker) of writing every job in this process."""
    try:
        for done in _written(storage, jobs):
            yield "file", done
    except DlDriverError as err:
        yield "error", err


def _taken(jobs: list, taken, parent: int):
    """The jobs this worker takes, one at a time, each the next that no worker has taken yet (`taken`:
    a shared count of jobs taken; `jobs` came with the fork, so nothing is sent but that count). None
    once the parent has died: nobody would record the file."""
    while not parent_gone(parent):
        with taken.get_lock():
            index = taken.value
            taken.value = index + 1
        if index >= len(jobs):
            return
        yield jobs[index]


def _worker(uri: str, options: dict, jobs: list, taken, events, parent: int) -> None:
    """A worker process: write the jobs it takes until none is left, sending ("file", done) per file
    written, ("error", DlDriverError) or ("crash", traceback text) when it stops on one, and
    ("exit", None) last. It dies with its parent (`parent`, the pid of the process recording the files)."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and when it does, we end at once
    keep_freed_buffers()
    try:
        storage = open_storage(uri, options)
        # Making the connection (an SDK client: tens of milliseconds) is a worker's fixed cost: pay it
        # while the worker builds its first file instead of before its first put.
        threading.Thread(target=_connect_quietly, args=(storage,), daemon=True).start()
        for event in _in_process(storage, _taken(jobs, taken, parent)):
            events.put(event)
    except BaseException:  # noqa: BLE001 -- a bug: the parent reports it, with where it happened
        events.put(("crash", traceback.format_exc()))
    events.put(("exit", None))


def _check_alive(workers) -> None:
    for process in workers:
        if process.exitcode is not None and process.exitcode != 0:
            how = (f"killed by signal {-process.exitcode} ({signal.Signals(-process.exitcode).name}"
                   f"{', out of memory?' if process.exitcode == -signal.SIGKILL else ''})"
                   if process.exitcode < 0 else f"exited with status {process.exitcode}")
            raise DatasetError(f"generate: worker process {process.pid} {how}; the files written so far "
                               "are recorded, rerun to write the rest")


def _from_workers(workers, events):
    """Every worker's events as they come, until all have exited; raises if one dies without a word."""
    running = len(workers)
    while running:
        try:
            kind, payload = events.get(timeout=WATCH_S)
        except queue.Empty:
            _check_alive(workers)
            continue
        if kind == "exit":
            running -= 1
        elif kind == "crash":
            raise RuntimeError(f"a generate worker failed:\n{payload}")
        else:
            yield kind, payload


@contextmanager
def _events(storage, jobs: list, processes: int, uri: str, options: dict):
    """("file", done) per file written and ("error", err) for a write that failed, as they happen; on
    leaving, the workers are killed at once (after an error, the others would only go on writing files
    nobody records)."""
    if processes == 1:
        yield _in_process(storage, jobs)
        return
    context = multiprocessing.get_context("fork")
    taken, events = context.Value("q", 0), context.Queue()
    args = (uri, options, jobs, taken, events, os.getpid())
    workers = [context.Process(target=_worker, args=args, daemon=True) for _ in range(processes)]
    try:
        for process in workers:
            process.start()
        yield _from_workers(workers, events)
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            if process.pid is not None:
                process.join()
        events.close()


def _known_entries(manifest: dict | None, workload) -> dict[str, list[dict]]:
    """The previous run's entries per data file, when they were written for this very config."""
    if (not manifest or stored_dataset_hash(manifest) != dataset_hash(workload)
            or manifest.get("generator_version") != GENERATOR_VERSION):
        return {}
    groups: dict[str, list[dict]] = {}
    for entry in manifest["files"]:
        groups.setdefault(entry.get("index_of", entry["key"]), []).append(entry)
    return groups


def _manifest(workload, uri: str, entries: dict[str, list[dict]], complete: bool) -> dict:
    ds = workload.dataset
    return {
        "dataset_hash": dataset_hash(workload), "config": dataset_config(workload),
        "format": ds.format, "generator_version": GENERATOR_VERSION, "uri": uri,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "complete": complete,
        "num_files_train": ds.num_files_train, "num_files_eval": ds.num_files_eval,
        "num_samples_per_file": ds.num_samples_per_file, "record_length_bytes": ds.record_length_bytes,
        "files": sorted((e for group in entries.values() for e in group), key=lambda e: e["key"]),
    }


def _progress_bar(total: int, enabled: bool):
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="file", desc="generate", file=sys.stderr)


def _save_quietly(storage, manifest: dict) -> None:
    """Save a manifest that is not the run's last word: if the store refuses it, the error to report is
    the one a data file gets (or the final save's), not this one."""
    try:
        save_manifest(storage, manifest)
    except DlDriverError:
        pass


def _record(events, entries: dict, bar, save_partial) -> None:
    """Take in each file as its write completes, saving the manifest now and then; raise the first error
    a worker met."""
    start = last_save = time.monotonic()
    save_took = 0.0
    written = 0
    for kind, payload in events:
        if kind == "error":
            raise payload
        key, parts, nbytes = payload
        entries[key] = parts
        written += nbytes
        if bar is not None:
            bar.update(1)
            rate = written / 1e6 / max(time.monotonic() - start, 1e-9)
            bar.set_postfix_str(f"{rate:.1f} MB/s", refresh=False)
        if time.monotonic() - last_save > max(SAVE_EVERY_S, SAVE_COST_FACTOR * save_took):
            began = time.monotonic()
            save_partial()
            last_save = time.monotonic()
            save_took = last_save - began


def generate_dataset(workload, processes=None, progress=True, force=False) -> dict:
    """Write the workload's train and valid files where dataset.data_folder points; return the manifest."""
    began = time.time()
    uri, options = dataset_uri(workload), storage_options(workload)
    check_dataset_folder(uri)
    fmt = get_format(workload.dataset.format)  # an unknown format fails before any work starts
    # What the host must hold, checked before any list the size of the dataset is made.
    resources.check_file_list(workload)
    resources.check_file_memory(workload, streamed=type(fmt).stream_file is not Format.stream_file)
    storage = open_storage(uri, options)
    previous = load_manifest(storage)
    _check_room(workload, storage, previous)
    known = {} if force else _known_entries(previous, workload)
    warm_random()  # once here, not in every forked worker before its first file
    specs = [spec for split in SPLITS for spec in dataset_files(workload, split)]
    entries = {key: group for key, group in known.items() if key in {s.key for s in specs}}
    # On an object store one listing tells every size: a resume then sends the workers only the files to
    # write, where checking each file would be a request per file (a million HEADs for a million files).
    listed = _present_sizes(storage) if known and storage.sizes_with_listing else None
    jobs = [(s, known.get(s.key)) for s in specs]
    if listed is not None:
        jobs = [(s, None) for s, group in jobs if not _kept_by_listing(listed, group)]
    processes = max(1, min(processes or os.cpu_count() or 1, len(jobs)))
    bar = _progress_bar(len(specs), progress)
    if bar is not None:
        bar.update(len(specs) - len(jobs))

    def save_partial():
        _save_quietly(storage, _manifest(workload, uri, entries, complete=False))

    try:
        with (_events(storage, jobs, processes, uri, options) as events,
              _listing(storage, listed) as present):
            _record(events, entries, bar, save_partial)
            # Saved while the workers' processes are still exiting, which it need not wait for.
            manifest = _manifest(workload, uri, entries, complete=True)
            save_manifest(storage, manifest)
    except BaseException:
        # What finished is recorded, so that a rerun resumes; the error that stopped us is what we report.
        save_partial()
        raise
    finally:
        if bar is not None:
            bar.close()
    _warn_extra_files(storage, present.result(), {key for group in entries.values() for key in _group_keys(group)})
    _make_split_folders(storage)
    _remove_stale_temporaries(storage, began)
    return manifest


def _check_room(workload, storage, previous: dict | None) -> None:
    """Refuse a local folder without the space or inodes for what is left to write. The files the last
    manifest records are rewritten in place (or kept): their space is not needed again."""
    local = storage.local_path(MANIFEST_KEY)
    recorded = previous["files"] if previous else []
    resources.check_local_room(workload, local and os.path.dirname(local),
                               written_bytes=sum(e.get("size", 0) for e in recorded),
                               written_files=sum("index_of" not in e for e in recorded),
                               objects_per_file=OBJECTS_PER_FILE.get(workload.dataset.format, 1))


def _group_keys(group: list[dict]) -> list[str]:
    return [entry["key"] for entry in group]


@contextmanager
def _listing(storage, listed: dict | None):
    """A future of every key under the data prefixes (`listed`'s when the run began with a listing), else
    listed while the workers write: the round trips (tens of milliseconds on an object store) that the end
    of the run would otherwise wait for. Entered after the workers are forked: a thread in the middle of a
    call must not be forked."""
    lister = ThreadPoolExecutor(max_workers=1)
    try:
        yield lister.submit(list, listed) if listed is not None else lister.submit(_present_keys, storage)
    finally:
        lister.shutdown(wait=False)


def _present_keys(storage) -> list[str]:
    return list(_present_sizes(storage))


def _present_sizes(storage) -> dict:
    """{key: size} under the data prefixes, as one listing each tells them (Storage.listing); empty while
    the bucket or container does not exist yet (the first put creates it, possibly after this ran)."""
    found = {}
    try:
        for prefix in _DATA_PREFIXES:
            found.update(storage.listing(prefix))
    except MissingContainerError:
        return {}
    return found


def _kept_by_listing(listed: dict, group: list[dict] | None) -> bool:
    """Whether a file and its index files are stored whole, by the sizes of one listing (see _kept)."""
    return bool(group) and not compare(listed, group)


def _warn_extra_files(storage, present: list[str], written: set[str]) -> None:
    """Files of another dataset in the same folder would be read by DLIO (it lists the folder): say so."""
    extra = [key for key in present if key not in written]
    if extra:
        print(f"warning: {storage.uri}: {len(extra)} file(s) not part of this dataset (e.g. "
              f"{storage.key_uri(extra[0])}), left from another config? DLIO would read them; delete them "
              "or use another dataset.data_folder", file=sys.stderr)


def _remove_stale_temporaries(storage, began: float) -> None:
    """Temporary files (storage.file.TMP_MARK) that an earlier, killed generation left in the data folders:
    older than this run, so no writer of ours holds them. Object stores leave none that can be seen."""
    for prefix in _DATA_PREFIXES:
        root = storage.local_path(prefix.rstrip("/"))
        if root is None or not os.path.isdir(root):
            continue
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if TMP_MARK in name and os.stat(path).st_mtime < began:
                    os.remove(path)


def _make_split_folders(storage) -> None:
    """DLIO 2.0.0 lists `valid/` even with no eval files and fails if the folder is missing."""
    for split in ("train", "valid"):
        path = storage.local_path(split)
        if path is not None:
            os.makedirs(path, exist_ok=True)


def dataset_manifest(workload) -> dict:
    """The manifest of the workload's dataset (checked on load); DatasetError when it has none."""
    storage = open_storage(dataset_uri(workload), storage_options(workload))
    manifest = load_manifest(storage)
    if manifest is None:
        storage.listing(MANIFEST_KEY)  # a bucket or container that does not exist says so here
        raise DatasetError(f"{storage.key_uri(MANIFEST_KEY)}: no manifest; run `dldriver generate` with "
                           "this config first")
    return manifest


def verify_dataset(workload, checksums=True) -> list[str]:
    """Every problem of the dataset against its manifest: missing, extra, truncated or altered files."""
    storage = open_storage(dataset_uri(workload), storage_options(workload))
    manifest = dataset_manifest(workload)
    problems = []
    if stored_dataset_hash(manifest) != dataset_hash(workload):
        problems.append(f"{storage.key_uri(MANIFEST_KEY)}: written for another dataset config (hash "
                        f"{stored_dataset_hash(manifest)}, this config {dataset_hash(workload)}); "
                        "run `dldriver generate` again")
    entries = manifest["files"]
    # One listing per data prefix finds the extra files, and on an object store (where it carries sizes)
    # it is the whole of a check without checksums: no request per file. On a file system the sizes come
    # from a stat per entry.
    present = _present_sizes(storage)
    sizes = present if storage.sizes_with_listing else stat_listing(storage, _group_keys(entries))
    listing = {key: sizes.get(key) for key in present} | sizes
    expected = [spec.key for split in SPLITS for spec in dataset_files(workload, split)]
    mismatches = compare(listing, entries, expected=expected, extras=True)
    problems += [m.message(storage.key_uri) for m in mismatches]
    if checksums:
        damaged = {m.key for m in mismatches}
        problems += [p for e in entries if e["key"] not in damaged
                     for p in [checksum_problem(storage, e)] if p]
    return problems
