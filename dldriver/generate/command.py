"""`dldriver generate`: write a workload's dataset in parallel (dldriver.generate.pool), record it.

The manifest is saved every few seconds, after a failure (when the store still takes it) and at the
end, and only names files whose writes completed: a killed or failed run resumes where it stopped,
skipping the files the manifest lists that are still stored whole (dldriver.generate.pipeline).
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from dldriver.config.plan import dataset_needs
from dldriver.config.uri import locations
from dldriver.dataset import resources
from dldriver.dataset.compare import DATA_PREFIXES, data_listing, entry_keys
from dldriver.dataset.layout import SPLITS, dataset_files
from dldriver.dataset.manifest import (GENERATOR_VERSION, MANIFEST_KEY, dataset_config, dataset_hash,
                                       load_manifest, save_manifest, stored_dataset_hash)
from dldriver.errors import DatasetError, DlDriverError
from dldriver.formats import get_format
from dldriver.formats.base import Format, warm_random
from dldriver.generate.pipeline import stored_whole
from dldriver.generate.pool import file_events
from dldriver.outputs import check_dataset_folder
from dldriver.storage import open_storage
from dldriver.storage.file import TMP_MARK

SAVE_EVERY_S = 5.0
SAVE_COST_FACTOR = 20       # ... and at least 20 times as long as the last save took (a million files make
                            # a manifest of 200 MB): saving never takes more than 1/20 of the parent's time
OBJECTS_PER_FILE = {"tfrecord": 2, "indexed_binary": 3, "mmap_indexed_binary": 3}  # the data file + its indexes


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
    where = locations(workload)
    uri, options = where.dataset, where.options
    check_dataset_folder(uri)
    fmt = get_format(workload.dataset.format)  # an unknown format fails before any work starts
    # What the host must hold, checked before any list the size of the dataset is made.
    needs = dataset_needs(workload)
    resources.check_file_list(needs)
    resources.check_file_memory(needs, streamed=type(fmt).stream_file is not Format.stream_file)
    storage = open_storage(uri, options)
    try:
        previous = load_manifest(storage)
    except DatasetError:   # damaged: --force, which rewrites every file, replaces it (as its message says)
        if not force:
            raise
        previous = None
    _check_room(needs, workload.dataset.format, storage, previous)
    known = {} if force else _known_entries(previous, workload)
    warm_random()  # once here, not in every forked worker before its first file
    specs = [spec for split in SPLITS for spec in dataset_files(workload, split)]
    entries = {key: group for key, group in known.items() if key in {s.key for s in specs}}
    # On an object store one listing tells every size: a resume then sends the workers only the files to
    # write, where checking each file would be a request per file (a million HEADs for a million files).
    listed = data_listing(storage) if known and storage.sizes_with_listing else None
    jobs = [(s, known.get(s.key)) for s in specs]
    if listed is not None:
        jobs = [(s, None) for s, group in jobs if not stored_whole(listed, group)]
    processes = max(1, min(processes or os.cpu_count() or 1, len(jobs)))
    bar = _progress_bar(len(specs), progress)
    if bar is not None:
        bar.update(len(specs) - len(jobs))

    def save_partial():
        _save_quietly(storage, _manifest(workload, uri, entries, complete=False))

    try:
        with (file_events(storage, jobs, processes, uri, options) as events,
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
    _warn_extra_files(storage, present.result(), {key for group in entries.values() for key in entry_keys(group)})
    _make_split_folders(storage)
    _remove_stale_temporaries(storage, began)
    return manifest


def _check_room(needs, fmt: str, storage, previous: dict | None) -> None:
    """Refuse a local folder without the space or inodes for what is left to write. The files the last
    manifest records are rewritten in place (or kept): their space is not needed again."""
    local = storage.local_path(MANIFEST_KEY)
    recorded = previous["files"] if previous else []
    resources.check_local_room(needs, local and os.path.dirname(local),
                               written_bytes=sum(e.get("size", 0) for e in recorded),
                               written_files=sum("index_of" not in e for e in recorded),
                               objects_per_file=OBJECTS_PER_FILE.get(fmt, 1))


@contextmanager
def _listing(storage, listed: dict | None):
    """A future of every key under the data prefixes (`listed`'s when the run began with a listing), else
    listed while the workers write: the round trips (tens of milliseconds on an object store) that the end
    of the run would otherwise wait for. Entered after the workers are forked: a thread in the middle of a
    call must not be forked."""
    lister = ThreadPoolExecutor(max_workers=1)
    try:
        yield lister.submit(lambda: list(listed if listed is not None else data_listing(storage)))
    finally:
        lister.shutdown(wait=False)


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
    for prefix in DATA_PREFIXES:
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

