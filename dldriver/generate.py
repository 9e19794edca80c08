"""`dldriver generate` and `dldriver verify`: write a workload's dataset in parallel, record it, check it.

Files are written by a pool of forked processes, each with its own storage connection, each file once and
atomically (storage.put / open_writer commit on success only), so a half-written file never exists under
its name. The manifest is saved every few seconds and at the end, and only names files whose writes
completed: a killed run resumes where it stopped. On a rerun a file is skipped when the manifest lists it
and the stored object still has the recorded size; any other file is rewritten. Size alone is enough
there because a file under its final name was committed whole (a killed write leaves no such file), and
reading every file back would make a resume as slow as a fresh run: content damage after the fact is what
`dldriver verify` finds, by recomputing every sha256. Contents are seeded, so a rewritten file has the
same bytes as before.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from dldriver.config.uri import dataset_uri, storage_options
from dldriver.errors import DatasetError
from dldriver.formats import get_format
from dldriver.formats.layout import SPLITS, dataset_files
from dldriver.manifest import (GENERATOR_VERSION, MANIFEST_KEY, config_hash, dataset_config, entry_problem,
                               load_manifest, save_manifest)
from dldriver.storage import open_storage

SAVE_EVERY_S = 5.0
STREAM_ABOVE = 256 << 20    # files bigger than this are streamed (when their format can) to bound memory
_DATA_PREFIXES = ("train/", "valid/", "index/")

_worker_storage = None


def _init_worker(uri: str, options: dict) -> None:
    global _worker_storage
    _worker_storage = open_storage(uri, options)


def _part(key: str, size: int, digest: str) -> dict:
    return {"key": key, "size": size, "sha256": digest}


def _sha256(data) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(storage, spec) -> list[dict]:
    """Write one dataset file (and its index files); their manifest entries, the data file's first."""
    fmt = get_format(spec.format)
    streams = fmt.stream_file(spec) if spec.num_samples * spec.sample_bytes > STREAM_ABOVE else None
    parts = []
    if streams:
        for key, chunks in streams.items():
            digest, size = hashlib.sha256(), 0
            with storage.open_writer(key, fsync=True) as writer:
                for chunk in chunks:
                    writer.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            parts.append(_part(key, size, digest.hexdigest()))
    else:
        # The sha256 runs in a thread while put writes and fsyncs or uploads (hashlib and I/O both release
        # the GIL), so the checksum costs little wall time.
        with ThreadPoolExecutor(max_workers=1) as hasher:
            for key, data in fmt.write_file(spec).items():
                digest = hasher.submit(_sha256, data)
                # Only the data file is fsynced: index files are tiny and `verify` checks every sha256.
                storage.put(key, data, fsync=key == spec.key)
                parts.append(_part(key, len(data), digest.result()))
    parts.sort(key=lambda p: p["key"] != spec.key)
    parts[0].update(split=spec.split, index=spec.index, samples=spec.num_samples,
                    record_bytes=spec.sample_bytes, shape=list(spec.shape), dtype=spec.dtype)
    for p in parts[1:]:
        p["index_of"] = spec.key
    return parts


def _task(args) -> tuple[str, list[dict], int]:
    """(data key, manifest entries, bytes written: 0 when the stored file was complete and kept)."""
    spec, known, storage = args
    storage = storage or _worker_storage
    if known and not any(entry_problem(storage, e, checksums=False) for e in known):
        return spec.key, known, 0
    parts = _write(storage, spec)
    return spec.key, parts, sum(p["size"] for p in parts)


def _known_entries(manifest: dict | None, workload) -> dict[str, list[dict]]:
    """The previous run's entries per data file, when they were written for this very config."""
    if (not manifest or manifest.get("config_hash") != config_hash(workload)
            or manifest.get("generator_version") != GENERATOR_VERSION):
        return {}
    groups: dict[str, list[dict]] = {}
    for entry in manifest["files"]:
        groups.setdefault(entry.get("index_of", entry["key"]), []).append(entry)
    return groups


def _manifest(workload, uri: str, entries: dict[str, list[dict]], complete: bool) -> dict:
    ds = workload.dataset
    return {
        "config_hash": config_hash(workload), "config": dataset_config(workload),
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


def generate_dataset(workload, processes=None, progress=True, force=False) -> dict:
    """Write the workload's train and valid files where dataset.data_folder points; return the manifest."""
    uri, options = dataset_uri(workload), storage_options(workload)
    get_format(workload.dataset.format)  # an unknown format fails before any work starts
    storage = open_storage(uri, options)
    specs = [spec for split in SPLITS for spec in dataset_files(workload, split)]
    known = {} if force else _known_entries(load_manifest(storage), workload)
    entries = {key: group for key, group in known.items() if key in {s.key for s in specs}}
    processes = max(1, min(processes or os.cpu_count() or 1, len(specs)))
    bar = _progress_bar(len(specs), progress)
    start = last_save = time.monotonic()
    written = 0
    complete = False
    pool = None
    try:
        if processes == 1:
            results = map(_task, [(s, known.get(s.key), storage) for s in specs])
        else:
            pool = multiprocessing.get_context("fork").Pool(processes, _init_worker, (uri, options))
            results = pool.imap_unordered(_task, [(s, known.get(s.key), None) for s in specs])
        for key, parts, nbytes in results:
            entries[key] = parts
            written += nbytes
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{written / 1e6 / max(time.monotonic() - start, 1e-9):.1f} MB/s")
            if time.monotonic() - last_save > SAVE_EVERY_S:
                save_manifest(storage, _manifest(workload, uri, entries, complete=False))
                last_save = time.monotonic()
        complete = True
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
        manifest = _manifest(workload, uri, entries, complete)
        save_manifest(storage, manifest)
    return manifest


def verify_dataset(workload, checksums=True) -> list[str]:
    """Every problem of the dataset against its manifest: missing, extra, truncated or altered files."""
    uri = dataset_uri(workload)
    storage = open_storage(uri, storage_options(workload))
    manifest = load_manifest(storage)
    if manifest is None:
        raise DatasetError(f"{storage.key_uri(MANIFEST_KEY)}: no manifest; run `dldriver generate` with "
                           "this config first")
    problems = []
    if manifest.get("config_hash") != config_hash(workload):
        problems.append(f"{storage.key_uri(MANIFEST_KEY)}: written for another dataset config (hash "
                        f"{manifest.get('config_hash')}, this config {config_hash(workload)}); "
                        "run `dldriver generate` again")
    listed = {e["key"]: e for e in manifest["files"]}
    for split in SPLITS:
        for spec in dataset_files(workload, split):
            if spec.key not in listed:
                problems.append(f"{storage.key_uri(spec.key)}: not generated (absent from the manifest)")
    for entry in listed.values():
        problem = entry_problem(storage, entry, checksums)
        if problem:
            problems.append(problem)
    for prefix in _DATA_PREFIXES:
        for key in storage.list(prefix):
            if key not in listed:
                problems.append(f"{storage.key_uri(key)}: extra file, not in the manifest")
    return problems
