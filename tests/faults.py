"""Helpers of the fault-injection tests: the command line in a fresh process, what a fault must look
like from outside (an exit code, one `error:` line naming the place, never a traceback), and a tiny
tmpfs that can be filled or made read-only for real (chmod cannot stop root, who runs the tests)."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

from dldriver.cli import main

ROOT = Path(__file__).resolve().parents[1]
DLDRIVER = [sys.executable, "-m", "dldriver.cli"]


def dldriver(*args, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    """`dldriver ARGS` as a user runs it; `env` entries are added to this environment (None removes)."""
    full = dict(os.environ, PYTHONPATH=str(ROOT))
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run([*DLDRIVER, *map(str, args)], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout)


def in_process(*args) -> subprocess.CompletedProcess:
    """`dldriver ARGS` through main() in this process (faster where no environment or folder of its own
    is needed); what a user would see lands in stdout/stderr alike, a traceback included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
    return subprocess.CompletedProcess(["dldriver", "-", *map(str, args)], code, out.getvalue(), err.getvalue())


def refused(result: subprocess.CompletedProcess, *names: str, code: int | None = None) -> str:
    """Assert a refusal: non-zero exit (`code` if given), no traceback, one `error:` line naming every
    one of `names`; returns that line."""
    assert result.returncode != 0, result.stdout + result.stderr
    if code is not None:
        assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for name in names:
        assert name in errors[0], errors[0]
    return errors[0]


def tree(folder: Path) -> dict:
    """{relative path: bytes} of every file under `folder`: what is left on storage."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def mount_tmpfs(folder: Path, options: str) -> None:
    import pytest

    folder.mkdir(exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        pytest.fail(f"these tests mount a tmpfs (root, CAP_SYS_ADMIN): {mount.stderr.strip()}")


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Write into `folder` until its file system is full."""
    try:
        with open(folder / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:
        pass
