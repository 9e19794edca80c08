"""dldriver.frameworks.pytorch end to end: real bytes from file, direct, S3 and Azure, sharding over
ranks, shuffling, DataLoader workers under fork and spawn, pickling, profile keys and errors."""
from __future__ import annotations

import io
import logging
import pickle

import numpy as np
import pytest
import torch

from dldriver.errors import ConfigError, DatasetError, DlDriverError, FormatError
from dldriver.frameworks.pytorch import (DlioPyTorchDataLoader, DlioPyTorchDataset,
                                         DlioPyTorchIterableDataset)
from dldriver.storage import open_storage

from test_run_helpers import make_dataset, workload_doc

FILES, SAMPLES = 5, 3  # 15 samples: uneven against batch 2 and 2 or 3 ranks


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    root = tmp_path_factory.mktemp("fw-torch")
    doc = workload_doc(root / "d", "npz", loader="pytorch", files=FILES, samples=SAMPLES)
    make_dataset(root, doc)
    return doc


def expected_samples(uri: str) -> dict[bytes, tuple[int, int]]:
    """sample bytes -> (file, sample), decoded by numpy from the stored objects' bytes."""
    storage = open_storage(uri)
    out = {}
    for f in range(FILES):
        arrays = np.load(io.BytesIO(storage.get(f"train/img_{f}_of_{FILES}.npz")))["x"]
        for s in range(SAMPLES):
            out[np.ascontiguousarray(arrays[..., s]).tobytes()] = (f, s)
    assert len(out) == FILES * SAMPLES
    return out


def keys_of(batches, expected) -> list[tuple[int, int]]:
    return [expected[row.numpy().tobytes()] for batch in batches for row in batch]


def _backend(kind, tmp_path, request) -> str:
    if kind in ("file", "direct"):
        return f"{kind}://{tmp_path}/data"
    return request.getfixturevalue({"s3": "s3_uri", "az": "az_uri"}[kind]) + "/data"


@pytest.mark.parametrize("backend", ["file", "direct", "s3", "az"])
def test_samples_are_the_generated_bytes_on_every_backend(tmp_path, request, backend):
    uri = _backend(backend, tmp_path, request)
    doc = workload_doc(uri, "npz", loader="pytorch", files=FILES, samples=SAMPLES)
    make_dataset(tmp_path, doc)
    expected = expected_samples(uri)
    loader = DlioPyTorchDataLoader.from_config(doc, num_workers=2 if backend == "s3" else 0, drop_last=False)
    got = keys_of(loader, expected)
    assert got == [(f, s) for f in range(FILES) for s in range(SAMPLES)]
    nbytes, samples = loader.dataset.take_counts()
    assert samples == FILES * SAMPLES and nbytes > FILES * SAMPLES * 256


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [True, False])
def test_every_sample_once_per_epoch_over_ranks(npz, world, drop_last):
    expected = expected_samples(f"file://{npz['dataset']['data_folder']}")
    per_rank = []
    for rank in range(world):
        loader = DlioPyTorchDataLoader.from_config(npz, rank=rank, world_size=world, shuffle=True,
                                                   drop_last=drop_last, num_workers=0)
        loader.set_epoch(2)
        per_rank.append(keys_of(loader, expected))
    read = [k for keys in per_rank for k in keys]
    assert len(read) == len(set(read))
    total = FILES * SAMPLES
    if drop_last:
        steps = total // (2 * world)
        assert all(len(keys) == steps * 2 for keys in per_rank) and len(read) == steps * 2 * world
    else:
        assert sorted(read) == sorted(expected.values())


def test_shuffle_changes_the_order_between_epochs_not_the_set(npz):
    ds = DlioPyTorchDataset(npz, shuffle=True, drop_last=False)
    orders = []
    for epoch in (1, 2):
        ds.set_epoch(epoch)
        orders.append(list(ds.sampler))
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1]) == list(range(15))
    ds.set_epoch(1)
    assert list(ds.sampler) == orders[0]  # the same epoch reads the same order again
    assert list(DlioPyTorchDataset(npz, shuffle=False, drop_last=False).sampler) == list(range(15))


@pytest.mark.parametrize("context", ["fork", "spawn"])
@pytest.mark.parametrize("iterable", [False, True])
def test_workers_under_fork_and_spawn_read_the_samplers_batches(npz, context, iterable):
    expected = expected_samples(f"file://{npz['dataset']['data_folder']}")
    loader = DlioPyTorchDataLoader.from_config(npz, iterable=iterable, num_workers=2, shuffle=True,
                                               multiprocessing_context=context, persistent_workers=True)
    assert loader.persistent_workers and loader.num_workers == 2
    sampler = loader.dataset.reading.sampler
    for epoch in (1, 2):  # set_epoch reaches the persistent workers
        loader.set_epoch(epoch)
        got = [keys_of([b], expected) for b in loader]
        assert got == sampler.batches(epoch)
    assert loader.dataset.take_counts()[1] == 2 * 7 * 2


def test_iterable_batches_are_read_whole_and_not_restacked(npz):
    from torch.utils.data import DataLoader, default_collate

    from dldriver.frameworks.pytorch import collate, make_dataloader

    expected = expected_samples(f"file://{npz['dataset']['data_folder']}")
    data = DlioPyTorchIterableDataset(npz, drop_last=False)
    rows = list(data)
    assert [expected[r.numpy().tobytes()] for r in rows] == [(f, s) for f in range(FILES) for s in range(SAMPLES)]
    first = collate(rows[:2])  # both rows of the first batch: that batch's tensor itself, no copy
    assert first.data_ptr() == rows[0].data_ptr() and first.shape == (2, 16, 16)
    mixed = collate(rows[1:3])  # rows of two batches: stacked as default_collate does
    assert mixed.data_ptr() not in (rows[1].data_ptr(), rows[2].data_ptr())
    assert torch.equal(mixed, default_collate(rows[1:3]))
    # a DataLoader of another batch size, or torch's own collate, still gets the right samples
    for loader in (make_dataloader(data, num_workers=0, batch_size=3), DataLoader(data, batch_size=2)):
        assert [expected[r.numpy().tobytes()] for b in loader for r in b] == [
            (f, s) for f in range(FILES) for s in range(SAMPLES)]


def test_pickled_dataset_reads_the_same(npz):
    for kind in (DlioPyTorchDataset, DlioPyTorchIterableDataset):
        ds = kind(npz)
        copy = pickle.loads(pickle.dumps(ds))
        first = ds[4] if kind is DlioPyTorchDataset else next(iter(ds))
        again = copy[4] if kind is DlioPyTorchDataset else next(iter(copy))
        assert torch.equal(first, again)


def test_return_types(npz):
    expected = expected_samples(f"file://{npz['dataset']['data_folder']}")
    raw = DlioPyTorchDataset(npz, return_type="bytes")[4]
    assert isinstance(raw, bytes) and expected[raw] == (1, 1)
    arr = DlioPyTorchDataset(npz, return_type="reader")[4]
    assert isinstance(arr, np.ndarray) and expected[arr.tobytes()] == (1, 1)
    assert isinstance(DlioPyTorchDataset(npz)[4], torch.Tensor)


def test_profile_keys_shape_the_dataloader(npz, caplog):
    doc = {**npz, "pytorch_config": {"batch_size": 3, "num_workers": 2, "prefetch_factor": 5,
                                     "persistent_workers": False, "drop_last": False, "pin_memory": True}}
    with caplog.at_level(logging.WARNING, logger="dldriver"):
        loader = DlioPyTorchDataLoader.from_config(doc, multiprocessing_context="fork")
    assert (loader.batch_size, loader.num_workers, loader.prefetch_factor) == (3, 2, 5)
    assert loader.persistent_workers is False and loader.drop_last is False
    assert loader.pin_memory is False and "no CUDA device" in caplog.text  # CPU-only machine
    assert [len(b) for b in loader] == [3, 3, 3, 3, 3]
    origins = loader.dataset.profile.origins
    assert origins["batch_size"] == "<mapping>: pytorch_config.batch_size" and origins["seed"] == "train.seed"
    assert DlioPyTorchDataset(doc, batch_size=2).profile.origins["batch_size"] == "argument batch_size"


def test_profile_falls_back_to_dlio_keys(npz):
    doc = {**npz, "reader": {**npz["reader"], "batch_size": 4, "read_threads": 0, "prefetch_size": 6}}
    loader = DlioPyTorchDataLoader.from_config(doc)
    assert (loader.batch_size, loader.num_workers) == (4, 0)
    p = DlioPyTorchDataset(doc, num_workers=3).profile
    assert p.num_workers == 3 and p.prefetch_factor == 6  # ceil(prefetch_size / read_threads), read_threads 0 -> 1


def test_seed_changes_the_order(npz):
    a = list(DlioPyTorchDataset(npz, shuffle=True, seed=1, drop_last=False).sampler)
    b = list(DlioPyTorchDataset(npz, shuffle=True, seed=2, drop_last=False).sampler)
    assert a != b and sorted(a) == sorted(b)


def test_rank_from_the_launcher_environment_unless_distributed_is_off(npz, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ds = DlioPyTorchDataset(npz)
    assert (ds.rank, ds.world_size) == (1, 2) and len(ds.sampler) == 6
    alone = DlioPyTorchDataset(npz, distributed=False)
    assert (alone.rank, alone.world_size) == (0, 1) and len(alone.sampler) == 14


def test_from_uri_uses_the_manifest(npz):
    ds = DlioPyTorchDataset.from_uri(npz["dataset"]["data_folder"])
    assert len(ds) == 15 and ds.workload.dataset.format == "npz"
    loader = DlioPyTorchDataLoader.from_uri(npz["dataset"]["data_folder"], "npz", batch_size=5)
    assert [b.shape[0] for b in loader] == [5, 5, 5]


@pytest.mark.parametrize("profile, path", [
    ({"batch_sise": 2}, "pytorch_config.batch_sise: unknown key"),
    ({"num_workers": "two"}, "pytorch_config.num_workers: expected an integer"),
    ({"return_type": "json"}, "pytorch_config.return_type: unknown value 'json'"),
    ({"prefetch_factor": 0}, "pytorch_config.prefetch_factor: must be >= 1"),
    ({"shuffle": 1}, "pytorch_config.shuffle: expected true or false"),
])
def test_bad_profile_keys_name_their_path(npz, profile, path):
    with pytest.raises(ConfigError, match=path):
        DlioPyTorchDataset({**npz, "pytorch_config": profile})
    nested = {**npz, "framework_profiles": {"pytorch": profile}}
    with pytest.raises(ConfigError, match=path.replace("pytorch_config", "framework_profiles.pytorch")):
        DlioPyTorchDataset(nested)


def test_both_profile_forms_are_an_error(npz):
    doc = {**npz, "pytorch_config": {}, "framework_profiles": {"pytorch": {"batch_size": 2}}}
    with pytest.raises(ConfigError, match="framework_profiles: give the profiles either"):
        DlioPyTorchDataset(doc)


def test_missing_dataset_is_raised_where_the_user_calls(tmp_path):
    doc = workload_doc(tmp_path / "nothing", "npz", loader="pytorch")
    with pytest.raises(DatasetError, match="dldriver generate"):
        DlioPyTorchDataLoader.from_config(doc)


def test_unreachable_store_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    with pytest.raises(DlDriverError) as err:
        DlioPyTorchDataset(workload_doc("s3://nobucket/d", "npz", loader="pytorch"))
    assert "\n" not in str(err.value) and "nobucket" in str(err.value)


def test_a_worker_error_reaches_the_user_as_one_line(tmp_path):
    doc = workload_doc(tmp_path / "d", "npz", loader="pytorch", files=2, samples=1)
    make_dataset(tmp_path, doc)
    path = tmp_path / "d" / "train" / "img_1_of_2.npz"
    raw = bytearray(path.read_bytes())
    raw[40:200] = b"\xff" * 160
    path.write_bytes(bytes(raw))
    loader = DlioPyTorchDataLoader.from_config(doc, num_workers=2, batch_size=1)
    with pytest.raises(FormatError) as err:
        list(loader)
    assert "img_1_of_2.npz" in str(err.value) and "\n" not in str(err.value)


def test_batches_kept_without_the_ring_and_in_a_plain_dataloader(npz):
    """batch_ring=False and a user's own DataLoader (torch's collate) hand out batches that may be kept."""
    from torch.utils.data import DataLoader

    expected = expected_samples(f"file://{npz['dataset']['data_folder']}")
    loader = DlioPyTorchDataLoader.from_config(npz, num_workers=2, batch_ring=False,
                                               multiprocessing_context="fork")
    assert keys_of(list(loader), expected) == [k for b in loader.dataset.reading.sampler.batches(1) for k in b]
    ds = DlioPyTorchDataset(npz, drop_last=False)
    plain = DataLoader(ds, batch_size=4, num_workers=2, sampler=ds.sampler, multiprocessing_context="spawn")
    kept = list(plain)
    assert [b.shape[0] for b in kept] == [4, 4, 4, 3]
    assert keys_of(kept, expected) == [(f, s) for f in range(FILES) for s in range(SAMPLES)]


def test_ring_batches_over_passes_that_stop_early(npz):
    """Ring batches (workers not persistent) are right after a pass broken off, and in the next epoch."""
    expected = expected_samples(f"file://{npz['dataset']['data_folder']}")
    loader = DlioPyTorchDataLoader.from_config(npz, num_workers=2, shuffle=True, persistent_workers=False,
                                               prefetch_factor=1, multiprocessing_context="fork")
    assert loader.batch_size == 2 and loader.drop_last
    sampler = loader.dataset.reading.sampler
    for b in loader:
        assert keys_of([b], expected) == sampler.batches(1)[0]
        break
    loader.set_epoch(2)
    assert [keys_of([b], expected) for b in loader] == sampler.batches(2)
