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


def read_run(folder: Path, host_memory_bytes: int | None = None) -> RunRecord:
    summary = _json(folder / SUMMARY)
    ours = summary.get("dldriver") or {}
    prov = _json(folder / PROVENANCE_FILE) if (folder / PROVENANCE_FILE).is_file() else None
    config = prov["workload"]["config"] if prov else ours.get("config")
    if config is None:
        raise DlDriverError(f"{folder}: neither {PROVENANCE_FILE} nor a config in {SUMMARY}; "
                            "rerun it with this dl-driver")
    memory = host_memory_bytes or int(min(summary.get("host_memory_GB") or [0]) * GiB)
    return RunRecord(
        folder=str(folder),
        start=summary.get("start", ""),
        config=config,
        accelerators=summary["num_accelerators"],
        hosts=prov["hosts"] if prov else summary.get("num_hosts", 1),
        host_memory_bytes=memory,
        drop_caches=prov["caches_dropped"] if prov else bool(ours.get("drop_caches")),
        au_percentage=(summary.get("metric") or {}).get("train_au_mean_percentage"),
        dataset=prov["storage_uri"] if prov else ours.get("dataset_uri", ""),
        checkpoint_scale=ours.get("checkpoint_scale", 1.0),
    )
