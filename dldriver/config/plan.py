"""The derived plan of a workload for a number of ranks: a pure function of the config.

Steps follow DLIO's formula, floor(files * samples_per_file / (batch_size * ranks)), capped by
train.total_training_steps, without HEAD's file trimming (docs/dlio-facts.md §4): every rank owns floor(T / ranks)
samples and runs the same number of full batches. Checks that need the rank count (DLIO's world-size
rules, the step cap) are made here and raise ConfigError.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dldriver.config.checkpoint_sizes import checkpoint_bytes as tensor_bytes, transformer_params
from dldriver.config.generations import CHECKPOINT_LAYOUT
from dldriver.errors import ConfigError


@dataclass(frozen=True)
class Plan:
    ranks: int
    total_samples_train: int
    total_samples_eval: int
    samples_per_rank: int
    files_per_rank: float
    steps_per_epoch: int
    eval_steps_per_epoch: int
    epochs: int
    compute_seconds_per_epoch: float
    eval_seconds_per_epoch: float
    sample_bytes: float
    dataset_bytes_train: int
    dataset_bytes_eval: int
    dataset_bytes: int
    model_parameters: int
    checkpoint_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def derive_plan(workload, ranks: int = 1) -> Plan:
    """The plan for `ranks` emulated accelerators; ConfigError when the config cannot run on that many."""
    steps, eval_steps = run_steps(workload, ranks)
    d = workload.dataset
    total_train, total_eval = split_samples(d)
    size = sample_bytes(workload)
    params = transformer_params(workload.model) if workload.model.type == "transformer" else 0
    return Plan(
        ranks=ranks,
        total_samples_train=total_train,
        total_samples_eval=total_eval,
        samples_per_rank=total_train // ranks,
        files_per_rank=d.num_files_train / ranks,
        steps_per_epoch=steps,
        eval_steps_per_epoch=eval_steps,
        epochs=workload.train.epochs,
        compute_seconds_per_epoch=steps * workload.train.computation_time.expected(),
        eval_seconds_per_epoch=eval_steps * workload.evaluation.eval_time.expected(),
        sample_bytes=size,
        dataset_bytes_train=round(total_train * size),
        dataset_bytes_eval=round(total_eval * size),
        dataset_bytes=round((total_train + total_eval) * size),
        model_parameters=params,
        checkpoint_bytes=checkpoint_bytes(workload, ranks) if workload.workflow.checkpoint else 0,
    )


def run_steps(workload, ranks: int) -> tuple[int, int]:
    """(training steps per epoch per rank, eval steps per epoch per rank), the step cap applied: what a
    run reads of the plan. ConfigError when the config cannot run on `ranks` ranks."""
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ConfigError(f"ranks: must be an integer >= 1, got {ranks!r}", workload.source)
    problems = _world_problems(workload, ranks)
    r = workload.reader
    total_train, total_eval = split_samples(workload.dataset)
    max_steps = steps_per_epoch(total_train, ranks, r.batch_size)
    cap = workload.train.total_training_steps
    steps = min(max_steps, cap) if cap > 0 else max_steps
    eval_steps = steps_per_epoch(total_eval, ranks, r.batch_size_eval)
    if workload.workflow.train:
        problems += _train_problems(total_train, max_steps, cap, r.batch_size, ranks)
    if workload.workflow.evaluation and eval_steps == 0:
        problems.append(f"reader.batch_size_eval: {total_eval} eval samples give no full batch of "
                        f"{r.batch_size_eval} on each of {ranks} rank(s)")
    if problems:
        raise ConfigError(problems, workload.source)
    return steps, eval_steps


def split_samples(d) -> tuple[int, int]:
    """(training samples, eval samples) of a dataset section."""
    return d.num_files_train * d.num_samples_per_file, d.num_files_eval * d.num_samples_per_file


def steps_per_epoch(total_samples: int, ranks: int, batch_size: int) -> int:
    """Full batches every rank can run: floor(T / (batch * ranks)) (docs/dlio-facts.md §0)."""
    return total_samples // (batch_size * ranks)


def sample_bytes(workload) -> float:
    """Bytes of one sample: prod(record_dims) * itemsize when dims are given, else record_length_bytes."""
    d = workload.dataset
    if not d.record_dims:
        return d.record_length_bytes
    # DLIO forces image formats to uint8 whatever record_element_type says.
    itemsize = 1 if d.format in ("jpeg", "png") else np.dtype(d.record_element_type).itemsize
    return float(math.prod(d.record_dims) * itemsize)


@dataclass(frozen=True)
class DatasetNeeds:
    """What a dataset asks of a host's memory and disk (dataset.resources checks it), from the config."""

    files: int                    # train and eval files: the list a generation or run holds
    samples_per_file: int
    sample_bytes: float           # one sample (sample_bytes)
    largest_sample_bytes: float   # with room for the per-file draws of record_length_bytes_stdev
    sample_key: str               # the config key that sets a sample's size, for messages


def dataset_needs(workload) -> DatasetNeeds:
    d = workload.dataset
    size = sample_bytes(workload)
    return DatasetNeeds(files=d.num_files_train + d.num_files_eval, samples_per_file=d.num_samples_per_file,
                        sample_bytes=size,
                        # mean + 3 stdev of the per-file draws
                        largest_sample_bytes=size + (0 if d.record_dims else 3 * max(0, d.record_length_bytes_stdev)),
                        sample_key="dataset.record_dims" if d.record_dims else "dataset.record_length_bytes")


def checkpoint_bytes(workload, ranks: int) -> int:
    """Bytes of one checkpoint summed over ranks: the tensors of config.checkpoint_sizes (which the
    checkpoint layout writes). In subset mode, the checkpoint of the whole emulated tensor * pipeline *
    data job."""
    p = workload.model.parallelism
    world = p.model_parallel * p.data if workload.checkpoint.mode == "subset" else ranks
    return tensor_bytes(workload, world)


def _world_problems(workload, ranks: int) -> list[str]:
    p = workload.model.parallelism
    model_parallel = p.model_parallel
    # DLIO HEAD checks this even when checkpointing is off; 2.0.0 never does (TP and PP only count its
    # layer files).
    if ranks % model_parallel and CHECKPOINT_LAYOUT[workload.dlio_defaults] == "head":
        return [f"model.parallelism.tensor * model.parallelism.pipeline = {p.tensor} * {p.pipeline} = "
                f"{model_parallel} does not divide the {ranks} rank(s); use a multiple of {model_parallel} ranks"]
    # Subset mode emulates some ranks of a larger tensor * pipeline * data job, never more than all of them.
    if workload.checkpoint.mode == "subset" and ranks > model_parallel * p.data:
        return [f"model.parallelism.data: the {ranks} rank(s) exceed the tensor * pipeline * data = "
                f"{model_parallel * p.data} ranks of the job that subset mode emulates"]
    return []


def _train_problems(total: int, max_steps: int, cap: int, batch: int, ranks: int) -> list[str]:
    if max_steps == 0:
        return [f"reader.batch_size: {total} training samples give no full batch of {batch} "
                f"on each of {ranks} rank(s)"]
    if cap > max_steps:
        return [f"train.total_training_steps: {cap} exceeds the {max_steps} steps per epoch that "
                f"{total} samples give with batch size {batch} on {ranks} rank(s)"]
    return []
