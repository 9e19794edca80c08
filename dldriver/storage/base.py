"""The storage protocol every backend implements, and helpers they share.

Keys are `/`-separated and relative to the storage's root URI (`train/img_0_of_8.npz`). Every error
is a StorageError whose message starts with the full URI of the object or root concerned.
"""
from __future__ import annotations

from contextlib import contextmanager

import copy
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from typing import Callable, Sequence

from dldriver.errors import StorageError
from dldriver.uri import SCHEMES


# What an object-store request may wait: per connection, per read, and how many times it is tried.
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 60.0
DEFAULT_ATTEMPTS = 5


class MissingObjectError(StorageError):
    """The object (or the bucket / container holding it) does not exist.

    A StorageError like any other for the CLI; callers that resume work (generate) or probe (exists)
    catch this kind only, so that a refused credential is never mistaken for "not written yet".
    """


class MissingContainerError(MissingObjectError):
    """The bucket or container itself does not exist."""


def check_key(key: str, uri: str) -> str:
    """Return `key` if it is a clean relative key, else raise naming the root URI."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"{uri}: invalid object key {key!r} (relative, '/'-separated, no '.' or '..' parts)")
    return key


def join_uri(root: str, key: str) -> str:
    """The URI of `key` under `root` (used in messages and by child())."""
    return f"{root.rstrip('/')}/{key}" if key else root


def check_range(uri: str, offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise StorageError(f"{uri}: invalid range offset={offset} length={length}")


def short_read(uri: str, offset: int, length: int, got: int) -> StorageError:
    """The error for a range that runs past the end of the object: readers rely on exact lengths."""
    return StorageError(f"{uri}: range offset={offset} length={length} runs past the end "
                        f"(only {got} bytes available)")


class Writer(ABC):
    """A streaming upload: `write()` parts of the object, `commit()` makes it visible, `abort()`
    discards it. Used as a context manager it commits on a clean exit and aborts on an exception."""

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


class Fill:
    """Consecutive writable buffers filled in order, the destination of one get_into: `write(data)`
    appends (the Azure SDK's readinto writes to it), `views()` hands them out for readinto-style reads."""

    def __init__(self, buffers: Sequence, size: int, uri: str):
        self._views = [v for v in (memoryview(b).cast("B") for b in buffers) if v.nbytes]
        self.uri = uri
        if sum(v.nbytes for v in self._views) != size:
            raise ValueError(f"{uri}: buffers of {sum(v.nbytes for v in self._views)} bytes for an object "
                             f"of {size}")
        self.size = size
        self.filled = 0
        self._current = 0   # index of the view being filled
        self._offset = 0    # bytes already in it

    def views(self) -> list[memoryview]:
        """What is still to be filled, as memoryviews, in order (for readinto-style reads, each followed
        by advance(n))."""
        if self._current >= len(self._views):
            return []
        return [self._views[self._current][self._offset:], *self._views[self._current + 1:]]

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        if self.filled + data.nbytes > self.size:
            raise StorageError(f"{self.uri}: the body is longer than its stated {self.size} bytes")
        done = 0
        while done < data.nbytes:
            view = self._views[self._current]
            n = min(view.nbytes - self._offset, data.nbytes - done)
            view[self._offset:self._offset + n] = data[done:done + n]
            self.advance(n)
            done += n
        return done

    def advance(self, n: int) -> None:
        """Count `n` bytes written into what views() handed out."""
        self.filled += n
        self._offset += n
        while self._current < len(self._views) and self._offset >= self._views[self._current].nbytes:
            self._offset -= self._views[self._current].nbytes
            self._current += 1

    def check_full(self) -> None:
        if self.filled != self.size:
            raise StorageError(f"{self.uri}: the body ended after {self.filled} of {self.size} bytes")


class PendingBytes:
    """What a writer has been given and not yet sent, joined only when sent: each piece as it came when
    it is immutable (bytes, or a view of bytes: a checkpoint's chunks are views of one random pool), a
    copy of it otherwise.

    Why not one growing bytearray: growing it past what its block holds moves it (a copy of all it holds
    each time), and the bytes an SDK wants at the end are one more copy; here a byte is copied once when
    a part is cut out of several pieces, and once more on arrival only from a mutable buffer (a 35 MiB
    blob of copied pieces is made in about half the bytearray's time)."""

    def __init__(self):
        self._pieces: deque[memoryview] = deque()   # views of the copies; a cut keeps a view of the rest
        self.nbytes = 0

    def add(self, data) -> None:
        piece = memoryview(data).cast("B")
        if not isinstance(piece.obj, bytes):
            piece = memoryview(bytes(piece))  # the caller may reuse a mutable buffer once write() returns
        if piece.nbytes:
            self._pieces.append(piece)
            self.nbytes += piece.nbytes

    def take(self, n: int) -> bytes:
        """The first `n` bytes (at most what is held), removed."""
        n = min(n, self.nbytes)
        parts, got = [], 0
        while got < n:
            piece = self._pieces.popleft()
            if got + piece.nbytes > n:
                cut = n - got
                self._pieces.appendleft(piece[cut:])
                piece = piece[:cut]
            parts.append(piece)
            got += piece.nbytes
        self.nbytes -= n
        if len(parts) == 1 and parts[0].nbytes == len(parts[0].obj):
            return parts[0].obj  # a whole piece: the copy made on arrival
        return b"".join(parts)

    def clear(self) -> None:
        self._pieces.clear()
        self.nbytes = 0


class PartUploads:
    """The parts of one streamed upload, sent by up to `threads` threads while the writer fills the
    next: at most `threads` parts in flight (and in memory) at once, results kept in part order.

    Why: a part sent only once the last one is done leaves every request's latency on the critical path;
    the SDKs' own uploaders (boto3's TransferConfig, azure's max_concurrency) keep several in flight.
    """

    def __init__(self, threads: int):
        self._threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []

    def submit(self, send, *args) -> None:
        """Send a part (send(*args) returns what commit needs of it); waits while `threads` are in flight."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="dldriver-part")
        in_flight = [f for f in self._futures if not f.done()]
        if len(in_flight) >= self._threads:
            wait(in_flight, return_when=FIRST_COMPLETED)
        for done in (f for f in self._futures if f.done()):
            done.result()  # a failed part stops the upload now, not at commit
        self._futures.append(self._pool.submit(send, *args))

    def results(self) -> list:
        """Every part's result in order, once all are sent (raises the first failure)."""
        try:
            return [f.result() for f in self._futures]
        finally:
            self.close()

    def close(self) -> None:
        """Stop: parts not started are dropped, those in flight finish; safe to call twice."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class Storage(ABC):
    """One root (a folder, a bucket and prefix, a container and prefix) holding objects by key."""

    scheme: str = ""

    def __init__(self, uri: str):
        self.uri = uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def key_uri(self, key: str) -> str:
        return join_uri(self.uri, key)

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key under the root that starts with `prefix` (recursive, sorted)."""

    @abstractmethod
    def stat(self, key: str) -> int:
        """The size in bytes; MissingObjectError if absent."""

    # Whether a listing brings every key's size with it (object stores), so that list_sizes costs what
    # list does; a file system needs a stat per file (on a parallel file system, a metadata request each).
    sizes_with_listing = False

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """{key: size in bytes} of every key under the root that starts with `prefix`."""
        return {key: self.stat(key) for key in self.list(prefix)}

    def listing(self, prefix: str = "") -> dict[str, int | None]:
        """What one listing tells: {key: size} where it carries sizes, {key: None} elsewhere."""
        return self.list_sizes(prefix) if self.sizes_with_listing else dict.fromkeys(self.list(prefix))

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except MissingObjectError:
            return False
        return True

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Exactly `length` bytes from `offset`; a StorageError if the object is shorter."""

    def get_into(self, key: str, buffers: Callable[[int], Sequence]) -> int:
        """Read the whole object into the caller's memory; returns its size. `buffers(size)` is called
        once the object's size is known and returns writable buffers (bytearrays, uint8 arrays) whose
        lengths add up to `size`, filled in order. Object stores read the body from the connection
        straight into them (no copy of the body in Python); here, get()'s bytes are copied in."""
        data = self.get(key)
        fill = Fill(buffers(len(data)), len(data), self.key_uri(key))
        fill.write(data)
        fill.check_full()
        return len(data)

    @abstractmethod
    def put(self, key: str, data: bytes, fsync: bool = False) -> None:
        """Write the whole object (bytes or a bytearray) atomically: a reader sees the old object or the
        new, never a part."""

    def put_form(self, data):
        """`data` as put() sends it without another copy (bytes and bytearrays do everywhere but Azure)."""
        return data

    @abstractmethod
    def open_writer(self, key: str, fsync: bool = False) -> Writer: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting an absent object is not an error (as on S3)."""

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self.delete(key)

    def local_path(self, key: str) -> str | None:
        """A POSIX path for the object where there is one (file, direct), else None."""
        return None

    @contextmanager
    def batched_sync(self):
        """Within it, fsynced writes make their folder durable once at the end rather than once per file.

        A file system needs the folder fsynced for a rename to survive a crash; a checkpoint of many files
        in one folder pays that once (as a save that fsyncs each file and then its folder). The context
        exits only after those folder fsyncs. Object stores have nothing to batch.
        """
        yield

    def connect(self) -> None:
        """Make the connection now rather than on the first call (object stores); raises what that
        first call would. A no-op where there is nothing to connect."""

    def prepare_writes(self) -> None:
        """Connect, and create the bucket / container where it is missing, so that the first timed write
        pays for neither (a run's first checkpoint save). A no-op where there is nothing to prepare:
        a file system's folders are made by the writes themselves."""

    @abstractmethod
    def child(self, prefix: str) -> "Storage":
        """A storage rooted at `prefix` under this one."""


class ClientCache:
    """One SDK client per process and settings, shared by every storage made with those settings (the
    generate workers', the parent's, a benchmark's repeated runs): a client costs tens of milliseconds.

    A client must not cross a fork (its pooled connections would be shared), so the pid is part of the
    key; the parent's clients stay referenced in a child, so that collecting them never touches the
    parent's sockets. The lock is made anew in a child: a thread of the parent may have held it.
    """

    def __init__(self, make):
        self._make = make
        self._clients: dict[tuple, object] = {}
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._new_lock)

    def _new_lock(self) -> None:
        self._lock = threading.Lock()

    def get(self, settings: tuple):
        key = (os.getpid(), settings)
        client = self._clients.get(key)
        if client is None:
            with self._lock:  # SDK clients are not made safely by two threads at once
                client = self._clients.get(key)
                if client is None:
                    client = self._clients[key] = self._make(settings)
        return client


class ObjectStorage(Storage):
    """A bucket or container and a key prefix in it (s3, az): what the object stores share.

    Subclasses provide `client` (from a ClientCache), `_calls(uri)` (a context manager turning SDK
    errors into StorageErrors naming `uri`), `_create_root()` (create the bucket / container), `_root_exists()` and
    `list_sizes(prefix)` (one paginated listing, which carries every object's size).
    """

    sizes_with_listing = True
    attempts_option = ""  # the storage_options key of the attempts per request (s3_max_attempts, ...)

    def __init__(self, root: str, prefix: str, options: dict | None, threads: int):
        if not root:
            what = SCHEMES[self.scheme].root
            raise StorageError(f"{self.scheme}://: a {what} name is required ({self.scheme}://{what}/prefix)")
        self.prefix = prefix.strip("/")
        super().__init__(join_uri(f"{self.scheme}://{root}", self.prefix))
        self._opts = dict(options or {})
        self.threads = max(1, int(threads))
        self.max_attempts = int(self._opts.get(self.attempts_option, DEFAULT_ATTEMPTS))
        self.connect_timeout = float(self._opts.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S))
        self.read_timeout = float(self._opts.get("read_timeout", DEFAULT_READ_TIMEOUT_S))
        self.wait_notice = float(self._opts.get("wait_notice_s", WAIT_NOTICE_S))

    def endpoint(self) -> str:
        """The service's URL, for messages."""
        raise NotImplementedError

    def limits(self) -> str:
        """How long a request may wait, and which storage_options change it (for messages)."""
        return (f"connect_timeout {self.connect_timeout:g} s, read_timeout {self.read_timeout:g} s, "
                f"{self.max_attempts} attempt(s); set storage_options connect_timeout, read_timeout, "
                f"{self.attempts_option}")

    def _waiting(self, uri: str):
        """A context around one SDK call: reported on stderr while it waits long (see Waits)."""
        return waits.watching(self, uri)

    def _not_answering(self, uri: str, started: float) -> StorageError:
        """The last word on a call that timed out on every attempt."""
        return StorageError(f"{uri}: the endpoint {self.endpoint()} did not answer; gave up after "
                            f"{time.monotonic() - started:.0f} s ({self.limits()})")

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.list_sizes(prefix))

    @property
    @abstractmethod
    def client(self): ...

    @abstractmethod
    def _calls(self, uri: str) -> AbstractContextManager: ...

    @abstractmethod
    def _create_root(self) -> None: ...

    @abstractmethod
    def _root_exists(self) -> bool: ...

    def connect(self) -> None:
        self.client  # noqa: B018 -- made and cached for every later call

    def prepare_writes(self) -> None:
        # Asked first, created only when missing: a user may write into a bucket without the right to
        # create one. The question is also the client's first request (its lazy set-up, a pooled connection).
        self.connect()
        if not self._root_exists():
            self._create_root()

    def _full(self, key: str) -> str:
        """The object's full name in the bucket / container."""
        check_key(key, self.uri)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _root(self) -> str:
        """What every full name under this storage starts with."""
        return f"{self.prefix}/" if self.prefix else ""

    def _with_root(self, uri: str, call):
        """Run a write; if the bucket / container is missing, create it once and run the write again
        (a generation into a new bucket just works; reads of a missing one stay errors)."""
        try:
            with self._calls(uri):
                return call()
        except MissingContainerError:
            self._create_root()
            with self._calls(uri):
                return call()

    def child(self, prefix: str) -> "ObjectStorage":
        prefix = prefix.strip("/")
        if not prefix:
            return self
        other = copy.copy(self)  # shares the client and its connection pool
        other.prefix = self._full(prefix)
        other.uri = join_uri(self.uri, prefix)
        return other


# -- calls that wait ---------------------------------------------------------------------------------

WAIT_NOTICE_S = 5.0     # a call in flight this long is reported (storage_options wait_notice_s) ...
WAIT_REPEAT_S = 10.0    # ... and again this often while it still waits


class Waits:
    """The object-store calls in flight in this process, and a thread that says on stderr, for each
    endpoint, when one has waited long: a hung endpoint (it accepts connections, never answers) is
    otherwise silent for its read timeout times its attempts. Entering and leaving a call cost a dict
    insert and delete (the endpoint and limits are worked out only to report); the thread wakes once a
    second."""

    def __init__(self):
        self._calls: dict[object, tuple] = {}
        self._lock = threading.Lock()
        self._pid = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """In a forked child: the parent's calls are not ours, and its thread did not come along."""
        self._calls = {}
        self._lock = threading.Lock()
        self._pid = None

    @contextmanager
    def watching(self, storage: "ObjectStorage", uri: str):
        if self._pid != os.getpid():
            self._start()
        token = object()
        self._calls[token] = (time.monotonic(), storage, uri)
        try:
            yield
        finally:
            self._calls.pop(token, None)

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._watch, name="dldriver-storage-waits", daemon=True).start()

    def _watch(self) -> None:
        told: dict[str, float] = {}
        while True:
            time.sleep(1.0)
            try:
                self._report(told)
            except Exception:  # noqa: BLE001 -- a notice that cannot be made must not end the watch
                pass

    def _report(self, told: dict[str, float]) -> None:
        """Say, per endpoint, how long its oldest call that is past its notice has waited (every 10 s)."""
        now = time.monotonic()
        oldest: dict[str, tuple] = {}
        for start, storage, uri in list(self._calls.values()):
            if now - start < storage.wait_notice:
                continue
            endpoint = storage.endpoint()
            if endpoint not in oldest or start < oldest[endpoint][0]:
                oldest[endpoint] = (start, storage, uri)
        for endpoint, (start, storage, uri) in oldest.items():
            if now - told.get(endpoint, -WAIT_REPEAT_S) >= WAIT_REPEAT_S:
                told[endpoint] = now
                print(f"warning: {endpoint} is not answering: a request for {uri} has waited "
                      f"{now - start:.0f} s ({storage.limits()}); still waiting", file=sys.stderr, flush=True)


waits = Waits()
