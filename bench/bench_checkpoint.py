"""Checkpoint write/read bytes/s on the file backend against a raw sequential write+fsync and read.

One run: llama_8b_zero3's 8-rank layout (16 files, DeepSpeed names) scaled to about 1 GiB, written with
checkpoint.fsync by the Checkpointer of each rank in turn, then read back after evicting it from the page
cache; the raw baseline writes and reads one file of the same total with plain os.write/os.pread and the
same chunk size, fsync at the end, same eviction. A second raw baseline writes the checkpoint's own file
sizes (fsync per file, as checkpoint.fsync does), which separates dl-driver's overhead from the cost of
many fsyncs. Each side runs REPEATS times, alternating (the disk is shared and noisy); the best run
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
from dldriver.config.uri import checkpoint_uri
from dldriver.storage import open_storage
from dldriver.metrics.caching import evict_files

RANKS = 8
REPEATS = 3


def llama_8b_zero3(folder: str) -> Workload:
    w = Workload()
    w.framework = "pytorch"  # as llama_8b_zero3.yaml: the .pt layout
    w.model.name, w.model.type, w.model.num_layers = "llama_8b_zero3", "transformer", 32
    w.model.transformer = Transformer(128256, 4096, 14336, 32, 8)
    w.model.parallelism = Parallelism(1, 1, -1, 3)
    w.checkpoint.checkpoint_folder, w.checkpoint.fsync = folder, True
    return w


def checkpoint_pass(w: Workload, scale: float, step: int) -> tuple[float, float, int]:
    storage = open_storage(checkpoint_uri(w))
    cks = [Checkpointer(w, r, RANKS, storage, scale) for r in range(RANKS)]
    t0 = time.perf_counter()
    nbytes = sum(ck.save(1, step)["bytes"] for ck in cks)
    write = time.perf_counter() - t0
    evict_files([ck.storage.local_path(f"global_epoch1_step{step}/{n}") for ck in cks for n, _ in ck.files])
    t0 = time.perf_counter()
    assert sum(ck.load(1, step)["bytes"] for ck in cks) == nbytes
    return write, time.perf_counter() - t0, nbytes


def raw_pass(folder: str, sizes: list[int]) -> tuple[float, float]:
    """Plain os.write/os.pread of one file per size, fsync per file; returns (write, read) seconds."""
    chunk = memoryview(os.urandom(CHUNK_BYTES))
    paths = [os.path.join(folder, f"raw{i}.bin") for i in range(len(sizes))]
    t0 = time.perf_counter()
    for path, size in zip(paths, sizes):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        done = 0
        while done < size:
            done += os.write(fd, chunk[:min(CHUNK_BYTES, size - done)])
        os.fsync(fd)
        os.close(fd)
    write = time.perf_counter() - t0
    evict_files(paths)
    t0 = time.perf_counter()
    for path, size in zip(paths, sizes):
        fd = os.open(path, os.O_RDONLY)
        done = 0
        while done < size:
            done += len(os.pread(fd, min(CHUNK_BYTES, size - done), done))
        os.close(fd)
    read = time.perf_counter() - t0
    for path in paths:
        os.remove(path)
    return write, read


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
        sizes = [n for files in lay for _, n in files]
        best = {}
        for i in range(REPEATS):
            timings = {"raw": raw_pass(folder, [total]), "raw_files": raw_pass(folder, sizes)}
            ck_w, ck_r, nbytes = checkpoint_pass(w, scale, i + 1)
            assert nbytes == total
            timings["ckpt"] = (ck_w, ck_r)
            for side, (write, read) in timings.items():
                for op, seconds in (("write", write), ("read", read)):
                    best[side, op] = max(best.get((side, op), 0.0), total / seconds)
            shutil.rmtree(os.path.join(folder, "ckpt"))
        mib = 1024 ** 2
        print(f"checkpoint: {total / 1024 ** 3:.2f} GiB in {sum(len(f) for f in lay)} "
              f"files (llama_8b_zero3, {RANKS} ranks, scale {scale:.3g}), fsync, chunk {CHUNK_BYTES // mib} MiB")
        for op in ("write", "read"):
            ck, raw, raw_files = best["ckpt", op], best["raw", op], best["raw_files", op]
            print(f"{op:5}: checkpoint {ck / mib:7.1f} MiB/s | raw, one file {raw / mib:7.1f} MiB/s, ratio "
                  f"{ck / raw:.2f} | raw, same {len(sizes)} files {raw_files / mib:7.1f} MiB/s, ratio {ck / raw_files:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
