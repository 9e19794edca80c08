"""Checkpoint metrics under DLIO's summary keys, with MLPerf Storage's multi-rank rule (pure).

For each checkpoint, the duration is the slowest rank's (all ranks start after the same barrier, so the
checkpoint is done when the last rank is) and the throughput is all ranks' bytes over that duration.
DLIO's `GB` is GiB (bytes / 1024**3); means and population standard deviations run over checkpoints.
"""
from __future__ import annotations

import statistics

GIB = 1024 ** 3


def combine(per_rank: list[list[dict]]) -> list[dict]:
    """Per checkpoint i: {duration, bytes, throughput_GB_per_second} from each rank's i-th {duration, bytes}."""
    if not per_rank:
        return []
    count = len(per_rank[0])
    if any(len(r) != count for r in per_rank):
        raise ValueError("every rank must report the same number of checkpoints")
    out = []
    for i in range(count):
        duration = max(r[i]["duration"] for r in per_rank)
        nbytes = sum(r[i]["bytes"] for r in per_rank)
        out.append({"duration": duration, "bytes": nbytes,
                    "throughput_GB_per_second": nbytes / GIB / duration if duration > 0 else 0.0})
    return out


def _mean_stdev(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values)


def summary_metrics(saves: list[dict], loads: list[dict], checkpoint_bytes: int) -> dict:
    """DLIO's metric{} keys for checkpoints from combine()'d saves and loads; load keys only with loads."""
    metric = {}
    for prefix, runs in (("save", saves), ("load", loads)):
        if not runs:
            continue
        io_mean, io_std = _mean_stdev([r["throughput_GB_per_second"] for r in runs])
        dur_mean, dur_std = _mean_stdev([r["duration"] for r in runs])
        metric[f"{prefix}_checkpoint_io_mean_GB_per_second"] = io_mean
        metric[f"{prefix}_checkpoint_io_stdev_GB_per_second"] = io_std
        metric[f"{prefix}_checkpoint_duration_mean_seconds"] = dur_mean
        metric[f"{prefix}_checkpoint_duration_stdev_seconds"] = dur_std
    metric["checkpoint_size_GB"] = checkpoint_bytes / GIB
    return metric
