"""S3 through boto3 (`s3://bucket/prefix`).

Settings come from DLIO's `storage.storage_options` where given (access_key_id, secret_access_key,
endpoint_url, region, s3_force_path_style, s3_max_attempts) and otherwise from the standard AWS
variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION).
dl-driver's own options: s3_retry_mode ("standard" or "adaptive"), s3_part_size and
s3_multipart_threshold (bytes), connect_timeout and read_timeout (seconds, default 10 and 60),
wait_notice_s (a request waiting this long is reported on stderr, again every 10 s; default 5).

Addressing is path-style unless s3_force_path_style is false (local servers have no bucket DNS names).
put() creates the bucket when it does not exist (a generation into a new bucket just works); reading,
listing or stat-ing a missing bucket is an error.
"""
from __future__ import annotations

import http.client
import os
import time
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

from dldriver.errors import StorageError
from dldriver.storage.base import (ClientCache, Fill, MissingContainerError, MissingObjectError, ObjectStorage,
                                   PartUploads, Writer, check_range, join_uri, short_read)

MiB = 1 << 20
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_MULTIPART_THRESHOLD = 16 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
DELETE_BATCH = 1000  # S3's limit per DeleteObjects call

AUTH_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "InvalidToken", "ExpiredToken",
              "InvalidSecurity", "403"}
MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


def _flag(value) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


# Sessions cross a fork (clients do not, see ClientCache): a child's first client then reuses the service
# models its parent's session already loaded, which is most of a client's cost.
_sessions: dict[tuple, object] = {}


_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def parse_timestamp(value):
    """A response's timestamp as botocore's own parser returns it (an aware datetime), without dateutil
    for the two forms S3 sends: an HTTP date (a GET's Last-Modified header, IMF-fixdate as in
    "Wed, 02 Dec 2026 05:00:00 GMT") and ISO 8601 with a zone (a listing's LastModified). botocore parses
    each with dateutil, ~0.1-0.2 ms of CPU, an eighth of a 128 KiB GET's client CPU on this machine;
    anything else still goes to botocore's parser."""
    if isinstance(value, str):
        if len(value) == 29 and value.endswith(" GMT") and value[3:5] == ", " and value[7:8] == " ":
            month = _MONTHS.get(value[8:11])
            try:
                if month is not None:
                    return datetime(int(value[12:16]), month, int(value[5:7]), int(value[17:19]),
                                    int(value[20:22]), int(value[23:25]), tzinfo=timezone.utc)
            except ValueError:
                pass
        elif value[-1:] == "Z" or value[-6:-5] in ("+", "-"):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return parsed
    from botocore.utils import parse_timestamp as botocore_parse

    return botocore_parse(value)


def _session(region: str, keys: tuple | None):
    import boto3
    import botocore.session

    session = _sessions.get((region, keys))
    if session is None:
        names = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
        session = boto3.session.Session(region_name=region, botocore_session=core,
                                        **(dict(zip(names, keys)) if keys else {}))
        _sessions[(region, keys)] = session
    return session


def _make_client(settings: tuple):
    from botocore.config import Config

    region, keys, endpoint, path_style, pool, retry_mode, attempts, connect_timeout, read_timeout = settings
    config = Config(
        max_pool_connections=pool,
        retries={"mode": retry_mode, "total_max_attempts": attempts},
        # No SHA-256 of every PUT's body in its signature (UNSIGNED-PAYLOAD, which S3 takes over http and
        # https alike): botocore would hash the body on every upload for which no checksum header is sent,
        # about 2.6 ms of CPU per 4 MiB, a sixth of what a 2-core client spends per generated file.
        s3={"addressing_style": "path" if path_style else "auto", "payload_signing_enabled": False},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # Checksums on every PUT and GET cost CPU a benchmark should not spend; TLS/TCP already guard.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return _session(region, keys).client("s3", endpoint_url=endpoint, config=config)


_clients = ClientCache(_make_client)


def body_into(body, fill: Fill) -> None:
    """Read a GET's body (botocore's StreamingBody) into `fill`.

    botocore's read() and urllib3's readinto() both hand back a new bytes object per call (urllib3's
    readinto reads into one, then copies it over), so a body read through them is copied once more into
    the caller's memory: ~0.2 CPU-s per GB on 2 cores, taken from the storage server beside us. Under
    urllib3 sits an http.client response, whose readinto receives from the socket into the buffer
    itself. That path is taken when the body is plain (no content encoding for urllib3 to decode);
    urllib3's error handling is kept around it (its _error_catcher: socket errors become its exceptions,
    a broken connection is discarded, a finished one goes back to the pool) and its errors are raised
    as botocore's, as StreamingBody.read raises them. Otherwise the body goes through StreamingBody's
    own readinto.
    """
    from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    catcher = getattr(raw, "_error_catcher", None)
    direct = (isinstance(fp, http.client.HTTPResponse) and catcher is not None
              and not raw.headers.get("content-encoding"))
    try:
        with catcher() if direct else nullcontext():
            if not _read_into(fp.readinto if direct else body.readinto, fill) and direct:
                # Raised inside urllib3's catcher, so that the connection is dropped, not pooled.
                raise http.client.IncompleteRead(b"", fill.size - fill.filled)
    except Urllib3ReadTimeout as err:
        raise ReadTimeoutError(endpoint_url=err.url, error=err) from err
    except ProtocolError as err:
        raise ResponseStreamingError(error=err) from err
    if fill.filled != fill.size:
        raise IncompleteReadError(actual_bytes=fill.filled, expected_bytes=fill.size)


def _read_into(readinto, fill: Fill) -> bool:
    """Fill `fill` by readinto calls; False when the stream ends first."""
    for view in fill.views():
        while view.nbytes:
            n = readinto(view)
            if n == 0:
                return False
            fill.advance(n)
            view = view[n:]
    return True


class S3Storage(ObjectStorage):
    scheme = "s3"
    attempts_option = "s3_max_attempts"

    def __init__(self, bucket: str, prefix: str = "", options: dict | None = None, threads: int = 8):
        self.bucket = bucket
        super().__init__(bucket, prefix, options, threads)
        opts = self._opts
        self.part_size = max(MIN_PART_SIZE, int(opts.get("s3_part_size", DEFAULT_PART_SIZE)))
        self.multipart_threshold = int(opts.get("s3_multipart_threshold", DEFAULT_MULTIPART_THRESHOLD))
        self.region = (opts.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                       or "us-east-1")

    # -- the client ------------------------------------------------------------------------------

    @property
    def client(self):
        return _clients.get(self._settings())

    def _settings(self) -> tuple:
        """Everything the client is made from, resolved now (the environment may change between calls)."""
        opts = self._opts
        access = opts.get("access_key_id") or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = opts.get("secret_access_key") or os.environ.get("AWS_SECRET_ACCESS_KEY")
        token = opts.get("session_token") or os.environ.get("AWS_SESSION_TOKEN")
        # Explicit keys only as a pair; otherwise boto3's own chain (profiles, instance roles) decides.
        keys = (access, secret, token) if access and secret else None
        # The endpoint as boto3 itself would resolve it, so that a changed variable gets its own client.
        endpoint = (opts.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3")
                    or os.environ.get("AWS_ENDPOINT_URL") or None)
        return (self.region, keys, endpoint, _flag(opts.get("s3_force_path_style", True)),
                max(10, self.threads), opts.get("s3_retry_mode", "standard"), self.max_attempts,
                self.connect_timeout, self.read_timeout)

    def endpoint(self) -> str:
        return self.client.meta.endpoint_url

    # -- errors ----------------------------------------------------------------------------------

    @contextmanager
    def _calls(self, uri: str):
        """Turn any boto3 failure inside the block into one StorageError naming `uri`."""
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        started = time.monotonic()
        try:
            with self._waiting(uri):
                yield
        except ClientError as err:
            raise self._client_error(uri, err) from err
        except (ReadTimeoutError, ConnectTimeoutError) as err:
            raise self._not_answering(uri, started) from err
        except BotoCoreError as err:
            raise self._transport_error(uri, err) from err

    def _client_error(self, uri: str, err) -> StorageError:
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code == "NoSuchBucket":
            return MissingContainerError(f"{uri}: bucket {self.bucket!r} does not exist")
        if code in MISSING_KEY_CODES:
            return MissingObjectError(f"{uri}: no such object")
        if code == "InvalidRange":
            return StorageError(f"{uri}: the requested range starts past the end of the object")
        if code in AUTH_CODES:
            return StorageError(f"{uri}: credentials refused by {self.client.meta.endpoint_url} ({code}); "
                                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or storage_options")
        return StorageError(f"{uri}: {code} {error.get('Message', '')}".rstrip())

    def _transport_error(self, uri: str, err) -> StorageError:
        from botocore.exceptions import EndpointConnectionError, NoCredentialsError

        if isinstance(err, NoCredentialsError):
            return StorageError(f"{uri}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                "(or storage_options access_key_id / secret_access_key)")
        if isinstance(err, EndpointConnectionError):
            return StorageError(f"{uri}: cannot reach the S3 endpoint {self.client.meta.endpoint_url} "
                                f"after {self.max_attempts} attempt(s)")
        return StorageError(f"{uri}: {type(err).__name__}: {err}")

    def _missing(self, uri: str, err: MissingObjectError) -> MissingObjectError:
        """HEAD answers a bare 404 for a missing key and a missing bucket alike: tell them apart."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except BotoCoreError:
            pass
        except ClientError as head_err:
            if str(head_err.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket", "NotFound"):
                return MissingContainerError(f"{uri}: bucket {self.bucket!r} does not exist")
        return err

    def create_bucket(self) -> None:
        from botocore.exceptions import ClientError

        kwargs = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            with self._calls(f"s3://{self.bucket}"):
                self.client.create_bucket(**kwargs)
        except StorageError as err:
            # Another writer created it first: that is what we wanted.
            cause = err.__cause__
            if not (isinstance(cause, ClientError) and
                    cause.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
                raise

    _create_root = create_bucket

    def _root_exists(self) -> bool:
        try:
            with self._calls(f"s3://{self.bucket}"):
                self.client.head_bucket(Bucket=self.bucket)
            return True
        except MissingObjectError:  # HEAD's bare 404: the bucket is what was asked for
            return False

    # -- reads -----------------------------------------------------------------------------------

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        root = self._root()
        sizes = {}
        with self._calls(join_uri(self.uri, prefix)):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root + prefix)
            for page in pages:
                sizes.update((obj["Key"][len(root):], obj["Size"]) for obj in page.get("Contents", ()))
        return sizes

    def stat(self, key: str) -> int:
        uri = self.key_uri(key)
        try:
            with self._calls(uri):
                return self.client.head_object(Bucket=self.bucket, Key=self._full(key))["ContentLength"]
        except MissingContainerError:
            raise
        except MissingObjectError as err:
            raise self._missing(uri, err) from err

    def _read(self, key: str, **kwargs) -> bytes:
        """GET and read the body, retrying a body cut off mid-stream (botocore retries only the request)."""
        from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError

        uri = self.key_uri(key)
        attempt = 1
        while True:
            with self._calls(uri):
                response = self.client.get_object(Bucket=self.bucket, Key=self._full(key), **kwargs)
                try:
                    return response["Body"].read()
                except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError):
                    if attempt >= self.max_attempts:
                        raise
            attempt += 1

    def get(self, key: str) -> bytes:
        return self._read(key)

    def get_into(self, key: str, buffers) -> int:
        """The body read from the socket straight into the caller's buffers (see body_into), retrying a
        body cut off mid-stream as _read does."""
        from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError

        uri = self.key_uri(key)
        attempt = 1
        while True:
            with self._calls(uri):
                response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
                body = response["Body"]
                try:
                    fill = Fill(buffers(response["ContentLength"]), response["ContentLength"], uri)
                    body_into(body, fill)
                    return fill.size
                except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError):
                    if attempt >= self.max_attempts:
                        raise
                finally:
                    body.close()
            attempt += 1

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        uri = self.key_uri(key)
        check_range(uri, offset, length)
        if length == 0:
            return b""
        data = self._read(key, Range=f"bytes={offset}-{offset + length - 1}")
        if len(data) != length:
            raise short_read(uri, offset, length, len(data))
        return data

    # -- writes ----------------------------------------------------------------------------------

    def put(self, key: str, data: bytes, fsync: bool = False) -> None:
        if len(data) > self.multipart_threshold:
            self._put_parallel(key, data)
            return
        full = self._full(key)
        self._with_root(self.key_uri(key), lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=data))

    def _put_parallel(self, key: str, data: bytes) -> None:
        """A large object in memory: upload its parts concurrently."""
        writer = S3Writer(self, key)
        view = memoryview(data)
        bounds = [(i, min(i + self.part_size, len(data))) for i in range(0, len(data), self.part_size)]
        try:
            writer.start()
            with ThreadPoolExecutor(max_workers=min(self.threads, len(bounds))) as pool:
                etags = list(pool.map(lambda b: writer.upload_part(b[0] // self.part_size + 1,
                                                                   bytes(view[b[0]:b[1]])), bounds))
            writer.finish(etags)
        except BaseException:
            writer.abort()
            raise

    def open_writer(self, key: str, fsync: bool = False) -> Writer:
        return S3Writer(self, key)

    def delete(self, key: str) -> None:
        with self._calls(self.key_uri(key)):
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list(prefix)
        root = self._root()
        for i in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": root + k} for k in keys[i:i + DELETE_BATCH]]
            with self._calls(join_uri(self.uri, prefix)):
                response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(f"s3://{self.bucket}/{first['Key']}: delete failed: {first.get('Code')} "
                                   f"({len(response['Errors'])} object(s) not deleted)")


class S3Writer(Writer):
    """A multipart upload with up to `threads` parts in flight (and in memory) while the next is filled;
    a small object becomes one PUT."""

    def __init__(self, storage: S3Storage, key: str):
        self._s = storage
        self._key = key
        self._full = storage._full(key)
        self._uri = storage.key_uri(key)
        self._buf = bytearray()
        self._parts = PartUploads(storage.threads)
        self._sent = 0
        self._upload_id = None

    def start(self) -> None:
        s = self._s
        response = s._with_root(self._uri, lambda: s.client.create_multipart_upload(Bucket=s.bucket, Key=self._full))
        self._upload_id = response["UploadId"]

    def upload_part(self, number: int, chunk: bytes) -> str:
        s = self._s
        with s._calls(self._uri):
            return s.client.upload_part(Bucket=s.bucket, Key=self._full, UploadId=self._upload_id,
                                        PartNumber=number, Body=chunk)["ETag"]

    def finish(self, etags: list[str]) -> None:
        s = self._s
        parts = [{"PartNumber": i + 1, "ETag": etag} for i, etag in enumerate(etags)]
        with s._calls(self._uri):
            s.client.complete_multipart_upload(Bucket=s.bucket, Key=self._full, UploadId=self._upload_id,
                                               MultipartUpload={"Parts": parts})
        self._upload_id = None

    def _flush_part(self, size: int) -> None:
        if self._upload_id is None:
            self.start()
        chunk = bytes(self._buf[:size])
        del self._buf[:size]
        self._sent += 1
        self._parts.submit(self.upload_part, self._sent, chunk)

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= self._s.part_size:
            self._flush_part(self._s.part_size)

    def commit(self) -> None:
        try:
            if self._upload_id is None:
                self._s.put(self._key, bytes(self._buf))
                return
            if self._buf or not self._sent:
                self._flush_part(len(self._buf))
            self.finish(self._parts.results())
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._parts.close()
        upload_id, self._upload_id = self._upload_id, None
        self._buf = bytearray()
        if upload_id is None:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s.client.abort_multipart_upload(Bucket=self._s.bucket, Key=self._full, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            pass  # best effort: the error that made us abort is the one to report
