"""generate and verify against real object stores (SeaweedFS for S3, Azurite for Azure)."""
from __future__ import annotations

import pytest

from dldriver.config.uri import dataset_uri
from dldriver.dataset.layout import dataset_files
from dldriver.dataset.manifest import load_manifest
from dldriver.dataset.verify import verify_dataset
from dldriver.formats import get_format
from dldriver.generate import generate_dataset
from dldriver.storage import open_storage
from test_formats_support import workload


@pytest.mark.parametrize("backend", ["s3_uri", "az_uri"])
def test_generate_verify_read_on_object_store(tmp_path, request, backend):
    root = request.getfixturevalue(backend)
    w = workload(tmp_path, f"dataset.data_folder={root}/data", "dataset.format=hdf5",
                 "dataset.num_subfolders_train=2", "dataset.num_samples_per_file=2")
    manifest = generate_dataset(w, processes=2, progress=False)
    assert manifest["complete"] and len(manifest["files"]) == 3
    assert verify_dataset(w) == []
    storage = open_storage(dataset_uri(w))
    spec = dataset_files(w, "train")[1]
    assert spec.key == "train/1/img_1_of_2.hdf5"
    assert get_format("hdf5").open_file(storage, spec).read_sample(1).shape == (8, 8)
    storage.delete(spec.key)
    assert any(spec.key in p and "missing" in p for p in verify_dataset(w))
    generate_dataset(w, processes=1, progress=False)
    assert verify_dataset(w) == []


@pytest.mark.parametrize("backend", ["s3_uri", "az_uri"])
def test_resume_on_an_object_store_checks_sizes_by_one_listing(tmp_path, request, backend, monkeypatch):
    """A resume asks the store for no object one by one (a million HEADs for a million files): it lists
    the sizes once and rewrites exactly the files that are missing or of the wrong size."""
    root = request.getfixturevalue(backend)
    w = workload(tmp_path, f"dataset.data_folder={root}/data", "dataset.format=tfrecord",
                 "dataset.num_files_train=6", "dataset.num_samples_per_file=2")
    generate_dataset(w, processes=2, progress=False)
    storage = open_storage(dataset_uri(w))
    gone, cut = dataset_files(w, "train")[1].key, dataset_files(w, "train")[4].key
    storage.delete(gone)
    storage.put(cut, storage.get(cut)[:-3])
    kind = type(storage)
    calls, put = [], kind.put
    monkeypatch.setattr(kind, "stat", lambda self, key: calls.append(("stat", key)))
    monkeypatch.setattr(kind, "put", lambda self, key, data, fsync=False: calls.append(("put", key))
                        or put(self, key, data, fsync))
    generate_dataset(w, processes=1, progress=False)
    index = {f"index/{key}.idx" for key in (gone, cut)}
    assert sorted(key for kind_, key in calls) == sorted({gone, cut, "manifest.json"} | index)
    monkeypatch.undo()
    assert verify_dataset(w) == []


@pytest.mark.parametrize("env", ["s3_env", "azure_env"])
def test_generate_into_a_bucket_that_does_not_exist_yet(tmp_path, request, env):
    """The first put creates the bucket (container); listing it for foreign files meanwhile is no error."""
    import uuid

    request.getfixturevalue(env)
    scheme = "s3" if env == "s3_env" else "az"
    w = workload(tmp_path, f"dataset.data_folder={scheme}://fresh-{uuid.uuid4().hex[:12]}/data")
    generate_dataset(w, processes=2, progress=False)
    assert verify_dataset(w) == []


@pytest.mark.parametrize("backend", ["s3_uri", "az_uri"])
def test_quick_verify_on_an_object_store_is_one_listing(tmp_path, request, backend, monkeypatch):
    """`dldriver verify --quick` (the workflow runs it after every generate) asks for no object one by
    one on an object store, and still names missing, cut-short and extra files."""
    root = request.getfixturevalue(backend)
    w = workload(tmp_path, f"dataset.data_folder={root}/data", "dataset.num_files_train=4")
    generate_dataset(w, processes=1, progress=False)
    storage = open_storage(dataset_uri(w))
    gone, cut = dataset_files(w, "train")[0].key, dataset_files(w, "train")[2].key
    storage.delete(gone)
    storage.put(cut, storage.get(cut)[:-5])
    storage.put("train/stray.npz", b"x")
    size = {e["key"]: e["size"] for e in load_manifest(storage)["files"]}
    kind, get = type(storage), type(storage).get
    monkeypatch.setattr(kind, "stat", lambda self, key: pytest.fail(f"stat({key}) in a quick verify"))
    monkeypatch.setattr(kind, "get", lambda self, key: get(self, key) if key == "manifest.json"
                        else pytest.fail(f"get({key}) in a quick verify"))
    assert verify_dataset(w, checksums=False) == [
        f"{root}/data/{gone}: missing",
        f"{root}/data/{cut}: truncated ({size[cut] - 5} of {size[cut]} bytes)",
        f"{root}/data/train/stray.npz: extra file, not in the manifest"]
