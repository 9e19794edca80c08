"""provenance.json: what a later rules check needs to know about one run, written into its run folder.

dl-driver's version and git commit; Python, numpy, the framework and the storage SDK's versions; the host
(CPU, memory, hostname); the launcher; the resolved config (credentials masked by dldriver.redact), where
it was read from, and a hash over its rule-relevant keys (every key but the site tunables MLPerf lets
CLOSED change and where results go, so that two runs of one workload hash alike wherever they ran, as
mlpstorage's core-config hash does); and whether caches were dropped. A value that cannot be found is the string "unknown".
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path

from dldriver.metrics.system import host_info
from dldriver.mlperf.rules import CHECKPOINT_CLOSED_OVERRIDES, EDITIONS
from dldriver.redact import redact
from dldriver.uri import SCHEMES, split_uri
from dldriver.version import git_commit

SCHEMA = "dldriver-run-provenance/1"
FILE = "provenance.json"
# The framework distribution each loader runs on (the SDK each storage scheme talks through: dldriver.uri).
FRAMEWORKS = {"pytorch": "torch", "tensorflow": "tensorflow", "jax": "jax"}
SITE_TUNABLES = frozenset().union(*(e.closed_overrides for e in EDITIONS.values()), CHECKPOINT_CLOSED_OVERRIDES)


def rule_config(config: dict) -> dict:
    """The resolved config without site tunables and output placement: what defines the workload."""
    kept = {}
    for section, value in config.items():
        if section == "output":
            continue
        if isinstance(value, dict):
            kept[section] = {k: v for k, v in value.items() if f"{section}.{k}" not in SITE_TUNABLES}
        elif section not in SITE_TUNABLES:
            kept[section] = value
    return kept


def rule_config_hash(config: dict) -> str:
    text = json.dumps(rule_config(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def launcher(env=None) -> str:
    """How the ranks were started: srun, mpirun (Open MPI), an MPI with PMI, or dl-driver's own processes."""
    env = os.environ if env is None else env
    if "SLURM_STEP_NUM_TASKS" in env:
        return "srun"
    if "OMPI_COMM_WORLD_SIZE" in env:
        return "mpirun"
    if "PMI_SIZE" in env or "PMIX_SIZE" in env:
        return "mpiexec"
    return "dldriver"


def caches_dropped(how) -> bool:
    """True when the page cache was emptied: `how` is a flag, or the method the checkpoint run names
    ("drop_caches", "fadvise ...", "none (object store)") or None."""
    if isinstance(how, str):
        return not how.startswith("none")
    return bool(how)


def _version(distribution: str | None) -> str:
    if distribution is None:
        return "none"
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def provenance(workload, *, ranks: int, hosts: int, drop_caches, storage_uri: str) -> dict:
    """The provenance record of one run (pure but for reading this host and the installed versions)."""
    from dldriver.config import resolved_dict

    config = redact(resolved_dict(workload))
    host = host_info()
    framework = FRAMEWORKS.get(workload.reader.data_loader if workload.workflow.train else workload.framework)
    scheme, _ = split_uri(storage_uri)
    sdk = SCHEMES[scheme].sdk_distribution if scheme in SCHEMES else None
    return {
        "schema": SCHEMA,
        "dldriver": {"version": _version("dldriver"), "git_commit": git_commit() or "unknown"},
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "framework": {"name": framework or "none", "version": _version(framework)},
        "storage_sdk": {"name": sdk or "none", "version": _version(sdk)},
        "host": {"hostname": host["hostname"], "cpu": host["host_processor_name"] or "unknown",
                 "cpu_count": host["host_cpu_count"], "memory_GiB": host["host_memory_GB"]},
        "launcher": launcher(),
        "ranks": ranks,
        "hosts": hosts,
        "caches_dropped": caches_dropped(drop_caches),
        "cache_drop_method": drop_caches if isinstance(drop_caches, str) else None,
        "storage_uri": storage_uri,
        "workload": {"source": workload.source, "config": config, "rule_config_hash": rule_config_hash(config)},
    }


def write_provenance(folder, workload, *, ranks: int, hosts: int, drop_caches, storage_uri: str) -> None:
    """Write provenance.json into a run folder being staged (the writer moves the folder into place)."""
    record = provenance(workload, ranks=ranks, hosts=hosts, drop_caches=drop_caches, storage_uri=storage_uri)
    (Path(folder) / FILE).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
