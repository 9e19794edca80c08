"""What this dl-driver is: its release, the version of the bytes it generates, and its git commit."""
from __future__ import annotations

import subprocess
from importlib.metadata import version
from pathlib import Path

from dldriver.config.generations import GENERATIONS
from dldriver.dataset.manifest import GENERATOR_VERSION

SOURCE = Path(__file__).resolve().parents[1]


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, or None outside a git checkout."""
    if not (SOURCE / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(SOURCE), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):  # no git on PATH, or it hangs
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def version_info() -> dict:
    """`dldriver version --json`: what the workflow keys its datasets and results on, and the DLIO
    generations `--dlio-defaults` knows (which the workflow checks its `dlio_defaults:` keys against)."""
    return {"version": version("dldriver"), "generator_version": GENERATOR_VERSION, "git_commit": git_commit(),
            "dlio_defaults": list(GENERATIONS)}
