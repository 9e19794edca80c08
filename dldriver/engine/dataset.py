"""The dataset a run reads: its storage, its files per split, and the check that it matches the config."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional

from dldriver.errors import DatasetError

GENERATE_HINT = "run `dldriver generate` with the same config and overrides first"


@dataclass
class Dataset:
    uri: str
    open_storage: Callable[[], object]   # a fresh client; each rank and loader worker opens its own
    train_files: list
    eval_files: list
    manifest: Optional[dict]             # None for a dataset written without one (by DLIO, say)

    def local_paths(self, split: str = "train") -> list[str]:
        """POSIX paths of the split's files (empty for object stores)."""
        storage = self.open_storage()
        files = self.train_files if split == "train" else self.eval_files
        paths = [storage.local_path(f.key) for f in files]
        return [p for p in paths if p is not None]


def _open(uri: str, options: dict):
    from dldriver.storage import open_storage

    return open_storage(uri, options)


def open_dataset(workload, need_eval: bool) -> Dataset:
    """The workload's dataset, checked against its manifest (or discovered without one)."""
    from dldriver.config.uri import dataset_uri, storage_options
    from dldriver.formats.layout import dataset_files, discover_files
    from dldriver.manifest import load_manifest

    uri = dataset_uri(workload)
    factory = functools.partial(_open, uri, storage_options(workload))
    storage = factory()
    splits = ["train", "valid"] if need_eval else ["train"]
    manifest = load_manifest(storage)
    if manifest is not None:
        from dldriver.generate import verify_dataset

        problems = verify_dataset(workload, checksums=False)
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            raise DatasetError(f"{uri}: the dataset does not match the config ({shown}); {GENERATE_HINT}")
        files = {split: dataset_files(workload, split) for split in splits}
    else:
        files = {}
        for split in splits:
            try:
                files[split] = discover_files(storage, workload, split)
            except DatasetError as err:
                if "dldriver generate" in str(err):
                    raise
                raise DatasetError(f"{err}; {GENERATE_HINT}") from err
    return Dataset(uri, factory, files["train"], files.get("valid", []), manifest)
