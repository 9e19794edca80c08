"""`dldriver datasize` and `dldriver mlperf check`: turn the pure sizing and verdicts into text."""
from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path

import psutil

from dldriver.units import GiB
from dldriver.config import load_workload, resolved_dict
from dldriver.errors import ConfigError, DlDriverError
from dldriver.redact import redact, redact_text
from dldriver.mlperf.datasize import (RULE_MEMORY, allowed_processes, checkpoint_size, scaled_files,
                                      subfolders_for, workload_training_size)
from dldriver.mlperf.folders import read_run, run_folders
from dldriver.mlperf.rules import edition as edition_named
from dldriver.mlperf.search import count_result, dataset_note, next_counts, search_result
from dldriver.mlperf.verdict import INVALID, Verdict, config_findings, runs_findings


# The memory per host that --host-memory-gib may give: a byte (tests size tiny datasets by tiny hosts) to 1 PiB.
HOST_MEMORY_GIB = (1 / GiB, 2**20)


def check_options(**options) -> None:
    """Each given command-line count or amount (`hosts=2` is --hosts) must be a finite number above zero:
    a ConfigError naming the option as typed, before anything is computed."""
    for name, value in options.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--{name.replace('_', '-')}: must be a number above zero, got {value}")
    memory = options.get("host_memory_gib")
    if memory is not None and not HOST_MEMORY_GIB[0] <= memory <= HOST_MEMORY_GIB[1]:
        raise ConfigError(f"--host-memory-gib: must be from one byte ({HOST_MEMORY_GIB[0]:.3g}) to "
                          f"{HOST_MEMORY_GIB[1]:,} GiB per host, got {memory}")


def host_memory_bytes(gib: float | None) -> int:
    """--host-memory-gib when given, else this host's physical memory."""
    return int(gib * GiB) if gib is not None else psutil.virtual_memory().total


def _subject(config: str, overrides: list[str]) -> str:
    """The config and its overrides as the user typed them, credentials masked."""
    return redact_text(f"{config} {' '.join(overrides)}".strip())


def datasize_command(config: str, overrides: list[str], *, hosts: int, accelerators_per_host: int | None,
                     host_memory_gib: float | None, edition: str, ranks: int | None, as_json: bool,
                     dlio_defaults: str = "head", scale: float = 1.0) -> int:
    check_options(hosts=hosts, accelerators_per_host=accelerators_per_host, host_memory_gib=host_memory_gib,
                  ranks=ranks)
    ed = edition_named(edition)
    workload = load_workload(config, overrides, dlio_defaults=dlio_defaults)
    memory = host_memory_bytes(host_memory_gib)
    if workload.workflow.train:
        text, data = _training(workload, config, overrides, hosts, accelerators_per_host or 1, memory, ed, scale)
    elif scale != 1:
        raise DlDriverError(f"--scale: {config} is a checkpoint-only workload; --scale shrinks training datasets")
    else:
        text, data = _checkpoint(workload, hosts, ranks, memory, ed)
    print(json.dumps(data, indent=2) if as_json else text)
    return 0


def _training(workload, config, overrides, hosts, per_host, memory, ed, scale=1.0):
    size = workload_training_size(workload, hosts=hosts, accelerators_per_host=per_host,
                                  host_memory_bytes=memory, edition=ed)
    files = scaled_files(size.num_files_train, scale)
    subfolders = subfolders_for(files, ed)
    d, accelerators = workload.dataset, hosts * per_host
    new = [f"dataset.num_files_train={files}"]
    if subfolders:
        new.append(f"dataset.num_subfolders_train={subfolders}")
    kept = [o for o in overrides if not o.lstrip("+").removeprefix("workload.").startswith(
        ("dataset.num_files_train=", "dataset.num_subfolders_train="))]
    # Credentials among the overrides are masked: put them in the environment, not the command line.
    kept = [redact_text(o) for o in kept]
    command = redact_text(shlex.join(["dldriver", "generate", config, *kept, *new]))
    which = "host memory" if size.rule == RULE_MEMORY else f"{ed.min_steps_per_epoch} steps"
    disk = int(files * size.file_bytes)
    lines = [
        f"{workload.model.name}: MLPerf Storage {ed.name} dataset size for {hosts} host(s) x {per_host} "
        f"accelerator(s), {memory / GiB:.2f} GiB memory per host",
        f"  by host memory: {size.files_by_memory} files ({ed.host_memory_multiplier} x {hosts * memory / GiB:.2f} "
        f"GiB / {size.file_bytes / 2**20:.2f} MiB per file)",
        f"  by {ed.min_steps_per_epoch} steps:  {size.files_by_steps} files ({ed.min_steps_per_epoch} x "
        f"{accelerators} accelerators x batch {workload.reader.batch_size} / {d.num_samples_per_file} samples per file)",
        f"num_files_train: {size.num_files_train} (the {which} rule sets it)",
    ]
    if scale != 1:
        lines.append(f"scaled by {scale:g}: {files} files, below the rules' {size.num_files_train} "
                     "(a test dataset: runs on it are INVALID by the rules)")
    lines.append(f"disk space: {disk / GiB:.2f} GiB ({disk} bytes)")
    if subfolders:
        lines.append(f"num_subfolders_train: {subfolders} (above {ed.files_per_folder:,} files, "
                     f"about {files // subfolders:,} files per folder)")
    lines += ["generate it with:", f"  {command}", "or add to configs/config.yaml:",
              "  workloads:", f"    {workload.model.name}:", f"      file: {config}", "      overrides:"]
    lines += [f"        - {o}" for o in kept + new]
    data = {"edition": ed.name, "model": workload.model.name, "hosts": hosts, "accelerators_per_host": per_host,
            "host_memory_bytes": memory, "files_by_memory": size.files_by_memory,
            "files_by_steps": size.files_by_steps, "num_files_train": size.num_files_train,
            "rule": size.rule, "scale": scale, "num_files_generate": files, "disk_bytes": disk,
            "num_subfolders_train": subfolders, "generate_command": command, "overrides": kept + new}
    return "\n".join(lines), data


def _checkpoint(workload, hosts, ranks, memory, ed):
    allowed = allowed_processes(workload.model.name, ed)
    world = ranks or (allowed["closed"] if allowed else 1)
    size = checkpoint_size(workload, world_size=world, hosts=hosts, host_memory_bytes=memory, edition=ed)
    writers = [b for b in size.rank_bytes if b]
    lines = [
        f"{workload.model.name}: MLPerf Storage {ed.name} checkpoint size on {world} ranks over {hosts} host(s), "
        f"{memory / GiB:.2f} GiB memory per host (ZeRO {workload.model.parallelism.zero_stage}, "
        f"TP {workload.model.parallelism.tensor} x PP {workload.model.parallelism.pipeline})",
        f"  total: {size.total_bytes / GiB:.2f} GiB",
        f"  per rank: {min(writers) / GiB:.2f} to {max(writers) / GiB:.2f} GiB on {len(writers)} writing rank(s)"
        if writers else "  per rank: nothing written",
        f"  per host: {min(size.host_bytes) / GiB:.2f} to {max(size.host_bytes) / GiB:.2f} GiB",
    ]
    if size.split_required:
        lines.append(f"  a host writes under {ed.checkpoint_memory_ratio} x its memory: run write-only "
                     "(checkpoint.num_checkpoints_read=0), drop caches, then read-only "
                     "(checkpoint.num_checkpoints_write=0)")
    else:
        lines.append(f"  every host writes at least {ed.checkpoint_memory_ratio} x its memory: write and read "
                     "may run as one")
    if allowed:
        lines.append("  process counts the rules allow: " + ", ".join(f"{k} {v}" for k, v in allowed.items()))
    data = {"edition": ed.name, "model": workload.model.name, "ranks": world, "hosts": hosts,
            "host_memory_bytes": memory, "rank_bytes": list(size.rank_bytes), "host_bytes": list(size.host_bytes),
            "total_bytes": size.total_bytes, "split_required": size.split_required,
            "allowed_processes": allowed}
    return "\n".join(lines), data


DISCLAIMER = ("dl-driver is not MLPerf's reference implementation: CLOSED means these settings and results "
              "satisfy the rules as dl-driver's tables hold them; a submission must come from mlpstorage")


def check_command(config: str, overrides: list[str], *, runs: list[str], hosts: int,
                  accelerators_per_host: int | None, host_memory_gib: float | None, edition: str,
                  drop_caches: bool, as_json: bool, dlio_defaults: str = "head") -> int:
    """The verdict on a config before it runs or, with `runs`, on those run folders. Exit 0 for CLOSED or
    OPEN, 3 for INVALID."""
    check_options(hosts=hosts, accelerators_per_host=accelerators_per_host, host_memory_gib=host_memory_gib)
    ed = edition_named(edition)
    reference_workload = load_workload(config, dlio_defaults=dlio_defaults)
    reference = redact(resolved_dict(reference_workload))
    if runs:
        memory = host_memory_bytes(host_memory_gib) if host_memory_gib is not None else None
        records = [read_run(folder, memory) for folder in run_folders(runs)]
        workload = (load_workload(config, overrides, dlio_defaults=dlio_defaults)
                    if not records[0].config["workflow"]["train"] else None)
        findings = runs_findings(ed, reference, records, workload=workload)
        subject = f"{len(records)} run(s) of {config}"
    else:
        workload = load_workload(config, overrides, dlio_defaults=dlio_defaults)
        actual = redact(resolved_dict(workload))
        per_host = accelerators_per_host or _default_per_host(workload, hosts, ed)
        findings = config_findings(ed, reference, actual, hosts=hosts, accelerators=hosts * per_host,
                                   host_memory_bytes=host_memory_bytes(host_memory_gib), drop_caches=drop_caches,
                                   workload=workload)
        subject = _subject(config, overrides)
    verdict = Verdict(ed.name, tuple(findings))
    if as_json:
        print(json.dumps(verdict.to_dict() | {"subject": subject, "note": DISCLAIMER}, indent=2))
    else:
        print(f"{verdict.division} by MLPerf Storage {ed.name} rules: {subject}")
        for finding in verdict.findings:
            print(f"  {finding.line()}")
        print(f"  ({DISCLAIMER})")
    return 3 if verdict.division == INVALID else 0


def _read_datasize(path: str) -> dict:
    """`dldriver datasize --json` output of a training workload, as the workflow keeps it."""
    try:
        size = json.loads(Path(path).read_text(encoding="utf-8"))
        return size | {"scale": size.get("scale", 1), "num_files_generate": size.get("num_files_generate",
                                                                                     size["num_files_train"])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DlDriverError(f"{path}: not a `dldriver datasize --json` output of a training workload ({e})") from e


def _default_per_host(workload, hosts: int, ed) -> int:
    """Training: 1 accelerator per host; checkpointing: the CLOSED process count spread over the hosts."""
    allowed = None if workload.workflow.train else allowed_processes(workload.model.name, ed)
    return max(1, allowed["closed"] // hosts) if allowed else 1


def search_round_command(cells: list[str], *, sweep: list[int], runs: int, edition: str, out: str,
                         workload: str | None = None, datasize: str | None = None, hosts: int | None = None) -> int:
    """One round of the accelerator search from the run folders of the counts tried so far (each
    `…/r{N}/rep{K}/summary.json` or its folder): their results, the next counts, the sentence, as JSON.
    `hosts`: the hosts the search ran on; a run that recorded another number is refused by its folder."""
    check_options(sweep=min(sweep), runs=runs, hosts=hosts)
    ed = edition_named(edition)
    check_round_file(out)
    by_count: dict[int, list] = {}
    first = None
    for folder in run_folders([Path(c).parent if c.endswith(".json") else c for c in cells]):
        record = read_run(folder)
        _check_same_search(record, first)
        if hosts is not None and record.hosts != hosts:
            raise DlDriverError(f"{record.folder}: ran on {record.hosts} host(s), not the search's {hosts} "
                                "(a Slurm job over that many nodes)")
        first = first or record
        by_count.setdefault(record.accelerators // record.hosts, []).append(record)
    if not by_count:
        raise DlDriverError("search-round: no run folders given")
    first = next(iter(by_count.values()))[0]
    model = first.config["model"]["name"]
    floor = ed.au_floor.get(model, first.config["metric"]["au"])
    results = {}
    for count, records in sorted(by_count.items()):
        measured = sorted(records, key=lambda r: r.start)[ed.warmup_runs:]
        results[count] = count_result(count, [r.au_percentage or 0.0 for r in measured], floor, runs)
    outcome = search_result(results, hosts=first.hosts)
    data = {"workload": workload or model, "model": model, "storage": first.dataset, "floor_percentage": 100 * floor, "sweep": sweep,
            "results": {str(c): {"au_percentages": list(r.au_percentages), "au_mean": r.au_mean,
                                 "passed": r.passed} for c, r in results.items()},
            "next": next_counts(sweep, results),
            "best_per_host": outcome.best.count if outcome.best else 0,
            "first_fail_per_host": outcome.first_fail.count if outcome.first_fail else None,
            "hosts": first.hosts,
            "best_in_total": (outcome.best.count if outcome.best else 0) * first.hosts,
            "sentence": outcome.sentence(model, first.dataset)}
    if datasize:
        size = _read_datasize(datasize)
        data["dataset"] = {k: size[k] for k in ("num_files_train", "num_files_generate", "scale", "rule",
                                                "host_memory_bytes", "accelerators_per_host")}
        data["sentence"] += dataset_note(size["num_files_generate"], size["num_files_train"])
    _write_round(Path(out), data)
    print(data["sentence"] if not data["next"] else f"next counts: {data['next']}")
    return 0


ROUND_KEYS = ("sweep", "next", "results")


def _check_same_search(record, first) -> None:
    """A search's runs are training runs of one workload: a checkpoint-only run, or one of another model,
    would be counted as a failing count (its AU 0) or mix two searches."""
    if not record.config["workflow"]["train"]:
        raise DlDriverError(f"{record.folder}: a checkpoint-only run; the accelerator search reads training runs")
    if first is not None and record.config["model"]["name"] != first.config["model"]["name"]:
        raise DlDriverError(f"{record.folder}: a run of {record.config['model']['name']!r}, not of "
                            f"{first.config['model']['name']!r} as {first.folder}; one search reads one workload")


def check_round_file(out: str) -> None:
    """--out may name a new file in an existing folder, or an earlier round's file (a JSON object with
    ROUND_KEYS), which is replaced; anything else is refused with one line before any run is read."""
    path = Path(out)
    if path.is_dir():
        raise DlDriverError(f"--out {out}: is a folder; name the round's JSON file")
    if not path.parent.is_dir():
        raise DlDriverError(f"--out {out}: the folder {path.parent} does not exist")
    if path.exists():
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = None
        if not (isinstance(earlier, dict) and all(k in earlier for k in ROUND_KEYS)):
            raise DlDriverError(f"--out {out}: is an existing file that is not an earlier search round's; "
                                "nothing was changed; name a new file")


def _write_round(path: Path, data: dict) -> None:
    """Written beside, then renamed over: a kill or a full disk never leaves half a round file."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise DlDriverError(f"--out {path}: cannot write the round file ({err.strerror or err})") from None
