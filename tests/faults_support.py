"""Helpers (no tests) for the fault-injection modules: the command line in a fresh process, its error
lines, and a tiny tmpfs that can be filled or made read-only for real (chmod cannot stop root)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def dldriver(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """`dldriver ARGS` in a fresh process; fails the test on any traceback in its stderr."""
    done = subprocess.run([sys.executable, "-m", "dldriver.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def mount_tmpfs(folder, options: str) -> None:
    folder.mkdir(exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        pytest.fail(f"these tests mount a tmpfs (root, CAP_SYS_ADMIN): {mount.stderr.strip()}")


def unmount(folder) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder) -> None:
    """Write into `folder` until its file system is full."""
    try:
        with open(folder / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:
        pass
