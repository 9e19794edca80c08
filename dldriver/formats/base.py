"""What every format shares: the writer/reader interface, reproducible random contents, error wrapping.

Contents are random but reproducible: each file draws from a numpy Generator seeded with
(seed, split, index), so the same config writes the same bytes on every rerun and on every machine.
DLIO's own contents come from an unseeded generator and differ run to run; its sizes do not, nor ours.

Random bytes (every integer-typed array) are an AES-128-CTR keystream, keyed from that Generator: with
AES-NI it comes at about 9 GB/s and is written straight into the caller's buffer, where numpy's bit
generators make about 4.5 GB/s into a new array that must then be copied into the file. A keystream is
as incompressible and free of repeats as numpy's output, which is what a storage benchmark needs.
"""
from __future__ import annotations

import contextlib
import io
import math

import numpy as np
# numpy loads its random module on first use; load it with this module instead, so that generate's
# parent has it before it forks and no worker pays the import (~10 ms) before its first file.
import numpy.random  # noqa: F401
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dldriver.errors import FormatError, StorageError

_SPLIT_CODE = {"train": 0, "valid": 1}
RANDOM_BLOCK = 16 << 20     # each block of random bytes has its own key, so streamed and whole files agree
_ZEROS = memoryview(bytes(1 << 20))     # the keystream's plaintext, fed 1 MiB at a time (stays in cache)
_COUNTER_ZERO = bytes(16)


def file_rng(spec) -> np.random.Generator:
    return np.random.default_rng([spec.seed, _SPLIT_CODE[spec.split], spec.index])


def fill_random(rng: np.random.Generator, out) -> None:
    """Fill the writable buffer `out` with random bytes: per RANDOM_BLOCK, the AES-128-CTR keystream of
    a key made of the generator's next two 64-bit words."""
    view = memoryview(out).cast("B")
    for block in range(0, view.nbytes, RANDOM_BLOCK):
        key = rng.bit_generator.random_raw(2).astype("<u8", copy=False).tobytes()
        stream = Cipher(algorithms.AES(key), modes.CTR(_COUNTER_ZERO)).encryptor()
        for start in range(block, min(block + RANDOM_BLOCK, view.nbytes), _ZEROS.nbytes):
            piece = view[start:min(start + _ZEROS.nbytes, block + RANDOM_BLOCK, view.nbytes)]
            stream.update_into(_ZEROS[:piece.nbytes], piece)


def warm_random() -> None:
    """Load OpenSSL's AES now: the first cipher of a process costs about a millisecond (a parent that
    forks workers pays it once for all of them)."""
    fill_random(np.random.default_rng(0), bytearray(16))


def random_bytes(rng: np.random.Generator, nbytes: int) -> np.ndarray:
    """nbytes random bytes (fill_random) as a new uint8 array."""
    out = np.empty(nbytes, dtype=np.uint8)
    fill_random(rng, out)
    return out


def iter_random_bytes(rng: np.random.Generator, nbytes: int):
    """nbytes random bytes in RANDOM_BLOCK pieces (the same bytes whether joined or streamed)."""
    while nbytes > 0:
        n = min(nbytes, RANDOM_BLOCK)
        yield random_bytes(rng, n).data
        nbytes -= n


def fill_array(rng: np.random.Generator, out, shape, dtype) -> None:
    """Write random_array(rng, shape, dtype)'s C-ordered bytes into the buffer `out`, in place when the
    values are random bytes (integers) and by one copy otherwise."""
    if np.dtype(dtype).kind in "iu":
        fill_random(rng, out)
    else:
        values = np.ascontiguousarray(random_array(rng, shape, dtype))
        memoryview(out).cast("B")[:] = memoryview(values).cast("B")


def random_array(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """A random array in one call: integers over their whole range, floats in [0, 1)."""
    dt = np.dtype(dtype)
    count = math.prod(shape)
    if dt.kind in "iu":
        return random_bytes(rng, count * dt.itemsize).view(dt).reshape(shape)
    if dt.kind == "f":
        work = np.float64 if dt.itemsize > 4 else np.float32
        return rng.random(count, dtype=work).astype(dt, copy=False).reshape(shape)
    if dt.kind == "b":
        return (random_bytes(rng, count) & 1).view(np.bool_).reshape(shape)
    raise FormatError(f"record_element_type {dt.name} is not supported: use an integer, float or bool type")


class Format:
    """A writer and a reader of one of DLIO's file formats."""

    name = ""

    @property
    def extension(self) -> str:
        return self.name

    def write_file(self, spec) -> dict[str, bytes]:
        """The file's bytes (and any index files'), keyed relative to the dataset root."""
        raise NotImplementedError

    def stream_file(self, spec):
        """For formats whose files can be too big for memory: {key: iterator of byte chunks}, else None."""
        return None

    def open_file(self, storage, spec) -> "FileReader":
        raise NotImplementedError


class FileReader:
    """Decodes one file's samples from real bytes; counts the bytes it fetched."""

    format_name = ""

    def __init__(self, storage, spec):
        self.storage = storage
        self.spec = spec
        self.num_samples = spec.num_samples
        self.bytes_read = 0

    @property
    def where(self) -> str:
        return f"{self.storage.uri.rstrip('/')}/{self.spec.key}"

    def get(self, key: str) -> bytes:
        data = self.storage.get(key)
        self.bytes_read += len(data)
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        data = self.storage.get_range(key, offset, length)
        self.bytes_read += len(data)
        return data

    def fail(self, reason: str) -> FormatError:
        return FormatError(f"{self.where}: not a valid {self.format_name} file ({reason})")

    @contextlib.contextmanager
    def decoding(self):
        """Turns any library error while decoding into a FormatError naming the file and the format."""
        try:
            yield
        except (FormatError, StorageError):
            raise
        except Exception as err:  # libraries raise anything from OSError to KeyError on bad bytes
            raise self.fail(f"{type(err).__name__}: {err}") from err

    def check(self, array: np.ndarray, shape, dtype) -> np.ndarray:
        if tuple(array.shape) != tuple(shape) or array.dtype != np.dtype(dtype):
            raise self.fail(f"holds {array.dtype}{list(array.shape)}, the config expects "
                            f"{np.dtype(dtype)}{list(shape)}")
        return array

    def check_index(self, i: int) -> None:
        if not 0 <= i < self.num_samples:
            raise IndexError(f"{self.where}: sample {i} out of range 0..{self.num_samples - 1}")

    def read_sample(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the reader holds open (only hdf5 holds anything)."""


class StorageFile(io.RawIOBase):
    """A read-only, seekable file over ranged gets, for libraries that take a file object (h5py)."""

    def __init__(self, reader: FileReader, key: str):
        super().__init__()
        self._reader = reader
        self._key = key
        self._size = reader.storage.stat(key)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        length = min(len(buffer), self._size - self._pos)
        if length <= 0:
            return 0
        data = self._reader.get_range(self._key, self._pos, length)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)
