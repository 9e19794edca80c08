"""What every loader yields, and the pieces the framework adapters share (no framework imported here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from dldriver.config.profiles import prefetch_factor  # noqa: F401 (re-exported for the loaders)
from dldriver.engine.source import SampleSource

Key = tuple[int, int]


@dataclass
class Batch:
    """One batch as the emulated model receives it, with what it cost.

    data: the framework's batch (numpy array, torch tensor, tf tensor, jax array; a list when sample
    shapes differ). keys: the (file, sample) pairs it holds, in order, as the loader really read them.
    nbytes: bytes really fetched from storage for it. sample_seconds: read+decode time per sample.
    """

    data: Any
    keys: list[Key]
    nbytes: int
    sample_seconds: list[float] = field(default_factory=list)


def read_batch(source: SampleSource, keys: Sequence[Key], empty: Callable = np.empty) -> Batch:
    """Read and decode one batch in the calling thread, each sample straight into its slot of one batch
    array made by `empty(shape, dtype)` (numpy's, or a framework's whose memory numpy can view), so that
    the batch is assembled with no copy beyond the read itself. Samples of different shapes
    (record_length_bytes_stdev draws a size per file, as unet3d does) come as a list, one array each,
    rather than being resized as DLIO does."""
    keys = [tuple(k) for k in keys]
    layout = source.sample_layout([f for f, _ in keys])
    if layout is not None:
        data = empty((len(keys), *layout[0]), layout[1])
        slots = np.asarray(data)
    else:
        data = [empty(*source.sample_layout([f])) for f, _ in keys]
        slots = [np.asarray(d) for d in data]
    reads = [source.fetch(f, s, slot) for (f, s), slot in zip(keys, slots)]
    return Batch(data, keys, sum(r.nbytes for r in reads), [r.seconds for r in reads])


class Loader:
    """A loader built once per split; `epoch(batches)` yields a Batch for each planned batch."""

    name = ""

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop workers and threads; safe to call twice."""
