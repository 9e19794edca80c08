"""DLIO's file names, folders and per-file size draws."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dldriver.dataset.layout import dataset_files, discover_files
from dldriver.errors import DatasetError
from dldriver.generate import generate_dataset
from test_formats_support import data_storage, workload


def test_default_yaml_names_with_subfolders(tmp_path):
    # DLIO's default.yaml: 64 train and 8 eval files, 2 subfolders each.
    w = workload(tmp_path, "dataset.num_files_train=64", "dataset.num_files_eval=8",
                 "dataset.num_subfolders_train=2", "dataset.num_subfolders_eval=2")
    train = [s.key for s in dataset_files(w, "train")]
    assert train[:3] == ["train/0/img_00_of_64.npz", "train/1/img_01_of_64.npz", "train/0/img_02_of_64.npz"]
    assert train[-1] == "train/1/img_63_of_64.npz"
    assert [s.key for s in dataset_files(w, "valid")][:2] == ["valid/0/img_0_of_8.npz", "valid/1/img_1_of_8.npz"]


def test_padding_prefix_and_flat_layout(tmp_path):
    w = workload(tmp_path, "dataset.num_files_train=168", "dataset.file_prefix=part", "dataset.format=hdf5",
                 "dataset.num_subfolders_train=12")
    keys = [s.key for s in dataset_files(w, "train")]
    assert keys[7] == "train/07/part_007_of_168.hdf5" and keys[167] == "train/11/part_167_of_168.hdf5"
    flat = workload(tmp_path, "dataset.num_files_train=10", "dataset.num_subfolders_train=1")
    assert dataset_files(flat, "train")[3].key == "train/img_03_of_10.npz"


def test_shapes_from_record_length_and_dims(tmp_path):
    w = workload(tmp_path, "dataset.record_length_bytes=150528")
    assert {s.shape for s in dataset_files(w, "train")} == {(387, 387)}  # int(sqrt(150528)) = int(387.98)
    w = workload(tmp_path, "dataset.format=png", "dataset.record_dims=[5,7]", "dataset.record_element_type=int16")
    spec = dataset_files(w, "train")[0]
    assert spec.shape == (5, 7) and spec.dtype == "uint8"  # images are always uint8


def test_stdev_draws_vary_per_file_and_match_dlio(tmp_path):
    args = ("dataset.record_length_bytes=65536", "dataset.record_length_bytes_stdev=16384",
            "dataset.num_files_train=6", "dataset.num_files_eval=2")
    specs = dataset_files(workload(tmp_path, *args), "train") + dataset_files(workload(tmp_path, *args), "valid")
    shapes = [s.shape for s in specs]
    assert len(set(shapes)) > 1
    # DLIO: numpy seeded 10, 2 draws per file from N(d, stdev / 2 / sqrt(record_length)), train then valid.
    np.random.seed(10)
    draws = np.random.normal(256, 16384 / 2 / math.sqrt(65536), 16)
    assert shapes == [(max(int(draws[2 * g]), 1), max(int(draws[2 * g + 1]), 1)) for g in range(8)]
    again = dataset_files(workload(tmp_path, *args, "train.seed=7"), "train")
    assert [s.shape for s in again] == shapes[:6]


def test_discover_dlio_style_dataset(tmp_path):
    w = workload(tmp_path, "dataset.num_files_train=4", "dataset.num_subfolders_train=2")
    generate_dataset(w, processes=1, progress=False)
    storage = data_storage(tmp_path)
    storage.delete("manifest.json")
    storage.put("train/0/notes.txt", b"not a sample")
    found = discover_files(storage, w, "train")
    assert sorted(s.key for s in found) == sorted(s.key for s in dataset_files(w, "train"))
    with pytest.raises(DatasetError, match="expected 6 \\*.npz files but found 4"):
        discover_files(storage, workload(tmp_path, "dataset.num_files_train=6"), "train")
