"""O_DIRECT reads (direct://): byte-equal to buffered reads at any offset and length, the device's
alignment, and the clear error where a file system refuses O_DIRECT."""
from __future__ import annotations

import errno
import os

import pytest
from hypothesis import given, settings, strategies as st

from dldriver.errors import StorageError
from dldriver.storage import open_storage
from dldriver.storage.direct import device_alignment

SIZE = 3 * 4096 + 123  # not a multiple of any block size: the tail needs the aligned superset too


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same folder opened buffered (file://) and with O_DIRECT (direct://), holding one file."""
    root = tmp_path_factory.mktemp("direct")
    data = os.urandom(SIZE)
    (root / "f.bin").write_bytes(data)
    return open_storage(f"file://{root}"), open_storage(f"direct://{root}"), data


def test_whole_object_equals_buffered(pair):
    buffered, direct, data = pair
    assert direct.get("f.bin") == buffered.get("f.bin") == data


@pytest.mark.parametrize("offset", [0, 1, 511, 512, 4095, 4096, 4097, 8191, SIZE - 1])
@pytest.mark.parametrize("length", [1, 2, 511, 4096, 4097])
def test_grid_of_unaligned_ranges(pair, offset, length):
    buffered, direct, data = pair
    length = min(length, SIZE - offset)
    assert direct.get_range("f.bin", offset, length) == buffered.get_range("f.bin", offset, length)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_range_equals_buffered(pair, draw):
    buffered, direct, _ = pair
    offset = draw.draw(st.integers(0, SIZE - 1))
    length = draw.draw(st.integers(0, SIZE - offset))
    assert direct.get_range("f.bin", offset, length) == buffered.get_range("f.bin", offset, length)


def test_reads_really_use_o_direct(pair, monkeypatch):
    _, direct, data = pair
    flags_seen = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        flags_seen.append(flags)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    assert direct.get_range("f.bin", 5, 10) == data[5:15]
    assert flags_seen and all(f & os.O_DIRECT for f in flags_seen)


def test_alignment_from_the_device(tmp_path):
    align = device_alignment(os.stat(tmp_path).st_dev, str(tmp_path))
    assert align >= 512 and align & (align - 1) == 0


def test_file_system_refusing_o_direct(pair, monkeypatch):
    _, direct, _ = pair
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    path = direct.local_path("f.bin")
    with pytest.raises(StorageError) as info:
        direct.get("f.bin")
    message = str(info.value)
    assert message.startswith(f"direct://{path}: ") and "O_DIRECT" in message and f"file://{path}" in message


def test_writes_are_readable_with_o_direct(tmp_path):
    direct = open_storage(f"direct://{tmp_path}")
    data = os.urandom(100_000)
    direct.put("w/x.bin", data)
    with direct.open_writer("w/y.bin") as writer:
        writer.write(data[:7])
        writer.write(data[7:])
    assert direct.get("w/x.bin") == direct.get("w/y.bin") == data
