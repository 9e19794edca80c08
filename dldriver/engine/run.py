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

from dldriver.config.model import Workload
from dldriver.config.plan import DatasetNeeds, dataset_needs, run_steps
from dldriver.config.profiles import apply_profile
from dldriver.config.resolved import write_resolved_config
from dldriver.config.uri import locations
from dldriver.dataset.opening import Dataset, open_dataset
from dldriver.dataset.sampler import Sampler, fresh_entropy
from dldriver.dataset.source import open_source
from dldriver.engine.checkpointing import (check_local_room, checkpoint_counts, checkpoint_only_rank, layout_bytes,
                                           open_checkpointer, scheduled_checkpoints)
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
from dldriver.version import package_version
from dldriver.outputs import check_checkpoint_folder, check_run_folder
from dldriver.dataset.resources import check_file_list, check_sample_memory
from dldriver.redact import RedactingFilter

log = logging.getLogger("dldriver")


@dataclass(frozen=True)
class RunSpec:
    """What a run is, resolved once from the workload before any rank starts (run_workload): each part
    of the run is handed the values it reads from here."""

    workload: Workload            # as run (the loader's profile applied), for the loaders and the run folder
    ranks: int
    output: Path                  # the run folder
    dataset_uri: str              # config.uri.locations
    storage_options: dict
    dataset_needs: DatasetNeeds   # what holding the file list and a sample asks of memory
    loader: Optional[str]         # reader.data_loader; None for a checkpoint-only run, which reads no data
    steps: int                    # training steps per epoch per rank (the plan's)
    eval_steps: int               # 0 when the run does not evaluate
    checkpoint_uri: Optional[str]  # when the run writes or reads checkpoints
    checkpoint_writes: int        # the checkpoints the run saves
    checkpoint_reads: int         # the loads of a checkpoint-only run
    checkpoint_bytes: int         # one checkpoint over all ranks, as the layout writes it (0: no checkpoints)
    drop_caches: bool
    quiet: bool
    checkpoint_scale: float
    cell: Optional[dict] = None   # the run's place in a matrix (--cell), recorded in summary.json
    dataset: Optional[Dataset] = None  # checked and listed before the ranks start, or under srun/mpiexec
                                       # by rank 0 once they have (_shared_dataset)

    @property
    def trains(self) -> bool:
        return self.loader is not None

    @property
    def evaluates(self) -> bool:
        """The run reads the eval split (the plan gives eval steps only when it does)."""
        return self.eval_steps > 0


def run_workload(workload, ranks: Optional[int] = None, output=None, drop_caches: bool = False,
                 quiet: bool = False, checkpoint_scale: float = 1.0, cell: Optional[dict] = None) -> Optional[dict]:
    """Run a workload (training, with checkpoints when scheduled, or checkpoint-only); rank 0 returns
    the summary (None on other ranks and under MPI on them)."""
    wf = workload.workflow
    if not wf.train and not wf.checkpoint:
        raise ConfigError("workflow.train: False with workflow.checkpoint False leaves nothing to run "
                          "(datasets are written by `dldriver generate`)")
    size = world_size(ranks)
    if wf.train:
        workload = apply_profile(workload)  # the loader's framework profile wins over the DLIO keys
    where = locations(workload)
    steps, eval_steps = run_steps(workload, size) if wf.train else (0, 0)
    need_eval = wf.train and wf.evaluation and workload.dataset.num_files_eval > 0
    if not wf.train:
        writes, reads = checkpoint_counts(workload)
    else:
        writes = scheduled_checkpoints(workload.checkpoint, workload.train.epochs, steps) if wf.checkpoint else 0
        reads = 0
    spec = RunSpec(
        workload=workload, ranks=size, output=Path(output or workload.output.folder or "output"),
        dataset_uri=where.dataset, storage_options=where.options, dataset_needs=dataset_needs(workload),
        loader=workload.reader.data_loader if wf.train else None,
        steps=steps, eval_steps=eval_steps if need_eval else 0,
        checkpoint_uri=where.checkpoint if wf.checkpoint else None, checkpoint_writes=writes,
        checkpoint_reads=reads,
        checkpoint_bytes=layout_bytes(workload, size, checkpoint_scale) if wf.checkpoint else 0,
        drop_caches=drop_caches, quiet=quiet, checkpoint_scale=checkpoint_scale, cell=cell)
    spec = _checked(spec)
    if spec.trains and not _launched_ranks():
        # Under srun/mpiexec every rank runs this; there rank 0 alone checks the dataset, once launched.
        spec = replace(spec, dataset=open_dataset(workload, spec.dataset_uri, spec.storage_options, spec.evaluates))
    return launch(functools.partial(_rank_main, spec=spec), size)


def _checked(spec: RunSpec) -> RunSpec:
    """What the host and its folders must allow, checked before any rank starts; the spec with its run
    folder resolved."""
    check_results_room(spec.output)
    check_file_list(spec.dataset_needs)
    check_sample_memory(spec.dataset_needs)
    if spec.trains:
        check_loader(spec.loader)
        if spec.drop_caches and os.geteuid() != 0:
            raise DlDriverError("--drop-caches needs root to write /proc/sys/vm/drop_caches; "
                                "run as root or leave it out")
    spec = replace(spec, output=check_run_folder(spec.output))
    if spec.checkpoint_uri is not None:
        check_checkpoint_folder(spec.checkpoint_uri)
        check_local_room(spec.checkpoint_uri, spec.checkpoint_writes * spec.checkpoint_bytes,
                         spec.checkpoint_writes, "checkpoint.num_checkpoints_write" if not spec.trains else
                         "checkpoint.steps_between_checkpoints / epochs_between_checkpoints over train.epochs")
    return spec


def _launched_ranks() -> bool:
    world = launcher_world()
    return world is not None and world[1] > 1


def _shared_dataset(comm: Comm, spec: RunSpec) -> Dataset:
    """The dataset, checked and listed by rank 0 alone and sent to the other ranks: with every rank
    listing the same bucket at start, N ranks would put N times the load on the store for one answer.
    If the check fails, every rank raises rank 0's error and ends (ranks.rank0_result)."""
    return rank0_result(comm, functools.partial(open_dataset, spec.workload, spec.dataset_uri,
                                                spec.storage_options, spec.evaluates))


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
    train = spec.trains
    if train and spec.dataset is None:  # under srun/mpiexec
        spec = replace(spec, dataset=_shared_dataset(comm, spec))
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
        if spec.evaluates else None,
        drop_caches=_cache_dropper(spec) if spec.drop_caches else None,
        progress=comm.rank == 0 and not spec.quiet and sys.stderr.isatty())
    with SystemSampler() as system, _loaders(spec, comm) as (train_loader, eval_loader, checkpointer):
        records = run_epochs(comm, plan, train_loader, eval_loader, checkpointer)
    return {"rank": comm.rank, "host": host_info(), "records": records, "system": system.summary,
            "checkpoint_bytes": checkpointer.total_bytes if checkpointer is not None else 0,
            "framework": framework_versions(spec.loader)}


def _checkpoint_only_rank(comm: Comm, spec: RunSpec) -> dict:
    checkpointer = open_checkpointer(comm, spec.workload, spec.checkpoint_uri, spec.storage_options,
                                     spec.checkpoint_scale, writes=spec.checkpoint_writes > 0)
    if comm.rank == 0:
        log.info("Running checkpoint-only %s on %d rank(s) to %s", spec.workload.model.name, spec.ranks,
                 checkpointer.storage.uri)
    mine = checkpoint_only_rank(comm, checkpointer, spec.checkpoint_writes, spec.checkpoint_reads,
                                spec.workload.checkpoint.time_between_checkpoints, spec.drop_caches)
    return mine | {"host": host_info()}


@contextmanager
def _loaders(spec: RunSpec, comm: Comm):
    """The train and eval loaders (framework imported here, inside the rank) and the checkpointer."""
    train = _loader(spec, spec.dataset.train_files)
    evaluation = None
    checkpointer = None
    try:
        if spec.evaluates:
            evaluation = _loader(spec, spec.dataset.eval_files)
        if spec.checkpoint_uri is not None:
            checkpointer = open_checkpointer(comm, spec.workload, spec.checkpoint_uri, spec.storage_options,
                                             spec.checkpoint_scale)
        yield train, evaluation, checkpointer
    finally:
        for loader in (train, evaluation):
            if loader is not None:
                loader.close()


def _loader(spec: RunSpec, files: list):
    """spec.loader over one split's files, configured by the reader section."""
    w = spec.workload
    source = open_source(files, spec.dataset.open_storage, w.dataset.format, w.reader, w.train.seed)
    return make_loader(spec.loader, source, w.reader)


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


def framework_versions(loader: str) -> dict:
    """{package: version} of what a rank read with: Python, numpy and the loader's framework."""
    module = LOADER_MODULES.get(loader)
    versions = {"python": platform.python_version(), "numpy": package_version("numpy")}
    if module:
        versions[module] = package_version(module)
    return versions


