"""The Storage protocol, checked identically on every backend against the real thing:
a temporary folder (file://), O_DIRECT on it (direct://), SeaweedFS (s3://) and Azurite (az://)."""
from __future__ import annotations

import multiprocessing
import os
import re

import numpy as np
import pytest

from dldriver.errors import StorageError
from dldriver.storage import MissingObjectError, open_storage

MiB = 1 << 20
# Small part and block sizes so that a 12 MiB object really goes through multipart / staged blocks.
OPTIONS = {"s3_part_size": 5 * MiB, "s3_multipart_threshold": 6 * MiB,
           "azure_block_size": 5 * MiB, "azure_single_put_size": 6 * MiB}


@pytest.fixture(params=["file", "direct", "s3", "az"])
def storage(request, tmp_path):
    if request.param == "file":
        uri = f"file://{tmp_path}/root"
    elif request.param == "direct":
        uri = f"direct://{tmp_path}/root"
    elif request.param == "s3":
        uri = request.getfixturevalue("s3_uri") + "/root"
    else:
        uri = request.getfixturevalue("az_uri") + "/root"
    return open_storage(uri, OPTIONS, threads=4)


def test_put_get_stat_exists_delete(storage):
    storage.put("a.bin", b"hello")
    assert storage.get("a.bin") == b"hello"
    assert storage.stat("a.bin") == 5
    assert storage.exists("a.bin") and not storage.exists("b.bin")
    storage.put("a.bin", b"replaced")
    assert storage.get("a.bin") == b"replaced"
    storage.delete("a.bin")
    assert not storage.exists("a.bin")
    storage.delete("a.bin")  # deleting an absent object is not an error


@pytest.mark.parametrize("size", [1000, 12 * MiB + 17])  # one PUT; multipart / staged blocks
def test_put_takes_a_bytearray(storage, size):
    """Generation builds npz and npy files in place, in a bytearray: every backend stores it as is."""
    data = bytearray(os.urandom(size))
    storage.put("built.bin", data)
    assert storage.get("built.bin") == data and storage.stat("built.bin") == size


def test_empty_object(storage):
    storage.put("empty", b"")
    assert storage.get("empty") == b"" and storage.stat("empty") == 0


def test_list_prefixes_nested_sorted(storage):
    keys = ["train/img_10_of_12.npz", "train/img_1_of_12.npz", "train/0/x.npz", "train/1/y.npz",
            "valid/img_0_of_1.npz", "manifest.json"]
    for key in keys:
        storage.put(key, b"x")
    assert storage.list() == sorted(keys)
    assert storage.list("train/") == sorted(k for k in keys if k.startswith("train/"))
    assert storage.list("train/img_1") == ["train/img_10_of_12.npz", "train/img_1_of_12.npz"]
    assert storage.list("train/0/") == ["train/0/x.npz"]
    assert storage.list("nothing/") == []
    sub = storage.child("train")
    assert sub.uri == storage.uri + "/train"
    assert sub.list("0/") == ["0/x.npz"] and sub.get("1/y.npz") == b"x"
    storage.delete_prefix("train/")
    assert storage.list() == ["manifest.json", "valid/img_0_of_1.npz"]


def test_list_sizes(storage):
    for i, key in enumerate(["train/a.npz", "train/0/b.npz", "valid/c.npz"]):
        storage.put(key, b"x" * (10 * i + 1))
    assert storage.list_sizes("train/") == {"train/a.npz": 1, "train/0/b.npz": 11}
    assert storage.list_sizes() == {k: storage.stat(k) for k in storage.list()}
    assert storage.list_sizes("nothing/") == {}
    assert storage.sizes_with_listing == (storage.uri.split(":", 1)[0] in ("s3", "az"))


def test_get_range(storage):
    data = os.urandom(10_000)
    storage.put("r.bin", data)
    for offset, length in [(0, 1), (1, 4095), (4095, 2), (4096, 4096), (9_999, 1), (0, 10_000), (123, 0)]:
        assert storage.get_range("r.bin", offset, length) == data[offset:offset + length]


def test_get_range_past_the_end_names_uri(storage):
    storage.put("r.bin", b"0123456789")
    for offset, length in [(5, 6), (10, 1), (50, 3)]:
        with pytest.raises(StorageError, match=re.escape(f"{storage.uri}/r.bin: ") + ".*past the end"):
            storage.get_range("r.bin", offset, length)


def test_missing_object_names_uri(storage):
    for call in (storage.get, storage.stat, lambda k: storage.get_range(k, 0, 1)):
        with pytest.raises(MissingObjectError, match="^" + re.escape(f"{storage.uri}/no/such.bin: ")):
            call("no/such.bin")


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../up", "a/./b"])
def test_invalid_keys(storage, key):
    with pytest.raises(StorageError, match="invalid object key"):
        storage.put(key, b"x")


def test_open_writer_streams_multipart(storage):
    data = os.urandom(12 * MiB)
    with storage.open_writer("big/ckpt.pt") as writer:
        for i in range(0, len(data), MiB):
            writer.write(data[i:i + MiB])
        assert not storage.exists("big/ckpt.pt")  # nothing visible before the commit
    assert storage.stat("big/ckpt.pt") == len(data)
    assert storage.get("big/ckpt.pt") == data


def test_open_writer_discards_on_exception(storage):
    storage.put("keep.bin", b"old")
    with pytest.raises(RuntimeError):
        with storage.open_writer("keep.bin") as writer:
            writer.write(os.urandom(7 * MiB))  # past one part and one single PUT: an upload really began
            raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        with storage.open_writer("new.bin") as writer:
            writer.write(b"partial")
            raise RuntimeError("interrupted")
    assert storage.get("keep.bin") == b"old"
    assert storage.list() == ["keep.bin"]


def test_small_object_through_writer(storage):
    with storage.open_writer("small.txt") as writer:
        writer.write(b"a")
        writer.write(b"b")
    assert storage.get("small.txt") == b"ab"


def test_large_put(storage):
    data = os.urandom(12 * MiB + 17)
    storage.put("large.bin", data)
    assert storage.get("large.bin") == data
    assert storage.get_range("large.bin", 5 * MiB - 3, 7) == data[5 * MiB - 3:5 * MiB + 4]


@pytest.mark.parametrize("size", [0, 1000, 3 * MiB + 17])
def test_get_into_fills_the_callers_buffers_in_order(storage, size):
    """get_into reads the whole object into the buffers the caller makes once it knows the size."""
    data = os.urandom(size)
    storage.put("into.bin", data)
    asked, parts = [], []

    def buffers(n):
        asked.append(n)
        parts.extend([bytearray(n // 3), np.zeros(n - n // 3 - n // 5, np.uint8), bytearray(n // 5)])
        return parts

    got = storage.get_into("into.bin", buffers)
    assert got == size and asked == [size]
    assert b"".join(bytes(p) for p in parts) == data


def test_get_into_of_a_missing_object_names_uri(storage):
    with pytest.raises(MissingObjectError, match="^" + re.escape(f"{storage.uri}/no/such.bin: ")):
        storage.get_into("no/such.bin", lambda n: [bytearray(n)])


def test_get_into_keeps_the_connection_usable(storage):
    """Many objects read into buffers one after another on a pool of a few connections: each read
    leaves its connection clean for the next (a body read apart from the SDK must end it properly)."""
    blobs = {f"c/{i}.bin": os.urandom(70_000 + i) for i in range(24)}
    for key, blob in blobs.items():
        storage.put(key, blob)
    for key, blob in blobs.items():
        out = bytearray(len(blob))
        assert storage.get_into(key, lambda n: [out]) == len(blob) and out == blob
        assert storage.get_range(key, 5, 3) == blob[5:8]


def test_local_path(storage):
    storage.put("p/q.bin", b"x")
    path = storage.local_path("p/q.bin")
    if storage.scheme in ("file", "direct"):
        assert open(path, "rb").read() == b"x"
    else:
        assert path is None


def test_one_client_per_process_and_settings(storage):
    """Object stores share one SDK client per process and settings (making one costs tens of ms), and a
    forked process makes its own (pooled connections must not be shared across processes)."""
    storage.connect()  # a no-op where there is nothing to connect
    if storage.local_path("k") is not None:
        return
    client = storage.client
    assert open_storage(storage.uri, OPTIONS, threads=4).child("a").client is client
    assert open_storage(storage.uri, OPTIONS, threads=64).client is not client  # another pool size

    def in_child():
        assert storage.client is not client
        storage.put("forked", b"x")

    child = multiprocessing.get_context("fork").Process(target=in_child)
    child.start()
    child.join()
    assert child.exitcode == 0 and storage.get("forked") == b"x" and storage.client is client
