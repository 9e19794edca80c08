"""The tiny matrix through a real single-node Slurm cluster with `--profile slurm`, as typed.

The cluster comes from the project's own scripts/slurm-start.sh (Debian packages, root, daemons on
127.0.0.1) and is stopped after the session if this session started it. Each run's slurm.json
(written by scripts/run-cell.sh inside the job) proves it ran as a Slurm job; the two-rank cell ran
as one job with two srun tasks.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from conftest import unique_name
from dldriver.mlperf.search import count_result, next_counts, search_result
from test_mlperf_workflow import search_config
from test_workflow import REPO, read_csv, tiny_config


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


def snakemake_under_slurm(tmp_path, config, *args, limit=540):
    """`snakemake --profile slurm ARGS --configfile CONFIG` as typed, with the profile linked by
    scripts/install-profiles.sh into a config folder of this test's own (XDG_CONFIG_HOME): the shared
    ~/.config/snakemake/slurm may point at another checkout's profile. `timeout`: a Slurm status problem
    (a job that can never start stays PENDING, and Snakemake waits on it) must fail the test, not hang it;
    below pytest's own 600 s so that it is `timeout` that stops Snakemake."""
    env = os.environ | {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    subprocess.run(["bash", str(REPO / "scripts/install-profiles.sh")], check=True, capture_output=True, env=env)
    return subprocess.run(["timeout", "-k", "10", str(limit), str(REPO / ".venv/bin/snakemake"), "--profile", "slurm",
                           *args, "--configfile", str(config)], cwd=REPO, capture_output=True, text=True,
                          timeout=limit + 60, env=env)


def test_tiny_matrix_under_slurm(tmp_path, slurm_cluster, s3_env):
    config, out = tiny_config(tmp_path, unique_name("slurm"), backends=("file", "s3"), repetitions=1)
    cfg = yaml.safe_load(config.read_text())
    unet = cfg["workloads"]["unet3d"]
    unet["ranks"] = [1, 2]
    unet["overrides"] = [o for o in unet["overrides"] if not o.startswith("dataset.num_files_train")] + \
        ["dataset.num_files_train=8"]
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    # --resources bench=4 (the profile's documented knob): cells side by side, as Slurm places them (two
    # at a time on this 2-CPU node). One at a time (bench=1), each of the 7 jobs waited ~10 s for the
    # plugin's second status check (its first comes 2 s after a submission, the next 10 s later), and
    # the run took 85 s instead of 43 (one run each).
    r = snakemake_under_slurm(tmp_path, config, "--resources", "bench=4")
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


def test_accelerator_search_under_slurm(tmp_path, slurm_cluster):
    """The accelerator search as Slurm jobs, in one `snakemake --profile slurm`: sizing and generating, and every
    count's cell are jobs; the 3-rank cell is one job of 3 srun tasks on this 2-CPU node (the profile's
    --overcommit: without it that job stayed pending for ever). Each Slurm job costs about 30 s here (two
    Snakemake start-ups and the plugin's status-check schedule, docs/mlperf.md), so the search is kept to
    three jobs: tiny cells (12 files of 1 MiB), 1 run per count, and 0.25 s of computation per step, against
    which the reads hardly count, so both counts normally pass. AU still depends on the machine's load: the
    rounds are checked against the search's arithmetic on the AU the cells measured, whatever it was."""
    config, search = search_config(tmp_path, sweep=[1, 3], host_memory_gib=0.25, overrides=[
        "dataset.record_length_bytes=1048576", "dataset.record_length_bytes_resize=1048576",
        "reader.batch_size=1", "train.computation_time=0.25"])
    # 500 steps x 3 accelerators x batch 1 = 1500 files (memory: 5 x 0.25 GiB / 1 MiB = 1280); 0.008 of them.
    r = snakemake_under_slurm(tmp_path, config, str(search / "search.json"), limit=420)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    assert "Using profiles slurm" in r.stdout + r.stderr
    assert json.loads((search / "datasize.json").read_text())["num_files_generate"] == 12

    result = json.loads((search / "search.json").read_text())
    cells = {int(p.parent.name[1:]): p for p in search.glob("native/file/r*/rep1")}
    au = {n: json.loads((p / "summary.json").read_text())["metric"]["train_au_mean_percentage"]
          for n, p in cells.items()}
    results, replay = {}, []
    while todo := next_counts([1, 3], results):
        replay.append(todo)
        results |= {n: count_result(n, [au[n]], 0.90, 1) for n in todo}
    assert sorted(au) == sorted(results) and len(list(search.glob("round*.json"))) == len(replay)
    outcome = search_result(results)
    assert result["best_per_host"] == (outcome.best.count if outcome.best else 0)

    jobs = {n: json.loads((p / "slurm.json").read_text()) for n, p in cells.items()}
    ids = [j["job_id"] for j in jobs.values()]
    assert all(ids) and len(set(ids)) == len(ids), f"every count's cell is its own Slurm job: {jobs}"
    for n, p in cells.items():
        assert jobs[n]["ntasks"] == n
        prov = json.loads((p / "provenance.json").read_text())
        assert prov["ranks"] == n and (n == 1 or prov["launcher"] == "srun")
    known = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert set(ids) <= set(known)
