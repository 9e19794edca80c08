"""Page-cache effects: DLIO's caching guard, and ways to empty the cache between epochs."""
from __future__ import annotations

import os
from typing import Iterable

from dldriver.errors import DlDriverError
from dldriver.units import GiB

DROP_CACHES = "/proc/sys/vm/drop_caches"


def data_size_per_host_gb(num_files: int, samples_per_file: int, record_length_bytes: float,
                          ranks: int, ranks_per_host: int) -> float:
    """DLIO's data_size_per_host_GB: ppn * nspf * files // ranks * record_length, in GiB.

    The floor division comes before the record length, as in DLIO, so the figure is whole samples.
    """
    return ranks_per_host * samples_per_file * num_files // ranks * record_length_bytes / GiB


def potential_caching(data_size_gb: float, host_memory_gb: Iterable[float]) -> list[int]:
    """Per host: 1 when the data it reads fits in its memory (the page cache may serve later epochs)."""
    return [0 if memory <= data_size_gb else 1 for memory in host_memory_gb]


def drop_caches() -> None:
    """Write dirty pages, then drop the page cache, dentries and inodes (needs root)."""
    os.sync()
    try:
        with open(DROP_CACHES, "w") as f:
            f.write("3\n")
    except OSError as err:
        raise DlDriverError(f"--drop-caches needs root: cannot write {DROP_CACHES} "
                            f"({err.strerror}); run as root or leave it out") from err


def evict_files(paths: Iterable[str]) -> int:
    """Ask the kernel to drop these files' cached pages (no root needed); returns the file count."""
    count = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as err:
            raise DlDriverError(f"{path}: cannot open to evict from the page cache ({err.strerror})") \
                from err
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        count += 1
    return count
