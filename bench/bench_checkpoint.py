"""Checkpoint write/read bytes/s on the file backend against a raw sequential write+fsync and read.

One run: llama_8b_zero3's 8-rank layout (16 files, DeepSpeed names) scaled to about 1 GiB, written with
checkpoint.fsync by the Checkpointer of each rank in turn, then read back after evicting it from the page
cache; the raw baseline writes and reads one file of the same total with plain os.write/os.pread and the
same chunk size, fsync at the end, same eviction. Each side runs REPEATS times, alternating (the disk is shared and noisy); the best run
of each counts. Prints both and the ratio (target >= 0.8).

    .venv/bin/python bench/bench_checkpoint.py [--folder DIR] [--gib 1.0]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from dldriver.checkpoint import Checkpointer, checkpoint_layout
from dldriver.checkpoint.stream import CHUNK_BYTES
from dldriver.config.model import Parallelism, Transformer, Workload
from dldriver.metrics.caching import evict_files

RANKS = 8
REPEATS = 5


def llama_8b_zero3(folder: str) -> Workload:
    w = Workload()
    w.model.name, w.model.type, w.model.num_layers = "llama_8b_zero3", "transformer", 32
    w.model.transformer = Transformer(128256, 4096, 14336, 32, 8)
    w.model.parallelism = Parallelism(1, 1, -1, 3)
    w.checkpoint.checkpoint_folder, w.checkpoint.fsync = folder, True
    return w


def checkpoint_pass(w: Workload, scale: float, step: int) -> tuple[float, float, int]:
    cks = [Checkpointer(w, r, RANKS, scale) for r in range(RANKS)]
    t0 = time.perf_counter()
    nbytes = sum(ck.save(1, step)["bytes"] for ck in cks)
    write = time.perf_counter() - t0
    evict_files([ck.storage.local_path(f"global_epoch1_step{step}/{n}") for ck in cks for n, _ in ck.files])
    t0 = time.perf_counter()
    assert sum(ck.load(1, step)["bytes"] for ck in cks) == nbytes
    return write, time.perf_counter() - t0, nbytes


def raw_pass(path: str, total: int) -> tuple[float, float]:
    chunk = memoryview(os.urandom(CHUNK_BYTES))
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    done = 0
    while done < total:
        done += os.write(fd, chunk[:min(CHUNK_BYTES, total - done)])
    os.fsync(fd)
    os.close(fd)
    write = time.perf_counter() - t0
    evict_files([path])
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    done = 0
    while done < total:
        done += len(os.pread(fd, min(CHUNK_BYTES, total - done), done))
    os.close(fd)
    return write, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="where to write (default: a temporary folder under ./)")
    parser.add_argument("--gib", type=float, default=1.0, help="checkpoint size in GiB (default 1)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_ckpt_", dir=args.folder or ".")
    try:
        w = llama_8b_zero3(os.path.join(folder, "ckpt"))
        full = sum(n for files in checkpoint_layout(w, RANKS) for _, n in files)
        scale = args.gib * 1024 ** 3 / full
        lay = checkpoint_layout(w, RANKS, scale)
        total = sum(n for files in lay for _, n in files)
        best = {"ckpt_write": 0.0, "ckpt_read": 0.0, "raw_write": 0.0, "raw_read": 0.0}
        for i in range(REPEATS):
            raw_w, raw_r = raw_pass(os.path.join(folder, "raw.bin"), total)
            ck_w, ck_r, nbytes = checkpoint_pass(w, scale, i + 1)
            assert nbytes == total
            for key, seconds in (("raw_write", raw_w), ("raw_read", raw_r), ("ckpt_write", ck_w), ("ckpt_read", ck_r)):
                best[key] = max(best[key], total / seconds)
            os.remove(os.path.join(folder, "raw.bin"))
            shutil.rmtree(os.path.join(folder, "ckpt"))
        mib = 1024 ** 2
        print(f"checkpoint: {total / 1024 ** 3:.2f} GiB in {sum(len(f) for f in lay)} "
              f"files (llama_8b_zero3, {RANKS} ranks, scale {scale:.3g}), fsync, chunk {CHUNK_BYTES // mib} MiB")
        for op in ("write", "read"):
            ck, raw = best[f"ckpt_{op}"], best[f"raw_{op}"]
            print(f"{op:5}: checkpoint {ck / mib:8.1f} MiB/s   raw {raw / mib:8.1f} MiB/s   ratio {ck / raw:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
