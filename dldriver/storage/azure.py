"""Azure Blob Storage through azure-storage-blob (`az://container/prefix`).

Credentials: AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL with AZURE_STORAGE_KEY (and
AZURE_STORAGE_ACCOUNT when the name is not the URL's first label or path segment); storage_options
connection_string / account_url / account_key / account_name take precedence. dl-driver's own options:
azure_max_attempts, azure_block_size and azure_single_put_size (bytes; the SDK's defaults, 4 MiB and
64 MiB, for put and streamed uploads alike), connect_timeout and read_timeout
(seconds, default 10 and 60), wait_notice_s (a request waiting this long is reported on stderr, again
every 10 s; default 5).

put() creates the container when it does not exist; reading a missing container is an error. A
streamed upload that is aborted leaves only uncommitted blocks, which are invisible and which the
service discards on its own.
"""
from __future__ import annotations

import ipaddress
import os
import time
from contextlib import contextmanager
from urllib.parse import urlparse

from dldriver.errors import StorageError
from dldriver.storage.base import (ClientCache, Fill, MissingContainerError, MissingObjectError, ObjectStorage,
                                   PartUploads, PendingBytes, Writer, check_range, join_uri, short_read)

MiB = 1 << 20
# The SDK reads responses 4 KiB at a time by default, which halves download throughput.
DATA_BLOCK_SIZE = 1 * MiB
# The SDK's own defaults (azure-storage-blob's StorageConfiguration, _shared/models.py): a blob of up to
# max_single_put_size goes up in one PUT, a larger one in staged blocks of max_block_size. A streamed
# upload (AzureWriter) makes the same choice: Azurite takes one 40 MB PUT faster than staged blocks.
DEFAULT_BLOCK_SIZE = 4 * MiB
DEFAULT_SINGLE_PUT_SIZE = 64 * MiB


def account_from_url(url: str) -> str:
    """The account name in https://NAME.blob.core.windows.net or http://127.0.0.1:10000/NAME."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = host == "localhost"
    return parsed.path.strip("/").split("/")[0] if is_ip else host.split(".")[0]


def _session_and_transport(pool: int, connect_timeout: float, read_timeout: float):
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    # The SDK's own adapter (32 KiB send blocks); we only need a pool as large as our threads.
    from azure.core.pipeline.transport._bigger_block_size_http_adapters import BiggerBlockSizeHTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    # Retries belong to the SDK's policy, not to urllib3 underneath it (as the SDK sets it up itself).
    adapter = BiggerBlockSizeHTTPAdapter(pool_maxsize=pool,
                                         max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    transport = RequestsTransport(session=session, connection_data_block_size=DATA_BLOCK_SIZE,
                                  connection_timeout=connect_timeout, read_timeout=read_timeout,
                                  connection_verify=bundle or True)
    return session, transport


def environment_once(session, url: str) -> None:
    """What requests takes from the environment on every request (trust_env: proxies from *_PROXY and
    NO_PROXY, which scans all of os.environ twice, and ~/.netrc), taken once here for the account's
    endpoint: ~0.3 ms of CPU per request otherwise, a sixth of a 128 KiB download's client CPU on this
    machine. The CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) goes to the transport. A .netrc entry is
    not used: its Basic credentials would replace the SDK's own Authorization header."""
    from requests.utils import get_environ_proxies

    session.proxies.update(get_environ_proxies(url))
    session.trust_env = False


def _make_service(settings: tuple):
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    credentials, pool, attempts, block_size, single_put_size, connect_timeout, read_timeout = settings
    session, transport = _session_and_transport(pool, connect_timeout, read_timeout)
    kwargs = {
        "transport": transport,
        # The SDK's default waits 15 s before the first retry and longer after; a benchmark wants to
        # ride out a throttled second, not stall for a minute (waits here: 1, 3, 5, 9 s).
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=max(0, attempts - 1)),
        "max_block_size": block_size,
        "max_single_put_size": single_put_size,
    }
    kind, *values = credentials
    if kind == "connection_string":
        service = BlobServiceClient.from_connection_string(values[0], **kwargs)
    else:
        url, name, key = values
        credential = {"account_name": name, "account_key": key} if key else None
        service = BlobServiceClient(url, credential=credential, **kwargs)
    environment_once(session, service.url)
    return service


# One service client per process and settings (its pipeline and pool), one container client per
# container on it.
_services = ClientCache(_make_service)
_containers = ClientCache(lambda settings: _services.get(settings[0]).get_container_client(settings[1]))


class AzureStorage(ObjectStorage):
    scheme = "az"
    attempts_option = "azure_max_attempts"

    def __init__(self, container: str, prefix: str = "", options: dict | None = None, threads: int = 8):
        self.container = container
        super().__init__(container, prefix, options, threads)
        self.block_size = int(self._opts.get("azure_block_size", DEFAULT_BLOCK_SIZE))
        self.single_put_size = int(self._opts.get("azure_single_put_size", DEFAULT_SINGLE_PUT_SIZE))

    # -- the client ------------------------------------------------------------------------------

    @property
    def client(self):
        """The ContainerClient, shared by every storage of this process with the same settings."""
        settings = self._settings()
        try:
            return _containers.get((settings, self.container))
        except ValueError as err:  # the SDK's word for a malformed connection string or account URL
            raise self._malformed(settings[0], err) from None

    def _malformed(self, credentials: tuple, err: ValueError) -> StorageError:
        """One line naming where the credentials came from, and never their value."""
        kind, value = credentials[0], credentials[1]
        option = "connection_string" if kind == "connection_string" else "account_url"
        variable = "AZURE_STORAGE_CONNECTION_STRING" if kind == "connection_string" else "AZURE_STORAGE_ACCOUNT_URL"
        source = f"storage_options {option}" if self._opts.get(option) else variable
        reason = str(err).splitlines()[0] if str(err) and value not in str(err) else type(err).__name__
        return StorageError(f"{self.uri}: {source} is malformed ({reason}); a connection string is "
                            "'DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;' (or with BlobEndpoint=...)")

    def _settings(self) -> tuple:
        """Everything the service client is made from, resolved now (the environment may change)."""
        return (self._credentials(), max(10, self.threads), self.max_attempts, self.block_size,
                self.single_put_size, self.connect_timeout, self.read_timeout)

    def _credentials(self) -> tuple:
        """("connection_string", STRING) or ("account_url", URL, NAME, KEY or None)."""
        opts = self._opts
        conn = opts.get("connection_string") or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if conn:
            return ("connection_string", conn)
        url = opts.get("account_url") or os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
        if not url:
            raise StorageError(f"{self.uri}: no Azure credentials; set AZURE_STORAGE_CONNECTION_STRING, or "
                               "AZURE_STORAGE_ACCOUNT_URL and AZURE_STORAGE_KEY")
        key = opts.get("account_key") or os.environ.get("AZURE_STORAGE_KEY")
        name = opts.get("account_name") or os.environ.get("AZURE_STORAGE_ACCOUNT") or account_from_url(url)
        return ("account_url", url, name, key)

    def _blob(self, key: str):
        return self.client.get_blob_client(self._full(key))

    # -- errors ----------------------------------------------------------------------------------

    @contextmanager
    def _calls(self, uri: str):
        """Turn any SDK failure inside the block into one StorageError naming `uri`."""
        from azure.core.exceptions import AzureError, ServiceRequestTimeoutError, ServiceResponseTimeoutError

        started = time.monotonic()
        try:
            with self._waiting(uri):
                yield
        except (ServiceRequestTimeoutError, ServiceResponseTimeoutError) as err:
            raise self._not_answering(uri, started) from err
        except AzureError as err:
            raise self._error(uri, err) from err

    def _error(self, uri: str, err) -> StorageError:
        from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceNotFoundError,
                                           ServiceRequestError)

        code = getattr(err, "error_code", None)
        code = getattr(code, "value", code)  # the SDK hands some codes over as enum members
        if isinstance(err, ResourceNotFoundError):
            if code == "ContainerNotFound":
                return MissingContainerError(f"{uri}: container {self.container!r} does not exist")
            return MissingObjectError(f"{uri}: no such blob")
        if isinstance(err, ClientAuthenticationError) or getattr(err, "status_code", None) == 403:
            return StorageError(f"{uri}: credentials refused by {self._endpoint()} ({code or 'status 403'}); "
                                "check AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_KEY")
        if isinstance(err, ServiceRequestError):
            return StorageError(f"{uri}: cannot reach the Azure endpoint {self._endpoint()} "
                                f"after {self.max_attempts} attempt(s)")
        if isinstance(err, HttpResponseError):
            if err.status_code == 416:
                return StorageError(f"{uri}: the requested range starts past the end of the blob")
            return StorageError(f"{uri}: {code or err.status_code} {err.reason or ''}".rstrip())
        # Other SDK errors (dropped connection after retries, ...): their class name says what happened.
        return StorageError(f"{uri}: {type(err).__name__}")

    def endpoint(self) -> str:
        return self._endpoint()

    def _endpoint(self) -> str:
        """The account's URL (the container client's URL without the container)."""
        return self.client.url.rsplit("/", 1)[0]

    def create_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            with self._calls(f"az://{self.container}"):
                self.client.create_container()
        except StorageError as err:
            if not isinstance(err.__cause__, ResourceExistsError):  # created meanwhile by another writer
                raise

    _create_root = create_container

    def _root_exists(self) -> bool:
        with self._calls(f"az://{self.container}"):
            return self.client.exists()

    # -- reads -----------------------------------------------------------------------------------

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        root = self._root()
        with self._calls(join_uri(self.uri, prefix)):
            # The pager follows continuation markers: every page, not just the first 5000 names.
            return {b.name[len(root):]: b.size for b in self.client.list_blobs(name_starts_with=root + prefix)}

    def stat(self, key: str) -> int:
        with self._calls(self.key_uri(key)):
            return self._blob(key).get_blob_properties().size

    def get(self, key: str) -> bytes:
        with self._calls(self.key_uri(key)):
            return self._blob(key).download_blob(max_concurrency=1).readall()

    def get_into(self, key: str, buffers) -> int:
        """The downloader's readinto writes the body into the caller's buffers (a Fill): one copy fewer
        than readall, which writes it into a BytesIO first (the SDK still joins the response's chunks
        into one bytes object before either)."""
        uri = self.key_uri(key)
        with self._calls(uri):
            downloader = self._blob(key).download_blob(max_concurrency=1)
            fill = Fill(buffers(downloader.size), downloader.size, uri)
            downloader.readinto(fill)
        fill.check_full()
        return fill.size

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        uri = self.key_uri(key)
        check_range(uri, offset, length)
        if length == 0:
            return b""
        with self._calls(uri):
            data = self._blob(key).download_blob(offset=offset, length=length, max_concurrency=1).readall()
        if len(data) != length:
            raise short_read(uri, offset, length, len(data))
        return data

    # -- writes ----------------------------------------------------------------------------------

    def put_form(self, data):
        # The SDK takes other bytes-like objects as iterables of single bytes (slow beyond use).
        return data if isinstance(data, bytes) else bytes(data)

    def put(self, key: str, data: bytes, fsync: bool = False) -> None:
        # Above max_single_put_size the SDK stages blocks in parallel and commits the list in one call.
        data = self.put_form(data)
        blob = self._blob(key)
        self._with_root(self.key_uri(key), lambda: blob.upload_blob(
            data, length=len(data), overwrite=True, max_concurrency=self.threads))

    def open_writer(self, key: str, fsync: bool = False) -> Writer:
        return AzureWriter(self, key)

    def delete(self, key: str) -> None:
        try:
            with self._calls(self.key_uri(key)):
                self._blob(key).delete_blob()
        except MissingContainerError:
            raise
        except MissingObjectError:
            pass


class AzureWriter(Writer):
    """As the SDK's upload_blob chooses: a blob of up to single_put_size is held and sent in one PUT at
    commit; past that, staged blocks of block_size, up to `threads` in flight (and in memory) while the
    next is filled, committed as a list."""

    def __init__(self, storage: AzureStorage, key: str):
        self._s = storage
        self._key = key
        self._uri = storage.key_uri(key)
        self._blob = storage._blob(key)
        self._pending = PendingBytes()
        self._ids: list[str] = []
        self._parts = PartUploads(storage.threads)

    def _stage(self, size: int) -> None:
        # Every id of a blob must have the same length.
        block_id = f"{len(self._ids):08d}"
        chunk = self._pending.take(size)
        self._parts.submit(lambda: self._s._with_root(
            self._uri, lambda: self._blob.stage_block(block_id, chunk, length=len(chunk))))
        self._ids.append(block_id)

    def write(self, data: bytes) -> None:
        self._pending.add(data)
        if not self._ids and self._pending.nbytes <= self._s.single_put_size:
            return  # may still be one PUT
        while self._pending.nbytes >= self._s.block_size:
            self._stage(self._s.block_size)

    def commit(self) -> None:
        if not self._ids:
            self._s.put(self._key, self._pending.take(self._pending.nbytes))
            return
        if self._pending.nbytes:
            self._stage(self._pending.nbytes)
        try:
            self._parts.results()
        except BaseException:
            self.abort()
            raise
        from azure.storage.blob import BlobBlock

        with self._s._calls(self._uri):
            self._blob.commit_block_list([BlobBlock(block_id=i) for i in self._ids])
        self._ids = []

    def abort(self) -> None:
        self._parts.close()
        self._pending.clear()
        self._ids = []
