"""What every loader yields, and the pieces the framework adapters share (no framework imported here)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from dldriver.engine.source import SampleSource, collate

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


def prefetch_factor(prefetch_size: int, read_threads: int) -> int:
    """Batches in flight per worker, derived from prefetch_size as DLIO derives torch's prefetch_factor:
    ceil(prefetch_size / read_threads), and 2 (torch's default) when prefetch_size is 0."""
    if prefetch_size <= 0:
        return 2
    return max(1, math.ceil(prefetch_size / max(1, read_threads)))


def read_batch(source: SampleSource, keys: Sequence[Key]) -> Batch:
    """Read and decode one batch in the calling thread; data is numpy (stacked, or a list if ragged)."""
    reads = [source.fetch(f, s) for f, s in keys]
    return Batch(collate([r.data for r in reads]), [tuple(k) for k in keys],
                 sum(r.nbytes for r in reads), [r.seconds for r in reads])


class Loader:
    """A loader built once per split; `epoch(batches)` yields a Batch for each planned batch."""

    name = ""

    def epoch(self, batches: Sequence[Sequence[Key]]) -> Iterator[Batch]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop workers and threads; safe to call twice."""
