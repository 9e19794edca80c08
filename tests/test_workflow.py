"""The Snakemake workflow: dry runs with both profiles, lint, the config schema, and a tiny matrix end
to end (file, s3 and azure against the session's real servers) with a baseline verdict and a resume
after a killed run."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import unique_name
from snakemake_forks import run_forked

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def snakemake(*args, cwd=REPO, timeout=600, env=None):
    """Run the workflow's command line; stdout and stderr together."""
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


def job_counts(output: str) -> dict:
    """The 'Job stats' table of a Snakemake run or dry run: rule -> jobs."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:")) + 3
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


# ---- dry runs, lint, schema --------------------------------------------------------------------
# These Snakemake calls only read the repository: none depends on another's result (and dry runs never
# take the working directory's lock). Snakemake's start-up costs more than any of them, so the module
# makes the selected ones forks of one started Snakemake (snakemake_forks), side by side, and each test
# asserts on its own call's result.

BROKEN = {
    # Each problem is one line under "config:", naming its key path (rules/config_check.smk).
    "repetitions": (lambda c: c.update(repetitions=0), "\n  repetitions: 0 is less than the minimum of 1\n"),
    "repetition": (lambda c: c.update(repetition=2),
                   "\n  (top level): Additional properties are not allowed ('repetition' was unexpected)\n"),
    "overides": (lambda c: c["workloads"]["unet3d"].update(overides=[]),
                 "\n  workloads.unet3d: Additional properties are not allowed ('overides' was unexpected)\n"),
    "uri": (lambda c: c["backends"]["s3"].update(uri="ftp://x"), "\n  backends.s3.uri: 'ftp://x' does not match"),
    "env": (lambda c: c["backends"]["s3"].update(env=["aws-secret"]),
            "\n  backends.s3.env[0]: 'aws-secret' does not match"),
    "ranks": (lambda c: c.update(ranks=[0]), "\n  ranks[0]: 0 is less than the minimum of 1\n"),
    "hosts": (lambda c: c["searches"]["unet3d"].update(hosts=2.5),
              "\n  searches.unet3d.hosts: 2.5 is not of type 'integer'\n"),
    "loader": (lambda c: c["workloads"]["resnet50"].update(loaders=["pytroch"]),
               "workloads.resnet50.loaders: unknown loader 'pytroch'"),
    "dlio_defaults": (lambda c: c["workloads"]["unet3d"].update(dlio_defaults="2.0"),
                      "workloads.unet3d.dlio_defaults: unknown DLIO defaults '2.0' (known: head, 2.0.0, 1.0)"),
    # Every schema problem at once, in key order (Snakemake's validate() dumps the schema for the first).
    "schema_all": (lambda c: (c["workloads"]["llama7b"].update(checkpoint_scale=0),
                              c["searches"]["unet3d"].update(sweep=[0], edition="v9"), c.update(tolerance="abc")),
                   "config:\n  searches.unet3d.edition: 'v9' is not one of ['v2.0', 'v3.0']\n"
                   "  searches.unet3d.sweep[0]: 0 is less than the minimum of 1\n"
                   "  tolerance: 'abc' does not match '^[0-9]+(\\\\.[0-9]+)?%?$'\n"
                   "  workloads.llama7b.checkpoint_scale: 0 is less than or equal to the minimum of 0\n"),
    # Were a MissingInputException dump per rule, a NotADirectoryError and a KeyError traceback ({matrx}).
    "missing_files": (lambda c: (c["workloads"]["unet3d"].update(file="configs/workloads/nothere.yaml"),
                                 c.update(results="README.md", baseline="configs/baselines/nothere.csv"),
                                 c["backends"]["s3"].update(uri="s3://bkt-x/{matrx}/{workload}")),
                      "config:\n  workloads.unet3d.file: configs/workloads/nothere.yaml is not a file\n"
                      "  results: README.md is a file, not a folder\n"
                      "  baseline: configs/baselines/nothere.csv is not a file\n"
                      "  backends.s3.uri: unknown placeholder {matrx} (known: {matrix}, {results}, {workload})\n"),
}


def broken_config(folder: Path, edit) -> Path:
    cfg = yaml.safe_load((REPO / "configs/config.yaml").read_text())
    edit(cfg)
    path = folder / "broken.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def readonly_calls() -> dict:
    """{test node name: a function of a fresh folder giving that test's Snakemake arguments}."""
    calls = {
        # Results elsewhere so that earlier runs in the work tree do not shrink the plan.
        "test_dry_run_default_profile_plans_the_whole_matrix": lambda f: ["-n", "--config", f"results={f}"],
        "test_lint_is_clean": lambda f: ["--lint"],
    }
    for profile in ("profiles/slurm", "slurm"):
        calls[f"test_dry_run_slurm_profile[{profile}]"] = \
            lambda f, profile=profile: ["-n", "--profile", profile, "--config", f"results={f}"]
    for case, (edit, _) in BROKEN.items():
        calls[f"test_broken_config_is_rejected_naming_the_key[{case}]"] = \
            lambda f, edit=edit: ["-n", "--configfile", str(broken_config(f, edit))]
    return calls


@pytest.fixture(scope="module")
def readonly_runs(request, tmp_path_factory):
    """{test node name: its Snakemake call's CompletedProcess}, for the tests selected in this session."""
    selected = {item.name for item in request.session.items}
    calls = {name: make for name, make in readonly_calls().items() if name in selected}
    # `--profile slurm` as typed: scripts/install-profiles.sh links it where Snakemake looks.
    subprocess.run(["bash", str(REPO / "scripts/install-profiles.sh")], check=True, capture_output=True)
    folder = tmp_path_factory.mktemp("snakemake")
    args = {name: make(tmp_path_factory.mktemp("results")) for name, make in calls.items()}
    return run_forked(args, folder, cwd=REPO)


def test_dry_run_default_profile_plans_the_whole_matrix(request, readonly_runs):
    r = readonly_runs[request.node.name]
    assert r.returncode == 0, r.stdout + r.stderr
    assert "profiles/default" in r.stdout + r.stderr            # picked up as the workflow profile
    cfg = yaml.safe_load((REPO / "configs/config.yaml").read_text())
    train = {n: w for n, w in cfg["workloads"].items() if w.get("mode", "train") == "train"}
    reps, backends = cfg["repetitions"], len(cfg["backends"])
    runs = sum(len(w.get("loaders", cfg["loaders"])) for w in train.values()) * backends * reps
    counts = job_counts(r.stdout)
    assert counts["run"] == runs
    assert counts["generate"] == len(train) * backends
    assert counts["validate"] == len(cfg["workloads"])
    assert counts["checkpoint_run"] == (len(cfg["workloads"]) - len(train)) * backends * reps
    assert counts["aggregate"] == 1


@pytest.mark.parametrize("profile", ["profiles/slurm", "slurm"])
def test_dry_run_slurm_profile(request, readonly_runs, profile):
    """`--profile slurm` as typed (scripts/install-profiles.sh links it where Snakemake looks) and by
    path. A dry run submits nothing, so it needs no Slurm commands."""
    r = readonly_runs[request.node.name]
    assert r.returncode == 0, r.stdout + r.stderr
    assert job_counts(r.stdout)["run"] > 0


def test_lint_is_clean(request, readonly_runs):
    r = readonly_runs[request.node.name]
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition!" in r.stdout + r.stderr


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_config_is_rejected_naming_the_key(request, readonly_runs, case):
    r = readonly_runs[request.node.name]
    assert r.returncode != 0
    assert BROKEN[case][1] in r.stdout + r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


# ---- a tiny matrix end to end -------------------------------------------------------------------

def tiny_config(tmp_path, bucket, backends=("file", "s3", "azure"), repetitions=2, ranks=(1,), **extra):
    """One small npz workload read by the native loader, and a checkpoint workload on `file`."""
    cfg = {
        "matrix": "tiny",
        "results": str(tmp_path / "results"),
        "workloads": {
            "unet3d": {"file": "configs/workloads/unet3d_a100.yaml", "loaders": ["native"],
                       "overrides": ["dataset.num_files_train=4", "dataset.record_length_bytes=65536",
                                     "dataset.record_length_bytes_stdev=0",
                                     "dataset.record_length_bytes_resize=65536", "reader.batch_size=2",
                                     "reader.read_threads=1", "train.epochs=1",
                                     "train.computation_time=0.02", "workflow.checkpoint=False"]},
            "llama7b": {"file": "configs/workloads/llama_7b.yaml", "mode": "checkpoint",
                        "checkpoint_scale": 0.00002, "backends": ["file"],
                        "overrides": ["checkpoint.num_checkpoints_write=1", "checkpoint.num_checkpoints_read=1",
                                      "checkpoint.time_between_checkpoints=0"]},
        },
        "loaders": {"native": ["reader.data_loader=native"]},
        "backends": {
            "file": {"uri": "file://{results}/{matrix}/data/{workload}"},
            "s3": {"uri": f"s3://{bucket}/{{matrix}}/{{workload}}",
                   "env": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"]},
            "azure": {"uri": f"az://{bucket}/{{matrix}}/{{workload}}", "env": ["AZURE_STORAGE_CONNECTION_STRING"]},
        },
        "ranks": list(ranks),
        "repetitions": repetitions,
        # The session's servers (conftest) are used through the environment: nothing to start here.
        "services": [],
        "baseline": None,
        "tolerance": "5%",
    } | extra
    cfg["backends"] = {k: v for k, v in cfg["backends"].items() if k in backends}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, tmp_path / "results" / "tiny"


V1_UNET3D = "tests/data/upstream/mlperf-v1.0/unet3d_a100.yaml"


def test_workload_dlio_defaults_reach_every_dldriver_call(tmp_path):
    # MLPerf Storage v1.0's unet3d, which ran on DLIO 2.0.0, with that generation's defaults.
    path, out = tiny_config(tmp_path, "unused", backends=("file",), repetitions=1)
    cfg = yaml.safe_load(path.read_text())
    cfg["workloads"]["unet3d_v1"] = {
        "file": V1_UNET3D, "dlio_defaults": "2.0.0", "loaders": ["native"],
        "overrides": ["dataset.num_files_train=2", "dataset.record_length=4096", "dataset.record_length_stdev=0",
                      "dataset.record_length_resize=4096", "reader.batch_size=1", "reader.read_threads=1",
                      "train.epochs=1", "train.computation_time=0"]}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = snakemake("-n", "-p", "--configfile", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    shells = [line for line in r.stdout.splitlines() if ".yaml" in line and ("dldriver" in line or "run-cell" in line)]
    mine = [line for line in shells if V1_UNET3D in line]
    assert len(mine) == 3  # validate, generate (+ verify + manifest), run
    assert all(line.count(V1_UNET3D) == line.count("--dlio-defaults 2.0.0") for line in mine)
    assert not any("--dlio-defaults" in line for line in shells if V1_UNET3D not in line)
    # The validate job, run for real: its plan is DLIO 2.0.0's checkpoint (model_size + the default layer file).
    plan = out / "unet3d_v1" / "plan.json"
    r = snakemake(str(plan), "--configfile", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(plan.read_text())["plan"]["checkpoint_bytes"] == 499153191 + 17371 + 24740228


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summaries(out: Path) -> dict:
    """The finished cells' summaries: a run writes into `repN.partial-PID/` and renames it to `repN/` at the
    end, so a summary in a partial folder (a kill can leave one) is not a finished cell."""
    return {p: p.stat().st_mtime_ns for p in out.rglob("summary.json") if re.fullmatch(r"rep[0-9]+", p.parent.name)}


def test_tiny_matrix_end_to_end_with_baseline_verdict(tmp_path, s3_env, azure_env):
    config, out = tiny_config(tmp_path, unique_name("wf"))
    r = snakemake("--configfile", str(config), timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    report = out / "report"
    assert f"{report}/cells.md" in r.stdout and f"{report}/report.html" in r.stdout

    runs = read_csv(report / "runs.csv")
    got = sorted((x["workload"], x["loader"], x["backend"], x["rep"]) for x in runs)
    want = sorted([("unet3d", "native", b, str(k)) for b in ("file", "s3", "azure") for k in (1, 2)]
                  + [("llama7b", "checkpoint", "file", str(k)) for k in (1, 2)])
    assert got == want
    for x in runs:
        if x["workload"] == "unet3d":
            assert float(x["samples_per_second"]) > 0 and float(x["true_mb_per_second"]) > 0
            assert x["config_hash"] and x["versions"]
        else:
            assert float(x["save_gb_per_second"]) > 0 and float(x["load_gb_per_second"]) > 0
    cells = read_csv(report / "cells.csv")
    assert len(cells) == 4 and all(c["runs"] == "2" for c in cells)
    for name in ("throughput", "au", "latency", "checkpoint"):
        assert (report / f"plots/{name}.png").is_file()

    # A baseline in which unet3d/native/s3 was 50 % faster: that cell has regressed, no other has.
    baseline = tmp_path / "baseline.csv"
    rows = cells
    for c in rows:
        if (c["workload"], c["backend"]) == ("unet3d", "s3"):
            c["samples_per_second_mean"] = str(float(c["samples_per_second_mean"]) * 1.5)
    with open(baseline, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = summaries(out)
    # Same matrix, same bucket: only the verdict step is new.
    config2 = tmp_path / "verdict.yaml"
    cfg = yaml.safe_load(config.read_text()) | {"baseline": str(baseline), "tolerance": "25%"}
    config2.write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = snakemake("--configfile", str(config2), timeout=600)
    assert r.returncode != 0, "a regressed cell must fail the workflow"
    assert summaries(out) == before, "the verdict must not rerun any cell"
    verdicts = {(v["workload"], v["backend"]): v["status"] for v in read_csv(report / "verdicts.csv")}
    assert verdicts == {("unet3d", "file"): "pass", ("unet3d", "s3"): "fail", ("unet3d", "azure"): "pass",
                        ("llama7b", "file"): "pass"}
    assert "REGRESSION unet3d/native/s3/r1" in (out / "logs/verdict.log").read_text()
    assert (report / "report.html").is_file()      # the report survives the failed verdict


def test_killed_run_resumes_only_missing_cells(tmp_path):
    config, out = tiny_config(tmp_path, "unused", backends=("file",), repetitions=2)
    proc = subprocess.Popen([SNAKEMAKE, "--configfile", str(config)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not summaries(out):                # a finished cell: rep*.partial-PID/ holds one too early
            assert proc.poll() is None and time.monotonic() < deadline, "the workflow ended before any run"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)      # the whole workflow at once, as a crash or scancel would
        proc.wait()

    done = summaries(out)
    cells = 4                                    # 2 repetitions of one training and one checkpoint cell
    assert 1 <= len(done) < cells, "the kill must fall between the first and the last run"
    assert snakemake("--unlock", "--configfile", str(config)).returncode == 0
    plan = snakemake("-n", "--configfile", str(config))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = {str(out.parent.parent / line.split("output:", 1)[1].strip()) for line in plan.stdout.splitlines()
               if line.strip().startswith("output:") and line.strip().endswith("summary.json")}
    missing = {str(p) for p in out.rglob("rep*") if re.fullmatch(r"rep[0-9]+", p.name)
               and not (p / "summary.json").exists()}
    # Only the missing cells, plus at most the one the kill caught between its summary and its end
    # (Snakemake marked it incomplete, so it is not trusted).
    counts = job_counts(plan.stdout)
    assert counts.get("run", 0) + counts.get("checkpoint_run", 0) == cells - len(done) + len(planned & {str(p) for p in done})
    assert len(planned & {str(p) for p in done}) <= 1
    assert {str(Path(p).parent) for p in planned} >= missing

    r = snakemake("--configfile", str(config), timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    after = summaries(out)
    assert len(after) == cells
    assert all(after[p] == t for p, t in done.items() if str(p) not in planned), "a finished cell was rerun"
    runs = read_csv(out / "report/runs.csv")
    assert len(runs) == cells
    assert not any(".partial-" in x["folder"] or ".old-" in x["folder"] for x in runs)

    # A dl-driver that writes other bytes for the same config (GENERATOR_VERSION + 1, set by a
    # sitecustomize before the Snakefile reads it) regenerates the dataset, which reruns its cells.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text("import dldriver.dataset.manifest as m\nm.GENERATOR_VERSION += 1\n")
    env = dict(os.environ, PYTHONPATH=f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    upgraded = snakemake("-n", "--configfile", str(config), env=env)
    assert "Params have changed since last execution" in upgraded.stdout, upgraded.stdout + upgraded.stderr
    assert job_counts(upgraded.stdout).get("generate") == 1
