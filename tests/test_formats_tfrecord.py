"""TFRecord files written without TensorFlow are read by TensorFlow's own TFRecordDataset (CRCs checked)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from dldriver.dataset.layout import dataset_files
from dldriver.formats import get_format
from dldriver.formats.tfrecord import _read_varint, example_parts, image_bytes
from dldriver.generate import generate_dataset
from test_formats_support import data_storage, workload

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("dims, dtype", [([], "uint8"), ([2, 3, 4], "float32")])
def test_tensorflow_reads_our_tfrecords(tmp_path, dims, dtype):
    w = workload(tmp_path, "dataset.format=tfrecord", f"dataset.record_dims={dims}",
                 f"dataset.record_element_type={dtype}", "dataset.num_samples_per_file=3")
    generate_dataset(w, processes=1, progress=False)
    storage = data_storage(tmp_path)
    features = {"image": tf.io.FixedLenFeature([], tf.string), "size": tf.io.FixedLenFeature([], tf.int64)}
    for spec in dataset_files(w, "train"):
        ours = get_format("tfrecord").open_file(storage, spec)
        records = list(tf.data.TFRecordDataset(storage.local_path(spec.key)))
        assert len(records) == 3
        for i, record in enumerate(records):
            example = tf.io.parse_single_example(record, features)
            image = np.frombuffer(example["image"].numpy(), dtype=dtype).reshape(spec.shape)
            assert int(example["size"]) == spec.sample_bytes
            np.testing.assert_array_equal(image, ours.read_sample(i))
        index = storage.get(f"index/train/{spec.basename}.idx").decode().split("\n")
        step = len(storage.get(spec.key)) // 3
        assert index[:3] == [f"{i * step} {step}" for i in range(3)]



def test_an_example_laid_out_otherwise_is_parsed_whole_even_after_one_of_its_length():
    # image_bytes remembers where the image of an Example of some length lies; an Example of the same
    # length with its two features in the other order must not be read from there.
    n = 4096
    first, second = os.urandom(n), os.urandom(n)
    prefix, size_entry = example_parts(n)   # Example = prefix + image + size entry
    usual = prefix + first + size_entry
    assert bytes(image_bytes(usual)) == first and bytes(image_bytes(memoryview(usual))) == first
    _, after_features_header = _read_varint(prefix, 1)  # the Features field's tag, then its length
    features_header, image_entry_head = prefix[:after_features_header], prefix[after_features_header:]
    swapped = features_header + size_entry + image_entry_head + second
    assert len(swapped) == len(usual) and swapped != usual
    assert bytes(image_bytes(swapped)) == second
    assert bytes(image_bytes(usual)) == first
