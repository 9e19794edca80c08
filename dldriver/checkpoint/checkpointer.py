"""One rank's checkpoint I/O: which files it owns, timed saves and loads of them, page-cache eviction.

The run driver (dldriver.engine) decides when to save and load, and hands a Checkpointer its storage
and the number of ranks on its host.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import dldriver.checkpoint.layout as layout
from dldriver.checkpoint.stream import CHUNK_BYTES, ChunkSource, read_files, write_files
from dldriver.errors import DlDriverError
from dldriver.metrics import caching


class Checkpointer:
    """One rank's checkpoint files on `storage`, and timed saves and loads of them."""

    def __init__(self, workload, rank: int, world_size: int, storage, scale: float = 1.0,
                 chunk_bytes: int = CHUNK_BYTES, ranks_per_host: Optional[int] = None):
        self.workload = workload
        self.rank = rank
        self.scale = scale
        self.layout = layout.checkpoint_layout(workload, world_size, scale)
        self.files = self.layout[rank]
        self.total_bytes = sum(n for files in self.layout for _, n in files)
        self.storage = storage
        ckpt = workload.checkpoint
        # Seeded by rank so that ranks write different bytes, and a reader can regenerate them to check.
        self.source = ChunkSource(ckpt.randomize_tensor, seed=rank, chunk_bytes=chunk_bytes)
        # DLIO's recovery_rank_shift: a load reads the files that rank + ranks-per-host wrote, on another
        # host when ranks fill hosts in order, so that no host reads back what its own page cache holds.
        # (DLIO HEAD stores the key under another name and never shifts.) On one host it changes nothing.
        shift = (ranks_per_host or world_size) if ckpt.recovery_rank_shift else 0
        self.load_rank = (rank + shift) % world_size
        self.load_source = ChunkSource(ckpt.randomize_tensor, seed=self.load_rank, chunk_bytes=chunk_bytes)

    def save(self, epoch: int, step: int, sync: Optional[Callable[[], None]] = None) -> dict:
        """Write this rank's files of global_epoch{epoch}_step{step}; returns its timing record.
        `sync` (the ranks' barrier) ends the timed span when checkpoint.rank_sync is set."""
        folder = layout.checkpoint_folder(epoch, step)
        return self._timed(folder, lambda: write_files(self.storage, folder, self.files, self.source,
                                                       self.workload.checkpoint.fsync), sync)

    def load(self, epoch: int, step: int, sync: Optional[Callable[[], None]] = None,
             verify: bool = False) -> dict:
        """Read back every byte of global_epoch{epoch}_step{step}'s files of this rank (of load_rank, with
        recovery_rank_shift); returns its timing record."""
        folder = layout.checkpoint_folder(epoch, step)
        files, source = self.layout[self.load_rank], self.load_source
        return self._timed(folder, lambda: read_files(self.storage, folder, files, source.chunk_bytes,
                                                      source if verify else None), sync)

    def _timed(self, folder: str, io, sync) -> dict:
        start = time.time()
        t0 = time.perf_counter()
        nbytes = io()
        if sync is not None and self.workload.checkpoint.rank_sync:
            sync()  # DLIO's rank_sync: the barrier after each save/load counts in its time
        duration = time.perf_counter() - t0
        return {"folder": folder, "start": start, "end": start + duration, "duration": duration, "bytes": nbytes}

    def drop_page_cache(self, folders: list[str]) -> str:
        """Evict these checkpoint folders (every rank's files) from the page cache; returns the method.

        The whole cache needs root. Without it, the checkpoint's own files are evicted one by one (sync,
        then POSIX_FADV_DONTNEED), which is what a read phase needs. Object stores cache on the server
        side, out of the client's reach.
        """
        try:
            caching.drop_caches()
            return "drop_caches"
        except DlDriverError:
            pass
        paths = [self.storage.local_path(f"{folder}/{name}")
                 for folder in folders for files in self.layout for name, _ in files]
        if not paths or paths[0] is None:
            return "none (object store)"
        caching.evict_files(paths)
        return "fadvise"
