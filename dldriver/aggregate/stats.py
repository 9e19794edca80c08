"""Per-cell statistics over repetitions (pure functions on plain rows).

A cell is every key of a run but its repetition: (workload, loader, backend, ranks).
"""
from __future__ import annotations

import math
import statistics

CELL_KEYS = ("workload", "loader", "backend", "ranks")
# The figures summarised per cell, in table order.
METRICS = ("samples_per_second", "au_percentage", "mb_per_second", "true_mb_per_second",
           "load_latency_p50_s", "load_latency_p99_s", "save_gb_per_second", "load_gb_per_second")
STATS = ("mean", "stdev", "min", "max", "cv")


def describe(values) -> dict:
    """mean, sample stdev (0 for a single value), min, max and coefficient of variation (stdev/mean)
    of the numbers in `values`; None values are ignored; all None when nothing is left."""
    xs = [float(v) for v in values if v is not None and not _isnan(v)]
    if not xs:
        return {"n": 0} | {s: None for s in STATS}
    mean = statistics.fmean(xs)
    stdev = statistics.stdev(xs) if len(xs) > 1 else 0.0
    cv = stdev / mean if mean else None
    return {"n": len(xs), "mean": mean, "stdev": stdev, "min": min(xs), "max": max(xs), "cv": cv}


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def cell_key(row: dict) -> tuple:
    return tuple(str(row[k]) for k in CELL_KEYS)


def group_cells(rows) -> dict:
    """cell key -> its runs, in the order first seen."""
    cells: dict = {}
    for row in rows:
        cells.setdefault(cell_key(row), []).append(row)
    return cells


def _single(values):
    """The one value all runs share, 'mixed' when they differ, None when none has one."""
    distinct = sorted({str(v) for v in values if v is not None})
    return distinct[0] if len(distinct) == 1 else ("mixed" if distinct else None)


def au_verdict(au_mean, threshold):
    """MLPerf's rule per cell: 'success' when the mean AU reaches the workload's metric.au."""
    if au_mean is None or threshold is None:
        return None
    return "success" if au_mean >= threshold else "fail"


def cell_table(rows) -> list:
    """One row per cell: the keys, the run count, `<metric>_<stat>` for every metric, the AU
    threshold and verdict, and the config hash shared by its runs."""
    table = []
    for key, runs in group_cells(rows).items():
        cell = dict(zip(CELL_KEYS, key))
        cell["ranks"] = int(cell["ranks"])
        cell["mode"] = runs[0]["mode"]
        cell["runs"] = len(runs)
        for metric in METRICS:
            d = describe(r.get(metric) for r in runs)
            for stat in STATS:
                cell[f"{metric}_{stat}"] = d[stat]
        # AU and its threshold mean nothing for a checkpoint-only cell: no accelerator computes.
        train = cell["mode"] == "train"
        cell["au_threshold_percentage"] = runs[0].get("au_threshold_percentage") if train else None
        cell["au_meet_expectation"] = au_verdict(cell["au_percentage_mean"], cell["au_threshold_percentage"])
        cell["config_hash"] = _single(r.get("config_hash") for r in runs)
        table.append(cell)
    return table
