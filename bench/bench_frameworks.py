"""The public framework API against what a user would write by hand, on the same page-cached data in one
run, with the same workers/threads and batch size. Prints samples/s (or bytes/s) and the ratios:

- torch: DlioPyTorchDataLoader vs a plain torch Dataset that np.load()s each npz file, in a DataLoader
  with the same num_workers and batch size (target >= 1.0); and vs `dldriver run`'s pytorch loader on
  the same data (target >= 0.9), both as `dldriver run` reports it (a fresh run per figure, so worker
  start-up counts) and as the loader's own epochs over the same batches (PyTorchLoader, workers kept).
- tensorflow: DlioTensorFlowDataset on tfrecord vs a plain TFRecordDataset -> parse -> batch pipeline
  (target >= 0.9).
- jax: DlioJaxDataset vs the native loader's bytes/s under `dldriver run` (target >= 0.9).

    .venv/bin/python bench/bench_frameworks.py [--files 256] [--record 131072] [--workers 2] [--repeat 3]
Each figure is the best of --repeat epochs after one warm-up epoch (which page-caches the files).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

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
    api, hand = _best(count(ours), args.repeat), _best(count(plain), args.repeat)
    own = PyTorchLoader(ours.dataset.reading.source, args.workers, pin_memory=False,
                        multiprocessing_context="fork")
    batches = ours.dataset.reading.sampler.batches(1)
    loader = _best(lambda: sum(len(b.keys) for b in own.epoch(batches)), args.repeat)
    own.close()
    runs = []
    for _ in range(args.repeat):
        summary = run_workload(load_workload_mapping(doc), output=root / "run-torch", quiet=True)
        runs.append(summary["metric"]["train_throughput_mean_samples_per_second"])
    return {"api samples/s": api, "np.load Dataset samples/s": hand, "dldriver run samples/s": max(runs),
            "run loader samples/s": loader, "api / np.load": api / hand, "api / run": api / max(runs),
            "api / run loader": api / loader}


def bench_tensorflow(root: Path, args) -> dict:
    import tensorflow as tf

    from dldriver.tensorflow import DlioTensorFlowDataset

    doc = _doc(root / "tfr", "tfrecord", "tensorflow", args.files, args.record, args.batch, args.workers)
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
    api = _best(lambda: sum(int(b.shape[0]) for b in ours.dataset()), args.repeat)
    hand = _best(lambda: sum(int(b.shape[0]) for b in plain), args.repeat)
    return {"api samples/s": api, "TFRecordDataset samples/s": hand, "api / TFRecordDataset": api / hand}


def bench_jax(root: Path, args) -> dict:
    from dldriver.jax import DlioJaxDataset

    doc = _doc(root / "npz", "npz", "jax", args.files, args.record, args.batch, args.workers)
    data = DlioJaxDataset(doc)

    def epoch():
        n = 0
        for batch in data:
            batch.block_until_ready()
            n += batch.nbytes
        return n

    api = _best(epoch, args.repeat)
    runs = []
    for _ in range(args.repeat):
        summary = run_workload(load_workload_mapping({**doc, "reader": {**doc["reader"], "data_loader": "native"}}),
                               output=root / "run-native", quiet=True)
        runs.append(summary["dldriver"]["true_MB_per_second"] * 2**20)
    return {"api bytes/s": api, "native run bytes/s": max(runs), "api / native": api / max(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=256)
    parser.add_argument("--record", type=int, default=128 * 1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["torch", "tensorflow", "jax"], action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-frameworks-") as tmp:
        for name, bench in (("torch", bench_torch), ("tensorflow", bench_tensorflow), ("jax", bench_jax)):
            if args.only and name not in args.only:
                continue
            if name == "jax" and not (Path(tmp) / "npz").exists():
                bench_torch(Path(tmp), argparse.Namespace(**{**vars(args), "repeat": 1}))
            for key, value in bench(Path(tmp), args).items():
                print(f"{name:<10} {key:<28} {value:12.3f}" if "/" in key and "s" not in key.split("/")[-1]
                      else f"{name:<10} {key:<28} {value:12.1f}")


if __name__ == "__main__":
    main()
