"""dl-driver against DLIO 2.0.0 on the same datasets and configs, in one run, figures side by side.

Three cases (the workload YAMLs are bench/dlio/workload/*.yaml, in DLIO 2.0.0's key names, which
dl-driver reads as they are; sizes below are passed as overrides to both tools):
  (a) io      I/O-bound npz, computation_time 0, batch 4, read_threads 2, pytorch loader on both sides:
              samples/s (target: dl-driver >= 1.5x DLIO).
  (b) au      computation_time 0.1 s per step on a page-cached npz dataset, pytorch loader: AU with 1 and
              2 ranks (target >= 99 %), dl-driver `--ranks N` next to DLIO under `mpiexec -n N`.
  (c) tfrecord  a resnet50-like shape (many ~110 KB samples per file), tensorflow loader on both sides:
              samples/s and ratio.

One run (several minutes on 2 cores; sizes are modest on purpose):
    .venv/bin/python bench/bench_dlio.py [--work DIR] [--reps 3] [--au-reps 2] [--cases io,au,tfrecord]
Figures go to stdout and to bench/out/dlio_<timestamp>.json.

DLIO is installed for this benchmark only, never as a project dependency: bench/dlio/setup_env.sh makes
bench/.dlio-venv (reused when present) from the project's .venv (whose torch/tensorflow/h5py it sees
through a .pth file) with `dlio-benchmark==2.0.0 --no-deps`, hydra-core, omegaconf, pydftracer 1.0.2,
its own mpich + mpi4py, and bench/dlio/tfrecord2idx (a stand-in for DALI's, which DLIO's TFRecord
generator calls). DLIO runs as `mpiexec -n N dlio_benchmark --config-dir bench/dlio workload=NAME
++workload.dataset.data_folder=DIR ... hydra.run.dir=OUT`; both tools' summary.json are parsed.

Datasets, both directions (a compatibility check as well as a benchmark):
  - io and tfrecord: written by `dldriver generate` and read by both tools (DLIO reads our layout);
  - au and tfrecord-dlio: written by DLIO (generate_data=True, 2 ranks) and read by both tools (we read
    DLIO's datasets without a manifest). The tfrecord case is measured on both datasets.
Known difference: DLIO 2.0.0 lists `{data_folder}/valid` even when num_files_eval is 0 and stops with
FileNotFoundError when it is missing; `dldriver generate` writes no valid/ folder for zero eval files,
so the bench creates an empty one (and records that it had to).

How the figures compare:
  - samples/s is each tool's own `train_throughput_mean_samples_per_second` (mean over epochs of
    samples / epoch time; the first epoch included, DataLoader worker start-up and all), the figure a
    DLIO user reads. "steady" is the mean over the epochs after the first. Both tools run REPS times,
    alternating (the machine is shared and noisy); the best run of each counts.
  - AU: DLIO 2.0.0 computes AU = sum(compute[1:]) / (epoch wall - proc[0]) with compute the configured
    sleep value; dl-driver follows DLIO HEAD (measured sleep, exclude_start_steps). Close enough to
    compare; see docs/dlio-facts.md §5.
  - What each tool does with a sample differs: DLIO throws the bytes it read away and hands the model a
    fixed array of the same size (npz) or a fixed tensor without parsing the record (tfrecord);
    dl-driver decodes and batches what it read.

What of DLIO runs here: its pytorch and tensorflow loaders, npz and tfrecord generation and reading, 1 and
2 ranks under its own mpich. Not here: its declared dependencies (worked around as above) and its dali /
native_dali loaders (NVIDIA DALI is not installable here; not needed by these cases).

Seen here (2 shared cores, 2026-11, best of 3 runs; AU best of 2):
  (a) 256 x 4 MiB npz, batch 4, 2 workers: dl-driver 2410 samples/s (~10 GB/s, from the page cache into
      the pytorch loader's shared ring), DLIO 358 (np.load per sample, a fresh 4 MiB array, fresh shared
      memory per batch): 6.7x. Whole process: dl-driver 2 s, DLIO 9.5 s (TensorFlow imported per rank).
  (b) AU at 0.1 s/step, 256 x 256 KiB, batch 4: dl-driver 99.4 % (1 rank), 98.9 % (2 ranks); DLIO 98.0 %,
      96.7 %. With 2 ranks x 2 workers on 2 cores, ~1 ms of batch hand-over per step costs ~1 % of AU.
  (c) 32 files x 128 x 114660 B tfrecord, batch 16: dl-driver ~9500 samples/s, DLIO ~10700: 0.88-0.90,
      on either tool's files. DLIO never parses a record (its map returns a fixed tensor); we parse and
      batch every one. Our last epoch shows one ~0.17 s stall: a full (generation 2) garbage collection
      over TensorFlow's objects in the middle of the epoch.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DLIO_DIR = ROOT / "bench" / "dlio"
DLIO_VENV = ROOT / "bench" / ".dlio-venv"
DLDRIVER = ROOT / ".venv" / "bin" / "dldriver"
RUN_TIMEOUT = 900

# name: (workload yaml, overrides for both tools, target)
CASES = {
    "io": ("dld_npz_io", {"dataset.num_files_train": 256, "dataset.record_length": 4 << 20,
                          "reader.batch_size": 4, "reader.read_threads": 2, "reader.prefetch_size": 4,
                          "train.epochs": 5, "train.computation_time": 0}),
    "au": ("dld_npz_au", {"dataset.num_files_train": 256, "dataset.record_length": 256 << 10,
                          "reader.batch_size": 4, "reader.read_threads": 2, "reader.prefetch_size": 4,
                          "train.epochs": 2, "train.computation_time": 0.1}),
    "tfrecord": ("dld_tfrecord", {"dataset.num_files_train": 32, "dataset.num_samples_per_file": 128,
                                  "dataset.record_length": 114660, "reader.batch_size": 16,
                                  "reader.read_threads": 2, "reader.computation_threads": 2,
                                  "reader.prefetch_size": 4, "train.epochs": 3,
                                  "train.computation_time": 0}),
}
TARGET_IO_RATIO = 1.5
TARGET_AU = 99.0


# ---------------------------------------------------------------------------------------------- running

def _overrides(case: str, folder: Path, extra: dict | None = None) -> list[str]:
    values = dict(CASES[case][1], **(extra or {}))
    values["dataset.data_folder"] = str(folder)
    return [f"++workload.{k}={v}" for k, v in values.items()]


def _dlio_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{DLIO_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("VIRTUAL_ENV", None)
    return env


def _run(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> tuple[int, float]:
    """Run a command with its output in `log`; (exit status, wall seconds)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                timeout=RUN_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.perf_counter() - start


def _tail(log: Path, lines: int = 12) -> str:
    try:
        text = [line for line in log.read_text(errors="replace").splitlines()
                if "oneDNN" not in line and "absl::InitializeLog" not in line]
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _summary(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def dlio(case: str, data: Path, out: Path, ranks: int, generate: bool = False, extra: dict | None = None) -> dict:
    """One DLIO 2.0.0 run (train, or generate only); its figures, or why it failed."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    mode = (["++workload.workflow.generate_data=True", "++workload.workflow.train=False"] if generate else
            ["++workload.workflow.generate_data=False", "++workload.workflow.train=True"])
    cmd = [str(DLIO_VENV / "bin" / "mpiexec"), "-n", str(ranks), str(DLIO_VENV / "bin" / "dlio_benchmark"),
           "--config-dir", str(DLIO_DIR), f"workload={CASES[case][0]}", *_overrides(case, data, extra), *mode,
           "++workload.workflow.checkpoint=False", f"hydra.run.dir={out}"]
    # Its cwd is the run folder: DLIO drops files (dft.log, hydra logs) where it runs.
    rc, wall = _run(cmd, out.parent / f"{out.name}.log", env=_dlio_env(), cwd=out)
    return _figures("dlio", rc, wall, out, generate)


def dldriver(case: str, data: Path, out: Path, ranks: int, extra: dict | None = None) -> dict:
    """One `dldriver run`; its figures, or why it failed."""
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(DLDRIVER), "run", str(DLIO_DIR / "workload" / f"{CASES[case][0]}.yaml"),
           *_overrides(case, data, extra), "-o", str(out), "--ranks", str(ranks), "--quiet"]
    rc, wall = _run(cmd, out.parent / f"{out.name}.log")
    return _figures("dldriver", rc, wall, out, False)


def dldriver_generate(case: str, data: Path, log: Path) -> dict:
    cmd = [str(DLDRIVER), "generate", str(DLIO_DIR / "workload" / f"{CASES[case][0]}.yaml"),
           *_overrides(case, data), "--processes", "2", "--quiet"]
    rc, wall = _run(cmd, log)
    return {"ok": rc == 0, "rc": rc, "wall_s": wall, **({} if rc == 0 else {"error": _tail(log)})}


def _figures(tool: str, rc: int, wall: float, out: Path, generate: bool) -> dict:
    res = {"tool": tool, "rc": rc, "wall_s": round(wall, 2), "out": str(out)}
    if generate:
        res["ok"] = rc == 0
        if rc:
            res["error"] = _tail(out.parent / f"{out.name}.log")
        return res
    summary = _summary(out)
    if rc != 0 or summary is None:
        res.update(ok=False, error=_tail(out.parent / f"{out.name}.log"))
        return res
    m = summary["metric"]
    per_epoch = m["train_throughput_samples_per_second"]
    au = m["train_au_percentage"]
    res.update(ok=True, samples_per_s=m["train_throughput_mean_samples_per_second"],
               steady_samples_per_s=statistics.mean(per_epoch[1:]) if len(per_epoch) > 1 else per_epoch[0],
               per_epoch_samples_per_s=per_epoch, au=m["train_au_mean_percentage"], au_per_epoch=au,
               mb_per_s=m["train_io_mean_MB_per_second"], ranks=summary.get("num_accelerators"))
    extra = summary.get("dldriver")
    if extra:
        res["bytes_read"] = extra.get("bytes_read")
        res["coverage_ok"] = extra.get("coverage_ok")
    return res


# ---------------------------------------------------------------------------------------------- datasets

def warm(folder: Path) -> None:
    """Read every file once: both tools then start from the page cache."""
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(8 << 20):
                    pass


def data_folder(work: Path, case: str, writer: str) -> Path:
    """One folder per case, writer and shape: files left by another shape never mix in (DLIO would
    take a subset of whatever it lists)."""
    o = CASES[case][1]
    shape = f"{o['dataset.num_files_train']}x{o.get('dataset.num_samples_per_file', 1)}x{o['dataset.record_length']}"
    return work / "data" / f"{case}-{writer}-{shape}"


def _has_files(folder: Path, ext: str, count: int) -> bool:
    return len(list((folder / "train").glob(f"*.{ext}"))) == count


def ensure_valid_folder(data: Path, compat: dict, key: str) -> None:
    """DLIO 2.0.0 lists {data_folder}/valid even with no eval files; dl-driver writes none."""
    valid = data / "valid"
    compat[f"{key}_needed_empty_valid_folder"] = not valid.exists()
    valid.mkdir(exist_ok=True)


def dataset_by_dldriver(case: str, data: Path, work: Path, compat: dict) -> bool:
    try:  # an empty valid/ left by an earlier run of this bench: see what `dldriver generate` writes
        (data / "valid").rmdir()
    except OSError:
        pass
    gen = dldriver_generate(case, data, work / f"gen-dldriver-{case}.log")
    compat[f"dldriver_generates_{case}"] = gen
    if gen["ok"]:
        ensure_valid_folder(data, compat, f"dlio_reads_dldriver_{case}")
        warm(data)
    return gen["ok"]


def dataset_by_dlio(case: str, data: Path, work: Path, compat: dict, ext: str) -> bool:
    files = CASES[case][1]["dataset.num_files_train"]
    if _has_files(data, ext, files):
        compat[f"dlio_generates_{case}"] = {"ok": True, "reused": True}
    else:
        shutil.rmtree(data, ignore_errors=True)
        compat[f"dlio_generates_{case}"] = dlio(case, data, work / f"gen-dlio-{case}", ranks=2, generate=True)
    ok = _has_files(data, ext, files)
    if ok:
        warm(data)
    return ok


# ---------------------------------------------------------------------------------------------- cases

def alternate(reps: int, runs: dict, key: str = "samples_per_s") -> dict:
    """Each of runs (name -> callable(rep)) `reps` times, alternating; the best ok run of each by `key`."""
    all_runs = {name: [] for name in runs}
    for rep in range(reps):
        order = list(runs) if rep % 2 == 0 else list(reversed(runs))
        for name in order:
            all_runs[name].append(runs[name](rep))
    best = {}
    for name, results in all_runs.items():
        ok = [r for r in results if r.get("ok")]
        best[name] = max(ok, key=lambda r: r[key]) if ok else results[-1]
        best[name][f"all_{key}"] = [round(r[key], 2) for r in ok]
    return best


def _ratio(a: dict, b: dict, key: str) -> float | None:
    if a.get("ok") and b.get("ok") and b.get(key):
        return a[key] / b[key]
    return None


def case_io(work: Path, reps: int, compat: dict) -> dict:
    data = data_folder(work, "io", "dldriver")
    if not dataset_by_dldriver("io", data, work, compat):
        return {"error": "dldriver generate failed", **compat["dldriver_generates_io"]}
    best = alternate(reps, {
        "dldriver": lambda rep: dldriver("io", data, work / f"io-dldriver-{rep}", 1),
        "dlio": lambda rep: dlio("io", data, work / f"io-dlio-{rep}", 1)})
    compat["dlio_reads_dldriver_npz"] = best["dlio"].get("ok", False)
    return {**best, "ratio": _ratio(best["dldriver"], best["dlio"], "samples_per_s"),
            "steady_ratio": _ratio(best["dldriver"], best["dlio"], "steady_samples_per_s"),
            "target_ratio": TARGET_IO_RATIO}


def case_au(work: Path, reps: int, compat: dict) -> dict:
    data = data_folder(work, "au", "dlio")
    if not dataset_by_dlio("au", data, work, compat, "npz"):
        return {"error": "DLIO's npz generation failed", **compat["dlio_generates_au"]}
    res = {"target_au": TARGET_AU}
    for ranks in (1, 2):
        res[f"r{ranks}"] = alternate(reps, {
            "dldriver": lambda rep, r=ranks: dldriver("au", data, work / f"au-dldriver-r{r}-{rep}", r),
            "dlio": lambda rep, r=ranks: dlio("au", data, work / f"au-dlio-r{r}-{rep}", r)}, key="au")
    compat["dldriver_reads_dlio_npz"] = res["r1"]["dldriver"].get("ok", False)
    return res


def _tfrecord_both_tools(data: Path, work: Path, reps: int, tag: str) -> dict:
    """Both tools read one tfrecord dataset, alternating: the best run of each and their ratios."""
    best = alternate(reps, {
        "dldriver": lambda rep: dldriver("tfrecord", data, work / f"{tag}-dldriver-{rep}", 1),
        "dlio": lambda rep: dlio("tfrecord", data, work / f"{tag}-dlio-{rep}", 1)})
    return {**best, "ratio": _ratio(best["dldriver"], best["dlio"], "samples_per_s"),
            "steady_ratio": _ratio(best["dldriver"], best["dlio"], "steady_samples_per_s")}


def case_tfrecord(work: Path, reps: int, compat: dict) -> dict:
    res = {}
    data = data_folder(work, "tfrecord", "dldriver")
    if dataset_by_dldriver("tfrecord", data, work, compat):
        res["dldriver_data"] = _tfrecord_both_tools(data, work, reps, "tfr")
        compat["dlio_reads_dldriver_tfrecord"] = res["dldriver_data"]["dlio"].get("ok", False)
    data = data_folder(work, "tfrecord", "dlio")
    if dataset_by_dlio("tfrecord", data, work, compat, "tfrecord"):
        res["dlio_data"] = _tfrecord_both_tools(data, work, reps, "tfrd")
        compat["dldriver_reads_dlio_tfrecord"] = res["dlio_data"]["dldriver"].get("ok", False)
    return res


# ---------------------------------------------------------------------------------------------- report

def _fmt(x, spec=".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def _cell(r: dict, key: str, spec=".1f") -> str:
    return _fmt(r.get(key), spec) if r.get("ok") else "FAILED"


def report(results: dict) -> list[str]:
    lines = []
    io = results.get("io")
    if io and "dldriver" in io:
        lines += ["(a) I/O-bound npz, pytorch loader, 1 rank: samples/s (all epochs | after the first)",
                  f"    dl-driver {_cell(io['dldriver'], 'samples_per_s')} | "
                  f"{_cell(io['dldriver'], 'steady_samples_per_s')}    DLIO {_cell(io['dlio'], 'samples_per_s')} | "
                  f"{_cell(io['dlio'], 'steady_samples_per_s')}",
                  f"    ratio dl-driver/DLIO {_fmt(io['ratio'], '.2f')} | {_fmt(io['steady_ratio'], '.2f')} "
                  f"(target >= {TARGET_IO_RATIO}); whole process: dl-driver {_fmt(io['dldriver'].get('wall_s'))} s, "
                  f"DLIO {_fmt(io['dlio'].get('wall_s'))} s"]
    elif io:
        lines.append(f"(a) FAILED: {io.get('error')}")
    au = results.get("au")
    if au and "r1" in au:
        lines.append("(b) computation_time 0.1 s, pytorch loader: AU % (samples/s)")
        for ranks in (1, 2):
            row = au[f"r{ranks}"]
            lines.append(f"    {ranks} rank(s): dl-driver {_cell(row['dldriver'], 'au', '.2f')} "
                         f"({_cell(row['dldriver'], 'samples_per_s')})    DLIO {_cell(row['dlio'], 'au', '.2f')} "
                         f"({_cell(row['dlio'], 'samples_per_s')})    target >= {TARGET_AU}")
    elif au:
        lines.append(f"(b) FAILED: {au.get('error')}")
    tfr = results.get("tfrecord")
    if tfr:
        lines.append("(c) resnet50-like tfrecord, tensorflow loader, 1 rank: samples/s (all epochs | after the first)")
        for key, label in (("dldriver_data", "written by dl-driver"), ("dlio_data", "written by DLIO")):
            if key not in tfr:
                lines.append(f"    {label}: FAILED (generation)")
                continue
            row = tfr[key]
            lines.append(f"    {label}: dl-driver {_cell(row['dldriver'], 'samples_per_s')} | "
                         f"{_cell(row['dldriver'], 'steady_samples_per_s')}    DLIO "
                         f"{_cell(row['dlio'], 'samples_per_s')} | {_cell(row['dlio'], 'steady_samples_per_s')}"
                         f"    ratio {_fmt(row['ratio'], '.2f')} | {_fmt(row['steady_ratio'], '.2f')}")
    compat = results.get("compatibility", {})
    flags = {k: (v if isinstance(v, bool) else v.get("ok")) for k, v in compat.items()}
    lines.append("compatibility: " + ", ".join(f"{k}={v}" for k, v in flags.items()))
    for name, case in (("io", io), ("au", au), ("tfrecord", tfr)):
        for r in _failed_runs(case):
            lines.append(f"{name}: {r['tool']} failed (rc {r['rc']}), see {r['out']}.log:\n{r.get('error', '')}")
    return lines


def _failed_runs(obj):
    if isinstance(obj, dict):
        if obj.get("tool") and obj.get("ok") is False:
            yield obj
        else:
            for v in obj.values():
                yield from _failed_runs(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "dldriver-bench-dlio"),
                        help="datasets and run folders (kept: datasets are reused)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each tool per case, alternating")
    parser.add_argument("--au-reps", type=int, default=2, help="the same for the AU case (slow, steady)")
    parser.add_argument("--cases", default="io,au,tfrecord")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    setup = subprocess.run(["bash", str(DLIO_DIR / "setup_env.sh")], capture_output=True, text=True)
    if setup.returncode:
        sys.exit(f"bench/dlio/setup_env.sh failed:\n{setup.stdout}\n{setup.stderr}")

    started = time.strftime("%Y%m%d-%H%M%S")
    results = {"started": started, "work": str(work), "reps": args.reps, "au_reps": args.au_reps,
               "cases": {k: {"workload": v[0], "overrides": v[1]} for k, v in CASES.items()},
               "compatibility": {}, "host": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    t0 = time.perf_counter()
    for case in args.cases.split(","):
        fn = {"io": case_io, "au": case_au, "tfrecord": case_tfrecord}[case]
        results[case] = fn(work, args.au_reps if case == "au" else args.reps, results["compatibility"])
        print(f"[{time.perf_counter() - t0:.0f} s] {case} done", file=sys.stderr, flush=True)
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    results["host"]["load_after"] = os.getloadavg()

    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"dlio_{started}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print("\n".join(report(results)))
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
