"""jpeg and png: one 2-D grayscale uint8 image per file via PIL, height dims[0] and width dims[1]
(DLIO's layout). Every sample index of a file reads that one image. JPEG is lossy: the decoded pixels
differ from the generated ones and the file size from record_length_bytes."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from dldriver.errors import FormatError
from dldriver.formats.base import FileReader, Format, file_rng, random_array


class ImageFormat(Format):
    def __init__(self, name: str, pil_name: str):
        self.name = name
        self.pil_name = pil_name

    def write_file(self, spec) -> dict[str, bytes]:
        if len(spec.shape) > 2:
            raise FormatError(f"{self.name} format does not support more than 2 dimensions, "
                              f"but got {len(spec.shape)} dimensions.")
        pixels = random_array(file_rng(spec), spec.shape, np.uint8).reshape(spec.shape[0], -1)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=self.pil_name)
        return {spec.key: buf.getvalue()}

    def open_file(self, storage, spec) -> FileReader:
        return ImageReader(storage, spec, self.name)


class ImageReader(FileReader):
    def __init__(self, storage, spec, format_name: str):
        super().__init__(storage, spec)
        self.format_name = format_name
        data = self.get(spec.key)
        with self.decoding():
            with Image.open(io.BytesIO(data)) as img:
                if (img.format or "").lower() != format_name:
                    raise ValueError(f"a {img.format} image")
                pixels = np.asarray(img.convert("L"))
        self.pixels = self.check(pixels, spec.shape, np.uint8)

    def read_sample(self, i: int) -> np.ndarray:
        self.check_index(i)
        return self.pixels


JPEG = ImageFormat("jpeg", "JPEG")
PNG = ImageFormat("png", "PNG")
