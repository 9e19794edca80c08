"""Verdicts by MLPerf Storage's rules: CLOSED, OPEN or INVALID, each finding a rule id and a sentence.

Two inputs, the same rules: a workload with its overrides before anything runs (`config_verdict`), and a
set of finished run folders (`runs_verdict`, reading each folder's provenance.json and summary.json).
The overrides are what differs between the MLPerf workload file (the reference) and the config that runs,
key by key, so an override given twice or set back to the file's value counts as what it ends as.
Keys that place results rather than shape the workload (output.*) and the workflow switches (which
mlpstorage also sets itself and checks apart) are not overrides.

A CLOSED verdict means "these settings and results satisfy the rules as these tables hold them";
dl-driver is not MLPerf's reference implementation, and a submission must come from mlpstorage.
"""
from __future__ import annotations

from dataclasses import dataclass

from dldriver.units import GiB
from dldriver.mlperf.datasize import (allowed_processes, checkpoint_size, training_size)
from dldriver.mlperf.rules import CHECKPOINT_CLOSED_OVERRIDES, Edition, checkpoint_model_name

CLOSED, OPEN, INVALID = "CLOSED", "OPEN", "INVALID"
_ORDER = {CLOSED: 0, OPEN: 1, INVALID: 2}
NOT_OVERRIDES = ("output.", "workflow.")
NESTED_SECTIONS = ("storage.storage_options", "model.parallelism", "model.transformer")  # keyed one level deeper
# mlpstorage sets these itself for checkpointing (benchmarks/dlio.py add_checkpoint_params).
CHECKPOINT_SET_BY_TOOL = frozenset({"checkpoint.mode", "model.parallelism.data", "checkpoint.num_checkpoints_read",
                                    "checkpoint.num_checkpoints_write"})
CHECKPOINT_COUNTS = (0, 10)     # V2.0 §2.2.2 WRITE/READ flags; Rules.md 4.6 Table 3: "Only 10 or 0"


@dataclass(frozen=True)
class Finding:
    division: str          # the best division this finding leaves
    rule_id: str
    sentence: str
    source: str

    def line(self) -> str:
        return f"{self.division} {self.rule_id}: {self.sentence} [{self.source}]"


@dataclass(frozen=True)
class Verdict:
    edition: str
    findings: tuple[Finding, ...]

    @property
    def division(self) -> str:
        return max((f.division for f in self.findings), key=_ORDER.__getitem__, default=CLOSED)

    def to_dict(self) -> dict:
        return {"edition": self.edition, "division": self.division,
                "findings": [{"division": f.division, "rule": f.rule_id, "sentence": f.sentence,
                              "source": f.source} for f in self.findings]}


def _finding(edition: Edition, division: str, rule_id: str, sentence: str) -> Finding:
    return Finding(division, rule_id, sentence, edition.rule(rule_id).source)


def changed_keys(reference: dict, actual: dict) -> dict[str, tuple]:
    """Dotted key -> (reference value, actual value) for every workload key that differs. Keys are cut at
    section.key (a time value's mean and stdev are one key), storage options one level deeper."""
    ref, act = _flat(reference), _flat(actual)
    return {k: (ref.get(k), act.get(k)) for k in sorted(ref.keys() | act.keys())
            if ref.get(k) != act.get(k) and not k.startswith(NOT_OVERRIDES)}


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        depth = path.count(".") + 1
        deeper = 3 if path.startswith(NESTED_SECTIONS) else 2
        if isinstance(value, dict) and value and depth < deeper:
            out.update(_flat(value, path + "."))
        else:
            out[path] = value
    return out


def config_findings(edition: Edition, reference: dict, actual: dict, *, hosts: int, accelerators: int,
                    host_memory_bytes: int, drop_caches: bool, workload=None) -> list[Finding]:
    """Every finding on one config (as resolved_dict gives it) against its reference, for a run on
    `accelerators` ranks over `hosts` hosts of `host_memory_bytes` each."""
    if actual["workflow"]["train"]:
        return _training_findings(edition, reference, actual, hosts, accelerators, host_memory_bytes)
    return _checkpoint_findings(edition, reference, actual, hosts, accelerators, host_memory_bytes,
                                drop_caches, workload)


def _override_findings(edition, changed, closed, open_, closed_rule="trainingClosedSubmissionParameters",
                       open_rule="trainingOpenSubmissionParameters") -> list[Finding]:
    found = []
    for key, (was, now) in changed.items():
        if key in closed:
            found.append(_finding(edition, CLOSED, closed_rule,
                                  f"{key} = {now!r} (the file says {was!r}) is a CLOSED override"))
        elif key in open_:
            found.append(_finding(edition, OPEN, open_rule,
                                  f"{key} = {now!r} (the file says {was!r}) is allowed in OPEN only"))
        else:
            found.append(_finding(edition, INVALID, closed_rule,
                                  f"{key} = {now!r} (the file says {was!r}) may not be changed in either division"))
    return found


def _training_findings(edition, reference, actual, hosts, accelerators, memory) -> list[Finding]:
    model = actual["model"]["name"]
    found = []
    if model not in edition.au_floor:
        found.append(_finding(edition, INVALID, "trainingWorkload",
                              f"model.name {model!r} is not a training workload of MLPerf Storage {edition.name} "
                              f"({', '.join(edition.au_floor)})"))
    found += _override_findings(edition, changed_keys(reference, actual), edition.closed_overrides,
                                edition.open_overrides)
    if actual["reader"]["odirect"] and model != "unet3d":
        found.append(_finding(edition, INVALID, "trainingOdirectModel",
                              f"reader.odirect is set for {model}; it is allowed for unet3d only"))
    if accelerators % hosts:
        found.append(_finding(edition, INVALID, "trainingRecalculateDatasetSize",
                              f"{accelerators} accelerators do not divide evenly over {hosts} hosts"))
        return found
    d = actual["dataset"]
    need = training_size(record_length_bytes=d["record_length_bytes"], num_samples_per_file=d["num_samples_per_file"],
                         batch_size=actual["reader"]["batch_size"], hosts=hosts,
                         accelerators_per_host=accelerators // hosts, host_memory_bytes=memory, edition=edition)
    if d["num_files_train"] < need.num_files_train:
        found.append(_finding(edition, INVALID, "trainingRecalculateDatasetSize",
                              f"dataset.num_files_train = {d['num_files_train']} is below the {need.num_files_train} "
                              f"files the {need.rule} rule asks for {hosts} host(s) x {accelerators // hosts} "
                              f"accelerator(s) with {memory / GiB:.2f} GiB each"))
    return found


def _checkpoint_findings(edition, reference, actual, hosts, ranks, memory, drop_caches, workload) -> list[Finding]:
    model = checkpoint_model_name(actual["model"]["name"])
    allowed = allowed_processes(model, edition)
    found = []
    if allowed is None:
        return [_finding(edition, INVALID, "checkpointClosedMpiProcesses",
                         f"model.name {actual['model']['name']!r} is not a checkpointing workload of MLPerf Storage "
                         f"{edition.name} ({', '.join(edition.checkpoint_models)})")]
    changed = changed_keys(reference, actual)
    for key in ("checkpoint.num_checkpoints_write", "checkpoint.num_checkpoints_read"):
        now = _flat(actual).get(key)
        if key in changed and now not in CHECKPOINT_COUNTS:
            found.append(_finding(edition, OPEN, "checkpointClosedCheckpointParameters",
                                  f"{key} = {now} is allowed in OPEN only (CLOSED: 10, or 0 for a split run)"))
    others = {k: v for k, v in changed.items() if k not in CHECKPOINT_SET_BY_TOOL}
    found += _override_findings(edition, others, CHECKPOINT_CLOSED_OVERRIDES, frozenset(),
                                "checkpointClosedCheckpointParameters")
    subset = actual["checkpoint"]["mode"] == "subset"
    tp_pp = actual["model"]["parallelism"]["tensor"] * actual["model"]["parallelism"]["pipeline"]
    if subset and "subset" not in allowed:
        rule = "checkpointSubsetRunValidation" if "checkpointSubsetRunValidation" in edition.rules \
            else "checkpointClosedMpiProcesses"
        found.append(_finding(edition, INVALID, rule, f"subset mode is not allowed for {model}"))
    elif ranks == (allowed["subset"] if subset else allowed["closed"]):
        found.append(_finding(edition, CLOSED, "checkpointClosedMpiProcesses",
                              f"{ranks} processes is the count CLOSED requires for {model}"
                              + (" in subset mode" if subset else "")))
    elif not subset and ranks % tp_pp == 0 and ranks > allowed["closed"]:
        found.append(_finding(edition, OPEN, "checkpointClosedMpiProcesses",
                              f"{ranks} processes (a multiple of TP x PP = {tp_pp}) is allowed in OPEN only; "
                              f"CLOSED requires {allowed['closed']}"))
    else:
        found.append(_finding(edition, INVALID, "checkpointClosedMpiProcesses",
                              f"{ranks} processes is not allowed for {model}: CLOSED requires "
                              f"{allowed['subset'] if subset else allowed['closed']}"))
        return found
    if workload is not None and ranks % hosts == 0:
        size = checkpoint_size(workload, world_size=ranks, hosts=hosts, host_memory_bytes=memory, edition=edition)
        c = actual["checkpoint"]
        together = c["num_checkpoints_write"] != 0 and c["num_checkpoints_read"] != 0
        if size.split_required and together and not drop_caches:
            found.append(_finding(edition, INVALID, "checkpointDataSizeRatio",
                                  f"a host writes {min(size.host_bytes) / GiB:.2f} GiB, under "
                                  f"{edition.checkpoint_memory_ratio} x its {memory / GiB:.2f} GiB, and the run "
                                  "reads back without dropping caches: use --drop-caches, or a write-only run "
                                  "then a read-only one"))
    return found


@dataclass(frozen=True)
class RunRecord:
    """What a verdict needs from one run folder (read by dldriver.mlperf.folders)."""

    folder: str
    start: str
    config: dict
    accelerators: int
    hosts: int
    host_memory_bytes: int
    drop_caches: bool
    au_percentage: float | None
    dataset: str
    checkpoint_scale: float = 1.0


def runs_findings(edition: Edition, reference: dict, runs: list[RunRecord], workload=None) -> list[Finding]:
    """The findings on a set of runs of one workload: each run's config, then count, dataset and AU."""
    if not runs:
        return [_finding(edition, INVALID, "trainingRunCount", "no run folders given")]
    runs = sorted(runs, key=lambda r: r.start)
    first = runs[0]
    found = config_findings(edition, reference, first.config, hosts=first.hosts, accelerators=first.accelerators,
                            host_memory_bytes=first.host_memory_bytes, drop_caches=first.drop_caches,
                            workload=workload)
    for run in runs[1:]:
        if run.config != first.config or run.accelerators != first.accelerators:
            found.append(_finding(edition, INVALID, "trainingRunCount",
                                  f"{run.folder} ran another config or accelerator count than {first.folder}"))
    if not first.config["workflow"]["train"]:
        for run in runs:
            if run.checkpoint_scale < 1:
                found.append(_finding(edition, INVALID, "checkpointClosedCheckpointParameters",
                                      f"{run.folder}: --checkpoint-scale {run.checkpoint_scale} shrank every "
                                      "checkpoint tensor"))
        return found
    if len(runs) != edition.required_runs:
        warm = f" ({edition.warmup_runs} warm-up + {edition.measured_runs} measured)" if edition.warmup_runs else ""
        found.append(_finding(edition, INVALID, "trainingRunCount",
                              f"{len(runs)} runs given; the rules ask for {edition.required_runs}{warm}"))
    if len({r.dataset for r in runs}) > 1:
        found.append(_finding(edition, INVALID, "trainingRunCount", "the runs read more than one dataset"))
    floor = edition.au_floor.get(first.config["model"]["name"])
    if floor is not None:
        for run in runs[edition.warmup_runs:]:
            if run.au_percentage is None or run.au_percentage < 100 * floor:
                found.append(_finding(edition, INVALID, "trainingAcceleratorUtilizationCheck",
                                      f"{run.folder}: AU {_pct(run.au_percentage)} is below the "
                                      f"{100 * floor:.0f} % minimum"))
    return found


def _pct(value) -> str:
    return "unknown" if value is None else f"{value:.2f} %"
