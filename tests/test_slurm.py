"""The tiny matrix through a real single-node Slurm cluster with `--profile slurm`, as typed.

The cluster comes from the project's own scripts/slurm-start.sh (Debian packages, root, daemons on
127.0.0.1) and is stopped after the session if this session started it. Each run's slurm.json
(written by scripts/run-cell.sh inside the job) proves it ran as a Slurm job; the two-rank cell ran
as one job with two srun tasks.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from conftest import unique_name
from test_workflow import REPO, read_csv, snakemake, tiny_config


def _cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and any(s in r.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="session")
def slurm_cluster():
    if _cluster_up():
        yield
        return
    if os.geteuid() != 0:
        pytest.fail("the Slurm tests start a local cluster with scripts/slurm-start.sh, which needs root",
                    pytrace=False)
    r = subprocess.run(["bash", str(REPO / "scripts/slurm-start.sh")], capture_output=True, text=True,
                       timeout=900)
    if r.returncode != 0 or not _cluster_up():
        pytest.fail(f"scripts/slurm-start.sh failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}", pytrace=False)
    try:
        yield
    finally:
        subprocess.run(["bash", str(REPO / "scripts/slurm-stop.sh")], capture_output=True, timeout=120)


def test_tiny_matrix_under_slurm(tmp_path, slurm_cluster, s3_env):
    subprocess.run(["bash", str(REPO / "scripts/install-profiles.sh")], check=True, capture_output=True)
    config, out = tiny_config(tmp_path, unique_name("slurm"), backends=("file", "s3"), repetitions=1)
    cfg = yaml.safe_load(config.read_text())
    unet = cfg["workloads"]["unet3d"]
    unet["ranks"] = [1, 2]
    unet["overrides"] = [o for o in unet["overrides"] if not o.startswith("dataset.num_files_train")] + \
        ["dataset.num_files_train=8"]
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    # `timeout`: a Slurm status problem must fail the test, not hang it (see local-services.md).
    r = subprocess.run(["timeout", "-k", "10", "600", str(REPO / ".venv/bin/snakemake"), "--profile", "slurm",
                        "--configfile", str(config)], cwd=REPO, capture_output=True, text=True, timeout=700)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    assert "Using profiles slurm" in r.stdout + r.stderr

    runs = read_csv(out / "report/runs.csv")
    got = sorted((x["workload"], x["backend"], x["ranks"]) for x in runs)
    assert got == sorted([("unet3d", b, n) for b in ("file", "s3") for n in ("1", "2")]
                         + [("llama7b", "file", "1")])
    ids = [x["slurm_job_id"] for x in runs]
    assert all(ids) and len(set(ids)) == len(ids), f"every run is its own Slurm job: {ids}"
    for x in runs:
        assert x["slurm_ntasks"] == x["ranks"]
        assert x["num_accelerators"] == x["ranks"]
        if x["ranks"] == "2":
            assert x["rank_sync"] == "mpi"             # two srun tasks joined by MPI, not a local fork
    # The jobs were Slurm's: each id is known to the controller (MinJobAge keeps them listed).
    known = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert set(ids) <= set(known)
