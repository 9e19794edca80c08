"""Optional dependencies: which extra of `pip install dldriver[...]` brings each framework and SDK.

Each is imported only where it is needed (a loader, a storage backend, the workflow). `require`, called
there first, checks that it is installed (without importing it: an SDK's import is left to the code that
makes its client) or says in one line which extra to install.
"""
from __future__ import annotations

import importlib.util

from dldriver.errors import DlDriverError

# module -> the extra that installs it (pyproject.toml's [project.optional-dependencies])
EXTRAS = {
    "torch": "pytorch",
    "tensorflow": "tensorflow",
    "jax": "jax",
    "boto3": "s3",
    "azure.storage.blob": "azure",
    "snakemake": "workflow",
}


class MissingExtraError(DlDriverError):
    """A framework or SDK that this run needs is not installed."""


def require(module: str, extra: str | None = None) -> None:
    """Raise MissingExtraError, naming the extra that installs it, when `module` is not installed."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (azure of azure.storage.blob) is missing
        found = False
    if not found:
        extra = extra or EXTRAS[module]
        raise MissingExtraError(f"{module} is not installed; it comes with the [{extra}] extra: "
                                f"pip install 'dldriver[{extra}]' (or 'dldriver[all]')")
