"""DLIO's metrics as pure functions (docs/dlio-facts.md §5), following DLIO HEAD.

Per step i of a block (one block per epoch unless step checkpoints split it): load_i is the wait for
the batch, compute_i the emulated compute, proc_i = load_i + compute_i. With s = exclude_start_steps,
e = exclude_end_steps and n recorded steps:

    T       = block wall time - sum(proc[:s]) - sum(proc[n-e:])
    AU %    = 100 * sum(compute[s:n-e]) / T
    samples/s per rank = (n - s - e) / T * batch_size

Where we differ from DLIO HEAD, and why:
- Throughput counts the steps that T covers, n - s - e. HEAD hard-codes n - 2 whatever s and e are,
  so even for the defaults (s=1, e=0) HEAD reports (n-2)/(n-1) of our figure: one step's worth too
  few (1 % low at 100 steps). For s=2, e=0 the two agree.
- The end exclusion counts back from the recorded steps; HEAD counts back from the expected steps,
  which differs only when a block ends early.
- train_au_meet_expectation compares against metric.au * 100 rounded to 1e-9: for some thresholds
  the product is off by one ulp (0.55 * 100 is 55.00000000000001), so in DLIO a mean AU of exactly
  55.0 fails; here it passes. For MLPerf's 0.9, 0.85 and 0.7 the two agree.
"MB" is DLIO's MiB (2**20 bytes). Statistics over epochs are the mean and the population stdev
(numpy's default, as DLIO uses); an empty list gives 0.0 for both, so JSON never holds NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dldriver.units import GiB, MiB


@dataclass(frozen=True)
class PhaseResult:
    """AU and throughput of one block (or one evaluation) on one rank."""

    au: float
    throughput: float
    steps: int
    counted_steps: int
    seconds: float


def block_metrics(wall_seconds: float, proc: Sequence[float], compute: Sequence[float],
                  batch_size: int, exclude_start: int = 1, exclude_end: int = 0) -> PhaseResult:
    """AU % and samples/s of one training block; see the module docstring for the formulas."""
    n = len(proc)
    counted = max(n - exclude_start - exclude_end, 0)
    head, tail = min(exclude_start, n), max(n - exclude_end, exclude_start, 0)
    seconds = wall_seconds - math.fsum(proc[:head]) - math.fsum(proc[tail:])
    if counted == 0 or seconds <= 0:
        return PhaseResult(0.0, 0.0, n, counted, seconds)
    busy = math.fsum(compute[head:tail])
    return PhaseResult(100 * busy / seconds, counted / seconds * batch_size, n, counted, seconds)


def eval_metrics(wall_seconds: float, proc: Sequence[float], compute: Sequence[float],
                 batch_size_eval: int, exclude_start: int = 1, exclude_end: int = 0) -> PhaseResult:
    """Evaluation: AU as a block; throughput over every step and the whole wall time (DLIO HEAD)."""
    au = block_metrics(wall_seconds, proc, compute, batch_size_eval, exclude_start, exclude_end).au
    n = len(proc)
    throughput = n / wall_seconds * batch_size_eval if wall_seconds > 0 else 0.0
    return PhaseResult(au, throughput, n, n, wall_seconds)


def rank_epoch(blocks: Sequence[PhaseResult]) -> tuple[float, float]:
    """(AU %, samples/s) of one rank in one epoch: the step-weighted mean over its blocks."""
    steps = sum(b.steps for b in blocks)
    if steps == 0:
        return 0.0, 0.0
    return (math.fsum(b.au * b.steps for b in blocks) / steps,
            math.fsum(b.throughput * b.steps for b in blocks) / steps)


def epoch_au(rank_aus: Sequence[float]) -> float:
    """An epoch's AU %: the mean over ranks (every rank is one accelerator)."""
    return math.fsum(rank_aus) / len(rank_aus) if rank_aus else 0.0


def epoch_throughput(rank_throughputs: Sequence[float]) -> float:
    """An epoch's samples/s: the sum over ranks."""
    return math.fsum(rank_throughputs)


def mean_stdev(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (numpy.std with ddof=0, as DLIO); (0, 0) when empty."""
    if len(values) == 0:
        return 0.0, 0.0
    return float(np.mean(values)), float(np.std(values))


def nominal_mb_per_second(samples_per_second: float, record_length_bytes: float) -> float:
    """DLIO's I/O figure: samples/s times the configured record length, in MiB/s."""
    return samples_per_second * record_length_bytes / MiB


def true_mb_per_second(bytes_read: int, seconds: float) -> float:
    """MiB/s from the bytes really fetched from storage (headers, indexes and size spread included)."""
    return bytes_read / MiB / seconds if seconds > 0 else 0.0


def meet_expectation(au_mean_percentage: float, metric_au: float) -> str:
    """'success' when the mean AU % reaches metric.au (a fraction), else 'fail'."""
    return "success" if au_mean_percentage >= round(metric_au * 100, 9) else "fail"


def latency_percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 (linear interpolation) and max of per-step latencies; zeros when empty."""
    if len(seconds) == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    p50, p90, p99 = np.percentile(seconds, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(max(seconds))}


@dataclass(frozen=True)
class CheckpointOp:
    """One checkpoint save or load over all ranks."""

    seconds: float
    bytes: int

    @property
    def gib_per_second(self) -> float:
        return self.bytes / GiB / self.seconds if self.seconds > 0 else 0.0


def checkpoint_op(rank_seconds: Sequence[float], rank_bytes: Sequence[int]) -> CheckpointOp:
    """MLPerf Storage's rule: the operation lasts as long as its slowest rank, and its throughput is
    the bytes of all ranks over that duration (DLIO reports rank 0's own duration instead)."""
    return CheckpointOp(max(rank_seconds), int(sum(rank_bytes)))


def checkpoint_stats(ops: Sequence[CheckpointOp]) -> dict[str, float]:
    """Mean and population stdev over operations of duration (s) and throughput (GiB/s)."""
    seconds = mean_stdev([op.seconds for op in ops])
    rate = mean_stdev([op.gib_per_second for op in ops])
    return {"duration_mean": seconds[0], "duration_stdev": seconds[1],
            "gbps_mean": rate[0], "gbps_stdev": rate[1]}


def expected_compute_seconds(steps_per_epoch: int, computation_time_mean: float,
                             epochs: int = 1) -> float:
    """MLPerf's expected compute: steps per epoch x mean computation time x epochs."""
    return steps_per_epoch * computation_time_mean * epochs
