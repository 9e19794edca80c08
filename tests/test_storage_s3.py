"""S3 specifics against SeaweedFS: paginated listing and batch deletes, bucket creation on write,
aborted multipart uploads, and one clear error naming the URI for each failure."""
from __future__ import annotations

import http.client
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import numpy as np
import pytest

from conftest import free_port_block, unique_name
from dldriver.errors import StorageError
from dldriver.storage import MissingContainerError, open_storage
from dldriver.storage.s3 import parse_timestamp

MiB = 1 << 20


def test_listing_and_deleting_past_one_page(s3_uri):
    storage = open_storage(s3_uri, threads=8)
    keys = [f"train/{i // 100}/s_{i:04d}.bin" for i in range(1005)]  # S3 pages hold 1000 keys
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: storage.put(k, b"x"), keys))
    assert storage.list() == sorted(keys)
    assert storage.list("train/3/") == [k for k in keys if k.startswith("train/3/")]
    storage.delete_prefix("train/")  # two DeleteObjects batches
    assert storage.list() == []


def test_put_creates_a_missing_bucket(s3_env):
    storage = open_storage(f"s3://{unique_name('new')}/data")
    storage.put("a.bin", b"abc")
    assert storage.get("a.bin") == b"abc"


def test_streamed_writer_into_a_missing_bucket(s3_env):
    storage = open_storage(f"s3://{unique_name('new')}", {"s3_part_size": 5 * MiB})
    data = os.urandom(11 * MiB)
    with storage.open_writer("ckpt/model.pt") as writer:
        writer.write(data)
    assert storage.get("ckpt/model.pt") == data


def test_missing_bucket_is_an_error_for_reads(s3_env):
    storage = open_storage(f"s3://{unique_name('absent')}/p")
    for call in (lambda: storage.get("k"), lambda: storage.stat("k"), lambda: storage.list(),
                 lambda: storage.get_range("k", 0, 1)):
        with pytest.raises(MissingContainerError, match=rf"^{re.escape(storage.uri)}.*: bucket '.*' does not exist"):
            call()
    assert not storage.exists("k")


def test_aborted_writer_leaves_no_upload(s3_uri):
    storage = open_storage(s3_uri, {"s3_part_size": 5 * MiB})
    with pytest.raises(KeyError):
        with storage.open_writer("x.bin") as writer:
            writer.write(os.urandom(6 * MiB))
            raise KeyError("stop")
    assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    assert storage.list() == []


def test_wrong_secret_names_uri_and_hides_secret(s3_uri):
    storage = open_storage(s3_uri, {"secret_access_key": "not-the-secret-1234"})
    for call in (lambda: storage.get("k"), lambda: storage.put("k", b"x"), lambda: storage.list()):
        with pytest.raises(StorageError) as info:
            call()
        message = str(info.value)
        assert message.startswith(s3_uri) and "SignatureDoesNotMatch" in message
        assert "not-the-secret-1234" not in message and os.environ["AWS_SECRET_ACCESS_KEY"] not in message


def test_unknown_access_key(s3_uri):
    storage = open_storage(s3_uri, {"access_key_id": "nobody", "secret_access_key": "x"})
    with pytest.raises(StorageError, match=rf"^{re.escape(s3_uri)}/k: credentials refused"):
        storage.get("k")


def test_unreachable_endpoint_is_quick_and_clear():
    port = free_port_block(1)  # nothing listens there
    storage = open_storage("s3://b/p", {"endpoint_url": f"http://127.0.0.1:{port}", "access_key_id": "a",
                                        "secret_access_key": "b", "s3_max_attempts": 2, "connect_timeout": 1})
    start = time.monotonic()
    with pytest.raises(StorageError, match=rf"^s3://b/p/k: cannot reach the S3 endpoint http://127.0.0.1:{port} "
                                           r"after 2 attempt\(s\)"):
        storage.get("k")
    assert time.monotonic() - start < 10


def test_child_shares_the_client(s3_uri):
    storage = open_storage(s3_uri)
    storage.put("a/b/c", b"1")
    child = storage.child("a").child("b")
    assert child.uri == f"{s3_uri}/a/b" and child.get("c") == b"1" and child.client is storage.client


def test_client_settings(s3_env):
    storage = open_storage("s3://b", {"s3_max_attempts": "7", "s3_retry_mode": "adaptive"}, threads=32)
    config = storage.client.meta.config
    assert config.max_pool_connections == 32
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert config.s3["addressing_style"] == "path"


@pytest.mark.parametrize("value", ["Wed, 02 Dec 2026 05:00:00 GMT", "Sun, 29 Feb 2032 23:59:59 GMT",
                                   "2026-12-02T05:00:00.000Z", "2026-12-02T05:00:00.123+02:00",
                                   "2026-12-02T05:00:00", "Wed, 2 Dec 2026 05:00:00 GMT", 1700000000, "1700000000"])
def test_timestamps_parse_as_botocore_parses_them(value):
    from botocore.utils import parse_timestamp as botocore_parse

    ours, theirs = parse_timestamp(value), botocore_parse(value)
    assert ours == theirs and ours.utcoffset() == theirs.utcoffset()


def test_a_bad_timestamp_is_refused_as_botocore_refuses_it():
    with pytest.raises(ValueError, match="day is out of range"):
        parse_timestamp("Mon, 29 Feb 2027 05:00:00 GMT")


def test_responses_carry_their_timestamps_as_aware_datetimes(s3_uri):
    storage = open_storage(s3_uri)
    storage.put("k", b"x")
    modified = storage.client.head_object(Bucket=s3_uri[5:], Key="k")["LastModified"]
    listed = storage.client.list_objects_v2(Bucket=s3_uri[5:])["Contents"][0]["LastModified"]
    for stamp in (modified, listed):
        assert isinstance(stamp, datetime) and abs(datetime.now(timezone.utc) - stamp).total_seconds() < 600


def test_puts_are_signed_without_hashing_the_body(s3_uri):
    """The signature covers the headers, not a SHA-256 of the body (botocore's default for plain http):
    the server takes such a PUT, and it never sends the body's hash."""
    storage = open_storage(s3_uri)
    sent = []
    storage.client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(request.headers["x-amz-content-sha256"]))
    storage.put("unsigned/x", b"payload" * 1000)
    assert sent == [b"UNSIGNED-PAYLOAD"] or sent == ["UNSIGNED-PAYLOAD"]
    assert storage.get("unsigned/x") == b"payload" * 1000


def _recording_readinto(monkeypatch, cut_first: bool = False):
    """http.client's readinto, recording (address, bytes) of each read; with cut_first the first read
    finds the connection closed, as a body cut off mid-stream does."""
    reads = []
    real = http.client.HTTPResponse.readinto

    def readinto(self, b):
        if cut_first and not reads:
            reads.append((0, 0))
            self._close_conn()
            return 0
        n = real(self, b)
        reads.append((np.frombuffer(b, np.uint8).ctypes.data, n))
        return n

    monkeypatch.setattr(http.client.HTTPResponse, "readinto", readinto)
    return reads


def test_get_into_receives_the_body_straight_into_the_callers_memory(s3_uri, monkeypatch):
    storage = open_storage(s3_uri)
    data = os.urandom(3 * MiB + 5)
    storage.put("body.bin", data)
    out = np.zeros(len(data), np.uint8)
    reads = _recording_readinto(monkeypatch)
    assert storage.get_into("body.bin", lambda n: [out]) == len(data)
    assert out.tobytes() == data
    start = out.ctypes.data
    # Every byte of the body came from the socket in a read whose target was the caller's array.
    assert sum(n for address, n in reads if start <= address < start + len(out)) == len(data)


def test_get_into_hands_each_connection_back_to_the_pool(s3_uri):
    # The body is read apart from urllib3's own read(): each finished read must still return its
    # connection to the pool, or every GET would open a new one.
    storage = open_storage(s3_uri)
    storage.put("c.bin", os.urandom(200_000))
    pools = storage.client._endpoint.http_session._manager.pools

    def made() -> int:  # connections this process's client has opened so far (other tests share it)
        return sum(pools[key].num_connections for key in pools.keys())

    before = made()
    out = bytearray(200_000)
    for _ in range(20):
        storage.get_into("c.bin", lambda n: [out])
    assert made() - before <= 1 and out == storage.get("c.bin")


def test_get_into_retries_a_body_cut_off_mid_stream(s3_uri, monkeypatch):
    storage = open_storage(s3_uri)
    data = os.urandom(300_000)
    storage.put("cut.bin", data)
    reads = _recording_readinto(monkeypatch, cut_first=True)
    out = bytearray(len(data))
    assert storage.get_into("cut.bin", lambda n: [out]) == len(data) and out == data
    assert reads[0] == (0, 0) and len(reads) > 1
    assert storage.get("cut.bin") == data  # the cut connection was not handed back to the pool
