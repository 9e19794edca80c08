"""Measuring a real training loop: the time spent waiting for data apart from the user's compute, written
as the same run folder as `dldriver run` (summary.json with DLIO's keys and the `dldriver` section,
{rank}_output.json, {rank}_per_epoch_stats.json), which `dldriver aggregate` reads beside emulated runs.

    with Measurement(loader, "results/real/rep1") as run:
        for epoch in range(1, 3):
            for batch in run.epoch(epoch):     # set_epoch(epoch); the wait for each batch is "load"
                loss = step(model, batch)      # everything until the next batch is asked is "compute"

Each step's load is the wait inside the loader's next(); its compute is the time from the batch's
arrival to the next request, so AU = compute / (wall time of the counted steps), as DLIO defines it for
an emulated step. With several ranks (torch.distributed initialised), every rank measures its own steps
and rank 0 gathers them and writes the folder.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from dldriver.dataset.sampler import Sampler, coverage
from dldriver.engine.loop import EpochRecord
from dldriver.errors import DlDriverError
from dldriver.metrics.summary import Phase, staged_run_folder

__all__ = ["Measurement"]


@dataclass
class _Spec:
    """What engine.results.build_report reads of a run (engine/run.RunSpec's fields)."""

    workload: object
    dataset: object
    ranks: int
    steps: int
    eval_steps: int
    drop_caches: bool = False
    cell: Optional[dict] = None  # a measured loop is no matrix cell


@dataclass
class _DatasetInfo:
    uri: str
    manifest: Optional[dict]


def _dataset_of(loader):
    from dldriver.frameworks.common import FrameworkDataset

    dataset = loader if isinstance(loader, FrameworkDataset) else getattr(loader, "dataset", None)
    if not isinstance(dataset, FrameworkDataset):
        raise DlDriverError("Measurement: give a dl-driver loader or dataset (from dldriver.frameworks), "
                            f"not a {type(loader).__name__}")
    return dataset


class Measurement:
    """A context manager around a training loop over a dl-driver loader (torch DataLoader, tf.data or
    JAX iterator from dldriver.frameworks). `epoch(e)` iterates the loader for epoch e, timing each step;
    `step()` marks a step of a loop that fetches its batches itself."""

    def __init__(self, loader, output, quiet: bool = True):
        self.loader = loader
        self.dataset = _dataset_of(loader)
        self.output = Path(output)
        self.quiet = quiet
        self.records: list[EpochRecord] = []
        self._epochs: list[int] = []
        self._system = None
        self._start = 0.0
        self.summary: Optional[dict] = None

    def __enter__(self) -> "Measurement":
        from dldriver.metrics.system import SystemSampler

        self._system = SystemSampler().start()
        self._start = time.time()
        self.dataset.take_counts()  # what was read before the loop is not the loop's
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        system = self._system.stop()
        if exc_type is None:
            self.summary = self._write(system)

    def epoch(self, epoch: int, loader: Optional[Iterable] = None):
        """Iterate `loader` (default: the measured one) for one epoch, timing load and compute."""
        source = self.loader if loader is None else loader
        if hasattr(source, "set_epoch"):
            source.set_epoch(epoch)
        record = EpochRecord(start=time.time())
        phase = Phase(start=record.start)
        record.phases["block1"] = phase
        iterator = iter(source)
        t0 = time.perf_counter()
        try:
            while True:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                t_loaded = time.perf_counter()
                yield batch
                t_done = time.perf_counter()
                phase.load.append(t_loaded - t0)
                phase.compute.append(t_done - t_loaded)
                phase.proc.append(t_done - t0)
                t0 = time.perf_counter()
        finally:
            phase.end = record.end = time.time()
            record.bytes_read, record.samples_read = self.dataset.take_counts()
            self.records.append(record)
            self._epochs.append(epoch)

    def _coverage(self, epoch: int, steps: int, samples_read: list[int]) -> dict:
        """The shared sampler's coverage of this epoch over all ranks, and whether each rank's loop read
        as many samples as its rank was given (samples_read: by rank)."""
        sampler: Sampler = self.dataset.reading.sampler
        per_rank = [dataclasses.replace(sampler, rank=r).for_epoch(epoch) for r in range(sampler.ranks)]
        cov = coverage(per_rank, sampler.num_files, sampler.samples_per_file, sampler.batch_size,
                       steps=steps if sampler.drop_last else None).to_dict()
        expected = [len(keys[:steps * sampler.batch_size]) for keys in per_rank]
        cov["samples_read_by_rank"] = samples_read
        cov["ok"] = cov["ok"] and samples_read == expected
        return cov

    def _write(self, system: dict) -> Optional[dict]:
        from dldriver.engine.results import build_report, write_report
        from dldriver.engine.run import framework_versions
        from dldriver.metrics.system import host_info

        if not self.records:
            raise DlDriverError("Measurement: no epoch was measured (iterate run.epoch(e) inside the block)")
        reading = self.dataset.reading
        mine = {"rank": reading.rank, "host": host_info(), "records": self.records, "system": system,
                "checkpoint_bytes": 0, "framework": framework_versions(reading.profile.framework),
                "epochs": self._epochs}
        gathered = _gather(mine, reading.world_size)
        if gathered is None:
            return None
        if any(r["epochs"] != self._epochs for r in gathered):
            raise DlDriverError("Measurement: the ranks measured different epochs: "
                                + "; ".join(f"rank {r['rank']}: {r['epochs']}" for r in gathered))
        steps = max(len(rec.phases["block1"].proc) for r in gathered for rec in r["records"])
        for i, epoch in enumerate(self._epochs):
            # build_report reports rank 0's record's coverage: it covers every rank
            gathered[0]["records"][i].coverage = self._coverage(
                epoch, steps, [r["records"][i].samples_read for r in gathered])
        workload = reading.workload
        workload = dataclasses.replace(
            workload, train=dataclasses.replace(workload.train, epochs=len(self.records)),
            reader=dataclasses.replace(workload.reader, batch_size=reading.sampler.batch_size,
                                       data_loader=reading.profile.framework))
        manifest = getattr(self.dataset, "manifest", None)
        spec = _Spec(workload, _DatasetInfo(reading.uri, manifest), reading.world_size, steps, 0)
        report = build_report(spec, gathered, self._start, time.time(), "measured")
        report["summary"]["dldriver"]["measured"] = True
        with staged_run_folder(self.output) as folder:
            write_report(folder, report)
        return report["summary"]


def _gather(mine: dict, world: int) -> Optional[list]:
    """Every rank's results at rank 0 (None elsewhere), through torch.distributed for several ranks."""
    if world == 1:
        return [mine]
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_initialized():
        raise DlDriverError(f"Measurement over {world} ranks needs torch.distributed initialised to gather "
                            "the ranks' figures at rank 0")
    out = [None] * world if dist.get_rank() == 0 else None
    dist.gather_object(mine, out, dst=0)
    return out
