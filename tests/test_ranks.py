"""Ranks: local forked ranks and MPI ranks, coverage over uneven counts, failures that stop every rank."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dldriver.engine import ranks
from dldriver.errors import ConfigError, DlDriverError

from test_run_helpers import PYTHON, ROOT, make_dataset, workload_doc, write_config

TIMEOUT = 120  # a hang fails the test instead of the suite


def _run_cli(args, tmp_path, launcher=()) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([*launcher, PYTHON, "-m", "dldriver.cli", "run", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("nranks, files, loader, shuffle", [
    (1, 13, "pytorch", "off"),
    (2, 13, "native", "seed"),
    (3, 13, "pytorch", "random"),
    (2, 25, "pytorch", "off"),
    (3, 25, "native", "random"),
])
def test_coverage_over_ranks_with_uneven_counts(tmp_path, nranks, files, loader, shuffle):
    doc = workload_doc(tmp_path / "d", "npz", loader=loader, files=files, samples=1, batch=4,
                       reader={"read_threads": 2, "file_shuffle": shuffle, "sample_shuffle": shuffle},
                       train={"epochs": 2})
    make_dataset(tmp_path, doc)
    config = write_config(tmp_path / "w.yaml", doc)
    proc = _run_cli([str(config), "--ranks", str(nranks), "-o", "out", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = _summary(tmp_path / "out")
    ours = summary["dldriver"]
    assert summary["num_accelerators"] == nranks and ours["coverage_ok"]
    steps = files // (4 * nranks)
    for epoch in ours["epochs"]:
        cov = epoch["coverage"]
        assert cov["read"] == steps * 4 * nranks and cov["duplicates"] == 0
        assert cov["missing"] == files - steps * 4 * nranks
    assert sorted(p.name for p in (tmp_path / "out").glob("*_output.json")) == \
        [f"{r}_output.json" for r in range(nranks)]


def test_a_failing_rank_stops_every_rank(tmp_path):
    doc = workload_doc(tmp_path / "d", "npz", files=8, samples=1, batch=1)
    make_dataset(tmp_path, doc)
    path = tmp_path / "d" / "train" / "img_7_of_8.npz"  # read by rank 1 only
    raw = bytearray(path.read_bytes())
    raw[40:240] = b"\x00" * 200
    path.write_bytes(bytes(raw))
    config = write_config(tmp_path / "w.yaml", doc)
    proc = _run_cli([str(config), "--ranks", "2", "-o", "out", "-q"], tmp_path)
    assert proc.returncode == 1
    assert "img_7_of_8.npz" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_mpiexec_two_ranks(tmp_path):
    doc = workload_doc(tmp_path / "d", "npz", files=10, samples=1, batch=2, train={"epochs": 2})
    make_dataset(tmp_path, doc)
    config = write_config(tmp_path / "w.yaml", doc)
    mpiexec = str(Path(PYTHON).parent / "mpiexec")
    proc = _run_cli([str(config), "-o", "out", "-q"], tmp_path, launcher=(mpiexec, "-n", "2"))
    assert proc.returncode == 0, proc.stderr
    summary = _summary(tmp_path / "out")
    assert summary["num_accelerators"] == 2
    assert summary["dldriver"]["rank_sync"] == "mpi" and summary["dldriver"]["coverage_ok"]
    assert (tmp_path / "out" / "1_output.json").exists()


# Loaded by every rank's interpreter (PYTHONPATH): logs each listing of the file backend with the rank.
LISTING_LOGGER = """
import os
from dldriver.storage import file as _file

_list = _file.FileStorage.list


def _logged(self, prefix=""):
    with open(os.environ["LISTINGS_LOG"], "a") as log:
        log.write(f"{os.environ.get('PMI_RANK', '-')} {prefix}\\n")
    return _list(self, prefix)


_file.FileStorage.list = _logged
"""


def test_under_mpiexec_rank_0_alone_checks_and_lists_the_dataset(tmp_path):
    """N ranks listing one bucket at start would be N times the load for one answer."""
    doc = workload_doc(tmp_path / "d", "tfrecord", files=6, samples=2, batch=2)
    make_dataset(tmp_path, doc)
    config = write_config(tmp_path / "w.yaml", doc)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(LISTING_LOGGER)
    log = tmp_path / "listings.log"
    env = dict(os.environ, PYTHONPATH=f"{hook}:{ROOT}", LISTINGS_LOG=str(log))
    mpiexec = str(Path(PYTHON).parent / "mpiexec")
    proc = subprocess.run([mpiexec, "-n", "2", PYTHON, "-m", "dldriver.cli", "run", str(config), "-o", "out",
                           "-q"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert _summary(tmp_path / "out")["dldriver"]["coverage_ok"]
    assert sorted(log.read_text().splitlines()) == ["0 index/", "0 train/"]


def test_under_mpiexec_a_missing_dataset_is_one_error_from_rank_0(tmp_path):
    config = write_config(tmp_path / "w.yaml", workload_doc(tmp_path / "nothing", files=4))
    mpiexec = str(Path(PYTHON).parent / "mpiexec")
    proc = _run_cli([str(config), "-o", "out", "-q"], tmp_path, launcher=(mpiexec, "-n", "2"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: rank 0: ") and "dldriver generate" in errors[0], \
        proc.stderr


def _collectives(comm):
    first = comm.gather(comm.rank * 10)
    value = comm.bcast("from-0" if comm.rank == 0 else None)
    comm.barrier()
    second = comm.gather((comm.rank, value))
    return first, second


@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_local_collectives_keep_their_order():
    first, second = ranks.launch(_collectives, 3)
    assert first == [0, 10, 20]
    assert second == [(0, "from-0"), (1, "from-0"), (2, "from-0")]


def _fail_on_rank_2(comm):
    comm.barrier()
    if comm.rank == 2:
        raise DlDriverError("rank 2 broke")
    comm.barrier()


@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_local_failure_reaches_rank_0():
    with pytest.raises(DlDriverError, match="rank 2 broke"):
        ranks.launch(_fail_on_rank_2, 3)


def _die_on_rank_1(comm):
    if comm.rank == 1:
        os._exit(9)
    comm.barrier()


@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_a_rank_that_dies_does_not_hang_rank_0():
    with pytest.raises(DlDriverError, match="rank 1 died with exit code 9"):
        ranks.launch(_die_on_rank_1, 2)


@pytest.mark.parametrize("env, world", [
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4"}, (1, 4)),
    ({"PMI_RANK": "0", "PMI_SIZE": "2"}, (0, 2)),
    ({"SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "8"}, (3, 8)),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}, None),  # an sbatch script, not an srun step
    ({}, None),
])
def test_launcher_world_from_the_environment(monkeypatch, env, world):
    for var in ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK",
                "PMIX_SIZE", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert ranks.launcher_world() == world


def test_ranks_option_must_agree_with_the_launcher(monkeypatch):
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(ConfigError, match="contradicts"):
        ranks.world_size(3)
    assert ranks.world_size(None) == 2
