"""The files of one run folder, as DLIO writes them, and the atomic writer that puts them in place.

- summary.json: DLIO's keys exactly (SUMMARY_KEYS, metric keys from build_metric) plus one `dldriver`
  section with our own figures.
- {rank}_output.json: per epoch, load/proc/compute seconds per step and au/throughput per phase
  (`block<b>` or `eval`), beside the host facts.
- {rank}_per_epoch_stats.json: per epoch start/end/duration and the same per phase and checkpoint.
Timestamps are local time `YYYY-mm-ddTHH:MM:SS.ffffff`, durations strings with two decimals (as DLIO).
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from dldriver.metrics import caching
from dldriver.metrics.formulas import (CheckpointOp, PhaseResult, checkpoint_stats, mean_stdev,
                                       meet_expectation, nominal_mb_per_second)
from dldriver.outputs import RUN_MARKER, check_run_folder, write_marker

SUMMARY_KEYS = ("start", "end", "num_accelerators", "num_hosts", "hostname", "num_files_train",
                "num_files_eval", "num_samples_per_file", "host_cpu_count", "host_processor_name",
                "host_cpuinfo", "host_meminfo", "host_memory_GB", "data_size_per_host_GB",
                "potential_caching", "epochs", "metric")
HOST_KEYS = ("host_memory_GB", "host_cpu_count", "host_processor_name", "host_cpuinfo",
             "host_meminfo")


def timestamp(t: float) -> str:
    """A time.time() value as DLIO writes it (local time, microseconds)."""
    return datetime.fromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S.%f")


def span(start: float, end: float) -> dict:
    return {"start": timestamp(start), "end": timestamp(end), "duration": f"{end - start:.2f}"}


@dataclass
class Phase:
    """The timings of one training block or one evaluation on one rank (time.time() seconds)."""

    start: float
    end: float = 0.0
    load: list = field(default_factory=list)
    compute: list = field(default_factory=list)
    proc: list = field(default_factory=list)


def _phase_metric(prefix: str, au: Sequence[float], throughput: Sequence[float],
                  record_length_bytes: float, metric_au: float) -> dict:
    au_mean, au_std = mean_stdev(au)
    tp_mean, tp_std = mean_stdev(throughput)
    return {
        f"{prefix}_au_percentage": [float(a) for a in au],
        f"{prefix}_au_mean_percentage": au_mean,
        f"{prefix}_au_stdev_percentage": au_std,
        f"{prefix}_au_meet_expectation": meet_expectation(au_mean, metric_au),
        f"{prefix}_throughput_samples_per_second": [float(t) for t in throughput],
        f"{prefix}_throughput_mean_samples_per_second": tp_mean,
        f"{prefix}_throughput_stdev_samples_per_second": tp_std,
        f"{prefix}_io_mean_MB_per_second": nominal_mb_per_second(tp_mean, record_length_bytes),
        f"{prefix}_io_stdev_MB_per_second": nominal_mb_per_second(tp_std, record_length_bytes),
    }


def _checkpoint_metric(prefix: str, ops: Sequence[CheckpointOp]) -> dict:
    stats = checkpoint_stats(ops)
    return {
        f"{prefix}_checkpoint_io_mean_GB_per_second": stats["gbps_mean"],
        f"{prefix}_checkpoint_io_stdev_GB_per_second": stats["gbps_stdev"],
        f"{prefix}_checkpoint_duration_mean_seconds": stats["duration_mean"],
        f"{prefix}_checkpoint_duration_stdev_seconds": stats["duration_stdev"],
    }


def checkpoint_metric(saves: Sequence[CheckpointOp], loads: Sequence[CheckpointOp],
                      checkpoint_size_gb: Optional[float]) -> dict:
    """DLIO's checkpoint keys of `metric`: save keys when there are saves, load keys when loads."""
    metric = {}
    if saves:
        metric |= _checkpoint_metric("save", saves)
    if loads:
        metric |= _checkpoint_metric("load", loads)
    if saves or loads:
        metric["checkpoint_size_GB"] = checkpoint_size_gb
    return metric


def build_metric(train_au: Sequence[float], train_throughput: Sequence[float],
                 record_length_bytes: float, metric_au: float,
                 eval_au: Optional[Sequence[float]] = None,
                 eval_throughput: Optional[Sequence[float]] = None,
                 saves: Sequence[CheckpointOp] = (), loads: Sequence[CheckpointOp] = (),
                 checkpoint_size_gb: Optional[float] = None) -> dict:
    """summary.json's `metric` from per-epoch values already combined over ranks (AU mean, samples/s
    sum). Eval keys appear when eval values are given, checkpoint keys when operations are."""
    metric = _phase_metric("train", train_au, train_throughput, record_length_bytes, metric_au)
    if eval_au is not None:
        metric |= _phase_metric("eval", eval_au, eval_throughput, record_length_bytes, metric_au)
    return metric | checkpoint_metric(saves, loads, checkpoint_size_gb)


def build_summary(*, start: float, end: float, num_accelerators: int, num_hosts: int,
                  hosts: Sequence[dict], num_files_train: int, num_files_eval: int,
                  num_samples_per_file: int, data_size_per_host_GB: float, epochs: int,
                  metric: dict, dldriver: dict) -> dict:
    """summary.json. `hosts` holds system.host_info() of each host, rank 0's host first."""
    first = hosts[0]
    memory = [h["host_memory_GB"] for h in hosts]
    summary = {
        "start": timestamp(start),
        "end": timestamp(end),
        "num_accelerators": num_accelerators,
        "num_hosts": num_hosts,
        "hostname": first["hostname"],
        "num_files_train": num_files_train,
        "num_files_eval": num_files_eval,
        "num_samples_per_file": num_samples_per_file,
        "host_cpu_count": [h["host_cpu_count"] for h in hosts],
        "host_processor_name": first["host_processor_name"],
        "host_cpuinfo": first["host_cpuinfo"],
        "host_meminfo": first["host_meminfo"],
        "host_memory_GB": memory,
        "data_size_per_host_GB": data_size_per_host_GB,
        "potential_caching": caching.potential_caching(data_size_per_host_GB, memory),
        "epochs": epochs,
        "metric": metric,
    }
    return summary | {"dldriver": dldriver}


def epoch_output(phases: dict[str, Phase], results: dict[str, PhaseResult]) -> dict:
    """One epoch of {rank}_output.json; phases and results are keyed `block<b>` or `eval`."""
    return {
        "load": {name: list(p.load) for name, p in phases.items()},
        "proc": {name: list(p.proc) for name, p in phases.items()},
        "compute": {name: list(p.compute) for name, p in phases.items()},
        "au": {name: r.au for name, r in results.items()},
        "throughput": {name: r.throughput for name, r in results.items()},
    }


def rank_output(epochs: dict[int, dict], host: dict, data_size_per_host_GB: float) -> dict:
    """{rank}_output.json: this rank's host facts, then epoch_output() per epoch, then hostname."""
    facts = {k: host[k] for k in HOST_KEYS}
    facts["potential_caching"] = caching.potential_caching(data_size_per_host_GB,
                                                           [host["host_memory_GB"]])[0]
    return facts | {str(e): out for e, out in epochs.items()} | {"hostname": host["hostname"]}


def epoch_stats(start: float, end: float, phases: dict[str, Phase],
                checkpoints: Optional[dict[str, tuple[float, float, float]]] = None) -> dict:
    """One epoch of {rank}_per_epoch_stats.json. checkpoints: name (`save_ckpt<b>`, `load_ckpt<b>`)
    -> (start, end, GiB/s); as in DLIO their duration is a float, not a string."""
    stats = span(start, end) | {name: span(p.start, p.end) for name, p in phases.items()}
    for name, (c_start, c_end, rate) in (checkpoints or {}).items():
        stats[name] = {"start": timestamp(c_start), "end": timestamp(c_end),
                       "duration": c_end - c_start, "throughput": rate}
    return stats


def _plain(value):
    # numpy scalars and arrays reach the writers from the formulas' callers; JSON wants plain types.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(folder: Path, name: str, data) -> Path:
    path = Path(folder) / name
    with open(path, "w") as f:
        json.dump(data, f, indent=4, default=_plain)
        f.write("\n")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def staged_run_folder(out) -> Iterator[Path]:
    """Yield `<out>.partial-<pid>` to write the run into; rename it to `out` only on a clean exit.

    On an exception the partial folder is removed, so nothing half-written passes for a finished run;
    an existing `out` is replaced only by a complete one, and only if it is an earlier run folder (its
    marker, outputs.RUN_MARKER) or empty: anything else is refused before the run writes. Partial
    folders of dead processes (an earlier run that was killed) are removed first.
    """
    out = check_run_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f"{out.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        ours = (stale / RUN_MARKER).is_file()
        if ours and (not pid.isdigit() or int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)
    partial = out.with_name(f"{out.name}.partial-{os.getpid()}")
    partial.mkdir()
    try:
        write_marker(partial, RUN_MARKER, "run")  # inside: a full disk may refuse even the marker
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    if out.exists():
        check_run_folder(out)  # again: something may have been put there while the run ran
        out.rename(old)
    partial.rename(out)
    shutil.rmtree(old, ignore_errors=True)
