"""Which (file, sample) each rank reads in an epoch, and in which order: one sampler for every loader.

The global sequence of an epoch is every file in file order (shuffled or not), each expanded into its
samples 0..nspf-1. With T = files * nspf samples, R ranks and batch B, every rank runs
steps = floor(T / (B * R)) steps and takes the contiguous slice [rank * steps * B, (rank + 1) * steps * B)
of that sequence. So all ranks run the same number of steps (no barrier deadlock on uneven counts),
no sample is read by two ranks, and every sample is read exactly once except the tail of the sequence,
T - steps * B * R < B * R samples, which is dropped (as PyTorch's drop_last drops its last partial batch).
With file_shuffle off the dropped tail is always the last files; with it on, a different tail each epoch.

Shuffle modes, for file_shuffle and sample_shuffle alike (DLIO's off | seed | random):
- off: file order 0..N-1; samples in sequence order.
- seed: a permutation drawn from `seed`, plus the epoch when seed_change_epoch is set; the same inputs
  always give the same assignment.
- random: a new permutation every epoch from `entropy`, a number drawn once per run (`fresh_entropy()`)
  and shared by all ranks. Ranks must agree on the file order or they would overlap (DLIO's unseeded
  np.random.shuffle on every rank has that flaw), so more than one rank without `entropy` is an error.
file_shuffle permutes the file order before the sequence is cut into rank slices, so it also changes
which samples each rank reads. sample_shuffle permutes the order inside a rank's slice only (the slice
is the same set of samples), so a rank keeps its locality: with sample_shuffle off, a file's samples
stay consecutive and a reader can fetch a multi-sample file once for all of them.

Unlike DLIO (docs/dlio-facts.md §4): every rank keeps its offset (no iterative-sampler overlap),
sample_shuffle really reorders, and no files are trimmed from the dataset.
"""
from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from dldriver.config.model import SHUFFLE_MODES
from dldriver.config.plan import steps_per_epoch
from dldriver.errors import DlDriverError

# Stream tags keep the file and sample permutations of one epoch independent of each other.
_FILE_STREAM, _SAMPLE_STREAM = 0, 1


def fresh_entropy() -> int:
    """A random 63-bit number for 'random' shuffling; draw it once on rank 0 and share it."""
    return secrets.randbits(63)


def epoch_assignment(num_files: int, samples_per_file: int, ranks: int, rank: int, batch_size: int,
                     epoch: int, file_shuffle: str = "off", sample_shuffle: str = "off",
                     seed: int = 123, seed_change_epoch: bool = True, drop_last: bool = True,
                     entropy: Optional[int] = None) -> list[tuple[int, int]]:
    """(file index, sample index within the file) in read order for this rank and epoch.

    drop_last=False hands out every sample instead, in balanced contiguous slices (sizes differ by at
    most one); the last batch may then be short and ranks may differ by one step, so a loop that
    barriers every step must keep the default.
    """
    _check(num_files, samples_per_file, ranks, rank, batch_size, file_shuffle, sample_shuffle)
    if "random" in (file_shuffle, sample_shuffle) and entropy is None:
        if ranks > 1:
            raise DlDriverError(f"'random' shuffle over {ranks} ranks needs one shared entropy value "
                                "(draw fresh_entropy() on rank 0 and give it to every rank)")
        entropy = fresh_entropy()
    total = num_files * samples_per_file
    if drop_last:
        share = steps_per_epoch(total, ranks, batch_size) * batch_size
        start, end = rank * share, (rank + 1) * share
    else:
        start, end = rank * total // ranks, (rank + 1) * total // ranks
    positions = np.arange(start, end, dtype=np.int64)
    file_order = np.arange(num_files, dtype=np.int64)
    if file_shuffle != "off":
        file_order = _rng(file_shuffle, seed, seed_change_epoch, epoch, entropy,
                          _FILE_STREAM).permutation(num_files)
    if sample_shuffle != "off":
        rng = _rng(sample_shuffle, seed, seed_change_epoch, epoch, entropy, _SAMPLE_STREAM, rank)
        positions = rng.permutation(positions)
    files = file_order[positions // samples_per_file]
    return list(zip(files.tolist(), (positions % samples_per_file).tolist()))


def _check(num_files, samples_per_file, ranks, rank, batch_size, file_shuffle, sample_shuffle):
    if num_files < 0 or samples_per_file < 1 or batch_size < 1 or ranks < 1:
        raise DlDriverError(f"sampler needs files >= 0, samples_per_file >= 1, batch_size >= 1 and "
                            f"ranks >= 1 (got {num_files}, {samples_per_file}, {batch_size}, {ranks})")
    if not 0 <= rank < ranks:
        raise DlDriverError(f"rank {rank} is outside 0..{ranks - 1}")
    for key, mode in (("reader.file_shuffle", file_shuffle), ("reader.sample_shuffle", sample_shuffle)):
        if mode not in SHUFFLE_MODES:
            raise DlDriverError(f"{key}: {mode!r} is not one of {', '.join(SHUFFLE_MODES)}")


def _rng(mode, seed, seed_change_epoch, epoch, entropy, stream, rank=0) -> np.random.Generator:
    # SeedSequence takes non-negative integers only; the modulo maps a negative seed onto one.
    if mode == "seed":
        key = [seed % 2**63, epoch if seed_change_epoch else 0, stream, rank]
    else:
        key = [entropy % 2**63, epoch, stream, rank]
    return np.random.default_rng(np.random.SeedSequence(key))


def batches(assignment: Sequence[tuple[int, int]], batch_size: int) -> list[list[tuple[int, int]]]:
    """The assignment cut into batches in order; a short last batch only when drop_last was off."""
    return [list(assignment[i:i + batch_size]) for i in range(0, len(assignment), batch_size)]


def split_among_workers(items: Sequence, workers: int) -> list[list]:
    """Deal items (usually batches) round-robin: worker w gets items w, w + W, w + 2W, ...

    Taking one item from each worker in turn, worker 0 first, gives back the original order, which is
    how PyTorch's DataLoader orders batches from its workers; every worker gets whole batches.
    """
    if workers < 1:
        raise DlDriverError(f"workers must be >= 1 (got {workers})")
    return [list(items[w::workers]) for w in range(workers)]


@dataclass(frozen=True)
class Coverage:
    """What the ranks of one epoch read together, against the dataset."""

    total_samples: int
    read: int
    duplicates: int
    outside: int
    missing: int
    expected_missing: int

    @property
    def ok(self) -> bool:
        """No sample twice, none outside the dataset, none missing beyond the dropped remainder."""
        return self.duplicates == 0 and self.outside == 0 and self.missing == self.expected_missing

    def to_dict(self) -> dict:
        return {"total_samples": self.total_samples, "read": self.read,
                "duplicates": self.duplicates, "outside": self.outside, "missing": self.missing,
                "expected_missing": self.expected_missing, "ok": self.ok}


def coverage(per_rank: Sequence[Sequence[tuple[int, int]]], num_files: int, samples_per_file: int,
             batch_size: int, steps: Optional[int] = None) -> Coverage:
    """Check what all ranks (one list per rank) read in one epoch against drop_last sharding.

    steps: the steps each rank ran when fewer than the full epoch (total_training_steps); the
    samples nobody was due to read are then expected to be missing too.
    """
    total = num_files * samples_per_file
    counts = Counter((int(f), int(s)) for reads in per_rank for f, s in reads)
    inside = [p for p in counts if 0 <= p[0] < num_files and 0 <= p[1] < samples_per_file]
    read = sum(counts.values())
    if steps is None:
        steps = steps_per_epoch(total, len(per_rank), batch_size)
    kept = steps * batch_size * len(per_rank)
    return Coverage(total_samples=total, read=read, duplicates=read - len(counts),
                    outside=len(counts) - len(inside), missing=total - len(inside),
                    expected_missing=total - kept)


@dataclass(frozen=True)
class Sampler:
    """epoch_assignment with the dataset, rank and shuffle settings fixed; one per rank and split."""

    num_files: int
    samples_per_file: int
    ranks: int
    rank: int
    batch_size: int
    file_shuffle: str = "off"
    sample_shuffle: str = "off"
    seed: int = 123
    seed_change_epoch: bool = True
    drop_last: bool = True
    entropy: Optional[int] = None

    def __post_init__(self):
        # A one-rank 'random' sampler fixes its entropy once, so asking twice for an epoch (a loader
        # worker, a coverage check) gives the same order while each epoch still gets a new one.
        if self.entropy is None and "random" in (self.file_shuffle, self.sample_shuffle) \
                and self.ranks == 1:
            object.__setattr__(self, "entropy", fresh_entropy())

    @classmethod
    def from_workload(cls, workload, ranks: int, rank: int, split: str = "train",
                      entropy: Optional[int] = None) -> "Sampler":
        """The sampler for the train or eval split of a Workload (config/model.py)."""
        ds, rd, tr = workload.dataset, workload.reader, workload.train
        files = ds.num_files_train if split == "train" else ds.num_files_eval
        batch = rd.batch_size if split == "train" else rd.batch_size_eval
        return cls(files, ds.num_samples_per_file, ranks, rank, batch, rd.file_shuffle,
                   rd.sample_shuffle, tr.seed, tr.seed_change_epoch, entropy=entropy)

    @property
    def total_samples(self) -> int:
        return self.num_files * self.samples_per_file

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.total_samples, self.ranks, self.batch_size)

    @property
    def dropped_samples(self) -> int:
        """Samples nobody reads in an epoch: T - steps * batch * ranks (< batch * ranks)."""
        if not self.drop_last:
            return 0
        return self.total_samples - self.steps_per_epoch * self.batch_size * self.ranks

    def for_epoch(self, epoch: int) -> list[tuple[int, int]]:
        return epoch_assignment(self.num_files, self.samples_per_file, self.ranks, self.rank,
                                self.batch_size, epoch, self.file_shuffle, self.sample_shuffle,
                                self.seed, self.seed_change_epoch, self.drop_last, self.entropy)

    def batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        return batches(self.for_epoch(epoch), self.batch_size)
