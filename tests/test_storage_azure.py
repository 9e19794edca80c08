"""Azure specifics against Azurite: credentials from an account URL and key, container creation on
write, and one clear error naming the URI for each failure."""
from __future__ import annotations

import os
import re
import time

import pytest

from conftest import free_port_block, unique_name
from dldriver.errors import StorageError
from dldriver.services import azurite
from dldriver.storage import MissingContainerError, open_storage


def _port(azure_env) -> str:
    return re.search(r"127\.0\.0\.1:(\d+)", azure_env["AZURE_STORAGE_CONNECTION_STRING"]).group(1)


def test_account_url_and_key_from_the_environment(az_uri, azure_env, monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", f"http://127.0.0.1:{_port(azure_env)}/{azurite.ACCOUNT}")
    monkeypatch.setenv("AZURE_STORAGE_KEY", azurite.ACCOUNT_KEY)
    storage = open_storage(az_uri)
    storage.put("k", b"v")
    assert storage.list() == ["k"]


def test_no_credentials(monkeypatch):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(StorageError, match="^az://c: no Azure credentials"):
        open_storage("az://c").get("k")


def test_put_creates_a_missing_container(azure_env):
    storage = open_storage(f"az://{unique_name('new')}/data")
    storage.put("a.bin", b"abc")
    with storage.open_writer("b.bin") as writer:
        writer.write(b"def")
    assert storage.get("a.bin") + storage.get("b.bin") == b"abcdef"


def test_missing_container_is_an_error_for_reads(azure_env):
    storage = open_storage(f"az://{unique_name('absent')}/p")
    for call in (lambda: storage.get("k"), lambda: storage.stat("k"), lambda: storage.list(),
                 lambda: storage.get_range("k", 0, 1)):
        with pytest.raises(MissingContainerError,
                           match=rf"^{re.escape(storage.uri)}.*: container '.*' does not exist"):
            call()


def test_wrong_key_names_uri_and_hides_key(az_uri, azure_env):
    wrong = "A" * 86 + "=="
    conn = azure_env["AZURE_STORAGE_CONNECTION_STRING"].replace(azurite.ACCOUNT_KEY, wrong)
    storage = open_storage(az_uri, {"connection_string": conn})
    for call in (lambda: storage.get("k"), lambda: storage.put("k", b"x"), lambda: storage.list()):
        with pytest.raises(StorageError) as info:
            call()
        message = str(info.value)
        assert message.startswith(az_uri) and "credentials refused" in message
        assert wrong not in message and azurite.ACCOUNT_KEY not in message


def test_unreachable_endpoint_is_quick_and_clear():
    port = free_port_block(1)
    storage = open_storage("az://c/p", {"connection_string": azurite.connection_string(port),
                                        "azure_max_attempts": 2, "connect_timeout": 1})
    start = time.monotonic()
    with pytest.raises(StorageError, match=rf"^az://c/p/k: cannot reach the Azure endpoint "
                                           rf"http://127.0.0.1:{port}/{azurite.ACCOUNT} after 2 attempt\(s\)"):
        storage.get("k")
    assert time.monotonic() - start < 10


def test_client_settings(azure_env):
    storage = open_storage("az://c", threads=24)
    transport = storage.client._pipeline._transport._transport  # the SDK wraps our transport once
    assert transport.connection_config.data_block_size >= 1 << 20  # not the SDK's slow 4 KiB default
    assert transport.session.get_adapter("http://x")._pool_maxsize == 24


def test_proxies_are_taken_from_the_environment_when_the_client_is_made(az_uri, monkeypatch):
    # requests would look them up on every request (trust_env); the client takes them once.
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port_block(1)}")  # nothing listens there
    proxied = open_storage(az_uri, {"azure_max_attempts": 1, "connect_timeout": 1}, threads=97)
    with pytest.raises(StorageError, match="cannot reach the Azure endpoint"):
        proxied.put("k", b"x")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = open_storage(az_uri, threads=98)
    direct.put("k", b"x")
    assert direct.get("k") == b"x"
    assert direct.client._pipeline._transport._transport.session.trust_env is False


def test_streamed_upload_is_one_put_up_to_the_single_put_size_then_staged_blocks(az_uri):
    # As the SDK's upload_blob decides (max_single_put_size, max_block_size); the blob's block list
    # tells which it was: a blob put in one request has no committed blocks.
    options = {"azure_single_put_size": 1 << 20, "azure_block_size": 256 << 10}
    storage = open_storage(az_uri, options, threads=4)
    for name, size, blocks in [("one-put", 1 << 20, 0), ("blocks", (1 << 20) + 1, 5)]:
        data = os.urandom(size)
        with storage.open_writer(name) as writer:
            for i in range(0, size, 100_000):
                writer.write(data[i:i + 100_000])
        assert storage.get(name) == data
        committed, _ = storage.client.get_blob_client(name).get_block_list("committed")
        assert len(committed) == blocks, name
