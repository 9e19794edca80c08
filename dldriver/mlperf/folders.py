"""Reading finished run folders for a verdict: provenance.json first, summary.json for the results.

A folder written before provenance.json existed is read from its summary.json alone (its `dldriver`
section holds the resolved config, the host count and whether caches were dropped).
"""
from __future__ import annotations

import json
from pathlib import Path

from dldriver.errors import DlDriverError
from dldriver.units import GiB
from dldriver.mlperf.provenance import FILE as PROVENANCE_FILE
from dldriver.mlperf.verdict import RunRecord

SUMMARY = "summary.json"


def run_folders(paths) -> list[Path]:
    """Each path that is a run folder, or the run folders below it (partial folders of killed runs skipped)."""
    found = []
    for path in map(Path, paths):
        if (path / SUMMARY).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p.parent for p in path.rglob(SUMMARY) if ".partial-" not in str(p.parent))
        else:
            raise DlDriverError(f"{path}: not a run folder (no {SUMMARY}) nor a folder holding run folders")
    if not found:
        raise DlDriverError(f"no run folder (with {SUMMARY}) under {', '.join(map(str, paths))}")
    return found


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DlDriverError(f"{path}: cannot read it as JSON ({err})") from None


def _field(doc, path: str, kinds, file: Path, default=None):
    """doc's value at a dotted key path, checked to be of `kinds` (bool is not a number); `default` when
    absent and a default is given, else DlDriverError naming the file and the key."""
    value = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None and default is not None:
        return default
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        what = f"no {path}" if value is None else f"{path} is {value!r}"
        raise DlDriverError(f"{file}: {what}, not what a finished run writes; the run folder is damaged or "
                            "not dl-driver's")
    return value


NUMBER = (int, float)


def read_run(folder: Path, host_memory_bytes: int | None = None) -> RunRecord:
    summary_file, prov_file = folder / SUMMARY, folder / PROVENANCE_FILE
    summary = _json(summary_file)
    if not isinstance(summary, dict):
        raise DlDriverError(f"{summary_file}: a JSON {type(summary).__name__}, not a run's summary")
    ours = summary.get("dldriver") if isinstance(summary.get("dldriver"), dict) else {}
    prov = _json(prov_file) if prov_file.is_file() else None
    if prov is not None and not isinstance(prov, dict):
        raise DlDriverError(f"{prov_file}: a JSON {type(prov).__name__}, not a run's provenance")
    config = _field(prov, "workload.config", (dict,), prov_file) if prov else ours.get("config")
    if config is None:
        raise DlDriverError(f"{folder}: neither {PROVENANCE_FILE} nor a config in {SUMMARY}; "
                            "rerun it with this dl-driver")
    for key in ("workflow.train", "model.name", "metric.au"):
        _field(config, key, (bool,) if key == "workflow.train" else (str,) if key == "model.name" else NUMBER,
               prov_file if prov else summary_file)
    memory = host_memory_bytes or int(min(_field(summary, "host_memory_GB", (list,), summary_file, [0]) or [0])
                                      * GiB)
    accelerators = _field(summary, "num_accelerators", (int,), summary_file)
    hosts = _field(prov, "hosts", (int,), prov_file) if prov else _field(summary, "num_hosts", (int,),
                                                                             summary_file, 1)
    if accelerators < 1 or hosts < 1:
        raise DlDriverError(f"{summary_file if accelerators < 1 else prov_file}: num_accelerators "
                            f"{accelerators} on {hosts} host(s) is not what a finished run writes")
    return RunRecord(
        folder=str(folder),
        start=_field(summary, "start", (str,), summary_file, ""),
        config=config,
        accelerators=accelerators,
        hosts=hosts,
        host_memory_bytes=memory,
        drop_caches=_field(prov, "caches_dropped", (bool,), prov_file) if prov else bool(ours.get("drop_caches")),
        au_percentage=(_field(summary, "metric.train_au_mean_percentage", NUMBER, summary_file)
                       if (summary.get("metric") or {}).get("train_au_mean_percentage") is not None else None),
        dataset=_field(prov, "storage_uri", (str,), prov_file) if prov else ours.get("dataset_uri", ""),
        checkpoint_scale=ours.get("checkpoint_scale", 1.0),
    )
