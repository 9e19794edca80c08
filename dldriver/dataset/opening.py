"""The dataset a run reads: its storage, its files per split, and the check that it matches the config.

The check is cheap on purpose: a dataset of hundreds of thousands of objects must not cost a stat per
file before every run. With a manifest it compares the config's dataset signature with the manifest's,
the file counts with the manifest's, and the files the run reads with one listing per top-level prefix.
On object stores that listing brings the sizes too, so an object cut short or replaced is named before
the run starts; on a file system, where sizes would cost a stat per file, such a file fails the run
naming it when it is read. Content damage is what `dldriver verify` finds.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Callable, Optional

from dldriver.dataset.compare import compare
from dldriver.dataset.layout import dataset_files, discover_files
from dldriver.dataset.manifest import load_manifest, signature_differences
from dldriver.errors import DatasetError
from dldriver.storage import open_storage

GENERATE_HINT = "run `dldriver generate` with the same config and overrides first"
_SPLIT_COUNT = {"train": "num_files_train", "valid": "num_files_eval"}


@dataclass
class Dataset:
    uri: str
    open_storage: Callable[[], object]   # a fresh client; each rank and loader worker opens its own
    train_files: list
    eval_files: list
    manifest: Optional[dict]             # None for a dataset written without one (by DLIO, say)
    warnings: list = field(default_factory=list)   # for the run's log: subset use, unchecked files

    def local_paths(self, split: str = "train") -> list[str]:
        """POSIX paths of the split's files (empty for object stores)."""
        storage = self.open_storage()
        files = self.train_files if split == "train" else self.eval_files
        paths = [storage.local_path(f.key) for f in files]
        return [p for p in paths if p is not None]


def _open(uri: str, options: dict):
    return open_storage(uri, options)


def open_dataset(workload, uri: str, options: dict, need_eval: bool) -> Dataset:
    """The workload's dataset at `uri` (config.uri.locations, resolved by the caller), checked against its
    manifest (or discovered without one)."""
    factory = functools.partial(_open, uri, options)
    storage = factory()
    splits = ["train", "valid"] if need_eval else ["train"]
    manifest = load_manifest(storage)
    if manifest is None:
        files, warnings = _discovered(storage, workload, splits)
    else:
        files, warnings = _checked(storage, workload, splits, manifest)
    return Dataset(uri, factory, files["train"], files.get("valid", []), manifest, warnings)


def _discovered(storage, workload, splits) -> tuple[dict, list[str]]:
    """The files of a dataset without a manifest (DLIO's), found by listing as DLIO finds them."""
    files = {}
    for split in splits:
        try:
            files[split] = discover_files(storage, workload, split)
        except DatasetError as err:
            if "dldriver generate" in str(err):
                raise
            raise DatasetError(f"{err}; {GENERATE_HINT}") from err
    return files, [f"{storage.uri}: no manifest.json (not written by `dldriver generate`): the files are "
                   "read as DLIO would find them; their sizes and checksums are not checked"]


def _checked(storage, workload, splits, manifest: dict) -> tuple[dict, list[str]]:
    """The files the run reads, after checking signature, counts and presence against the manifest."""
    differences = signature_differences(manifest, workload)
    if differences:
        raise DatasetError(f"{storage.uri}: the dataset does not match the config ({'; '.join(differences)}); "
                           f"{GENERATE_HINT}")
    generated = _generated_workload(workload, manifest)
    files, warnings = {}, []
    for split in splits:
        key = _SPLIT_COUNT[split]
        have, need = getattr(generated.dataset, key), getattr(workload.dataset, key)
        if have < need:
            raise DatasetError(
                f"{storage.uri}/{split}: the dataset does not match the config (it holds {have} files, "
                f"dataset.{key} asks for {need}); {GENERATE_HINT}")
        if have > need:
            warnings.append(f"{storage.uri}/{split}: reading the first {need} of {have} generated files "
                            f"(dataset.{key} = {need})")
        files[split] = dataset_files(generated, split)[:need]
    _check_present(storage, manifest, [spec.key for split_files in files.values() for spec in split_files])
    return files, warnings


def _generated_workload(workload, manifest: dict):
    """The workload with the manifest's file counts: file names (the N of `_of_N`) and the per-file size
    draws of eval files depend on them, so a subset's files are named and shaped as they were written."""
    counts = {key: int(manifest[key]) for key in _SPLIT_COUNT.values()}
    return dataclasses.replace(workload, dataset=dataclasses.replace(workload.dataset, **counts))


def needed_entries(manifest: dict, data_keys: list[str]) -> list[dict]:
    """The manifest entries of these data files and of their index files."""
    wanted = set(data_keys)
    return [e for e in manifest["files"] if e.get("index_of", e["key"]) in wanted]


def _check_present(storage, manifest: dict, data_keys: list[str]) -> None:
    """Every file the run reads (and its index files) is in the manifest and in one listing per prefix,
    with the manifest's size where the listing tells sizes."""
    entries = needed_entries(manifest, data_keys)
    listed: dict[str, int | None] = {}
    # One listing per top-level folder (train/, valid/, index/): a paginated scan, not a stat per file.
    for prefix in sorted({e["key"].split("/", 1)[0] + "/" for e in entries}):
        listed.update(storage.listing(prefix))
    problems = [m.message(storage.key_uri) for m in compare(listed, entries, expected=data_keys)]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise DatasetError(f"{storage.uri}: the dataset does not match its manifest ({shown}); {GENERATE_HINT}")
