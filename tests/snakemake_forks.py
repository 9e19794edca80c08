"""Many independent Snakemake command lines for the price of one start-up.

Snakemake's import takes about 2 CPU-seconds, more than a dry run or a rejected config then costs.
`run_forked` starts one Python that imports Snakemake's command line once, then forks a child per
command line, a few at a time: each child runs `snakemake.cli.main(ARGS)`, the entry point of the
`snakemake` command, with its stdout and stderr in files of its own, and exits with its exit code.
Only for calls that share nothing (dry runs, lint, rejected configs): they run side by side.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The forking parent: never the test process itself (torch, TF and JAX threads do not survive a fork).
_PARENT = r"""
import json, os, sys
from snakemake.cli import main

calls, width = json.load(open(sys.argv[1])), int(sys.argv[2])
running, codes = {}, {}


def child(out, err, args):
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.argv = ["snakemake", *args]
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, (int, type(None))):
            print(exit_.code, file=sys.stderr)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def reap():
    pid, status = os.wait()
    if pid in running:
        codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)


for name, (out, err, args) in calls.items():
    while len(running) >= width:
        reap()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(out, err, args)
    running[pid] = name
while running:
    reap()
json.dump(codes, open(sys.argv[3], "w"))
"""


def run_forked(calls: dict[str, list[str]], folder: Path, cwd: Path, timeout: float = 900,
               width: int | None = None) -> dict[str, subprocess.CompletedProcess]:
    """{name: the CompletedProcess of `snakemake ARGS`} for {name: ARGS}, run in `cwd`; `folder` holds
    their output files. `width` calls at a time (default: one per core, plus one)."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = {name: (str(folder / f"{i}.out"), str(folder / f"{i}.err"), list(map(str, args)))
            for i, (name, args) in enumerate(calls.items())}
    (folder / "calls.json").write_text(json.dumps(plan))
    width = width or (os.cpu_count() or 1) + 1
    parent = subprocess.run([sys.executable, "-c", _PARENT, str(folder / "calls.json"), str(width),
                             str(folder / "codes.json")], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    assert parent.returncode == 0, parent.stdout + parent.stderr
    codes = json.loads((folder / "codes.json").read_text())
    return {name: subprocess.CompletedProcess(["snakemake", *args], codes[name], Path(out).read_text(),
                                              Path(err).read_text())
            for name, (out, err, args) in plan.items()}
