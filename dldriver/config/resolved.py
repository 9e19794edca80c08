"""The resolved config as plain JSON-able data, and its hash (which names a config in result folders)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import fields, is_dataclass
from pathlib import Path

import yaml

from dldriver.config.timespec import TimeSpec
from dldriver.redact import redact


def resolved_dict(workload) -> dict:
    """Every key of the workload with its value (defaults filled); time values as their to_dict();
    credentials masked (dldriver.redact), as every output that echoes the config needs them."""
    return redact(_plain(workload))


def config_hash(workload) -> str:
    """16 hex characters of the sha256 of the canonical (sorted, compact) JSON of resolved_dict, plus the
    DLIO generation (--dlio-defaults) when it is not HEAD's: it changes the checkpoint layout."""
    data = resolved_dict(workload)
    if workload.dlio_defaults != "head":
        data["dlio_defaults"] = workload.dlio_defaults
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_resolved_config(folder, workload) -> None:
    """`<folder>/<output_subdir>/config.yaml`, the resolved config where Hydra writes DLIO's (the folder named
    by `++hydra.output_subdir`, as mlpstorage passes it); nothing when no subfolder was named."""
    if not workload.output_subdir:
        return
    target = Path(folder) / workload.output_subdir
    target.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"workload": resolved_dict(workload)}, sort_keys=False)
    (target / "config.yaml").write_text(text, encoding="utf-8")


def _plain(value):
    if isinstance(value, TimeSpec):
        return value.to_dict()
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value) if not f.metadata.get("internal")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
