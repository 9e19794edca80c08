"""The TensorFlow loader: the shared sampler's batches as tf tensors.

- tfrecord files on a local path, read in runs of consecutive records (no sample shuffle): TensorFlow's
  own TFRecordDataset reads each run (skip/take), up to read_threads files interleaved, records batched,
  then each batch parsed (`image` feature) with computation_threads. Interleaving mixes files within a batch
  differently from the sampler's batches, but every epoch reads exactly the sampler's samples.
  The pipeline ends in prefetch(prefetch_size), as DLIO's loader does.
- anything else (object stores, every other format): the native loader's pool of read_threads threads
  reads whole batches over the shared source, read_threads requests in flight at once (the SDKs and
  preadv release the GIL while they wait), read_threads x prefetch_factor batches ahead; each batch,
  in the sampler's order, becomes a tf tensor over the same memory (DLPack: 64-byte aligned batch
  arrays, no copy). Why not tf.data here (issue 15): one from_generator per thread under a parallel
  interleave, the former design, read object stores at 0.3-0.45 of a plain SDK loop; one generator over
  the pool still ran at ~0.5-0.8 of native, and TensorFlow's first generator iterator lowers glibc's
  trim threshold to 128 KiB for the whole process, which makes every object body a freshly mapped
  buffer (~0.4 s of CPU per GB on the 2 cores the storage server shares).
"""
from __future__ import annotations

import os

# Before the import: TensorFlow reads these once, at import time.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from typing import Iterator, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dldriver.dataset.source import SampleSource  # noqa: E402
from dldriver.errors import DlDriverError, FormatError  # noqa: E402
from dldriver.loaders.base import Batch, Key, Loader  # noqa: E402
from dldriver.loaders.native import NativeLoader  # noqa: E402

# The framing TFRecordDataset strips from every record: length (8), its CRC (4), data CRC (4).
_RECORD_FRAMING = 16


class TensorFlowLoader(Loader):
    name = "tensorflow"

    def __init__(self, source: SampleSource, read_threads: int = 1, prefetch_size: int = 2,
                 computation_threads: int = 1, transfer_size=None, tfrecord_native: bool = True):
        self.source = source
        self.threads = max(1, read_threads)  # DLIO forces read_threads 0 to 1 for tf.data
        self.prefetch = prefetch_size
        self.parse_threads = max(1, computation_threads)
        self.transfer_size = transfer_size
        self._paths = self._local_tfrecords() if tfrecord_native else None
        # The source path's reader: its depth (read_threads x prefetch_factor batches in flight) is the
        # prefetch, as tf.data's prefetch(prefetch_size) is on the tfrecord path.
        self._pool = NativeLoader(source, self.threads, prefetch_size)

    def _local_tfrecords(self):
        return local_tfrecords(self.source)

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        keys = [tuple(k) for b in batches for k in b]
        runs = _runs(keys)
        if self._paths is None or len(runs) > 2 * len({f for f, _ in keys}):
            yield from self._source_epoch(batches)
            return
        dataset = self._tfrecord_dataset(runs, len(batches[0]) if batches else 1)
        if self.prefetch > 0:
            dataset = dataset.prefetch(self.prefetch)
        batches_out = iter(dataset)
        while True:
            try:
                data, batch_keys, nbytes, seconds = next(batches_out)
            except StopIteration:
                return
            except tf.errors.OpError as err:
                raise self._failure(err, [f for f, _, _ in runs]) from None
            yield Batch(data, [tuple(k) for k in batch_keys.numpy().tolist()], int(nbytes),
                        seconds.numpy().tolist())

    def _failure(self, err, files: list[int]) -> DlDriverError:
        """The one-line error for a failure of TFRecordDataset, whose messages name no file: the first of
        `files` that our own reader finds damaged (the source path's errors are raised as they are)."""
        for f in dict.fromkeys(files):
            try:
                for sample in range(self.source.num_samples(f)):
                    self.source.fetch(f, sample)
            except DlDriverError as found:
                return found
        first = (err.message or type(err).__name__).strip().splitlines()[0]
        return FormatError(f"{self.source.uri}: TensorFlow could not read the dataset: {first}")

    def _source_epoch(self, batches):
        for batch in self._pool.epoch(batches):
            batch.data = _tensor(batch.data)
            yield batch

    def _tfrecord_dataset(self, runs, batch_size):
        spec = self.source.files[0]
        dtype = tf.as_dtype(np.dtype(spec.dtype))
        shape = list(spec.shape)
        paths = [self._paths[f] for f, _, _ in runs]
        starts = [s for _, s, _ in runs]
        counts = [n for _, _, n in runs]
        files = [f for f, _, _ in runs]
        transfer = self.transfer_size

        def records(path, start, count, file_idx):
            data = tf.data.TFRecordDataset(path, buffer_size=transfer).skip(start).take(count)
            index = tf.data.Dataset.range(start, start + count)
            return tf.data.Dataset.zip((data, index)).map(lambda rec, i: (rec, tf.stack([file_idx, i])))

        def parse(records, keys):
            # One parse and one decode per batch: parsing record by record costs 10-20 % more.
            start = tf.timestamp()
            images = tf.io.parse_example(records, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
            samples = tf.reshape(tf.io.decode_raw(images, dtype), [-1, *shape])
            count = tf.size(records)
            nbytes = tf.reduce_sum(tf.cast(tf.strings.length(records), tf.int64)) \
                + _RECORD_FRAMING * tf.cast(count, tf.int64)
            seconds = tf.fill([count], (tf.timestamp() - start) / tf.cast(count, tf.float64))
            return samples, keys, nbytes, seconds

        segments = tf.data.Dataset.from_tensor_slices((paths, tf.constant(starts, tf.int64),
                                                       tf.constant(counts, tf.int64), tf.constant(files, tf.int64)))
        return (segments
                .interleave(records, cycle_length=self.threads, num_parallel_calls=self.threads, deterministic=True)
                .batch(batch_size, drop_remainder=True)
                .map(parse, num_parallel_calls=self.parse_threads, deterministic=True))


    def close(self) -> None:
        self._pool.close()


def local_tfrecords(source: SampleSource):
    """The POSIX paths of the source's tfrecord files when TensorFlow's TFRecordDataset may read them
    (file://, every sample of one shape), else None. direct:// is read by the source, through O_DIRECT:
    TFRecordDataset would read it through the page cache the scheme exists to bypass."""
    files = source.files
    if source.fmt.name != "tfrecord" or not files or len({f.shape for f in files}) != 1:
        return None
    storage = source.storage()
    if storage.scheme != "file":
        return None
    paths = [storage.local_path(f.key) for f in files]
    return None if None in paths else paths


def _tensor(data) -> tf.Tensor:
    """The batch as a tf tensor: the native pool's aligned batch array itself (DLPack, no copy; the tensor
    keeps the array alive, so its memory is reused only once the tensor is gone), ragged batches as
    their samples' values concatenated."""
    if isinstance(data, list):
        return tf.convert_to_tensor(np.concatenate([a.ravel() for a in data]))
    return tf.experimental.dlpack.from_dlpack(data.__dlpack__())


def _runs(keys: Sequence[Key]) -> list[tuple[int, int, int]]:
    """(file, first sample, count) for each run of consecutive samples of one file."""
    runs: list[list[int]] = []
    for f, s in keys:
        if runs and runs[-1][0] == f and runs[-1][1] + runs[-1][2] == s:
            runs[-1][2] += 1
        else:
            runs.append([f, s, 1])
    return [tuple(r) for r in runs]
