"""One rank's checkpoint I/O: which files it owns, timed saves and loads of them, page-cache eviction.

The run driver (dldriver.engine) decides when to save and load, and hands a Checkpointer its storage
and the number of ranks on its host.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import dldriver.checkpoint.layout as layout
from dldriver.checkpoint.stream import CHUNK_BYTES, ChunkSource, file_key, read_files, write_files
from dldriver.errors import DlDriverError
from dldriver.metrics import caching


class Checkpointer:
    """One rank's checkpoint files on `storage`, and timed saves and loads of them."""

    def __init__(self, workload, rank: int, world_size: int, storage, scale: float = 1.0,
                 chunk_bytes: int = CHUNK_BYTES, ranks_per_host: Optional[int] = None):
        self.workload = workload
        self.rank = rank
        self.world_size = world_size
        self.scale = scale
        self.mode = layout.layer_mode(workload)
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
        """Write this rank's files of the checkpoint of (epoch, step); returns its timing record.
        `sync` (the ranks' barrier) ends the timed span when checkpoint.rank_sync is set."""
        folder, files = self.checkpoint_files(self.rank, epoch, step)
        return self._timed(folder, lambda: write_files(self.storage, folder, files, self.source,
                                                       self.workload.checkpoint.fsync), sync)

    def load(self, epoch: int, step: int, sync: Optional[Callable[[], None]] = None,
             verify: bool = False) -> dict:
        """Read back every byte of the (epoch, step) checkpoint's files of this rank (of load_rank, with
        recovery_rank_shift); returns its timing record."""
        folder, files = self.checkpoint_files(self.load_rank, epoch, step)
        if not folder:
            # Without a folder per checkpoint (2.0.0), TensorFlow's one `checkpoint` state file names the
            # last save, not this one: it is no part of what this load reads.
            files = [(name, n) for name, n in files if name != layout.TF_STATE]
        source = self.load_source
        return self._timed(folder, lambda: read_files(self.storage, folder, files, source.chunk_bytes,
                                                      source if verify else None), sync)

    def checkpoint_files(self, rank: int, epoch: int, step: int) -> tuple[str, list[tuple[str, int]]]:
        """(folder, [(name, bytes)]) of `rank`'s files in the checkpoint of (epoch, step). HEAD's names are
        the same in every checkpoint's folder; 2.0.0's carry epoch and step, so they are made per checkpoint."""
        folder = layout.checkpoint_folder(epoch, step, self.mode)
        if self.mode == "head":
            return folder, self.layout[rank]
        return folder, layout.checkpoint_layout(self.workload, self.world_size, self.scale, epoch, step)[rank]

    def _timed(self, folder: str, io, sync) -> dict:
        start = time.time()
        t0 = time.perf_counter()
        nbytes = io()
        if sync is not None and self.workload.checkpoint.rank_sync:
            sync()  # DLIO's rank_sync: the barrier after each save/load counts in its time
        duration = time.perf_counter() - t0
        return {"folder": folder or ".", "start": start, "end": start + duration, "duration": duration, "bytes": nbytes}

    def drop_page_cache(self, checkpoints: list[tuple[int, int]]) -> str:
        """Evict the files of these checkpoints, (epoch, step) each, of every rank, from the page cache;
        returns the method.

        The whole cache needs root. Without it, the checkpoint's own files are evicted one by one (sync,
        then POSIX_FADV_DONTNEED), which is what a read phase needs. Object stores cache on the server
        side, out of the client's reach.
        """
        try:
            caching.drop_caches()
            return "drop_caches"
        except DlDriverError:
            pass
        paths = [self.storage.local_path(file_key(folder, name))
                 for epoch, step in checkpoints for rank in range(self.world_size)
                 for folder, files in [self.checkpoint_files(rank, epoch, step)] for name, _ in files]
        if not paths or paths[0] is None:
            return "none (object store)"
        caching.evict_files(paths)
        return "fadvise"
