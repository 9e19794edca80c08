"""Loading details: both key spellings, the workload wrapper, overrides, time values, URIs."""
import os
from pathlib import Path

import pytest

from dldriver.config import load_workload, resolved_dict
from dldriver.config.overrides import OverrideError, parse_override
from dldriver.config.uri import checkpoint_uri, dataset_uri, storage_options
from dldriver.errors import ConfigError


def write(tmp_path, text, name="w.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dlio_2_0_0_spellings(tmp_path):
    w = load_workload(write(tmp_path, "model: resnet50\ndataset:\n  record_length: 1000\n  record_length_stdev: 10\n"
                                      "  record_length_resize: 64\ncheckpoint:\n  model_size: 77\n"
                                      "data_reader:\n  batch_size: 3\n"))
    assert (w.model.name, w.model.model_size_bytes, w.reader.batch_size) == ("resnet50", 77, 3)
    d = w.dataset
    assert (d.record_length_bytes, d.record_length_bytes_stdev, d.record_length_bytes_resize) == (1000, 10, 64)


def test_hydra_wrapper_and_defaults(tmp_path):
    w = load_workload(write(tmp_path, "workload:\n  dataset:\n    format: npz\n"))
    # DLIO's code defaults, not its docs': 8 train files, prefetch 2, ffn 8192.
    assert (w.dataset.format, w.dataset.num_files_train, w.reader.prefetch_size) == ("npz", 8, 2)
    assert w.model.transformer.ffn_hidden_size == 8192


def test_overrides_in_every_form(tmp_path):
    path = write(tmp_path, "dataset: {format: npz}\nreader: {data_loader: pytorch, transfer_size: 4}\n"
                           "framework: pytorch\ntrain: {epochs: 1}\n")
    w = load_workload(path, ["++workload.dataset.num_files_train=8", "+workload.dataset.file_prefix=x",
                             "workload.train.epochs=2", "reader.batch_size=3", "dataset.record_dims=[3,224,224]",
                             "++workload.checkpoint.randomize_tensor=False", "++workload.checkpoint.ksm={}",
                             "train.computation_time.mean=1.5", "~reader.transfer_size",
                             "++workload.dataset.record_length=99", "model=unet3d"])
    assert (w.dataset.num_files_train, w.dataset.file_prefix, w.train.epochs) == (8, "x", 2)
    assert (w.reader.batch_size, w.dataset.record_dims, w.reader.transfer_size) == (3, [3, 224, 224], None)
    assert w.checkpoint.ksm.await_time == 200  # {} enables KSM with DLIO's defaults
    assert w.train.computation_time.expected() == 1.5
    assert (w.dataset.record_length_bytes, w.model.name) == (99, "unet3d")


def test_override_parsing():
    o = parse_override("++workload.dataset.hdf5.chunk_dims=[1, 2]")
    assert (o.path, o.value, o.delete) == (("dataset", "hdf5", "chunk_dims"), [1, 2], False)
    assert parse_override("dataset.file_prefix=").value == ""
    assert parse_override("~workload.reader.transfer_size").delete
    with pytest.raises(OverrideError, match="'dataset num=3' is malformed"):
        parse_override("dataset num=3")


@pytest.mark.parametrize("value,expected", [
    ("0.5", {"type": "constant", "mean": 0.5}),
    ("{mean: 0.5}", {"type": "constant", "mean": 0.5}),
    ("{mean: 0.5, stdev: 0.1}", {"type": "normal", "mean": 0.5, "stdev": 0.1}),
    ("{type: normal, mean: 0.5, stdev: 0.1}", {"type": "normal", "mean": 0.5, "stdev": 0.1}),
    ("{type: uniform, min: 0.1, max: 0.2}", {"type": "uniform", "min": 0.1, "max": 0.2}),
    ("{type: gamma, shape: 2, scale: 0.1}", {"type": "gamma", "shape": 2.0, "scale": 0.1}),
    ("{type: exponential, scale: 0.1}", {"type": "exponential", "scale": 0.1}),
    ("{type: poisson, lam: 2}", {"type": "poisson", "lam": 2.0}),
])
def test_time_forms(tmp_path, value, expected):
    w = load_workload(write(tmp_path, f"train:\n  computation_time: {value}\n"))
    assert resolved_dict(w)["train"]["computation_time"] == expected


def test_stdev_sibling_makes_a_normal(tmp_path):
    w = load_workload(write(tmp_path, "train:\n  computation_time: 0.5\n  computation_time_stdev: 0.1\n"))
    assert resolved_dict(w)["train"]["computation_time"] == {"type": "normal", "mean": 0.5, "stdev": 0.1}


def test_problems_name_the_key_as_written(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_workload(write(tmp_path, "dataset:\n  record_length: -3\n"
                                      "train:\n  computation_time: 1\n  computation_time_stdev: x\n"))
    problems = err.value.problems
    assert "dataset.record_length: must be > 0, got -3" in problems
    assert "train.computation_time_stdev: expected a finite number, got 'x'" in problems


@pytest.mark.parametrize("storage,folder,expected", [
    ("", "data/x/", "file://{cwd}/data/x"),
    ("", "/abs/data", "file:///abs/data"),
    ("", "file:///abs/data/", "file:///abs/data"),
    ("", "file://rel/data", "file://{cwd}/rel/data"),
    ("", "direct:///abs/data", "direct:///abs/data"),
    ("", "s3://bucket/pre/fix/", "s3://bucket/pre/fix"),
    ("", "az://container", "az://container"),
    ("storage: {storage_root: /root}\n", "data", "file:///root/data"),
    ("storage: {storage_type: direct}\n", "data", "direct://{cwd}/data"),
    ("storage: {storage_type: s3, storage_root: bucket}\n", "./data/train/", "s3://bucket/data/train"),
    ("storage: {storage_type: s3, storage_root: s3://bucket}\n", "data", "s3://bucket/data"),
    ("storage: {storage_type: azure, storage_root: box}\n", "data", "az://box/data"),
    ("storage: {storage_type: s3, storage_root: bucket}\n", "s3://other/p", "s3://other/p"),
])
def test_uris(tmp_path, storage, folder, expected):
    w = load_workload(write(tmp_path, f"{storage}dataset: {{data_folder: '{folder}'}}\n"))
    assert dataset_uri(w) == expected.format(cwd=os.getcwd())


def test_checkpoint_uri_and_options(tmp_path):
    w = load_workload(write(tmp_path, "storage:\n  storage_type: s3\n  storage_root: bkt\n"
                                      "  storage_options: {region: eu-west-1}\n"
                                      "checkpoint: {checkpoint_folder: ckpt/}\n"))
    assert checkpoint_uri(w) == "s3://bkt/ckpt"
    assert storage_options(w) == {"region": "eu-west-1"}
