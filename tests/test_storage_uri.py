"""open_storage(): the URI's scheme picks the backend; the root URI is normalised."""
from __future__ import annotations

import re

import pytest

from dldriver.errors import StorageError
from dldriver.storage import open_storage
from dldriver.storage.azure import AzureStorage, account_from_url
from dldriver.storage.direct import DirectStorage
from dldriver.storage.file import FileStorage
from dldriver.storage.s3 import S3Storage
from dldriver.uri import SCHEMES, local_path, root_and_prefix, split_uri


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
    with pytest.raises(StorageError, match=re.escape("unknown URI scheme gs:// in 'gs://b'; known schemes: file://, "
                                                     "direct://, s3://, az:// (or a plain path)")):
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


def test_one_table_of_schemes_and_one_parser(tmp_path):
    """Every scheme of dldriver.uri's table opens a backend of that scheme; the parser reads what
    config, storage and outputs read."""
    for scheme, entry in SCHEMES.items():
        uri = f"{scheme}://{tmp_path}/d" if entry.root is None else f"{scheme}://box/p"
        assert open_storage(uri).uri == uri
    assert split_uri("S3://b/a") == ("s3", "b/a") and split_uri("rel/a://b") == (None, "rel/a://b")
    assert root_and_prefix("b/a//./c/") == ("b", "a/c") and root_and_prefix("/x") == ("", "x")
    assert local_path("direct:///x") == "/x" and local_path("y") == "y" and local_path("az://c/p") is None
