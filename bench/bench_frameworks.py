"""The public framework API against what a user would write by hand, on the same page-cached data in one
run, with the same workers/threads and batch size. Prints samples/s (or bytes/s) and the ratios:

- torch: DlioPyTorchDataLoader vs a plain torch Dataset that np.load()s each npz file, in a DataLoader
  with the same num_workers and batch size (target >= 1.0); and vs `dldriver run`'s pytorch loader on
  the same data (target >= 0.9), both as `dldriver run` reports it (a fresh run per figure, so worker
  start-up counts) and as the loader's own epochs over the same batches (PyTorchLoader, workers kept).
- torch-iterable: the iterable dataset (batches read whole) vs its old per-sample way, same DataLoader.
- tensorflow: DlioTensorFlowDataset on tfrecord vs a plain TFRecordDataset -> parse -> batch pipeline
  (target >= 0.9): iterating the object (counted in Python, as Measurement iterates it) and its
  `dataset()` (counted by a stage of tf.Variable updates in the pipeline, what model.fit gets).
- tensorflow-s3: the TF API on S3 (a SeaweedFS started here) vs a plain boto3 GET + tf.io.parse_example
  loop making the same requests with the same threads (target >= 0.9).
- jax: DlioJaxDataset vs the native loader's epochs over the same batches, and vs `dldriver run`'s
  native bytes/s (target >= 0.9), at two batch shapes (JAX_CASES): resnet50_v100's (64 samples of
  114,660 bytes, 7 MiB batches; DLIO has no JAX workload, this is an image model's) and 1 MiB (8 x 128 KiB),
  where a per-batch cost shows most. The JAX consumer waits on each batch (block_until_ready), the native
  one takes each numpy batch's nbytes.

    .venv/bin/python bench/bench_frameworks.py [--files 256] [--record 131072] [--workers 2] [--repeat 3]
Each figure is the best of --repeat epochs after one warm-up epoch (which page-caches the files); the
sides of a comparison run in turn (a, b, a, b, ...), with 5 x --repeat rounds where epochs are short
(torch: ~25 ms, jax: ~0.1 s). CPU figures are this process's (every thread; torch's workers are not in it).

Where the time goes (2 shared cores, load average 2-6, so wall-clock ratios move +-0.15 between runs):
- jax: a batch costs the iterator one jax.Array made over the batch's memory (no copy on the CPU device)
  and freed after use. jax.device_put took ~50 us of Python per batch alone and ~0.2 ms of CPU with the
  reading threads running (thread_time), a third of what reading a 1 MiB batch costs: 0.65-0.79 of the
  native loader at 1 MiB. loaders/device_put.py now asks jax.device_put only for a shape's first batch
  and then jaxlib's batched_device_put directly (~10 us alone, ~40 us CPU under load, plus ~20 us waiting
  for the GIL while jax frees the array). In one process, alternating, 20 rounds, 3 runs, CPU s/GB
  (median) native / API / API with jax.device_put: 1 MiB 0.52 / 0.62 / 0.72, 0.62 / 0.72 / 0.88,
  0.60 / 0.66 / 0.83 (bytes/s vs native, best: 0.86, 0.89, 0.91; with jax.device_put 0.65, 0.79, 0.75);
  resnet50 batches 0.51 / 0.53 / 0.56, 0.45 / 0.49 / 0.44, 0.42 / 0.46 / 0.49 (1.01, 0.87, 0.92).
- torch: the API's workers run the same read_batch into the same shared-memory ring as PyTorchLoader's
  (a cProfile of both workers' fetches differs by ~20 calls a batch); epochs of 256 samples (~30 ms)
  were 4 % and 6 % apart by median (2 runs of 40 rounds; the API's fastest epoch was the faster in one),
  so its ratio to the run loader's epochs is noise-bound here.
- tensorflow: the API's per-batch parse cost less CPU per sample than the plain per-record parse (0.47
  vs 0.50 ms, one run of 15 rounds); on S3 the API spends no more CPU per sample than the boto3 loop.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_object_reads import plain_s3_get
from dldriver.config.loader import load_workload_mapping
from dldriver.engine.run import run_workload
from dldriver.generate import generate_dataset
from dldriver.loaders.pytorch import PyTorchLoader


def _doc(folder: Path, fmt: str, loader: str, files: int, record: int, batch: int, workers: int) -> dict:
    return {"model": {"name": "bench"}, "framework": "tensorflow" if loader == "tensorflow" else "pytorch",
            "workflow": {"train": True},
            "dataset": {"data_folder": str(folder), "format": fmt, "num_files_train": files,
                        "num_samples_per_file": 1, "record_length_bytes": record},
            "reader": {"data_loader": loader, "batch_size": batch, "read_threads": workers},
            "train": {"epochs": 1, "computation_time": 0}}


def _best(fn, repeat: int) -> float:
    """Items per second of fn() (which returns the items it produced), best of repeat after a warm-up."""
    fn()
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return max(rates)


def _alternating(fns, repeat: int) -> list[tuple[float, float]]:
    """(items per second, best of `repeat`; this process's CPU seconds per item, median) of each fn, the
    fns run in turn (a, b, a, b, ...) after one warm-up each, so a shared machine's load falls on all."""
    for fn in fns:
        fn()
    rates, cpus = [[] for _ in fns], [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            n = fn()
            rates[i].append(n / (time.perf_counter() - t0))
            cpus[i].append((time.process_time() - c0) / n)
    return [(max(r), float(np.median(c))) for r, c in zip(rates, cpus)]


def bench_torch(root: Path, args) -> dict:
    import torch
    from torch.utils.data import DataLoader, Dataset

    from dldriver.torch import DlioPyTorchDataLoader

    doc = _doc(root / "npz", "npz", "pytorch", args.files, args.record, args.batch, args.workers)
    generate_dataset(load_workload_mapping(doc), processes=1, progress=False)
    paths = sorted(str(p) for p in (root / "npz" / "train").glob("*.npz"))

    class PlainNpz(Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return torch.from_numpy(np.load(paths[i])["x"][..., 0])

    def count(loader):
        return lambda: sum(len(b) for b in loader)

    ours = DlioPyTorchDataLoader.from_config(doc, multiprocessing_context="fork")
    plain = DataLoader(PlainNpz(), batch_size=args.batch, num_workers=args.workers, drop_last=True,
                       persistent_workers=True, multiprocessing_context="fork")
    own = PyTorchLoader(ours.dataset.reading.source, args.workers, pin_memory=False,
                        multiprocessing_context="fork")
    batches = ours.dataset.reading.sampler.batches(1)
    # epochs of ~25 ms: more rounds (the main process's CPU alone is measured, the workers read)
    (api, _), (hand, _), (loader, _) = _alternating(
        [count(ours), count(plain), lambda: sum(len(b.keys) for b in own.epoch(batches))], 5 * args.repeat)
    own.close()
    runs = []
    for _ in range(args.repeat):
        summary = run_workload(load_workload_mapping(doc), output=root / "run-torch", quiet=True)
        runs.append(summary["metric"]["train_throughput_mean_samples_per_second"])
    return {"api samples/s": api, "np.load Dataset samples/s": hand, "dldriver run samples/s": max(runs),
            "run loader samples/s": loader, "api / np.load": api / hand, "api / run": api / max(runs),
            "api / run loader": api / loader}


def bench_torch_iterable(root: Path, args) -> dict:
    """The iterable dataset as it reads now (each batch read whole into one tensor, its rows handed back
    to `collate` as that tensor) against the old way in the same run (a sample at a time, stacked by
    torch's default_collate), both in the factory's DataLoader with the same workers and batch size."""
    from torch.utils.data import default_collate

    from dldriver.torch import DlioPyTorchIterableDataset, make_dataloader

    doc = _doc(root / "npz", "npz", "pytorch", args.files, args.record, args.batch, args.workers)
    if not (root / "npz").exists():
        generate_dataset(load_workload_mapping(doc), processes=1, progress=False)

    class PerSample(DlioPyTorchIterableDataset):
        """The old __iter__: one read and one tensor per sample."""

        def __iter__(self):
            for keys in self.worker_batches():
                for file_idx, sample_idx in keys:
                    yield self._read(file_idx, sample_idx)

    new = make_dataloader(DlioPyTorchIterableDataset(doc), multiprocessing_context="fork")
    old = make_dataloader(PerSample(doc), multiprocessing_context="fork", collate_fn=default_collate)
    (ours, _), (before, _) = _alternating(  # (CPU of the main process alone: the workers read)
        [lambda: sum(len(b) for b in new), lambda: sum(len(b) for b in old)], args.repeat)
    return {"iterable samples/s": ours, "per-sample iterable samples/s": before,
            "iterable / per-sample": ours / before}


def bench_tensorflow(root: Path, args) -> dict:
    import tensorflow as tf

    from dldriver.tensorflow import DlioTensorFlowDataset

    doc = _doc(root / "tfr", "tfrecord", "tensorflow", args.files, args.record, args.batch, args.workers)
    doc["reader"]["prefetch_size"] = 2  # as the plain pipeline's prefetch(2)
    generate_dataset(load_workload_mapping(doc), processes=1, progress=False)
    paths = sorted(str(p) for p in (root / "tfr" / "train").glob("*.tfrecord"))
    ours = DlioTensorFlowDataset(doc)
    shape = ours.reading.source.files[0].shape

    def parse(record):
        image = tf.io.parse_single_example(record, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
        return tf.reshape(tf.io.decode_raw(image, tf.uint8), shape)

    plain = (tf.data.Dataset.from_tensor_slices(paths)
             .interleave(tf.data.TFRecordDataset, cycle_length=args.workers, num_parallel_calls=args.workers)
             .map(parse, num_parallel_calls=args.workers).batch(args.batch, drop_remainder=True).prefetch(2))
    (api, _), (fit, _), (hand, _) = _alternating(
        [lambda: sum(int(b.shape[0]) for b in ours), lambda: sum(int(b.shape[0]) for b in ours.dataset()),
         lambda: sum(int(b.shape[0]) for b in plain)], args.repeat)
    return {"api samples/s": api, "api dataset() samples/s": fit, "TFRecordDataset samples/s": hand,
            "api / TFRecordDataset": api / hand, "api dataset() / TFRecordDataset": fit / hand}


def bench_tensorflow_s3(root: Path, args) -> dict:
    """The TF API on S3 (SeaweedFS started here) against a plain loop: a pool of --workers threads making
    the requests dl-driver's tfrecord reader makes (each file's index object, then one ranged GET per
    record), each batch of records parsed into a tf tensor by tf.io.parse_example."""
    import os
    import uuid

    import tensorflow as tf

    from dldriver import services
    from dldriver.services import process, seaweedfs
    from dldriver.storage import open_storage
    from dldriver.storage.s3 import S3Storage
    from dldriver.tensorflow import DlioTensorFlowDataset

    state = root / "services"
    os.environ.update(services.start_s3(state, port=process.free_port_block(seaweedfs.PORT_SPAN)))
    try:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        S3Storage(bucket).create_bucket()
        files = max(1, args.files // args.s3_records)
        doc = _doc(f"s3://{bucket}/tfr", "tfrecord", "tensorflow", files, args.record, args.batch, args.workers)
        doc["dataset"]["num_samples_per_file"] = args.s3_records
        generate_dataset(load_workload_mapping(doc), processes=1, progress=False)
        ours = DlioTensorFlowDataset(doc)
        shape = ours.reading.source.files[0].shape
        storage = open_storage(f"s3://{bucket}/tfr")
        requests = []
        for key in sorted(k for k in storage.list("train/") if k.endswith(".tfrecord")):
            index = storage.get(f"index/{key}.idx").decode().split()
            offsets = list(zip(map(int, index[0::2]), map(int, index[1::2])))
            requests.append([(f"tfr/index/{key}.idx", None)] + [(f"tfr/{key}", o) for o in offsets])
        get = plain_s3_get(args.workers, bucket)
        features = {"image": tf.io.FixedLenFeature([], tf.string)}

        def plain_epoch():
            from concurrent.futures import ThreadPoolExecutor

            def records(file_requests):  # the index first (as dl-driver reads it), then each record
                get(*file_requests[0])
                return [bytes(get(*r))[12:-4] for r in file_requests[1:]]

            n, pending = 0, []
            with ThreadPoolExecutor(args.workers) as pool:
                for got in pool.map(records, requests):
                    pending += got
                    while len(pending) >= args.batch:
                        images = tf.io.parse_example(pending[:args.batch], features)["image"]
                        n += int(tf.reshape(tf.io.decode_raw(images, tf.uint8), [-1, *shape]).shape[0])
                        pending = pending[args.batch:]
            return n

        (api, api_cpu), (hand, hand_cpu) = _alternating(
            [lambda: sum(int(b.shape[0]) for b in ours.dataset()), plain_epoch], args.repeat)
        ours.close()
        return {"api S3 samples/s": api, "boto3 loop samples/s": hand, "api / boto3 loop": api / hand,
                "api CPU ms/sample": api_cpu * 1e3, "boto3 loop CPU ms/sample": hand_cpu * 1e3}
    finally:
        services.stop_s3(state)


# The JAX comparison's batches: a DLIO workload's, and the 1 MiB batches where a per-batch cost shows most.
# resnet50_v100 / resnet50_tf: ImageNet samples of 114,660.07 bytes, batch_size 64 (7 MiB batches).
JAX_CASES = {"resnet50": (114660, 64), "1MiB": (128 * 1024, 8)}


def bench_jax(root: Path, args) -> dict:
    """DlioJaxDataset (jax.Array batches, block_until_ready on each) against the native loader's epochs
    over the same batches (NativeLoader: the same source, read_threads and prefetch_size, its pool kept,
    the consumer taking each numpy batch's nbytes), run alternately in one process; and `dldriver run`'s
    native bytes/s (a fresh run per figure: its pool start-up counts) for reference. For each of
    JAX_CASES (sample bytes, batch size), on --jax-files npz files of one sample."""
    from dldriver.jax import DlioJaxDataset
    from dldriver.loaders.native import NativeLoader

    out = {}
    for case, (record, batch) in JAX_CASES.items():
        doc = _doc(root / f"jax-{case}", "npz", "jax", args.jax_files, record, batch, args.workers)
        generate_dataset(load_workload_mapping(doc), processes=1, progress=False)
        data = DlioJaxDataset(doc)
        reader = data.workload.reader
        native = NativeLoader(data.reading.source, max(1, reader.read_threads), reader.prefetch_size)
        batches = data.reading.sampler.batches(1)

        shape, dtype = data.reading.source.sample_layout(range(args.jax_files))
        batch_bytes = batch * math.prod(shape) * np.dtype(dtype).itemsize  # every batch full (drop_last)

        def api_epoch():  # waits on each batch, as a step would; counts it (jax's nbytes costs ~8 us of
            n = 0         # Python a batch under load: the consumer's cost, not the iterator's)
            for array in data:
                array.block_until_ready()
                n += 1
            return n * batch_bytes

        (api, api_cpu), (loader, loader_cpu) = _alternating(  # epochs of ~0.1 s: more rounds
            [api_epoch, lambda: sum(b.data.nbytes for b in native.epoch(batches))], 5 * args.repeat)
        native.close()
        data.close()
        runs = []
        for _ in range(args.repeat):
            summary = run_workload(load_workload_mapping({**doc, "reader": {**doc["reader"], "data_loader": "native"}}),
                                   output=root / f"run-native-{case}", quiet=True)
            runs.append(summary["dldriver"]["true_MB_per_second"] * 2**20)
        # CPU seconds per GB (this process, every thread): steadier than bytes/s on a shared machine
        out |= {f"{case} api bytes/s": api, f"{case} native loader bytes/s": loader,
                f"{case} native run bytes/s": max(runs), f"{case} api / native loader": api / loader,
                f"{case} api / native run": api / max(runs), f"{case} api CPU s/GB": api_cpu * 2**30,
                f"{case} native loader CPU s/GB": loader_cpu * 2**30}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=256)
    parser.add_argument("--record", type=int, default=128 * 1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jax-files", type=int, default=1024, help="npz files of each JAX case")
    parser.add_argument("--s3-records", type=int, default=8, help="records per tfrecord object on S3")
    parser.add_argument("--only", choices=["torch", "torch-iterable", "tensorflow", "tensorflow-s3", "jax"],
                        action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-frameworks-") as tmp:
        for name, bench in (("torch", bench_torch), ("torch-iterable", bench_torch_iterable),
                            ("tensorflow", bench_tensorflow),
                            ("tensorflow-s3", bench_tensorflow_s3), ("jax", bench_jax)):
            if args.only and name not in args.only:
                continue
            for key, value in bench(Path(tmp), args).items():
                fine = (" / " in key and not key.endswith("/s")) or "CPU" in key  # ratios and CPU costs
                print(f"{name:<14} {key:<34} {value:12.3f}" if fine else f"{name:<14} {key:<34} {value:12.1f}")


if __name__ == "__main__":
    main()
