"""Find every run of a matrix and turn each summary.json into one flat row.

Each run records its place in the matrix (workload, loader, backend, ranks, rep) in summary.json
(`dldriver run --cell`, passed by the workflow); runs written before that are placed by their path,
<workload>/<loader>/<backend>/r<ranks>/rep<k>/summary.json (`checkpoint` stands in the loader's place
for checkpoint-only workloads). Nothing is skipped
silently: a summary.json inside a partial folder (the engine's `<name>.partial-<pid>` or
`<name>.old-<pid>` while it moves a run into place), one that cannot be read, one without the keys and
numbers a finished run writes (FINISHED_KEYS), and a run whose {rank}_output.json is damaged are
reported as a note each and left out (a verdict then counts the cell as missing).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from dldriver.metrics.formulas import latency_percentiles

LAYOUT = re.compile(r"^(?P<workload>[^/]+)/(?P<loader>[^/]+)/(?P<backend>[^/]+)"
                    r"/r(?P<ranks>[0-9]+)/rep(?P<rep>[0-9]+)/summary\.json$")
PARTIAL = re.compile(r"\.(partial|old)-[0-9]+$")
# Folders of a matrix that hold no runs: datasets, logs, this module's own output.
NOT_RUNS = {"data", "logs", "report", "services"}


@dataclass
class Collected:
    rows: list = field(default_factory=list)          # one dict per run
    load_seconds: dict = field(default_factory=dict)  # run folder -> per-step load times (all ranks)
    notes: list = field(default_factory=list)         # every summary.json not taken, and why


def collect(results: Path, plans: dict | None = None) -> Collected:
    """Every run under `results`, sorted by path. `plans`: workload -> plan.json data (AU threshold)."""
    results = Path(results)
    found = Collected()
    for path in sorted(results.rglob("summary.json")):
        rel = path.relative_to(results).as_posix()
        if rel.split("/", 1)[0] in NOT_RUNS:
            continue
        if any(PARTIAL.search(part) for part in path.relative_to(results).parts[:-1]):
            found.notes.append(f"{rel}: skipped, an incomplete run (partial folder)")
            continue
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            found.notes.append(f"{rel}: skipped, unreadable ({err})")
            continue
        keys = _cell(summary, rel)
        if keys is None:
            found.notes.append(f"{rel}: skipped, no cell in summary.json and not at "
                               "<workload>/<loader>/<backend>/r<N>/rep<k>/")
            continue
        problem = summary_problem(summary, keys["loader"] == "checkpoint")
        if problem:
            found.notes.append(f"{rel}: skipped, not a finished run's summary ({problem})")
            continue
        try:
            load_seconds = rank_load_seconds(path.parent)
        except DamagedRankFile as err:
            found.notes.append(f"{err.path.relative_to(results).as_posix()}: skipped the run, {err}")
            continue
        row = run_row(summary, keys, _sidecar(path.parent / "slurm.json"),
                      (plans or {}).get(keys["workload"]))
        row["folder"] = str(path.parent.relative_to(results).as_posix())
        found.rows.append(row)
        found.load_seconds[row["folder"]] = load_seconds
    return found


CELL_KEYS = ("workload", "loader", "backend", "ranks", "rep")


def _cell(summary: dict, rel: str) -> dict | None:
    """The run's place in the matrix: as the run recorded it (`dldriver run --cell`), or, for runs
    written before runs recorded it, read from the folder's path."""
    ours = summary.get("dldriver") if isinstance(summary, dict) else None
    cell = ours.get("cell") if isinstance(ours, dict) else None
    if isinstance(cell, dict) and all(k in cell for k in CELL_KEYS):
        return {k: str(cell[k]) for k in CELL_KEYS}
    match = LAYOUT.match(rel)
    return match.groupdict() if match else None


# The keys every finished run's summary.json holds, with numbers (a training run, a checkpoint-only run).
FINISHED_KEYS = {
    "train": ("num_accelerators", "metric.train_au_mean_percentage",
              "metric.train_throughput_mean_samples_per_second", "metric.train_io_mean_MB_per_second"),
    "checkpoint": ("num_accelerators", "metric.save_checkpoint_io_mean_GB_per_second",
                   "metric.checkpoint_size_GB"),
}


def summary_problem(summary, checkpoint_only: bool) -> str | None:
    """Why a parsed summary.json is not one a finished run writes (pure): not an object, a key absent, or
    a figure that is not a number. None when it is."""
    if not isinstance(summary, dict):
        return f"a JSON {type(summary).__name__}, not an object"
    mode = "checkpoint" if checkpoint_only or (summary.get("dldriver") or {}).get("mode") == "checkpoint_only" \
        else "train"
    for path in FINISHED_KEYS[mode]:
        value = summary
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return f"no {path}"
        if _num(value) is None or math.isnan(value):
            return f"{path} {value!r} is not a number"
    return None


class DamagedRankFile(ValueError):
    """A {rank}_output.json that is not what a run writes; `path` names it."""

    def __init__(self, path: Path, why: str):
        super().__init__(why)
        self.path = path


def _sidecar(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _num(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _au_threshold(ours: dict, plan: dict | None):
    """metric.au as a percentage, from the run's resolved config or else the workload's plan.json."""
    for config in (ours.get("config"), (plan or {}).get("config")):
        au = ((config or {}).get("metric") or {}).get("au")
        if _num(au) is not None:
            return round(float(au) * 100, 9)
    return None


def run_row(summary: dict, keys: dict, slurm: dict, plan: dict | None) -> dict:
    """One run as a flat row (pure). `keys` come from the path; absent figures are None."""
    metric = summary.get("metric") or {}
    ours = summary.get("dldriver") or {}
    latency = ours.get("load_latency_seconds") or {}
    versions = ours.get("versions") or {}
    checkpoint_only = ours.get("mode") == "checkpoint_only" or keys["loader"] == "checkpoint"
    return {
        "workload": keys["workload"], "loader": keys["loader"], "backend": keys["backend"],
        "ranks": int(keys["ranks"]), "rep": int(keys["rep"]),
        "mode": "checkpoint" if checkpoint_only else "train",
        "samples_per_second": _num(metric.get("train_throughput_mean_samples_per_second")),
        "au_percentage": _num(metric.get("train_au_mean_percentage")),
        "au_threshold_percentage": _au_threshold(ours, plan),
        "au_meet_expectation": metric.get("train_au_meet_expectation"),
        "mb_per_second": _num(metric.get("train_io_mean_MB_per_second")),
        "true_mb_per_second": _num(ours.get("true_MB_per_second")),
        "load_latency_p50_s": _num(latency.get("p50")),
        "load_latency_p90_s": _num(latency.get("p90")),
        "load_latency_p99_s": _num(latency.get("p99")),
        "load_latency_max_s": _num(latency.get("max")),
        "save_gb_per_second": _num(metric.get("save_checkpoint_io_mean_GB_per_second")),
        "save_seconds": _num(metric.get("save_checkpoint_duration_mean_seconds")),
        "load_gb_per_second": _num(metric.get("load_checkpoint_io_mean_GB_per_second")),
        "load_seconds": _num(metric.get("load_checkpoint_duration_mean_seconds")),
        "checkpoint_size_gb": _num(metric.get("checkpoint_size_GB")),
        "num_accelerators": summary.get("num_accelerators"),
        "rank_sync": ours.get("rank_sync"),
        "hostname": summary.get("hostname"),
        "start": summary.get("start"),
        "end": summary.get("end"),
        "dldriver_version": ours.get("version"),
        "versions": "; ".join(f"{k}={v}" for k, v in sorted(versions.items())) or None,
        "config_hash": ours.get("config_hash"),
        "slurm_job_id": str(slurm["job_id"]) if slurm.get("job_id") else None,
        "slurm_ntasks": slurm.get("ntasks"),
    }


def rank_load_seconds(folder: Path) -> list:
    """Per-step load times of every rank's training blocks ({rank}_output.json, DLIO's layout)."""
    times = []
    for path in sorted(folder.glob("*_output.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DamagedRankFile(path, f"unreadable ({err})") from None
        if not isinstance(data, dict):
            raise DamagedRankFile(path, "not a JSON object")
        for name, epoch in data.items():
            if isinstance(epoch, dict) and isinstance(epoch.get("load"), dict):
                for phase, values in epoch["load"].items():
                    if phase == "eval":
                        continue
                    numbers = [_num(v) for v in values] if isinstance(values, list) else [None]
                    if None in numbers:
                        raise DamagedRankFile(path, f"epoch {name} load.{phase} holds a value that is not a number")
                    times.extend(numbers)
    return times


def fill_latency(row: dict, load_seconds: list) -> None:
    """Latency percentiles from the per-step files when the summary does not carry them."""
    if row["load_latency_p50_s"] is None and load_seconds:
        pct = latency_percentiles(load_seconds)
        for name in ("p50", "p90", "p99", "max"):
            row[f"load_latency_{name}_s"] = pct[name]
