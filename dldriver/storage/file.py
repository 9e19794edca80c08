"""POSIX files (`file:///abs/path` or a bare path).

put() and open_writer() write a temporary name in the target folder and os.replace() it into place, so
a reader (or a resumed generation) never sees a partial file. list() hides those temporary names.
"""
from __future__ import annotations

import errno
import os
import uuid
from contextlib import contextmanager

from dldriver.errors import StorageError
from dldriver.storage.base import (MissingObjectError, Storage, Writer, check_key, check_range, join_uri,
                                   short_read)

TMP_MARK = ".dldriver-tmp-"


def _tmp_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TMP_MARK}{uuid.uuid4().hex[:12]}")


def _fsync_dir(folder: str) -> None:
    # The rename is durable only once the folder's entry is on disk.
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWriter(Writer):
    def __init__(self, storage: "FileStorage", key: str, fsync: bool):
        self._storage = storage
        self._uri = storage.key_uri(key)
        self._path = storage.path(key)
        self._fsync = fsync
        storage.make_parent(self._path, self._uri)
        self._tmp = _tmp_name(self._path)
        self._file = open(self._tmp, "wb")

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as err:
            raise StorageError(f"{self._uri}: write failed: {err.strerror}") from err

    def commit(self) -> None:
        try:
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._path)
            if self._fsync:
                self._storage.folder_written(os.path.dirname(self._path))
        except OSError as err:
            self.abort()
            raise StorageError(f"{self._uri}: write failed: {err.strerror}") from err

    def abort(self) -> None:
        self._file.close()
        try:
            os.remove(self._tmp)
        except FileNotFoundError:
            pass


class FileStorage(Storage):
    scheme = "file"

    def __init__(self, root: str, uri: str | None = None):
        self.root = os.path.abspath(root)
        self._pending_folders: set[str] | None = None  # inside batched_sync: folders to fsync at its end
        super().__init__(uri or f"{self.scheme}://{self.root}")

    def folder_written(self, folder: str) -> None:
        """An fsynced file was renamed into `folder`: make the name durable now, or at the batch's end."""
        if self._pending_folders is None:
            _fsync_dir(folder)
        else:
            self._pending_folders.add(folder)

    @contextmanager
    def batched_sync(self):
        outer = self._pending_folders is None
        if outer:
            self._pending_folders = set()
        try:
            yield
        finally:
            if outer:
                folders, self._pending_folders = self._pending_folders, None
                for folder in sorted(folders):
                    _fsync_dir(folder)

    def path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key, self.uri).split("/"))

    def local_path(self, key: str) -> str | None:
        return self.path(key)

    def child(self, prefix: str) -> "FileStorage":
        prefix = prefix.strip("/")
        return type(self)(self.path(prefix), join_uri(self.uri, prefix)) if prefix else self

    def make_parent(self, path: str, uri: str) -> None:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as err:
            raise StorageError(f"{uri}: cannot create its folder: {err.strerror}") from err

    def _error(self, key: str, err: OSError) -> StorageError:
        uri = self.key_uri(key)
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return MissingObjectError(f"{uri}: no such file")
        return StorageError(f"{uri}: {err.strerror}")

    def list(self, prefix: str = "") -> list[str]:
        # Walk only the folder the prefix names, then filter by the rest (prefixes are plain strings,
        # as on object stores: "train/img_1" matches train/img_1_of_8.npz and train/img_10_of_...).
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        keys = []
        # A missing folder lists as empty, like a prefix with no objects on S3.
        for dirpath, _dirs, files in os.walk(os.path.join(self.root, folder)):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            base = "" if rel == "." else rel + "/"
            keys.extend(base + f for f in files if TMP_MARK not in f and (base + f).startswith(prefix))
        return sorted(keys)

    def stat(self, key: str) -> int:
        try:
            return os.stat(self.path(key)).st_size
        except OSError as err:
            raise self._error(key, err) from err

    def get(self, key: str) -> bytes:
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except OSError as err:
            raise self._error(key, err) from err

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(self.key_uri(key), offset, length)
        try:
            fd = os.open(self.path(key), os.O_RDONLY)
            try:
                data = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        except OSError as err:
            raise self._error(key, err) from err
        if len(data) != length:
            raise short_read(self.key_uri(key), offset, length, len(data))
        return data

    def put(self, key: str, data: bytes, fsync: bool = False) -> None:
        writer = FileWriter(self, key, fsync)
        try:
            writer.write(data)
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def open_writer(self, key: str, fsync: bool = False) -> Writer:
        return FileWriter(self, key, fsync)

    def delete(self, key: str) -> None:
        try:
            os.remove(self.path(key))
        except FileNotFoundError:
            pass
        except OSError as err:
            raise self._error(key, err) from err
