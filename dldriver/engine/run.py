"""`dldriver run`: the one run driver. As DLIO's benchmark run, it branches into training (the dataset
checked, the emulation loop on every rank, checkpoints when scheduled) or checkpoint-only (writes, then
reads); both write the same run folder.

Rank 0 writes the whole folder (summary.json, {rank}_output.json, {rank}_per_epoch_stats.json, dlio.log)
into a staged folder that is moved into place only when the run completed; a run that fails leaves no
summary behind. A folder that is not an earlier run's is refused before anything starts (outputs).
"""
from __future__ import annotations

import functools
import logging
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from dldriver.config import derive_plan
from dldriver.config.model import Workload
from dldriver.config.profiles import apply_profile
from dldriver.config.resolved import write_resolved_config
from dldriver.config.uri import checkpoint_uri
from dldriver.dataset.opening import Dataset, open_dataset
from dldriver.dataset.sampler import Sampler, fresh_entropy
from dldriver.dataset.source import open_source
from dldriver.engine.checkpointing import (check_checkpoint_only, checkpoint_counts, checkpoint_only_rank,
                                           open_checkpointer)
from dldriver.engine.loop import RankPlan, run_epochs
from dldriver.engine.ranks import Comm, launch, launcher_world, rank0_result, world_size
from dldriver.engine.results import build_checkpoint_report, build_report, print_summary, write_report
from dldriver.errors import ConfigError, DlDriverError
from dldriver.loaders import LOADER_MODULES, check_loader, make_loader
from dldriver.metrics import caching
from dldriver.metrics.outdir import check_results_room, results_write_errors
from dldriver.metrics.summary import staged_run_folder
from dldriver.metrics.system import SystemSampler, host_info
from dldriver.mlperf.provenance import write_provenance
from dldriver.outputs import check_checkpoint_folder, check_run_folder
from dldriver.dataset.resources import check_file_list, check_sample_memory
from dldriver.redact import RedactingFilter

log = logging.getLogger("dldriver")


@dataclass
class RunSpec:
    """Everything the ranks share, decided before they start: the workload and what is resolved from it
    once (the dataset, checked; the checkpoint URI; the step counts)."""

    workload: Workload
    dataset: Optional[Dataset]   # None under srun/mpiexec until rank 0 has checked it (_shared_dataset)
    ranks: int
    steps: int
    eval_steps: int
    output: Path
    drop_caches: bool
    quiet: bool
    checkpoint_scale: float
    cell: Optional[dict] = None  # the run's place in a matrix (--cell), recorded in summary.json
    checkpoint_uri: Optional[str] = None  # where checkpoints go (config.uri), when the run writes or reads any


def run_workload(workload, ranks: Optional[int] = None, output=None, drop_caches: bool = False,
                 quiet: bool = False, checkpoint_scale: float = 1.0, cell: Optional[dict] = None) -> Optional[dict]:
    """Run a workload (training, with checkpoints when scheduled, or checkpoint-only); rank 0 returns
    the summary (None on other ranks and under MPI on them)."""
    wf = workload.workflow
    size = world_size(ranks)
    check_results_room(output or workload.output.folder or "output")
    check_file_list(workload)
    check_sample_memory(workload)
    if not wf.train:
        if not wf.checkpoint:
            raise ConfigError("workflow.train: False with workflow.checkpoint False leaves nothing to run "
                              "(datasets are written by `dldriver generate`)")
        check_checkpoint_only(workload, size, checkpoint_scale)
        out = check_run_folder(output or workload.output.folder or "output")
        spec = RunSpec(workload, None, size, 0, 0, out, drop_caches, quiet, checkpoint_scale, cell,
                       _checked_checkpoint_uri(workload))
        return launch(functools.partial(_rank_main, spec=spec), size)
    workload = apply_profile(workload)  # the loader's framework profile wins over the DLIO keys
    check_loader(workload.reader.data_loader)
    if drop_caches and os.geteuid() != 0:
        raise DlDriverError("--drop-caches needs root to write /proc/sys/vm/drop_caches; "
                            "run as root or leave it out")
    out = check_run_folder(output or workload.output.folder or "output")
    ckpt_uri = _checked_checkpoint_uri(workload) if wf.checkpoint else None
    need_eval = _needs_eval(workload)
    # Under srun/mpiexec every rank runs this; there rank 0 alone checks the dataset, once it is launched.
    dataset = None if _launched_ranks() else open_dataset(workload, need_eval)
    steps, eval_steps = _steps(workload, size, need_eval)
    spec = RunSpec(workload, dataset, size, steps, eval_steps, out, drop_caches, quiet, checkpoint_scale, cell,
                   ckpt_uri)
    return launch(functools.partial(_rank_main, spec=spec), size)


def _checked_checkpoint_uri(workload) -> str:
    """The checkpoint URI, resolved once for the run, if its folder may take checkpoints."""
    uri = checkpoint_uri(workload)
    check_checkpoint_folder(uri)
    return uri


def _needs_eval(workload) -> bool:
    return workload.workflow.evaluation and workload.dataset.num_files_eval > 0


def _launched_ranks() -> bool:
    world = launcher_world()
    return world is not None and world[1] > 1


def _shared_dataset(comm: Comm, workload, need_eval: bool) -> Dataset:
    """The dataset, checked and listed by rank 0 alone and sent to the other ranks: with every rank
    listing the same bucket at start, N ranks would put N times the load on the store for one answer.
    If the check fails, every rank raises rank 0's error and ends (ranks.rank0_result)."""
    return rank0_result(comm, functools.partial(open_dataset, workload, need_eval))


def _steps(workload, ranks: int, need_eval: bool) -> tuple[int, int]:
    """(training steps per epoch per rank, eval steps): the plan's, with total_training_steps applied."""
    plan = derive_plan(workload, ranks)
    return plan.steps_per_epoch, plan.eval_steps_per_epoch if need_eval else 0


@contextmanager
def _rank0_folder(comm: Comm, out: Path):
    """Rank 0 works in a staged run folder (moved into place on success); other ranks in none."""
    if comm.rank != 0:
        yield None
        return
    with results_write_errors(out), staged_run_folder(out) as folder:
        yield folder


class _RunLog(logging.FileHandler):
    """dlio.log. A line it cannot write (a full disk) is left to the results writer, which then fails and
    names the folder once, instead of logging printing a traceback for every message."""

    def handleError(self, record) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handleError(record)


@contextmanager
def _logging(folder: Optional[Path], spec: RunSpec, rank: int):
    """dlio.log in the run folder (rank 0), warnings and progress lines on stderr."""
    handlers = []
    console = logging.StreamHandler(sys.stderr)
    # Other ranks repeat rank 0's warnings (pin_memory, caching): they show errors only.
    console.setLevel(logging.ERROR if rank != 0 else logging.WARNING if spec.quiet else logging.INFO)
    console.setFormatter(logging.Formatter(f"[%(levelname)s] rank {rank}: %(message)s" if rank
                                           else "[%(levelname)s] %(message)s"))
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    handlers.append(console)
    if folder is not None:
        logfile = _RunLog(folder / spec.workload.output.log_file)
        logfile.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
        handlers.append(logfile)
    previous = log.level
    log.setLevel(logging.INFO)
    for h in handlers:
        h.addFilter(RedactingFilter())
        log.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(previous)


def _rank_main(comm: Comm, spec: RunSpec) -> Optional[dict]:
    """One rank of any run kind: the staged folder and dlio.log on rank 0, the rank's work, then rank 0
    gathers every rank's results and writes the run folder."""
    train = spec.workload.workflow.train
    if train and spec.dataset is None:
        spec = replace(spec, dataset=_shared_dataset(comm, spec.workload, _needs_eval(spec.workload)))
    with _rank0_folder(comm, spec.output) as folder, _logging(folder, spec, comm.rank):
        start = time.time()
        if comm.rank == 0:
            write_resolved_config(folder, spec.workload)  # with ++hydra.output_subdir, as DLIO's Hydra
        mine = _train_rank(comm, spec) if train else _checkpoint_only_rank(comm, spec)
        gathered = comm.gather(mine)
        if comm.rank != 0:
            return None
        build = build_report if train else build_checkpoint_report
        report = build(spec, gathered, start, time.time(), comm.kind)
        write_report(folder, report)
        write_provenance(folder, spec.workload, ranks=comm.size, hosts=report["summary"]["num_hosts"],
                         drop_caches=spec.drop_caches,
                         storage_uri=spec.dataset.uri if train else spec.checkpoint_uri)
        print_summary(report["summary"], spec.output)
        return report["summary"]


def _train_rank(comm: Comm, spec: RunSpec) -> dict:
    """This rank's epochs, and what rank 0 needs of them for the report."""
    workload = spec.workload
    rd = workload.reader
    shuffled = "random" in (rd.file_shuffle, rd.sample_shuffle)
    entropy = comm.bcast(fresh_entropy() if shuffled and comm.rank == 0 else None)
    if comm.rank == 0:
        _announce(spec)
    plan = RankPlan.from_workload(
        workload, spec.steps, spec.eval_steps,
        train_sampler=Sampler.from_workload(workload, comm.size, comm.rank, "train", entropy),
        eval_sampler=Sampler.from_workload(workload, comm.size, comm.rank, "eval", entropy)
        if spec.eval_steps else None,
        drop_caches=_cache_dropper(spec) if spec.drop_caches else None,
        progress=comm.rank == 0 and not spec.quiet and sys.stderr.isatty())
    with SystemSampler() as system, _loaders(spec, comm) as (train_loader, eval_loader, checkpointer):
        records = run_epochs(comm, plan, train_loader, eval_loader, checkpointer)
    return {"rank": comm.rank, "host": host_info(), "records": records, "system": system.summary,
            "checkpoint_bytes": checkpointer.total_bytes if checkpointer is not None else 0,
            "framework": _framework_version(rd.data_loader)}


def _checkpoint_only_rank(comm: Comm, spec: RunSpec) -> dict:
    writes, _ = checkpoint_counts(spec.workload)
    checkpointer = open_checkpointer(comm, spec.workload, spec.checkpoint_uri, spec.checkpoint_scale,
                                     writes=writes > 0)
    if comm.rank == 0:
        log.info("Running checkpoint-only %s on %d rank(s) to %s", spec.workload.model.name, spec.ranks,
                 checkpointer.storage.uri)
    mine = checkpoint_only_rank(comm, spec.workload, checkpointer, spec.drop_caches)
    return mine | {"host": host_info()}


@contextmanager
def _loaders(spec: RunSpec, comm: Comm):
    """The train and eval loaders (framework imported here, inside the rank) and the checkpointer."""
    workload = spec.workload
    rd = workload.reader
    train = make_loader(rd.data_loader, open_source(workload, "train", spec.dataset.train_files,
                                                    spec.dataset.open_storage), rd)
    evaluation = None
    checkpointer = None
    try:
        if spec.eval_steps:
            evaluation = make_loader(rd.data_loader, open_source(workload, "valid", spec.dataset.eval_files,
                                                                 spec.dataset.open_storage), rd)
        if workload.workflow.checkpoint:
            checkpointer = open_checkpointer(comm, workload, spec.checkpoint_uri, spec.checkpoint_scale)
        yield train, evaluation, checkpointer
    finally:
        for loader in (train, evaluation):
            if loader is not None:
                loader.close()


def _cache_dropper(spec: RunSpec):
    if not spec.dataset.local_paths():
        log.warning("--drop-caches: %s is an object store; its server's cache is out of reach",
                    spec.dataset.uri)
    return caching.drop_caches


def _announce(spec: RunSpec) -> None:
    for warning in spec.dataset.warnings:
        log.warning("%s", warning)
    ds = spec.workload.dataset
    size_gb = caching.data_size_per_host_gb(ds.num_files_train, ds.num_samples_per_file,
                                            ds.record_length_bytes, spec.ranks, spec.ranks)
    if caching.potential_caching(size_gb, [host_info()["host_memory_GB"]])[0] and not spec.drop_caches:
        log.warning("the dataset (%.3f GiB per host) fits in this host's memory: epochs after the first "
                    "may be served from the page cache (potential_caching); use a larger dataset or "
                    "--drop-caches", size_gb)
    log.info("Running %s on %d rank(s) with the %s loader from %s", spec.workload.model.name, spec.ranks,
             spec.workload.reader.data_loader, spec.dataset.uri)
    log.info("Max steps per epoch: %d", spec.steps)


def _framework_version(loader: str) -> dict:
    module = LOADER_MODULES.get(loader)
    versions = {"python": platform.python_version()}
    for name in ("numpy", module):
        if name and name in sys.modules:
            versions[name] = getattr(sys.modules[name], "__version__", "unknown")
    return versions


