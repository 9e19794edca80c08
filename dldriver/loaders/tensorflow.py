"""The TensorFlow loader: tf.data pipelines over the shared sampler's batches; tf tensors out.

- tfrecord files on a local path, read in runs of consecutive records (no sample shuffle): TensorFlow's
  own TFRecordDataset reads each run (skip/take), up to read_threads files interleaved, records batched,
  then each batch parsed (`image` feature) with computation_threads. Interleaving mixes files within a batch
  differently from the sampler's batches, but every epoch reads exactly the sampler's samples.
- anything else: read_threads Python generators over the shared source, each producing whole batches,
  interleaved deterministically so the batches come out in the sampler's order.
Both end in prefetch(prefetch_size), as DLIO's loader does.
"""
from __future__ import annotations

import os

# Before the import: TensorFlow reads these once, at import time.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from typing import Iterator, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dldriver.engine.sampler import split_among_workers  # noqa: E402
from dldriver.engine.source import SampleSource  # noqa: E402
from dldriver.errors import DlDriverError, FormatError  # noqa: E402
from dldriver.loaders.base import Batch, Key, Loader, read_batch  # noqa: E402

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
        self._failures: list[DlDriverError] = []  # what a generator met; tf.data passes on only its text

    def _local_tfrecords(self):
        files = self.source.files
        if self.source.fmt.name != "tfrecord" or not files or len({f.shape for f in files}) != 1:
            return None
        storage = self.source.storage()
        paths = [storage.local_path(f.key) for f in files]
        return None if None in paths else paths

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        keys = [tuple(k) for b in batches for k in b]
        runs = _runs(keys)
        native = self._paths is not None and len(runs) <= 2 * len({f for f, _ in keys})
        if native:
            dataset = self._tfrecord_dataset(runs, len(batches[0]) if batches else 1)
        else:
            dataset = self._source_dataset(batches)
        if self.prefetch > 0:
            dataset = dataset.prefetch(self.prefetch)
        self._failures.clear()
        batches_out = iter(dataset)
        while True:
            try:
                data, batch_keys, nbytes, seconds = next(batches_out)
            except StopIteration:
                return
            except tf.errors.OpError as err:
                raise self._failure(err, [f for f, _, _ in runs] if native else []) from None
            yield Batch(data, [tuple(k) for k in batch_keys.numpy().tolist()], int(nbytes),
                        seconds.numpy().tolist())

    def _failure(self, err, files: list[int]) -> DlDriverError:
        """The one-line error for a tf.data failure: the error a generator met, else (TFRecordDataset,
        whose messages name no file) the first file of `files` our own reader finds damaged."""
        if self._failures:
            return self._failures[0]
        for f in dict.fromkeys(files):
            try:
                for sample in range(self.source.num_samples(f)):
                    self.source.fetch(f, sample)
            except DlDriverError as found:
                return found
        first = (err.message or type(err).__name__).strip().splitlines()[0]
        return FormatError(f"{self.source.uri}: TensorFlow could not read the dataset: {first}")

    def _source_dataset(self, batches):
        spec = self.source.files[0]
        ragged = len({f.shape for f in self.source.files}) > 1
        # Ragged batches (sizes drawn per file) travel as the samples' values concatenated.
        shape = (None,) if ragged else (None, *spec.shape)
        signature = (tf.TensorSpec(shape, tf.as_dtype(np.dtype(spec.dtype))),
                     tf.TensorSpec((None, 2), tf.int64), tf.TensorSpec((), tf.int64),
                     tf.TensorSpec((None,), tf.float64))
        shares = split_among_workers(list(batches), self.threads)
        source = self.source
        failures = self._failures

        def generate(worker):
            for keys in shares[int(worker)]:
                try:
                    batch = read_batch(source, keys)
                except DlDriverError as err:
                    failures.append(err)
                    raise
                data = batch.data
                if isinstance(data, list):
                    data = np.concatenate([a.ravel() for a in data])
                yield data, np.asarray(batch.keys, np.int64), batch.nbytes, np.asarray(batch.sample_seconds)

        return tf.data.Dataset.range(self.threads).interleave(
            lambda w: tf.data.Dataset.from_generator(generate, args=(w,), output_signature=signature),
            cycle_length=self.threads, block_length=1, num_parallel_calls=self.threads, deterministic=True)

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


def _runs(keys: Sequence[Key]) -> list[tuple[int, int, int]]:
    """(file, first sample, count) for each run of consecutive samples of one file."""
    runs: list[list[int]] = []
    for f, s in keys:
        if runs and runs[-1][0] == f and runs[-1][1] + runs[-1][2] == s:
            runs[-1][2] += 1
        else:
            runs.append([f, s, 1])
    return [tuple(r) for r in runs]
