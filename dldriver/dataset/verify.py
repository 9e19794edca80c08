"""`dldriver verify`: the dataset against its manifest, apart from what writes it (as fio's verify).

Every file is compared by size (dldriver.dataset.compare) and then by checksum (manifest.CHECKSUM), which
finds the content damage that a resume, trusting sizes, does not look for.
"""
from __future__ import annotations

from dldriver.config.uri import locations
from dldriver.dataset.compare import compare, data_listing, entry_keys, stat_listing
from dldriver.dataset.layout import SPLITS, dataset_files
from dldriver.dataset.manifest import (MANIFEST_KEY, checksum_problem, dataset_hash, load_manifest,
                                       stored_dataset_hash)
from dldriver.errors import DatasetError
from dldriver.storage import open_storage


def dataset_manifest(workload) -> dict:
    """The manifest of the workload's dataset (checked on load); DatasetError when it has none."""
    return _manifest(_storage(workload))


def _storage(workload):
    where = locations(workload)
    return open_storage(where.dataset, where.options)


def _manifest(storage) -> dict:
    manifest = load_manifest(storage)
    if manifest is None:
        storage.listing(MANIFEST_KEY)  # a bucket or container that does not exist says so here
        raise DatasetError(f"{storage.key_uri(MANIFEST_KEY)}: no manifest; run `dldriver generate` with "
                           "this config first")
    return manifest


def verify_dataset(workload, checksums=True) -> list[str]:
    """Every problem of the dataset against its manifest: missing, extra, truncated or altered files."""
    storage = _storage(workload)
    manifest = _manifest(storage)
    problems = []
    if stored_dataset_hash(manifest) != dataset_hash(workload):
        problems.append(f"{storage.key_uri(MANIFEST_KEY)}: written for another dataset config (hash "
                        f"{stored_dataset_hash(manifest)}, this config {dataset_hash(workload)}); "
                        "run `dldriver generate` again")
    entries = manifest["files"]
    # One listing per data prefix finds the extra files, and on an object store (where it carries sizes)
    # it is the whole of a check without checksums: no request per file. On a file system the sizes come
    # from a stat per entry.
    present = data_listing(storage)
    sizes = present if storage.sizes_with_listing else stat_listing(storage, entry_keys(entries))
    listing = {key: sizes.get(key) for key in present} | sizes
    expected = [spec.key for split in SPLITS for spec in dataset_files(workload, split)]
    mismatches = compare(listing, entries, expected=expected, extras=True)
    problems += [m.message(storage.key_uri) for m in mismatches]
    if checksums:
        damaged = {m.key for m in mismatches}
        problems += [p for e in entries if e["key"] not in damaged
                     for p in [checksum_problem(storage, e)] if p]
    return problems
