# Helpers shared by every rule: names, paths, the list of cells, the shell snippets that bring a
# backend's environment into a job, and the onstart/onsuccess handlers. Python only; no rules.

import json
import os
import shlex
import string
import subprocess
import sys
from pathlib import Path


# The placeholders a backend's URI template may hold (backend_uri fills them).
URI_FIELDS = {"results", "matrix", "workload"}


def _check_references(cfg, generations):
    """Names a workload refers to must exist: the schema cannot express cross-references. A workload's
    `dlio_defaults` must be a generation this dldriver knows (`generations`, from `dldriver version`)."""
    problems = []
    for name, wl in cfg["workloads"].items():
        if "dlio_defaults" in wl and wl["dlio_defaults"] not in generations:
            problems.append(f"workloads.{name}.dlio_defaults: unknown DLIO defaults {wl['dlio_defaults']!r} "
                            f"(known: {', '.join(generations)})")
        for key, known in (("loaders", cfg["loaders"]), ("backends", cfg["backends"])):
            for ref in wl.get(key, []):
                if ref not in known:
                    problems.append(f"workloads.{name}.{key}: unknown {key[:-1]} {ref!r} "
                                    f"(known: {', '.join(known)})")
    for name, wl in cfg["workloads"].items():
        if not Path(wl["file"]).is_file():
            problems.append(f"workloads.{name}.file: {wl['file']} is not a file")
    for key in ("results",):
        if Path(cfg[key]).exists() and not Path(cfg[key]).is_dir():
            problems.append(f"{key}: {cfg[key]} is a file, not a folder")
    if cfg.get("baseline") and not Path(cfg["baseline"]).is_file():
        problems.append(f"baseline: {cfg['baseline']} is not a file")
    for name, be in cfg["backends"].items():
        unknown = sorted({f for _, f, _, _ in string.Formatter().parse(be["uri"]) if f is not None} - URI_FIELDS)
        if unknown:
            problems.append(f"backends.{name}.uri: unknown placeholder {{{unknown[0]}}} "
                            f"(known: {', '.join(f'{{{f}}}' for f in sorted(URI_FIELDS))})")
        service = be.get("service")
        if service and cfg.get("services") and service not in cfg["services"]:
            problems.append(f"backends.{name}.service: {service!r} is not in services "
                            f"({', '.join(cfg['services'])}); list it or drop the key")
    if problems:
        raise ValueError("config:\n  {}".format("\n  ".join(problems)))


# Jobs call `dldriver` and `python` by name: put the interpreter that runs Snakemake (the project's
# .venv when started as .venv/bin/snakemake) first on PATH. Slurm jobs inherit it (sbatch --export=ALL).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

# The version of the bytes `dldriver generate` writes: a new one regenerates every dataset (a param of
# the generate rule), and the DLIO generations `--dlio-defaults` takes. Asked of the command line, as
# every rule asks it, never imported.
DLDRIVER_VERSION = json.loads(subprocess.run(["dldriver", "version", "--json"], check=True,
                                             capture_output=True, text=True).stdout)
GENERATOR_VERSION = DLDRIVER_VERSION["generator_version"]

_check_references(config, DLDRIVER_VERSION["dlio_defaults"])

MATRIX = config["matrix"]
# Outputs are relative paths (Snakemake's habit); URIs need the absolute folder.
OUT = f"{config['results']}/{MATRIX}"
RESULTS_ABS = str(Path(config["results"]).resolve())
# Helper scripts are found beside the workflow, whatever the working directory (--directory).
SCRIPTS = str(Path(workflow.basedir) / "scripts")
REPS = list(range(1, config["repetitions"] + 1))
LOGS = f"{OUT}/logs"
REPORT = f"{OUT}/report"

TRAIN_WORKLOADS = [n for n, w in config["workloads"].items() if w.get("mode", "train") == "train"]
CKPT_WORKLOADS = [n for n, w in config["workloads"].items() if w.get("mode", "train") == "checkpoint"]


def _alternatives(names):
    """A wildcard constraint that admits exactly these names (never an empty regex)."""
    return "|".join(sorted(names)) or "(?!)"


def workload_loaders(name):
    return config["workloads"][name].get("loaders", list(config["loaders"]))


def workload_backends(name):
    return config["workloads"][name].get("backends", list(config["backends"]))


def workload_ranks(name):
    return config["workloads"][name].get("ranks", config["ranks"])


ALL_RANKS = sorted({str(n) for w in config["workloads"] for n in workload_ranks(w)})

wildcard_constraints:
    workload=_alternatives(config["workloads"]),
    loader=_alternatives(config["loaders"]),
    backend=_alternatives(config["backends"]),
    ranks=_alternatives(ALL_RANKS),
    rep=_alternatives(str(k) for k in REPS),


def train_cells():
    """Every training cell's summary.json."""
    return [f"{OUT}/{w}/{loader}/{b}/r{n}/rep{k}/summary.json"
            for w in TRAIN_WORKLOADS for loader in workload_loaders(w)
            for b in workload_backends(w) for n in workload_ranks(w) for k in REPS]


def checkpoint_cells():
    """Every checkpoint-only cell's summary.json (`checkpoint` stands in the loader's place)."""
    return [f"{OUT}/{w}/checkpoint/{b}/r{n}/rep{k}/summary.json"
            for w in CKPT_WORKLOADS for b in workload_backends(w)
            for n in workload_ranks(w) for k in REPS]


def datasets():
    return [f"{OUT}/{w}/{b}/dataset.json" for w in TRAIN_WORKLOADS for b in workload_backends(w)]


def plans():
    return [f"{OUT}/{w}/plan.json" for w in config["workloads"]]


def workload_file(wildcards):
    return config["workloads"][wildcards.workload]["file"]


def backend_uri(workload, backend):
    template = config["backends"][backend]["uri"]
    return template.format(results=RESULTS_ABS, matrix=MATRIX, workload=workload)


def _quoted(items):
    return " ".join(shlex.quote(str(i)) for i in items)


def generation_args(name):
    """`--dlio-defaults GENERATION` when the workload names one (its `dlio_defaults:` key), else nothing.
    It goes after the overrides: argparse takes no override after an option."""
    wl = config["workloads"][name]
    return ["--dlio-defaults", wl["dlio_defaults"]] if "dlio_defaults" in wl else []


def _workload_line(name, extra=()):
    """A workload's settings for every dldriver call of its cells: its overrides, `extra` overrides, then
    its DLIO generation; quoted for the shell."""
    return _quoted(config["workloads"][name].get("overrides", []) + list(extra) + generation_args(name))


def workload_args(wildcards):
    """The workload's own overrides (and DLIO generation), quoted for the shell."""
    return _workload_line(wildcards.workload)


def _data_folder(wildcards):
    return f"dataset.data_folder={backend_uri(wildcards.workload, wildcards.backend)}"


def data_args(wildcards):
    """Overrides for a training cell: the workload's, then the backend's data folder."""
    return _workload_line(wildcards.workload, [_data_folder(wildcards)])


def run_args(wildcards):
    """Overrides for a training cell: data_args plus the loader's selection."""
    return _workload_line(wildcards.workload, [_data_folder(wildcards), *config["loaders"][wildcards.loader]])


def checkpoint_args(wildcards):
    uri = backend_uri(wildcards.workload, wildcards.backend)
    return _workload_line(wildcards.workload, [f"checkpoint.checkpoint_folder={uri}"])


def checkpoint_scale(wildcards):
    return config["workloads"][wildcards.workload].get("checkpoint_scale", 1.0)


def service_env_file(service):
    """Written by the onstart handler (rules/services.smk) with the server's export lines."""
    return f"{OUT}/services/{service}.env"


def backend_env(wildcards):
    """Shell lines that load a backend's environment and fail early, by name, if a variable is missing.

    Sourced rather than declared as an input: the servers live for one invocation only, and a
    per-invocation file as input would make every finished s3/azure cell rerun on the next call.
    """
    be = config["backends"][wildcards.backend]
    lines = []
    service = be.get("service")
    if service and service in config.get("services", []):
        env = service_env_file(service)
        lines.append(f'[ -s {env} ] || {{ echo "{env} missing: the {service} server was not started" >&2; exit 1; }}')
        lines.append(f". {env}")
    for var in be.get("env", []):
        # Single quotes: the message names the variable and never shows a value.
        lines.append(f"[ -n \"${{{var}:-}}\" ] || {{ echo 'backend {wildcards.backend} needs {var}' >&2; exit 1; }}")
    return "; ".join(lines) or ":"


def run_resources_mpi(wildcards):
    """Multi-rank cells are MPI-style jobs for the Slurm plugin: it then skips its own `srun -n1`
    and the rule's shell starts the ranks with srun. Single-rank cells must not carry the key."""
    return "srun" if int(wildcards.ranks) > 1 else None


# Local servers (SeaweedFS for s3, Azurite for azure) live exactly as long as one invocation: started
# by onstart before the first job, stopped by onsuccess/onerror. Deliberately no Snakemake job: a job's
# output would outlive the servers, and a per-invocation output would make every finished s3/azure
# cell look out of date on the next invocation (Snakemake reruns consumers of a recreated input).
# Both handlers run in the main Snakemake process, so under Slurm the servers run on the submit host.

def _needed_services():
    used = {config["backends"][b].get("service")
            for w in config["workloads"] for b in workload_backends(w)}
    return [s for s in config.get("services", []) if s in used]


# Servers this invocation started; one the user had already running is left running at the end.
_STARTED = []


def start_services():
    for service in _needed_services():
        env_file = Path(service_env_file(service))
        env_file.parent.mkdir(parents=True, exist_ok=True)
        log = Path(f"{LOGS}/services/{service}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as err:
            running = subprocess.run(["dldriver", "services", "status", service],
                                     stdout=err, stderr=err).returncode == 0
            with open(env_file, "w") as out:
                subprocess.run(["dldriver", "services", "start", service], stdout=out, stderr=err, check=True)
        if not running:
            _STARTED.append(service)
        print(f"dl-driver: {service} server {'in use' if running else 'started'} ({env_file})")


def stop_services():
    for service in _STARTED:
        with open(f"{LOGS}/services/{service}.log", "a") as err:
            subprocess.run(["dldriver", "services", "stop", service], stdout=err, stderr=err, check=False)
        print(f"dl-driver: {service} server stopped")
    for service in _needed_services():
        Path(service_env_file(service)).unlink(missing_ok=True)


def print_report_locations():
    """The run ends by saying where its tables and plots are (only those that exist)."""
    names = ("cells.md", "cells.csv", "runs.csv", "report.html", "verdicts.md", "rules_verdicts.csv", "plots")
    found = [Path(REPORT) / n for n in names if (Path(REPORT) / n).exists()]
    if found:
        lines = "\n".join(f"  {p}" for p in found)
        print(f"dl-driver results:\n{lines}")
