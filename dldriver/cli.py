"""The `dldriver` command line: argument parsing only.

Each subcommand imports its module lazily (so `dldriver validate` never loads a framework) and calls one
function there. Any DlDriverError becomes one line on stderr and its exit code; no user error ends in a
traceback. Every line printed for an error has its credentials masked (dldriver.redact).
"""
from __future__ import annotations

import argparse
import signal
import sys
import traceback

from dldriver.errors import ConfigError, DlDriverError
from dldriver.redact import redact_text

OVERRIDE_HELP = ("overrides in DLIO's Hydra grammar (++workload.dataset.num_files_train=8, "
                 "workload.train.epochs=2) or the short form (dataset.num_files_train=8)")


class Parser(argparse.ArgumentParser):
    """argparse, with credentials masked in its messages (it echoes the arguments it refuses)."""

    def error(self, message):
        super().error(redact_text(message))


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a DLIO workload YAML file (plain, or wrapped in a top-level `workload:` node)")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help=OVERRIDE_HELP)
    p.add_argument("--dlio-defaults", default="head", metavar="GENERATION",
                   help="whose defaults fill the keys the file leaves out: head (DLIO HEAD's, the default), "
                        "2.0.0 (DLIO 2.0.0's, with its checkpoint files and sizes) or 1.0 (DLIO 1.0/1.1's, for "
                        "files written for it, such as MLPerf Storage v0.5's)")


def minimum_ranks(workload) -> int:
    """The smallest world size a workload's model parallelism allows (tensor x pipeline)."""
    return max(1, workload.model.parallelism.model_parallel)


def _cmd_validate(args) -> int:
    from dldriver.config import load_workload, derive_plan
    from dldriver.config.profiles import apply_profile
    from dldriver.config.validate_output import render_validation

    if args.ranks is not None and args.ranks < 1:
        raise ConfigError(f"--ranks must be >= 1 (got {args.ranks})")  # as `run --ranks` says
    workload = load_workload(args.config, args.overrides, dlio_defaults=args.dlio_defaults)
    ranks = args.ranks or minimum_ranks(workload)
    # The plan is the run's: the loader's profile applied (the config and profiles print as written).
    plan = derive_plan(apply_profile(workload), ranks=ranks)
    print(render_validation(workload, plan, as_json=args.json))
    return 0


class Terminated(BaseException):
    """SIGTERM (Slurm's scancel and time limit, Snakemake stopping a job), raised where the process is, so
    that what is in progress ends as after Ctrl-C: a generation saves what it finished and stops its
    workers."""


def _raise_terminated(_signum, _frame):
    raise Terminated()


def _cmd_generate(args) -> int:
    from dldriver.config import load_workload
    from dldriver.generate import generate_dataset
    from dldriver.heap import keep_freed_buffers

    workload = load_workload(args.config, args.overrides, dlio_defaults=args.dlio_defaults)
    keep_freed_buffers()
    signal.signal(signal.SIGTERM, _raise_terminated)
    generate_dataset(workload, processes=args.processes, progress=not args.quiet, force=args.force)
    return 0


def _cmd_verify(args) -> int:
    from dldriver.config import load_workload
    from dldriver.dataset.verify import verify_dataset

    workload = load_workload(args.config, args.overrides, dlio_defaults=args.dlio_defaults)
    problems = verify_dataset(workload, checksums=not args.quick)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"verify: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print("verify: dataset matches its manifest")
    return 0


def _cmd_run(args) -> int:
    from dldriver.config import load_workload
    from dldriver.engine.run import run_workload

    from dldriver.heap import keep_freed_buffers

    workload = load_workload(args.config, args.overrides, dlio_defaults=args.dlio_defaults)
    keep_freed_buffers()  # object bodies and checkpoint chunks are buffers of MiB, one per request
    run_workload(workload, ranks=args.ranks, output=args.output, drop_caches=args.drop_caches,
                 quiet=args.quiet, checkpoint_scale=args.checkpoint_scale, cell=_cell(args.cell))
    return 0


def _cell(text: str | None) -> dict | None:
    """--cell workload=a,loader=b,... as a dict; ConfigError naming a part that is not KEY=VALUE."""
    from dldriver.errors import ConfigError

    if text is None:
        return None
    parts = [p.partition("=") for p in text.split(",")]
    bad = [k for k, eq, v in parts if not (k and eq and v)]
    if bad:
        raise ConfigError(f"--cell: {text!r} is not KEY=VALUE,... (at {bad[0]!r})")
    return {k: v for k, _, v in parts}


def _cmd_checkpoint(args) -> int:
    from dldriver.config import load_workload
    from dldriver.engine.run import run_workload

    from dldriver.heap import keep_freed_buffers

    workload = load_workload(args.config, list(args.overrides) + ["workflow.train=False", "workflow.checkpoint=True"],
                             dlio_defaults=args.dlio_defaults)
    keep_freed_buffers()  # object bodies and checkpoint chunks are buffers of MiB, one per request
    run_workload(workload, ranks=args.ranks, output=args.output, drop_caches=args.drop_caches,
                 quiet=args.quiet, checkpoint_scale=args.checkpoint_scale, cell=_cell(args.cell))
    return 0


def _cmd_services(args) -> int:
    from dldriver.services import manage

    return manage(args.action, args.which, state_dir=args.state_dir)


def _cmd_aggregate(args) -> int:
    from dldriver.aggregate import aggregate_command

    return aggregate_command(results=args.results, out=args.out, baseline=args.baseline,
                             tolerance=args.tolerance, save_baseline=args.save_baseline)


def _cmd_version(args) -> int:
    import json

    from dldriver.mlperf.rules import edition_runs
    from dldriver.version import version_info

    info = version_info() | {"mlperf_editions": edition_runs()}
    print(json.dumps(info) if args.json else f"dldriver {info['version']} (generator {info['generator_version']}, "
                                              f"commit {info['git_commit'] or 'unknown'})")
    return 0


def _cmd_manifest(args) -> int:
    import json

    from dldriver.config import load_workload
    from dldriver.dataset.verify import dataset_manifest

    manifest = dataset_manifest(load_workload(args.config, args.overrides, dlio_defaults=args.dlio_defaults))
    print(json.dumps(manifest, indent=1))
    return 0


def _cmd_datasize(args) -> int:
    from dldriver.mlperf.command import datasize_command

    return datasize_command(args.config, args.overrides, hosts=args.hosts,
                            accelerators_per_host=args.accelerators_per_host, host_memory_gib=args.host_memory_gib,
                            edition=args.edition, ranks=args.ranks, as_json=args.json,
                            dlio_defaults=args.dlio_defaults, scale=args.scale)


def _cmd_mlperf_check(args) -> int:
    from dldriver.mlperf.command import check_command

    return check_command(args.config, args.overrides, runs=args.runs, hosts=args.hosts,
                         accelerators_per_host=args.accelerators_per_host, host_memory_gib=args.host_memory_gib,
                         edition=args.edition, drop_caches=args.drop_caches, as_json=args.json,
                         dlio_defaults=args.dlio_defaults)


def _cmd_mlperf_search_round(args) -> int:
    from dldriver.mlperf.command import search_round_command

    return search_round_command(args.cells, sweep=args.sweep, runs=args.runs, edition=args.edition, out=args.out,
                                workload=args.workload, datasize=args.datasize, hosts=args.hosts)


def _add_mlperf_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hosts", type=int, default=1, help="client hosts (default 1)")
    p.add_argument("--accelerators-per-host", type=int, default=None,
                   help="emulated accelerators per host (training; default 1)")
    p.add_argument("--host-memory-gib", type=float, default=None,
                   help="memory per client host in GiB (default: this host's, from psutil)")
    p.add_argument("--edition", default="v2.0", help="MLPerf Storage rules edition: v2.0 or v3.0 (default v2.0)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ranks", type=int, default=None,
                   help="emulated accelerators on this host (default: 1, or the world size given by srun/mpiexec)")
    p.add_argument("--output", "-o", default=None,
                   help="results folder (default: output.folder from the config, else ./output)")
    p.add_argument("--drop-caches", action="store_true",
                   help="evict the page cache before each epoch and between checkpoint write and read (root only)")
    p.add_argument("--checkpoint-scale", type=float, default=1.0,
                   help="shrink every checkpoint tensor by this factor (e.g. 0.001) keeping all files and names")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--cell", default=None, metavar="KEY=VALUE,...",
                   help="this run's place in a matrix (workload=...,loader=...,backend=...,ranks=N,rep=K), "
                        "recorded in summary.json for `dldriver aggregate`")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dldriver",
        description="dl-driver: a deep-learning I/O benchmark that reads DLIO workload configs, generates "
                    "datasets, emulates training and checkpointing, and reports DLIO's metrics.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a workload config strictly and print its resolved values and plan",
                       description="Load a DLIO workload, check every key, fill DLIO's defaults and print the plan. "
                                   "Exit 0 when valid, 2 with every problem when not.")
    _add_config(p)
    p.add_argument("--ranks", type=int, default=None,
                   help="emulated accelerators the plan is computed for (default: the smallest world size the "
                        "model's parallelism allows, tensor x pipeline, which is 1 for data-parallel workloads)")
    p.add_argument("--json", action="store_true", help="print the resolved config and plan as JSON")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("generate", help="write the workload's dataset to its storage URI and record a manifest",
                       description="Generate the dataset in DLIO's layout at dataset.data_folder (a path, file://, "
                                   "direct://, s3:// or az://). Complete files that match the manifest are skipped.")
    _add_config(p)
    p.add_argument("--processes", "-j", type=int, default=None, help="writer processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="rewrite every file even if the manifest says it is complete")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("verify", help="check a dataset against its manifest",
                       description="Name every missing, extra, truncated or altered file of the dataset.")
    _add_config(p)
    p.add_argument("--quick", action="store_true", help="check names and sizes only, not checksums")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("manifest", help="print the manifest of the workload's dataset (JSON)",
                       description="Print manifest.json of the dataset at dataset.data_folder, checked; exit "
                                   "non-zero when there is none or it is damaged.")
    _add_config(p)
    p.set_defaults(func=_cmd_manifest)

    p = sub.add_parser("run", help="emulate training (and checkpoints) and write DLIO-compatible results",
                       description="Read the dataset with the configured loader (reader.data_loader) while an "
                                   "emulated accelerator computes; checkpoint-only workloads (train: False) write "
                                   "and read checkpoints.")
    _add_config(p)
    _add_run_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("checkpoint", help="run a workload in checkpoint-only mode (write, then read checkpoints)",
                       description="Same as `run` with workflow.train=False and workflow.checkpoint=True.")
    _add_config(p)
    _add_run_options(p)
    p.set_defaults(func=_cmd_checkpoint)

    p = sub.add_parser("datasize", help="MLPerf Storage: the minimum dataset (or checkpoint) size for a workload",
                       description="The minimum num_files_train by MLPerf Storage's two rules (5 x the clients' "
                                   "memory; 500 steps of every accelerator), its disk space and subfolders, and the "
                                   "`dldriver generate` command to run next. Checkpoint-only workloads get bytes "
                                   "per rank and host, the 3 x memory rule and the process counts allowed.")
    _add_config(p)
    _add_mlperf_options(p)
    p.add_argument("--ranks", type=int, default=None,
                   help="checkpointing: world size (default: the process count CLOSED requires)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="training: generate this fraction (0 < F <= 1) of the rules' file count, for a test or "
                        "a demo; below 1 the dataset is too small for the rules (default 1)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_cmd_datasize)

    p = sub.add_parser("mlperf", help="MLPerf Storage: judge a config or finished runs by the rules",
                       description="MLPerf Storage mode. `check` gives CLOSED, OPEN or INVALID with each finding as "
                                   "a rule id and a sentence.")
    mlperf = p.add_subparsers(dest="mlperf_command", required=True, metavar="SUBCOMMAND")
    p = mlperf.add_parser("check", help="CLOSED, OPEN or INVALID for a config and overrides, or for run folders",
                          description="Compare a config and its overrides (or, with --runs, the configs the run "
                                      "folders record) with the MLPerf workload file CONFIG, and check dataset "
                                      "size, AU floor, run count and checkpoint process counts. Exit 0 for CLOSED "
                                      "or OPEN, 3 for INVALID. dl-driver is not MLPerf's reference implementation.")
    _add_config(p)
    _add_mlperf_options(p)
    p.add_argument("--runs", nargs="+", default=[], metavar="FOLDER",
                   help="run folders (or folders holding them) to judge instead of the config")
    p.add_argument("--drop-caches", action="store_true", help="the run will drop caches between checkpoint write and read")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=_cmd_mlperf_check)
    p = mlperf.add_parser("search-round", help="one round of the accelerator search, from the runs so far",
                          description="Group run folders by accelerators per host, judge each count by the "
                                      "AU floor, and write the next counts to run (none when done) and the "
                                      "result sentence as JSON. The workflow's rules/mlperf.smk calls it.")
    p.add_argument("cells", nargs="+", help="run folders (or their summary.json) of every count tried so far")
    p.add_argument("--sweep", type=int, nargs="+", required=True, help="the counts per host tried first")
    p.add_argument("--runs", type=int, default=5, help="measured runs a count needs (default 5)")
    p.add_argument("--edition", default="v2.0", help="rules edition (AU floors, warm-up runs)")
    p.add_argument("--out", required=True, help="the round's JSON file")
    p.add_argument("--workload", default=None, help="the matrix's name for the workload (default: model.name)")
    p.add_argument("--datasize", default=None, metavar="FILE",
                   help="the `dldriver datasize --json` output the dataset was made from: recorded in the round, "
                        "and the sentence says when the dataset is below the rules' size")
    p.add_argument("--hosts", type=int, default=None,
                   help="the client hosts the search ran on: a run that recorded another number is refused "
                        "(default: what the runs recorded)")
    p.set_defaults(func=_cmd_mlperf_search_round)

    p = sub.add_parser("services", help="start, stop or show the local S3 (SeaweedFS) and Azure (Azurite) servers",
                       description="Local servers bound to 127.0.0.1 with telemetry off. `start` prints the "
                                   "environment variables that point dl-driver, boto3 and the Azure SDK at them.")
    p.add_argument("action", choices=["start", "stop", "status", "env"])
    p.add_argument("which", nargs="?", default="all", choices=["s3", "azure", "all"])
    p.add_argument("--state-dir", default=None,
                   help="folder for the servers' data, logs and pid files (default: $DLDRIVER_SERVICES_DIR or .services)")
    p.set_defaults(func=_cmd_services)

    p = sub.add_parser("version", help="print dl-driver's version, generator version and git commit",
                       description="The release, the version of the bytes `generate` writes (a new one "
                                   "regenerates datasets) and the git commit of the source, if any.")
    p.add_argument("--json", action="store_true", help="as a JSON object")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("aggregate", help="combine a matrix's runs into tables, plots and release verdicts",
                       description="Collect every summary.json under RESULTS into runs.csv/parquet, per-cell "
                                   "statistics, plots and an HTML report; compare with a baseline.")
    p.add_argument("results", help="the matrix results folder (e.g. results/default)")
    p.add_argument("--out", default=None, help="where tables and plots go (default: RESULTS/report)")
    p.add_argument("--baseline", default=None, help="a baseline table (CSV) to compare each cell with")
    p.add_argument("--tolerance", default="5%", help="allowed regression against the baseline (default 5%%)")
    p.add_argument("--save-baseline", default=None, metavar="FILE",
                   help="save the current per-cell table as a new baseline (e.g. configs/baselines/NAME.csv)")
    p.set_defaults(func=_cmd_aggregate)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Options and positionals in any order, as users type them (`run CFG -o DIR train.epochs=1`):
    argparse takes the overrides before the first option; those after it join them, in order."""
    args, extra = parser.parse_known_args(argv)
    if extra and (not hasattr(args, "overrides") or any(e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    return args


def main(argv=None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        return args.func(args)
    except DlDriverError as err:
        for line in str(err).splitlines():
            print(f"error: {redact_text(line)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception:  # a bug: its traceback is for the report, with any credential in it masked
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
