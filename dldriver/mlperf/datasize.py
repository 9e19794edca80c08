"""MLPerf Storage's dataset and checkpoint sizing, as pure functions.

Training (rules V2.0 §7, Rules.md 3.1.2): the dataset holds at least the larger of
  (a) host memory: multiplier (5) x the clients' total memory / bytes per file
  (b) steps:       500 steps x accelerators (all hosts) x batch size / samples per file
files. Both divisions round down, as mlpstorage's calculate_training_data_size does: the submission
checker recomputes the figure and demands it exactly, so the reference tool's arithmetic is the rule.
Memory is in GiB (mlpstorage's --client-host-memory-in-gb multiplies by 1024**3).

Checkpointing: the bytes each rank writes come from dldriver.checkpoint.layout (the one source of
checkpoint sizes); ranks fill hosts in order (rank r on host r // ranks_per_host), as mpirun and srun
place them by default.
"""
from __future__ import annotations

from dataclasses import dataclass

from dldriver.checkpoint.layout import checkpoint_layout
from dldriver.errors import DlDriverError
from dldriver.mlperf.rules import Edition, checkpoint_model_name

RULE_MEMORY = "host memory"
RULE_STEPS = "500 steps"


@dataclass(frozen=True)
class TrainingSize:
    files_by_memory: int
    files_by_steps: int
    file_bytes: float
    num_subfolders: int          # 0 at or below the edition's files per folder

    @property
    def num_files_train(self) -> int:
        return max(self.files_by_memory, self.files_by_steps)

    @property
    def rule(self) -> str:
        """Which rule set the count (mlpstorage credits the steps rule on a tie)."""
        return RULE_MEMORY if self.files_by_memory > self.files_by_steps else RULE_STEPS

    @property
    def disk_bytes(self) -> int:
        return int(self.num_files_train * self.file_bytes)


def training_size(*, record_length_bytes: float, num_samples_per_file: int, batch_size: int, hosts: int,
                  accelerators_per_host: int, host_memory_bytes: int, edition: Edition) -> TrainingSize:
    """The minimum num_files_train and what it costs; every input is checked (one line names it)."""
    _positive({"--hosts": hosts, "--accelerators-per-host": accelerators_per_host,
               "--host-memory-gib": host_memory_bytes, "dataset.num_samples_per_file": num_samples_per_file,
               "reader.batch_size": batch_size, "dataset.record_length_bytes": record_length_bytes})
    file_bytes = num_samples_per_file * record_length_bytes
    by_memory = int(edition.host_memory_multiplier * hosts * host_memory_bytes // file_bytes)
    by_steps = edition.min_steps_per_epoch * hosts * accelerators_per_host * batch_size // num_samples_per_file
    return TrainingSize(by_memory, by_steps, file_bytes, subfolders_for(max(by_memory, by_steps), edition))


def scaled_files(num_files_train: int, scale: float) -> int:
    """A shrunk dataset for a test or a demo: scale (0 < scale <= 1) x the rules' count, at least one file.
    Anything below 1 makes the dataset smaller than the rules require (a run on it is INVALID)."""
    if not 0 < scale <= 1:
        raise DlDriverError(f"--scale: must be above 0 and at most 1, got {scale}")
    return max(1, int(round(num_files_train * scale, 9)))   # rounded first: 100 x 0.29 is 28.999...96


def subfolders_for(num_files: int, edition: Edition) -> int:
    """num_subfolders_train for a dataset of num_files: files // files_per_folder above that many, else 0."""
    return num_files // edition.files_per_folder if num_files > edition.files_per_folder else 0


def workload_training_size(workload, *, hosts: int, accelerators_per_host: int, host_memory_bytes: int,
                           edition: Edition) -> TrainingSize:
    d = workload.dataset
    return training_size(record_length_bytes=d.record_length_bytes, num_samples_per_file=d.num_samples_per_file,
                         batch_size=workload.reader.batch_size, hosts=hosts,
                         accelerators_per_host=accelerators_per_host, host_memory_bytes=host_memory_bytes,
                         edition=edition)


@dataclass(frozen=True)
class CheckpointSize:
    rank_bytes: tuple[int, ...]
    host_bytes: tuple[int, ...]
    host_memory_bytes: int
    memory_ratio: int

    @property
    def total_bytes(self) -> int:
        return sum(self.rank_bytes)

    @property
    def split_required(self) -> bool:
        """A host that writes less than ratio x its memory could read back from its page cache: the rules
        then ask for a write-only run, a cache flush and a read-only run."""
        return any(b < self.memory_ratio * self.host_memory_bytes for b in self.host_bytes)


def checkpoint_size(workload, *, world_size: int, hosts: int, host_memory_bytes: int,
                    edition: Edition) -> CheckpointSize:
    _positive({"--ranks": world_size, "--hosts": hosts, "--host-memory-gib": host_memory_bytes})
    if world_size % hosts:
        raise DlDriverError(f"--hosts: {world_size} ranks cannot be spread evenly over {hosts} hosts")
    per_rank = tuple(sum(nbytes for _, nbytes in files) for files in checkpoint_layout(workload, world_size))
    per_host_ranks = world_size // hosts
    per_host = tuple(sum(per_rank[h * per_host_ranks:(h + 1) * per_host_ranks]) for h in range(hosts))
    return CheckpointSize(per_rank, per_host, host_memory_bytes, edition.checkpoint_memory_ratio)


def allowed_processes(model_name: str, edition: Edition) -> dict[str, int] | None:
    """{'closed': N, 'subset': 8} (subset only where the edition allows it) for an LLM, else None."""
    model = edition.checkpoint_models.get(checkpoint_model_name(model_name))
    if model is None:
        return None
    allowed = {"closed": model.closed_processes}
    if model.subset_allowed:
        allowed["subset"] = edition.subset_processes
    return allowed


def _positive(values: dict) -> None:
    """Each named value (a flag or a config key path) must be above zero."""
    for place, value in values.items():
        if not value > 0:
            raise DlDriverError(f"{place}: must be positive, got {value}")
