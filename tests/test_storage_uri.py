"""open_storage(): the URI's scheme picks the backend; the root URI is normalised."""
from __future__ import annotations


import pytest

from dldriver.errors import StorageError
from dldriver.storage import open_storage
from dldriver.storage.azure import AzureStorage, account_from_url
from dldriver.storage.direct import DirectStorage
from dldriver.storage.file import FileStorage
from dldriver.storage.s3 import S3Storage


def test_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for uri in (str(tmp_path / "d"), f"file://{tmp_path}/d", "d", "file://d", "./d/"):
        storage = open_storage(uri)
        assert type(storage) is FileStorage and storage.uri == f"file://{tmp_path}/d", uri
    storage = open_storage(f"direct://{tmp_path}/d")
    assert type(storage) is DirectStorage and storage.uri == f"direct://{tmp_path}/d"


def test_object_stores():
    s3 = open_storage("s3://bucket/some/prefix/")
    assert type(s3) is S3Storage and (s3.bucket, s3.prefix, s3.uri) == ("bucket", "some/prefix",
                                                                       "s3://bucket/some/prefix")
    az = open_storage("az://container")
    assert type(az) is AzureStorage and (az.container, az.prefix, az.uri) == ("container", "", "az://container")


@pytest.mark.parametrize("uri", ["s3://", "az:///x", "file://"])
def test_missing_bucket_or_path(uri):
    with pytest.raises(StorageError, match="required"):
        open_storage(uri)


def test_unknown_scheme_lists_known_ones():
    with pytest.raises(StorageError, match=r"gs://b: unknown storage scheme 'gs'; known: file, direct, s3, az"):
        open_storage("gs://b")


def test_azure_account_names():
    assert account_from_url("https://acct.blob.core.windows.net") == "acct"
    assert account_from_url("http://127.0.0.1:10000/devstoreaccount1") == "devstoreaccount1"
    assert account_from_url("http://localhost:10000/devstoreaccount1/") == "devstoreaccount1"


def test_secrets_never_in_repr():
    s3 = open_storage("s3://b", {"access_key_id": "AKIDSECRET", "secret_access_key": "TOPSECRET"})
    az = open_storage("az://c", {"account_key": "TOPSECRET"})
    for storage in (s3, az):
        assert "SECRET" not in repr(storage) and "SECRET" not in storage.uri
