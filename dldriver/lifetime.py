"""Child processes that end with their parent: a parent killed with SIGKILL runs no cleanup of its own,
so its workers must notice by themselves, or they go on writing files that no manifest records."""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux), and end now if it already has
    (it may have died between the fork and the prctl). Elsewhere `parent_gone` is the only guard."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if parent_gone(parent):
        os._exit(1)


def parent_gone(parent: int) -> bool:
    """Whether the process that started this one has died (this one was then handed to another)."""
    return os.getppid() != parent
