"""TensorFlow: a tf.data.Dataset over a workload's dataset, sharded and ordered by the shared sampler.

tfrecord files on a file:// path are read by TensorFlow's own TFRecordDataset (runs of consecutive records
of the rank's assignment, skip/take), parsed per batch, the bytes of every record (as stored, with its
framing) counted as the batches are handed out (in Python when the object is iterated; in a stage of
tf.Variable updates in `dataset()`); other formats, direct:// and object stores go through the
shared sample source in parallel map calls (the storage and decoders release the GIL while they read).
The tensorflow_config profile applies: batch_size, shuffle_buffer_size (tf.data's shuffle, seeded),
num_parallel_calls and prefetch_buffer_size (-1: AUTOTUNE), deterministic, drop_remainder,
reshuffle_each_iteration, writable (numpy() yields arrays the caller may modify).

    from dldriver.frameworks.tensorflow import DlioTensorFlowDataset
    data = DlioTensorFlowDataset.from_config("workload.yaml")
    model.fit(data.dataset(epoch=1), ...)
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dldriver.config.profiles import AUTOTUNE  # noqa: E402
from dldriver.errors import DlDriverError  # noqa: E402
from dldriver.frameworks.common import FrameworkDataset  # noqa: E402
from dldriver.loaders.tensorflow import _RECORD_FRAMING, _runs, local_tfrecords  # noqa: E402

__all__ = ["DlioTensorFlowDataset"]


def _calls(n: int):
    return tf.data.AUTOTUNE if n == AUTOTUNE else n


class DlioTensorFlowDataset(FrameworkDataset):
    """`dataset(epoch)` is a tf.data.Dataset of this rank's batches; iterating the object iterates the
    current epoch's (set_epoch). `tfrecord_native=False` reads tfrecord through the sample source too."""

    framework = "tensorflow"

    def __init__(self, config, overrides=(), *, split: str = "train", rank: Optional[int] = None,
                 world_size: Optional[int] = None, entropy: Optional[int] = None,
                 tfrecord_native: bool = True, **profile):
        self._setup(config, overrides, split, rank, world_size, entropy, profile)
        self._paths = self._local_tfrecords() if tfrecord_native else None
        self._pool = None  # the native loader's thread pool, for every path but the native one
        self._built: dict = {}  # (kind, epoch, ...) -> the pipeline built for it (_built_once)
        # bytes and records the native path's parse op has counted (the graph cannot reach SharedCounts)
        self._native_counts = (tf.Variable(0, dtype=tf.int64, trainable=False),
                               tf.Variable(0, dtype=tf.int64, trainable=False)) if self.native else None

    def _local_tfrecords(self):
        return local_tfrecords(self.reading.source)

    @property
    def native(self) -> bool:
        """True when TensorFlow's own TFRecordDataset reads the files."""
        return self._paths is not None

    def dataset(self, epoch: Optional[int] = None, counted: bool = True) -> tf.data.Dataset:
        """The epoch's batches as a tf.data.Dataset (for model.fit and the like). On the native path the
        bytes are counted inside the pipeline (two tf.Variables, read by take_counts), which costs a
        stateful stage (~0.7 of the pipeline's speed on the 2-core bench); counted=False leaves it out.
        Iterating the object (`for batch in data`, numpy(), Measurement) counts in Python instead, at
        full speed."""
        epoch = self.epoch if epoch is None else epoch

        def build():
            data = self._pipeline(epoch)
            if self.native:
                data = data.map(self._count_stage() if counted else lambda batch, nbytes, records: batch)
            return self._finish(data)

        return self._built_once(("dataset", epoch, counted), build)

    def _built_once(self, key: tuple, build) -> tf.data.Dataset:
        """The pipeline of `key` (its epoch first), built once and kept while that epoch is read:
        building traces its functions (~0.1-0.2 s on the 2-core bench), which an epoch read again (or
        dataset() called per pass) should not pay again. Iterating it again reads it again."""
        built = self._built.get(key)
        if built is None:
            if any(k[1] != key[1] for k in self._built):
                self._built.clear()  # another epoch: its order differs
            built = self._built[key] = build()
        return built

    def _pipeline(self, epoch: Optional[int]) -> tf.data.Dataset:
        """The epoch's batches, before prefetch; on the native path (batch, stored bytes, records) so
        that whoever consumes it counts them (the pipeline itself stays stateless)."""
        p = self.profile
        epoch = self.epoch if epoch is None else epoch
        if self.native:
            samples = self._tfrecords(self.reading.sampler.for_epoch(epoch))
        else:  # the pool reads the sampler's batches (drop_last as drop_remainder): rebatched only to shuffle
            data = self._source(self.reading.sampler.batches(epoch))
            samples = data.unbatch() if p.shuffle_buffer_size > 0 else None
        if samples is not None:
            if p.shuffle_buffer_size > 0:
                samples = samples.shuffle(p.shuffle_buffer_size, seed=p.seed,
                                          reshuffle_each_iteration=p.reshuffle_each_iteration)
            data = samples.batch(p.batch_size, drop_remainder=p.drop_remainder)
        if self.native:  # records were batched: one parse per batch
            data = data.map(self._parse_batch(), num_parallel_calls=_calls(p.num_parallel_calls),
                            deterministic=p.deterministic)
        return data

    def _finish(self, data: tf.data.Dataset) -> tf.data.Dataset:
        p = self.profile
        if p.prefetch_buffer_size != 0:
            data = data.prefetch(_calls(p.prefetch_buffer_size))
        options = tf.data.Options()
        options.deterministic = p.deterministic
        return data.with_options(options)

    def _source(self, batches):
        """The sampler's batches, each read whole by the native loader's pool (num_parallel_calls
        threads, batches in flight as prefetch_size says; the storage SDKs and preadv release the GIL),
        handed to tf.data by one generator. A per-sample tf.numpy_function map, the former design, took
        the GIL for every sample and ran at ~0.8 of a plain boto3 loop on S3."""
        from dldriver.loaders.native import NativeLoader

        if self._pool is None:
            threads = self.profile.num_parallel_calls
            threads = max(1, self.workload.reader.read_threads) if threads == AUTOTUNE else threads
            self._pool = NativeLoader(self.reading.source, threads, self.workload.reader.prefetch_size)
        pool, counts = self._pool, self.counts
        spec = self.reading.source.files[0]

        def read():
            for batch in pool.epoch(batches):
                counts.add(batch.nbytes, len(batch.keys))
                if isinstance(batch.data, list):
                    raise DlDriverError(f"{self.reading.uri}: samples of different shapes (a record length "
                                        "drawn per file) cannot form one tf batch; use the torch or JAX API")
                yield batch.data

        signature = tf.TensorSpec([None, *spec.shape], tf.as_dtype(np.dtype(spec.dtype)))
        return tf.data.Dataset.from_generator(read, output_signature=signature)

    def _tfrecords(self, keys):
        """This epoch's records (serialised tf.Examples) in the sampler's runs, interleaved over files."""
        runs = _runs(keys)
        paths = [self._paths[f] for f, _, _ in runs]
        starts = tf.constant([s for _, s, _ in runs], tf.int64)
        counts = tf.constant([n for _, _, n in runs], tf.int64)

        whole = all(s == 0 and n == self.reading.source.files[f].num_samples for f, s, n in runs)

        def records(path, start, count):
            if whole:  # every run is a whole file: no skip/take per file
                return tf.data.TFRecordDataset(path)
            return tf.data.TFRecordDataset(path).skip(start).take(count)

        calls = _calls(self.profile.num_parallel_calls)
        # num_parallel_calls runs of records read at once, interleaved record by record (with one, in
        # the sampler's order); deterministic fixes the interleaving, so each pass is the same.
        return (tf.data.Dataset.from_tensor_slices((paths, starts, counts))
                .interleave(records, cycle_length=calls, num_parallel_calls=calls,
                            deterministic=self.profile.deterministic))

    def _parse_batch(self):
        """A batch of records -> (the batch of samples (`image` feature), the records' stored bytes, each
        with TFRecord's 16 bytes of framing, and their number)."""
        spec = self.reading.source.files[0]
        dtype = tf.as_dtype(np.dtype(spec.dtype))
        shape = list(spec.shape)

        def parse(records):
            images = tf.io.parse_example(records, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
            count = tf.cast(tf.size(records), tf.int64)
            stored = tf.reduce_sum(tf.cast(tf.strings.length(records), tf.int64)) + _RECORD_FRAMING * count
            batch = tf.reshape(tf.io.decode_raw(images, dtype), [-1, *shape])
            return tf.ensure_shape(batch, [records.shape[0], *shape]), stored, count  # static batch stays

        return parse

    def _count_stage(self):
        """(batch, bytes, records) -> batch, adding bytes and records to the native counters: a stage of
        its own after the parallel parse, run once per batch."""
        nbytes, nrecords = self._native_counts

        def count(batch, stored, records):
            with tf.control_dependencies([nbytes.assign_add(stored), nrecords.assign_add(records)]):
                return tf.identity(batch)

        return count

    def take_counts(self) -> tuple[int, int]:
        """(bytes really fetched, samples) since the last call, the native path's included."""
        nbytes, samples = super().take_counts()
        if self._native_counts is not None:
            taken = [int(counter.read_value()) for counter in self._native_counts]
            for counter, value in zip(self._native_counts, taken):
                counter.assign_sub(value)  # what a pipeline still running adds meanwhile stays counted
            nbytes, samples = nbytes + taken[0], samples + taken[1]
        return nbytes, samples

    def _batches(self, epoch: Optional[int], as_numpy: bool):
        """The epoch's batches, counted as they come (in Python: the pipeline stays stateless)."""
        epoch = self.epoch if epoch is None else epoch
        data = self._built_once(("batches", epoch), lambda: self._finish(self._pipeline(epoch)))
        items = data.as_numpy_iterator() if as_numpy else iter(data)
        if not self.native:  # the source path's generator counts as it reads
            yield from items
            return
        for batch, stored, records in items:
            self.counts.add(int(stored), int(records))
            yield batch

    def __iter__(self):
        """The current epoch's batches as tf tensors, counted as they come."""
        return self._batches(None, as_numpy=False)

    def numpy(self, epoch: Optional[int] = None):
        """The epoch's batches as numpy arrays (writable copies with `writable: true`), counted."""
        for batch in self._batches(epoch, as_numpy=True):
            yield np.array(batch) if self.profile.writable else batch

    def close(self) -> None:
        """Stop the reading threads (a dataset built again reads on)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __len__(self) -> int:
        sampler = self.reading.sampler
        return len(sampler.batches(self.epoch))
