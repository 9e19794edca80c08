"""The run folder of a checkpoint-only run, written under a temporary name and moved into place complete.

summary.json carries DLIO's keys (metric{} included) and a `dldriver` section; `{rank}_per_epoch_stats.json`
holds each rank's save_ckpt{i}/load_ckpt{i} records under epoch "1", the shape DLIO gives them.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%dT%H:%M:%S.%f")


def per_epoch_stats(rank_result: dict) -> dict:
    """DLIO's per-rank checkpoint records: {start, end, duration, throughput (GiB/s of this rank)}."""
    entries = {}
    for kind, runs in (("save_ckpt", rank_result["saves"]), ("load_ckpt", rank_result["loads"])):
        for i, r in enumerate(runs, 1):
            entries[f"{kind}{i}"] = {"start": _stamp(r["start"]), "end": _stamp(r["end"]), "duration": r["duration"],
                                     "throughput": r["bytes"] / 1024**3 / r["duration"] if r["duration"] else 0.0}
    return {"1": entries}


def write_run_folder(folder: str, summary: dict, per_rank: list[dict]) -> None:
    """Write summary.json and the per-rank files into `folder`; readers never see a half-written folder."""
    folder = os.path.abspath(folder)
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.", dir=parent)
    try:
        _dump(os.path.join(tmp, "summary.json"), summary)
        for r in per_rank:
            _dump(os.path.join(tmp, f"{r['rank']}_per_epoch_stats.json"), per_epoch_stats(r))
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
        if not os.path.exists(folder):
            os.rename(tmp, folder)
            return
        # An existing folder with content (e.g. a log the caller opened): move each file in atomically.
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dump(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
