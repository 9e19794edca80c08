"""Release validation: each cell against a baseline table (pure functions).

A cell fails when a guarded figure (samples/s for training; save and load GB/s for checkpoints)
falls below the baseline's mean by more than the tolerance. Cells only in the current results are
`new`, cells only in the baseline `missing`; neither is a regression.
"""
from __future__ import annotations

import math

from dldriver.aggregate.stats import CELL_KEYS, cell_key
from dldriver.errors import DlDriverError

GUARDED = ("samples_per_second", "save_gb_per_second", "load_gb_per_second")


def parse_tolerance(text) -> float:
    """'5%' -> 0.05; '0.05' or 0.05 -> 0.05. Must lie in [0, 1)."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise DlDriverError(f"--tolerance {text!r}: expected a percentage like 5% or a fraction like 0.05")
    if not 0 <= value < 1:
        raise DlDriverError(f"--tolerance {text!r}: must be at least 0% and below 100%")
    return value


def _float(value):
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def baseline_row_problem(row: dict) -> str | None:
    """Why a baseline row cannot be compared with: a guarded mean or the rank count that is not a number."""
    if not str(row.get("ranks") or "").strip().isdigit():
        return f"ranks {row.get('ranks')!r} is not a whole number"
    for metric in GUARDED:
        value = row.get(f"{metric}_mean")
        if value not in (None, "") and (_float(value) is None or math.isnan(_float(value))):
            return f"{metric}_mean {value!r} is not a number"
    return None


def compare_cell(current: dict, baseline: dict, tolerance: float) -> dict:
    """pass/fail of one cell present in both tables, with the worst relative change seen."""
    worst, worst_metric, failed = None, None, []
    for metric in GUARDED:
        now, ref = _float(current.get(f"{metric}_mean")), _float(baseline.get(f"{metric}_mean"))
        if now is None or ref is None or ref <= 0:
            continue
        change = (now - ref) / ref
        if worst is None or change < worst:
            worst, worst_metric = change, metric
        if change < -tolerance:
            failed.append(f"{metric} {change:+.1%}")
    return {
        "status": "fail" if failed else "pass",
        "metric": worst_metric,
        "baseline": _float(baseline.get(f"{worst_metric}_mean")) if worst_metric else None,
        "current": _float(current.get(f"{worst_metric}_mean")) if worst_metric else None,
        "change": worst,
        "detail": "; ".join(failed) or ("within tolerance" if worst_metric else "no comparable figure"),
    }


def compare(cells: list, baseline: list, tolerance: float) -> list:
    """One verdict row per cell of either table: its keys, status, the guarded figure compared,
    its change, the MLPerf AU verdict of the current cell and whether the config changed."""
    current = {cell_key(c): c for c in cells}
    reference = {cell_key(c): c for c in baseline}
    rows = []
    for key in list(current) + [k for k in reference if k not in current]:
        now, ref = current.get(key), reference.get(key)
        if now is not None and ref is not None:
            verdict = compare_cell(now, ref, tolerance)
        else:
            verdict = {"status": "new" if ref is None else "missing", "metric": None, "baseline": None,
                       "current": None, "change": None,
                       "detail": "not in the baseline" if ref is None else "no run in these results"}
        row = dict(zip(CELL_KEYS, key)) | verdict
        row["au_meet_expectation"] = (now or {}).get("au_meet_expectation")
        hashes = {(c or {}).get("config_hash") for c in (now, ref)}
        row["config_changed"] = None if None in hashes or "" in hashes else len(hashes) > 1
        rows.append(row)
    return rows


def regressed(verdicts: list) -> bool:
    return any(v["status"] == "fail" for v in verdicts)
