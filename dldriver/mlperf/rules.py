"""MLPerf Storage's rules as data: one table per edition, each rule with the document it comes from.

dl-driver is not MLPerf's reference implementation (mlpstorage is). These tables say what the rules ask
of a run's settings and results, so that a verdict can say "these settings and results satisfy the
rules"; they do not make a dl-driver run an MLPerf submission.

Sources (mlcommons/storage):
  V2   Submission_guidelines.md "MLPerf Storage V2.0 Benchmark Rules", commit caa90c9c, with
       mlpstorage/config.py and mlpstorage/rules.py at the same commit (the reference tool's arithmetic)
  V3   Rules.md, the submission checker's spec for rules edition 3.0, commit 0366ccfc; the RetinaNet AU
       floor from configs/dlio/workload/retinanet_b200.yaml (`metric.au: 0.85`), commit 11460d00
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from dldriver.errors import DlDriverError

V2_GUIDE = "mlcommons/storage Submission_guidelines.md (V2.0 rules, commit caa90c9)"
V2_TOOL = "mlcommons/storage mlpstorage/rules.py and config.py (commit caa90c9)"
V3_RULES = "mlcommons/storage Rules.md (rules edition 3.0, commit 0366ccf)"
V3_RETINANET = "mlcommons/storage configs/dlio/workload/retinanet_b200.yaml (commit 11460d0)"


@dataclass(frozen=True)
class Rule:
    """One rule: its id (the checker's name where the source gives one), what it asks, where it says so."""

    id: str
    sentence: str
    source: str


@dataclass(frozen=True)
class CheckpointModel:
    """One LLM checkpointing workload: the process count CLOSED requires, and whether subset mode
    (one 8-process host writing its share) is allowed for it."""

    name: str
    closed_processes: int
    subset_allowed: bool


@dataclass(frozen=True)
class Edition:
    name: str
    rules: dict[str, Rule]
    closed_overrides: frozenset[str]
    open_overrides: frozenset[str]
    au_floor: dict[str, float]                  # training model name -> minimum AU (fraction)
    measured_runs: int                          # runs whose AU counts
    warmup_runs: int                            # runs before them that do not count
    host_memory_multiplier: int = 5
    min_steps_per_epoch: int = 500
    files_per_folder: int = 10_000
    subset_processes: int = 8
    checkpoint_models: dict[str, CheckpointModel] = field(default_factory=dict)
    checkpoint_memory_ratio: int = 3             # checkpoint bytes per host below ratio x memory: split run

    def rule(self, rule_id: str) -> Rule:
        return self.rules[rule_id]

    @property
    def required_runs(self) -> int:
        return self.measured_runs + self.warmup_runs


def _table(*rules: Rule) -> dict[str, Rule]:
    return {r.id: r for r in rules}


# The closed list is mlpstorage's (rules.py check_allowed_params), which adds reader.odirect to the
# guideline's Table 2; both editions' open lists are the guidelines' / Rules.md 3.6.3 table.
_CLOSED_V2 = frozenset({
    "dataset.num_files_train", "dataset.num_subfolders_train", "dataset.data_folder",
    "reader.read_threads", "reader.computation_threads", "reader.transfer_size", "reader.prefetch_size",
    "reader.odirect", "checkpoint.checkpoint_folder", "storage.storage_type", "storage.storage_root"})
_OPEN = frozenset({"framework", "dataset.format", "dataset.num_samples_per_file", "reader.data_loader"})

_LLAMA3 = {
    # Process counts: V2.0 guidelines §2.2.1 and Table 2; Rules.md 4.6.1. Subset: V2.0 §2.2.2 allows it
    # for every model (8 processes, mlpstorage LLM_SUBSET_PROCS); Rules.md 4.3.5 only for 8B.
    "llama3-8b": (8, True),
    "llama3-70b": (64, False),
    "llama3-405b": (512, False),
    "llama3-1t": (1024, False),
}


def _llama(subset_all: bool) -> dict[str, CheckpointModel]:
    return {name: CheckpointModel(name, procs, subset_all or subset)
            for name, (procs, subset) in _LLAMA3.items()}


V2_0 = Edition(
    name="v2.0",
    rules=_table(
        Rule("trainingClosedSubmissionParameters",
             "CLOSED allows overriding only dataset.num_files_train, num_subfolders_train, data_folder, "
             "reader.read_threads, computation_threads, transfer_size, prefetch_size, odirect, "
             "checkpoint.checkpoint_folder, storage.storage_type and storage_root", f"{V2_GUIDE} §10.1; {V2_TOOL}"),
        Rule("trainingOpenSubmissionParameters",
             "OPEN adds framework, dataset.format, dataset.num_samples_per_file and reader.data_loader",
             f"{V2_GUIDE} §10.2"),
        Rule("trainingRecalculateDatasetSize",
             "num_files_train must be at least the larger of 5 x the clients' memory / file size and "
             "500 steps x accelerators x batch size / samples per file", f"{V2_GUIDE} §7; {V2_TOOL}"),
        Rule("trainingAcceleratorUtilizationCheck",
             "every run's AU must be at or above the workload's minimum (3D U-Net 90 %, ResNet-50 90 %, "
             "CosmoFlow 70 %)", f"{V2_GUIDE} §2.1 Table 1, §4"),
        Rule("trainingRunCount",
             "a result is the mean of 5 consecutive runs on one dataset, generated once before them",
             f"{V2_GUIDE} §3"),
        Rule("trainingWorkload", "the training workloads are unet3d, resnet50 and cosmoflow",
             f"{V2_GUIDE} §2.1 Table 1"),
        Rule("trainingOdirectModel", "reader.odirect is supported only for unet3d", V2_TOOL),
        Rule("checkpointClosedMpiProcesses",
             "CLOSED checkpointing runs llama3 8B, 70B, 405B and 1T on 8, 64, 512 and 1024 processes; "
             "subset mode on 8", f"{V2_GUIDE} §2.2.1, §2.2.2"),
        Rule("checkpointClosedCheckpointParameters",
             "CLOSED checkpointing allows changing only the checkpoint folder (and 10 or 0 checkpoints to "
             "write or read, for a split run)", f"{V2_GUIDE} §2.2.5 Table 3"),
        Rule("checkpointDataSizeRatio",
             "when a client writes less than 3 x its memory, the checkpoint is written, the cache "
             "cleared, then read, as separate runs", f"{V2_GUIDE} §2.2.2"),
    ),
    closed_overrides=_CLOSED_V2,
    open_overrides=_OPEN,
    au_floor={"unet3d": 0.90, "resnet50": 0.90, "cosmoflow": 0.70},
    measured_runs=5,
    warmup_runs=0,
    checkpoint_models=_llama(subset_all=True),
)

V3_0 = Edition(
    name="v3.0",
    rules=_table(
        Rule("trainingClosedSubmissionParameters",
             "CLOSED allows overriding only dataset.num_files_train, num_subfolders_train, data_folder, "
             "reader.read_threads, computation_threads, transfer_size, prefetch_size, odirect, "
             "storage.storage_root, storage_type and storage_options.prefetch_window", f"{V3_RULES} 3.6.2"),
        Rule("trainingOpenSubmissionParameters",
             "OPEN adds framework, dataset.format, dataset.num_samples_per_file and reader.data_loader",
             f"{V3_RULES} 3.6.3"),
        Rule("trainingRecalculateDatasetSize",
             "num_files_train must be at least the larger of 5 x the clients' memory / file size and "
             "500 steps x accelerators x batch size / samples per file", f"{V3_RULES} 3.1.2"),
        Rule("trainingAcceleratorUtilizationCheck",
             "every measured run's AU must be at or above the workload's minimum (3D U-Net 90 %, "
             "RetinaNet 85 %)", f"{V3_RULES} 3.3.2; {V3_RETINANET}"),
        Rule("trainingRunCount",
             "a run holds 6 consecutive runs on one dataset, the first a warm-up not reported",
             f"{V3_RULES} 2.1.17"),
        Rule("trainingWorkload", "the training workloads are unet3d and retinanet", f"{V3_RULES} 2.1.11"),
        Rule("trainingOdirectModel", "reader.odirect is for unet3d training", f"{V3_RULES} 3.6.2"),
        Rule("checkpointClosedMpiProcesses",
             "CLOSED checkpointing runs llama3 8B, 70B, 405B and 1T on 8, 64, 512 and 1024 processes",
             f"{V3_RULES} 4.6.1"),
        Rule("checkpointSubsetRunValidation", "a subset run must be llama3 8B on exactly 8 processes",
             f"{V3_RULES} 4.3.5"),
        Rule("checkpointClosedCheckpointParameters",
             "CLOSED checkpointing allows changing only checkpoint.checkpoint_folder (and 10 or 0 checkpoints "
             "to write or read, for a split run)", f"{V3_RULES} 4.6.3, 4.6 Table 3"),
        Rule("checkpointDataSizeRatio",
             "when a client writes less than 3 x its memory, its cache must be cleared between the write "
             "and the read phase", f"{V3_RULES} 4.3.1, 4.7.1"),
    ),
    closed_overrides=(_CLOSED_V2 - {"checkpoint.checkpoint_folder"}) | {"storage.storage_options.prefetch_window"},
    open_overrides=_OPEN,
    au_floor={"unet3d": 0.90, "retinanet": 0.85},
    measured_runs=5,
    warmup_runs=1,
    checkpoint_models=_llama(subset_all=False),
)

EDITIONS = {e.name: e for e in (V2_0, V3_0)}
DEFAULT_EDITION = "v2.0"


def edition_runs() -> dict:
    """{edition: {"warmup_runs", "measured_runs"}}: what `dldriver version --json` tells the workflow,
    whose accelerator search runs that many of each count."""
    return {name: {"warmup_runs": e.warmup_runs, "measured_runs": e.measured_runs} for name, e in EDITIONS.items()}
CHECKPOINT_CLOSED_OVERRIDES = frozenset({"checkpoint.checkpoint_folder"})  # V2.0 §2.2.5; Rules.md 4.6.3


def edition(name: str) -> Edition:
    try:
        return EDITIONS[name]
    except KeyError:
        raise DlDriverError(f"--edition: unknown MLPerf Storage edition {name!r}; "
                            f"known: {', '.join(EDITIONS)}") from None


_LLAMA_NAME = re.compile(r"llama3?[-_](\d+[bt])(?:$|[-_])")


def checkpoint_model_name(model_name: str) -> str:
    """The rules' name for an LLM workload: mlpstorage's YAMLs say llama_8b, DLIO's llama_8b_zero3, the
    rules llama3-8b. Other names come back lower-cased."""
    match = _LLAMA_NAME.match(model_name.lower())
    return f"llama3-{match.group(1)}" if match else model_name.lower()


# Rule id -> what breaking it means, in a few words for people (the report's headline); the same ids in
# every edition.
RULE_TITLES = {
    "trainingClosedSubmissionParameters": "a setting neither division allows to change",
    "trainingOpenSubmissionParameters": "an OPEN-only setting",
    "trainingRecalculateDatasetSize": "dataset smaller than the rules ask",
    "trainingAcceleratorUtilizationCheck": "AU below the workload's minimum",
    "trainingRunCount": "not the number of runs the rules ask",
    "trainingWorkload": "not an MLPerf training workload",
    "trainingOdirectModel": "odirect on a workload other than unet3d",
    "checkpointClosedMpiProcesses": "a process count the rules do not allow",
    "checkpointSubsetRunValidation": "a subset run the rules do not allow",
    "checkpointClosedCheckpointParameters": "a checkpoint setting CLOSED does not allow",
    "checkpointDataSizeRatio": "checkpoint read back without clearing caches",
}
