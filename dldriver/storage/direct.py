"""POSIX files read with O_DIRECT (`direct:///abs/path`), bypassing the page cache.

O_DIRECT needs the buffer address, the file offset and the length to be multiples of the device's
logical block size. Reads therefore fetch the aligned superset of the wanted range into an mmap buffer
(page-aligned, unlike a bytearray) with os.preadv and return the wanted slice. Writes go through the
page cache and are always fsynced, so that what a later O_DIRECT read sees is on the device.
"""
from __future__ import annotations

import errno
import mmap
import os
from functools import lru_cache

from dldriver.errors import StorageError
from dldriver.storage.base import Writer, check_range, short_read
from dldriver.storage.file import FileStorage

FALLBACK_ALIGN = 4096


@lru_cache(maxsize=None)
def device_alignment(st_dev: int, path: str) -> int:
    """The logical block size of the device holding `path` (cached per device)."""
    base = f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}"
    # A partition has no queue/ of its own: its disk's is one level up.
    for candidate in (f"{base}/queue/logical_block_size", f"{base}/../queue/logical_block_size"):
        try:
            with open(candidate) as f:
                size = int(f.read())
        except (OSError, ValueError):
            continue
        if _plausible(size):
            return size
    # Virtual devices (overlay, tmpfs, NFS) have no sysfs entry; the file system block size is an
    # aligned upper bound of the real constraint.
    try:
        size = os.statvfs(path).f_bsize
    except OSError:
        size = 0
    return size if _plausible(size) else FALLBACK_ALIGN


def _plausible(size: int) -> bool:
    return 512 <= size <= 65536 and size & (size - 1) == 0


def _read_aligned(fd: int, start: int, end: int, skip: int, length: int) -> bytes:
    """Read the aligned block range [start, end) and return `length` bytes from `skip` in it."""
    buf = mmap.mmap(-1, end - start)
    try:
        with memoryview(buf) as view:
            done = 0
            # preadv may return less than asked (large reads, end of file); each full chunk is a multiple
            # of the block size, so the next offset and buffer position stay aligned.
            while done < end - start:
                n = os.preadv(fd, [view[done:]], start + done)
                if n == 0:
                    break
                done += n
        return buf[skip:skip + length]
    finally:
        buf.close()


class DirectStorage(FileStorage):
    scheme = "direct"

    def _open_direct(self, key: str) -> int:
        path = self.path(key)
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECT)
        except OSError as err:
            if err.errno == errno.EINVAL:
                raise StorageError(f"{self.key_uri(key)}: the file system refuses O_DIRECT (EINVAL at open); "
                                   f"use file://{path} for buffered reads") from err
            raise self._error(key, err) from err

    def _read(self, key: str, offset: int | None, length: int | None) -> bytes:
        """Read [offset, offset+length) (the whole file when offset is None) through O_DIRECT."""
        fd = self._open_direct(key)
        try:
            st = os.fstat(fd)
            size = st.st_size
            if offset is None:
                offset, length = 0, size
            elif offset + length > size:
                raise short_read(self.key_uri(key), offset, length, max(0, size - offset))
            if length == 0:
                return b""
            align = device_alignment(st.st_dev, self.root)
            start = offset - offset % align
            end = -(-(offset + length) // align) * align
            return _read_aligned(fd, start, end, offset - start, length)
        except OSError as err:
            raise self._error(key, err) from err
        finally:
            os.close(fd)

    def get(self, key: str) -> bytes:
        return self._read(key, None, None)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(self.key_uri(key), offset, length)
        return self._read(key, offset, length)

    def put(self, key: str, data: bytes, fsync: bool = True) -> None:
        super().put(key, data, fsync=True)

    def open_writer(self, key: str, fsync: bool = True) -> Writer:
        return super().open_writer(key, fsync=True)
