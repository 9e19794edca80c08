"""generate and verify against real object stores (SeaweedFS for S3, Azurite for Azure)."""
from __future__ import annotations

import pytest

from dldriver.config.uri import dataset_uri
from dldriver.formats import get_format
from dldriver.formats.layout import dataset_files
from dldriver.generate import generate_dataset, verify_dataset
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



@pytest.mark.parametrize("env", ["s3_env", "azure_env"])
def test_generate_into_a_bucket_that_does_not_exist_yet(tmp_path, request, env):
    """The first put creates the bucket (container); listing it for foreign files meanwhile is no error."""
    import uuid

    request.getfixturevalue(env)
    scheme = "s3" if env == "s3_env" else "az"
    w = workload(tmp_path, f"dataset.data_folder={scheme}://fresh-{uuid.uuid4().hex[:12]}/data")
    generate_dataset(w, processes=2, progress=False)
    assert verify_dataset(w) == []
