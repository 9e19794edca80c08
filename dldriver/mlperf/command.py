"""`dldriver datasize` and `dldriver mlperf check`: turn the pure sizing and verdicts into text."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import psutil

from dldriver.units import GiB
from dldriver.config import load_workload, resolved_dict
from dldriver.errors import DlDriverError
from dldriver.redact import redact
from dldriver.mlperf.datasize import (RULE_MEMORY, allowed_processes, checkpoint_size, scaled_files,
                                      subfolders_for, workload_training_size)
from dldriver.mlperf.folders import read_run, run_folders
from dldriver.mlperf.rules import edition as edition_named
from dldriver.mlperf.search import count_result, dataset_note, next_counts, search_result
from dldriver.mlperf.verdict import INVALID, Verdict, config_findings, runs_findings


def host_memory_bytes(gib: float | None) -> int:
    """--host-memory-gib when given, else this host's physical memory."""
    return int(gib * GiB) if gib is not None else psutil.virtual_memory().total


def datasize_command(config: str, overrides: list[str], *, hosts: int, accelerators_per_host: int | None,
                     host_memory_gib: float | None, edition: str, ranks: int | None, as_json: bool,
                     dlio_defaults: str = "head", scale: float = 1.0) -> int:
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
    command = shlex.join(["dldriver", "generate", config, *kept, *new])
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
        subject = f"{config} {' '.join(overrides)}".strip()
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
                         workload: str | None = None, datasize: str | None = None) -> int:
    """One round of the accelerator search from the run folders of the counts tried so far (each
    `…/r{N}/rep{K}/summary.json` or its folder): their results, the next counts, the sentence, as JSON."""
    ed = edition_named(edition)
    by_count: dict[int, list] = {}
    for folder in run_folders([Path(c).parent if c.endswith(".json") else c for c in cells]):
        record = read_run(folder)
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
            "sentence": outcome.sentence(model, first.dataset)}
    if datasize:
        size = _read_datasize(datasize)
        data["dataset"] = {k: size[k] for k in ("num_files_train", "num_files_generate", "scale", "rule",
                                                "host_memory_bytes", "accelerators_per_host")}
        data["sentence"] += dataset_note(size["num_files_generate"], size["num_files_train"])
    Path(out).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(data["sentence"] if not data["next"] else f"next counts: {data['next']}")
    return 0
