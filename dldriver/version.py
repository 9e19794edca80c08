"""What this dl-driver is: its release, the version of the bytes it generates, and its git commit."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
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


def package_version(name: str | None) -> str:
    """The version of a package a run used: the imported module's own `__version__` (a framework is
    imported by then, whatever its distribution is called: tensorflow-cpu), else the installed
    distribution's; "unknown" when neither is found, "none" when there is no package (None)."""
    if name is None:
        return "none"
    module = sys.modules.get(name)
    if module is not None and isinstance(getattr(module, "__version__", None), str):
        return module.__version__
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def version_info() -> dict:
    """`dldriver version --json`: what the workflow keys its datasets and results on, and the DLIO
    generations `--dlio-defaults` knows (which the workflow checks its `dlio_defaults:` keys against)."""
    return {"version": metadata.version("dldriver"), "generator_version": GENERATOR_VERSION,
            "git_commit": git_commit(), "dlio_defaults": list(GENERATIONS)}
