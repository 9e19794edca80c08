"""Every loader over every format: the batches hold exactly the sampler's samples, decoded."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dldriver.engine.sampler import Sampler
from dldriver.engine.source import SampleSource
from dldriver.errors import ConfigError, FormatError
from dldriver.formats import get_format
from dldriver.formats.layout import dataset_files
from dldriver.loaders import make_loader
from dldriver.storage import open_storage

from test_run_helpers import FORMATS, LOADERS, make_dataset, workload_doc


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """One tiny dataset per format: 5 files x 3 samples (uneven against batch 2 and 2 ranks)."""
    root = tmp_path_factory.mktemp("loader-data")
    return {fmt: make_dataset(root, workload_doc(root / fmt, fmt, files=5, samples=3)) for fmt in FORMATS}


def _numpy(data):
    if isinstance(data, list):
        return [np.asarray(d) for d in data]
    return data.numpy() if hasattr(data, "numpy") else np.asarray(data)


def _source(w):
    storage = open_storage(f"file://{w.dataset.data_folder}")
    fmt = get_format(w.dataset.format)
    return SampleSource(lambda: storage, dataset_files(w, "train"), fmt), fmt, storage


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("loader", LOADERS)
def test_loader_yields_the_samplers_samples_decoded(datasets, loader, fmt):
    w = datasets[fmt]
    source, fmt_obj, storage = _source(w)
    reader = dataclasses.replace(w.reader, read_threads=2)
    sampler = Sampler(5, 3, ranks=2, rank=1, batch_size=2, sample_shuffle="seed")
    planned = sampler.batches(epoch=1)
    got = list(make_loader(loader, source, reader).epoch(planned))
    assert len(got) == len(planned) == 3
    keys = [k for b in got for k in b.keys]
    assert sorted(keys) == sorted(k for b in planned for k in b)
    if loader != "tensorflow":  # tf's TFRecordDataset may interleave files within the same samples
        assert [b.keys for b in got] == planned
    specs = dataset_files(w, "train")
    for batch in got:
        data = _numpy(batch.data)
        assert batch.nbytes > 0 and len(batch.sample_seconds) == len(batch.keys)
        for row, (f, s) in zip(data, batch.keys):
            expected = fmt_obj.open_file(storage, specs[f]).read_sample(s)
            np.testing.assert_array_equal(row, expected)


def test_tensorflow_reads_tfrecord_with_tfrecorddataset_in_order(datasets):
    w = datasets["tfrecord"]
    source, fmt_obj, storage = _source(w)
    sampler = Sampler(5, 3, ranks=1, rank=0, batch_size=2)
    loader = make_loader("tensorflow", source, w.reader)
    assert loader._paths is not None  # local files: TensorFlow's own reader, not the source
    got = list(loader.epoch(sampler.batches(1)))
    assert [b.keys for b in got] == sampler.batches(1)  # one read thread: exactly the sampler's order
    specs = dataset_files(w, "train")
    first = got[0].data.numpy()[0]
    np.testing.assert_array_equal(first, fmt_obj.open_file(storage, specs[0]).read_sample(0))


def test_npz_batches_match_numpy_load(datasets):
    w = datasets["npz"]
    source, _, _ = _source(w)
    batch = next(make_loader("native", source, w.reader).epoch([[(2, 1), (4, 0)]]))
    folder = w.dataset.data_folder
    np.testing.assert_array_equal(batch.data[0], np.load(f"{folder}/train/img_2_of_5.npz")["x"][..., 1])
    np.testing.assert_array_equal(batch.data[1], np.load(f"{folder}/train/img_4_of_5.npz")["x"][..., 0])


def test_read_type_memory_fetches_each_file_once(datasets):
    w = datasets["npy"]
    source, _, _ = _source(w)
    source.read_type = "memory"
    loader = make_loader("native", source, w.reader)
    once = sum(b.nbytes for b in loader.epoch([[(0, 0), (1, 0)], [(0, 1), (1, 1)]]))
    again = sum(b.nbytes for b in loader.epoch([[(0, 2), (1, 2)]]))
    assert once > 0 and again == 0


def test_decode_failure_names_the_file(tmp_path):
    w = make_dataset(tmp_path, workload_doc(tmp_path / "d", "npz", files=2, samples=1))
    path = tmp_path / "d" / "train" / "img_1_of_2.npz"
    raw = bytearray(path.read_bytes())
    raw[40:200] = b"\xff" * 160
    path.write_bytes(bytes(raw))
    source, _, _ = _source(w)
    with pytest.raises(FormatError, match="img_1_of_2.npz"):
        list(make_loader("native", source, w.reader).epoch([[(0, 0)], [(1, 0)]]))


@pytest.mark.parametrize("name", ["dali", "native_dali", "synthetic", "nope"])
def test_unsupported_loaders_are_config_errors(datasets, name):
    source, _, _ = _source(datasets["npz"])
    with pytest.raises(ConfigError, match="reader.data_loader"):
        make_loader(name, source, datasets["npz"].reader)


@pytest.mark.parametrize("compression", ["none", "zip"])
def test_one_sample_npz_read_in_place_matches_numpy_load(tmp_path, compression):
    # One sample per file: read straight into the batch (stored) or through np.load (compressed).
    w = make_dataset(tmp_path, workload_doc(tmp_path / "d", "npz", files=3, samples=1,
                                            dataset={"compression": compression}))
    source, _, _ = _source(w)
    batch = next(make_loader("native", source, w.reader).epoch([[(2, 0), (0, 0), (1, 0)]]))
    folder = w.dataset.data_folder
    for row, f in zip(batch.data, (2, 0, 1)):
        np.testing.assert_array_equal(row, np.load(f"{folder}/train/img_{f}_of_3.npz")["x"][..., 0])
    assert batch.data.flags.writeable and batch.nbytes > 3 * 256
