"""Helpers for the loader and run tests: tiny workloads written as YAML, datasets generated once."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from dldriver.config import load_workload
from dldriver.generate import generate_dataset

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
FORMATS = ("npz", "npy", "hdf5", "tfrecord", "jpeg", "png", "csv", "indexed_binary", "mmap_indexed_binary",
           "parquet")
LOADERS = ("native", "pytorch", "tensorflow", "jax")
FRAMEWORK = {"native": "pytorch", "pytorch": "pytorch", "tensorflow": "tensorflow", "jax": "pytorch"}


def workload_doc(data_folder, fmt="npz", loader="native", files=4, samples=2, batch=2, **sections) -> dict:
    """A tiny workload: 16 x 16 samples, one epoch, no compute; `sections` update its sections."""
    doc = {
        "model": {"name": "tiny"},
        "framework": FRAMEWORK[loader],
        "workflow": {"train": True},
        "dataset": {"data_folder": str(data_folder), "format": fmt, "num_files_train": files,
                    "num_samples_per_file": samples, "record_length_bytes": 256},
        "reader": {"data_loader": loader, "batch_size": batch, "read_threads": 1},
        "train": {"epochs": 1, "computation_time": 0},
    }
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    return doc


def write_config(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def workload(tmp: Path, doc: dict, name="workload.yaml", overrides=()):
    return load_workload(str(write_config(Path(tmp) / name, doc)), list(overrides))


def make_dataset(tmp: Path, doc: dict):
    """Generate the dataset of `doc` (single process: the machine is shared) and return its workload."""
    w = workload(tmp, doc, name=f"gen-{doc['dataset']['format']}.yaml")
    generate_dataset(w, processes=1, progress=False)
    return w


def generated_config(root: Path, **doc_args) -> tuple[Path, Path]:
    """A dataset generated under root/data (workload_doc's arguments) and its config root/w.yaml."""
    doc = workload_doc(root / "data", **doc_args)
    make_dataset(root, doc)
    return write_config(root / "w.yaml", doc), root / "data"
