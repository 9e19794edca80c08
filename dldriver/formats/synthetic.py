"""synthetic: a tiny placeholder file (its index) so the dataset's layout exists; the reader fabricates
each sample in memory from the file's seed and reads nothing."""
from __future__ import annotations

import numpy as np

from dldriver.formats.base import FileReader, Format, file_rng, random_array


class SyntheticFormat(Format):
    name = "synthetic"

    def write_file(self, spec) -> dict[str, bytes]:
        return {spec.key: f"{spec.index}\n".encode()}

    def open_file(self, storage, spec) -> FileReader:
        return SyntheticReader(storage, spec)


class SyntheticReader(FileReader):
    format_name = "synthetic"

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        self.sample = random_array(file_rng(spec), spec.shape, spec.dtype)

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        return self.sample


FORMAT = SyntheticFormat()
