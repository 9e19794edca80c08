"""npy: `np.save` of the same array as npz's x: (*sample_shape, num_samples), samples on the LAST axis, built
in one buffer (np.save into a BytesIO copies the data twice)."""
from __future__ import annotations

from dldriver.formats.base import Format
from dldriver.formats.npyparse import ArrayFileReader, npy_layout
from dldriver.formats.npz import fill_npy, npy_size


class NpyFormat(Format):
    name = "npy"

    def write_file(self, spec) -> dict[str, bytes | bytearray]:
        out = bytearray(npy_size(spec))
        fill_npy(memoryview(out), spec)
        return {spec.key: out}

    def open_file(self, storage, spec) -> FileReader:
        return NpyReader(storage, spec)


class NpyReader(ArrayFileReader):
    format_name = "npy"

    def _layout(self, head):
        return npy_layout(head)


FORMAT = NpyFormat()
