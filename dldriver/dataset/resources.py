"""What a generation or a run needs of this host, checked before any work starts: memory for the list of
files, memory for one file or sample, and space and inodes on a local file system. Each refusal is one
line naming the config keys that ask for too much; none builds anything the size of the dataset.
"""
from __future__ import annotations

import os
import shutil

import psutil

from dldriver.config.plan import DatasetNeeds
from dldriver.errors import DatasetError
from dldriver.outputs import existing_ancestor

# Memory per dataset file while a generation or run holds the file list: its FileSpec, its job and its
# manifest entry (as a dict and in the saved JSON); a million files take about 1.5 GB.
FILE_RECORD_BYTES = 1536


def _size(nbytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def _available_memory() -> int:
    return psutil.virtual_memory().available


def check_file_list(needs: DatasetNeeds) -> None:
    """Refuse a dataset whose list of files would not fit in memory."""
    need, have = needs.files * FILE_RECORD_BYTES, _available_memory()
    if need > have:
        raise DatasetError(f"dataset.num_files_train + dataset.num_files_eval: {needs.files} files need about "
                           f"{_size(need)} of memory for their list and manifest; this host has {_size(have)} "
                           "available")


def check_sample_memory(needs: DatasetNeeds, copies: int = 1) -> None:
    """Refuse samples of which `copies` would not fit in memory (a reader holds one per slot)."""
    need, have = needs.largest_sample_bytes * copies, _available_memory()
    if need > have:
        raise DatasetError(f"{needs.sample_key}: a sample of {_size(needs.largest_sample_bytes)}"
                           f"{f' (x{copies} in flight)' if copies > 1 else ''} does not fit in this host's "
                           f"{_size(have)} of available memory")


def check_file_memory(needs: DatasetNeeds, streamed: bool) -> None:
    """Refuse files that a generate worker, which holds two at a time, cannot build in memory. A format
    that streams its files needs only a sample's worth."""
    if streamed:
        check_sample_memory(needs)
        return
    need, have = 2 * needs.samples_per_file * needs.largest_sample_bytes, _available_memory()
    if need > have:
        raise DatasetError(f"{needs.sample_key} x dataset.num_samples_per_file: a file of "
                           f"{_size(need / 2)} is built in memory, two per writer, and this host has "
                           f"{_size(have)} available")


def check_local_room(needs: DatasetNeeds, root: str | None, written_bytes: int, written_files: int,
                     objects_per_file: int) -> None:
    """Refuse a generation into a local folder (`root`) whose file system lacks the space or the inodes
    for the files still to write (those not already written: `written_*`)."""
    if root is None:
        return
    base = existing_ancestor(root)
    files = needs.files
    need = max(0, round(files * needs.samples_per_file * needs.sample_bytes) - written_bytes)
    free = shutil.disk_usage(base).free
    if need > free:
        raise DatasetError(f"{root}: the dataset needs {_size(need)} more (dataset.num_files_train + "
                           f"num_files_eval x num_samples_per_file x {needs.sample_key.split('.')[1]}) "
                           f"but the file system of {base} has {_size(free)} free")
    fs = os.statvfs(base)
    inodes = max(0, files - written_files) * objects_per_file
    if fs.f_files and inodes > fs.f_favail:  # f_files 0: a file system without an inode limit
        raise DatasetError(f"{root}: the dataset needs {inodes} more files (dataset.num_files_train + "
                           f"num_files_eval) but the file system of {base} has {fs.f_favail} inodes free")
