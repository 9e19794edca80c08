# Helpers of the MLPerf accelerator search (rules/mlperf.smk): the searches in the config, their cells,
# and the counts each round has tried. Python only; no rules.

import json
import sys
from types import SimpleNamespace

SEARCHES = config.get("searches") or {}
SEARCH_OUT = {name: f"{OUT}/search_{name}" for name in SEARCHES}


def _search(wildcards):
    return SEARCHES[wildcards.search]


def _search_backend(wildcards):
    return SimpleNamespace(backend=_search(wildcards)["backend"])


def search_workload_file(wildcards):
    return config["workloads"][_search(wildcards)["workload"]]["file"]


def _search_overrides(wildcards):
    s = _search(wildcards)
    uri = backend_uri(f"search_{wildcards.search}", s["backend"])
    return s.get("overrides", []) + [f"dataset.data_folder={uri}"]


def search_data_args(wildcards):
    """The workload's overrides, the search's, its data folder, then the workload's DLIO generation."""
    return _workload_line(_search(wildcards)["workload"], _search_overrides(wildcards))


def search_loader_args(wildcards):
    """After datasize.json's overrides in a cell: the loader's overrides, then the workload's DLIO generation."""
    s = _search(wildcards)
    return _quoted(config["loaders"][s["loader"]] + generation_args(s["workload"]))


def search_generation_args(wildcards):
    """The workload's DLIO generation (`--dlio-defaults`), which datasize.json's overrides do not carry."""
    return _quoted(generation_args(_search(wildcards)["workload"]))


def search_hosts(name):
    """The client hosts each count of search `name` runs on (config `searches.<name>.hosts`, default 1)."""
    return SEARCHES[name].get("hosts", 1)


def search_cell_resources(name, count):
    """Slurm resources of one run of `count` accelerators per host: hosts x count ranks. On one host, a job
    of that many tasks (rules/run.smk's convention); on several, a job over that many nodes with count
    tasks per node (the plugin takes either `tasks` or `tasks_per_node` for an MPI job, and the latter
    only above 1, so 1 per host is `tasks` = hosts over `nodes` = hosts: Slurm gives each node one)."""
    hosts, ranks = search_hosts(name), search_hosts(name) * count
    per_node = hosts > 1 and count > 1
    return {"tasks": None if per_node else ranks, "tasks_per_node": count if per_node else None,
            "nodes": hosts if hosts > 1 else None, "mpi": "srun" if ranks > 1 else None}


def search_datasize_options(wildcards):
    """`dldriver datasize` options: the hosts, the sweep's largest count per host (refinements lie below
    it), the clients' memory (default: the host the job runs on), the edition and the dataset_scale."""
    s = _search(wildcards)
    memory = s.get("host_memory_gib")
    return " ".join([f"--hosts {search_hosts(wildcards.search)}",
                     f"--accelerators-per-host {max(s['sweep'])}", f"--edition {s.get('edition', 'v2.0')}",
                     f"--scale {s.get('dataset_scale', 1)}"] + ([f"--host-memory-gib {memory}"] if memory else []))


def search_check_options(wildcards):
    """`dldriver mlperf check` options after the workload file: its DLIO generation, the hosts, the edition
    and the clients' memory the dataset was sized for (default: what each run recorded)."""
    s = _search(wildcards)
    memory = s.get("host_memory_gib")
    return search_generation_args(wildcards) + f" --hosts {search_hosts(wildcards.search)}" + \
        f" --edition {s.get('edition', 'v2.0')}" + (
        f" --host-memory-gib {memory}" if memory else "")


def sized_overrides(wildcards):
    """Shell lines that put datasize.json's overrides (the search's, with datasize's num_files_train), one
    argument each, into the array `sized`; an empty list (an unreadable file) stops the job by name."""
    path = f"{SEARCH_OUT[wildcards.search]}/datasize.json"
    read = "import json, sys; print(*json.load(open(sys.argv[1]))['overrides'], sep=chr(10))"
    return (f"{{ mapfile -t sized < <(python -c {shlex.quote(read)} {shlex.quote(path)}); "
            f"[ \"${{#sized[@]}}\" -gt 0 ] || {{ echo '{path}: no overrides in it' >&2; exit 1; }}; }}")


def search_env(wildcards):
    return backend_env(_search_backend(wildcards))


def search_reps(name):
    s = SEARCHES[name]
    return s.get("runs", 5) + DLDRIVER_VERSION["mlperf_editions"][s.get("edition", "v2.0")]["warmup_runs"]


def search_cell(name, count, rep):
    s = SEARCHES[name]
    return f"{SEARCH_OUT[name]}/{s['loader']}/{s['backend']}/r{count}/rep{rep}/summary.json"


def tried_counts(name, round_):
    """The counts run by the end of round `round_`: the sweep, then each earlier round's next counts."""
    counts = list(SEARCHES[name]["sweep"])
    for r in range(round_):
        with open(checkpoints.mlperf_round.get(search=name, round=r).output[0]) as f:
            counts += json.load(f)["next"]
    return counts


def round_cells(wildcards):
    counts = tried_counts(wildcards.search, int(wildcards.round))
    return [search_cell(wildcards.search, n, k) for n in counts for k in range(1, search_reps(wildcards.search) + 1)]


def final_round(wildcards):
    """The first round that asks for no more counts (each get() waits for that round to exist)."""
    r = 0
    while True:
        path = checkpoints.mlperf_round.get(search=wildcards.search, round=r).output[0]
        with open(path) as f:
            if not json.load(f)["next"]:
                return path
        r += 1


def search_results():
    return [f"{SEARCH_OUT[name]}/search.json" for name in SEARCHES]


def search_verdicts():
    """Each search's rules verdict (rule mlperf_verdict), which the report's headline shows."""
    return [f"{SEARCH_OUT[name]}/verdict.json" for name in SEARCHES]


def refuse_local_hosts(executor):
    """A search over several hosts needs Slurm: one machine cannot be two hosts (called by onstart, the
    first moment the executor is known; a dry run plans it anywhere)."""
    if executor.startswith("slurm"):
        return
    for name in SEARCHES:
        if search_hosts(name) > 1:
            sys.exit(f"config: searches.{name}.hosts: {search_hosts(name)} hosts need Slurm (--profile slurm); "
                     f"the {executor} executor runs on one host")


def _check_searches(cfg):
    """A search names a training workload, a loader and a backend of the config: the schema cannot check it."""
    problems = []
    for name, s in (cfg.get("searches") or {}).items():
        for key, known in (("workload", cfg["workloads"]), ("loader", cfg["loaders"]), ("backend", cfg["backends"])):
            if s[key] not in known:
                problems.append(f"searches.{name}.{key}: unknown {key} {s[key]!r} (known: {', '.join(known)})")
        sizing = [o for o in s.get("overrides", []) if o.lstrip("+").removeprefix("workload.").startswith(
            ("dataset.num_files_train=", "dataset.num_subfolders_train="))]
        if sizing:
            problems.append(f"searches.{name}.overrides: {sizing[0]!r}: the search sizes its dataset with "
                            "`dldriver datasize`; shrink it with dataset_scale (and host_memory_gib)")
        wl = cfg["workloads"].get(s["workload"], {})
        if wl.get("mode", "train") != "train":
            problems.append(f"searches.{name}.workload: {s['workload']!r} is a checkpoint workload; "
                            "the search needs a training one")
    if problems:
        raise ValueError("config:\n  {}".format("\n  ".join(problems)))


_check_searches(config)
