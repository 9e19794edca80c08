"""Whether a run's results folder can be written, asked before the run and answered in one line after.

A read-only or full file system would otherwise surface as an OSError from deep inside the writers, after
the whole run had been spent. Before: the nearest existing folder on the way to the results folder must
be writable and hold MIN_FREE_BYTES free. After: an OSError of writing the results (read-only, full,
permission, quota) becomes one DlDriverError naming the folder.
"""
from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from dldriver.errors import DlDriverError
from dldriver.outputs import existing_ancestor

MIN_FREE_BYTES = 1 << 20    # a run folder of summary and per-rank files; the per-step lists of a long run
                            # can exceed it, which the write then reports
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def check_results_room(out) -> None:
    """Refuse, naming the folder, a results folder that cannot be created or has no room."""
    out = Path(out)
    base = existing_ancestor(out.parent if not out.exists() else out)
    if not base.is_dir():
        return  # a file in the way: the folder writer names it
    if not os.access(base, os.W_OK | os.X_OK):
        how = "is on a read-only file system" if _read_only(base) else "is not writable by this user"
        raise DlDriverError(f"{out}: cannot write the results folder: {base} {how}; choose another with -o")
    free = shutil.disk_usage(base).free
    if free < MIN_FREE_BYTES:
        raise DlDriverError(f"{out}: cannot write the results folder: the file system of {base} has "
                            f"{free // 1024} KiB free (a run folder needs about {MIN_FREE_BYTES // 1024} KiB); "
                            "free some space or choose another folder with -o")


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


@contextmanager
def results_write_errors(out):
    """Inside it, an OSError of a full, read-only or forbidden file system is one line naming `out`."""
    try:
        yield
    except OSError as err:
        if err.errno not in _NO_ROOM or not _of_results(err, Path(out)):
            raise
        where = f" ({err.filename})" if err.filename else ""
        raise DlDriverError(f"{out}: cannot write the results folder: {os.strerror(err.errno)}{where}; "
                            "free some space or choose another folder with -o") from None


def _of_results(err: OSError, out: Path) -> bool:
    """Whether the failed call was on the results folder (its staged copy `out.partial-PID`, or a folder
    on the way to it), or a write of no named file on a full file system."""
    if err.filename is None:
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    failed, target = str(Path(os.fsdecode(err.filename)).absolute()), str(out.absolute())
    return failed.startswith(target) or target.startswith(failed.rstrip("/") + "/")
