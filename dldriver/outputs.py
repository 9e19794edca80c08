"""Which folders dl-driver may write into or replace, so that no command deletes what is not its own.

A run folder (`dldriver run|checkpoint -o DIR`) and a report folder (`dldriver aggregate --out DIR`)
carry a marker file written when they are made. A command replaces or writes into an existing folder
only when it is empty, carries that command's marker, or holds nothing but the files that command
writes (a folder from a version before the markers); anything else (a folder of the user's, $HOME, the
dataset's folder, a regular file, the working folder or one above it) is refused with one line before
any work starts. Datasets and checkpoints are recognised by their own top-level names instead.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from dldriver.errors import DlDriverError
from dldriver.uri import local_path

RUN_MARKER = ".dldriver-run"
REPORT_MARKER = ".dldriver-report"
# What a run folder holds (and the workflow's cell script adds), and what aggregate and the workflow's
# verdict step write into a report folder: folders of versions before the markers hold only these.
RUN_NAMES = re.compile(r"^(summary\.json|provenance\.json|[0-9]+_output\.json|[0-9]+_per_epoch_stats\.json|dlio\.log|slurm\.json)$")
REPORT_NAMES = re.compile(r"^(runs\.csv|runs\.parquet|cells\.csv|cells\.md|report\.html|plots|verdicts\.csv"
                          r"|verdicts\.md|verdict\.ok)$")
# Top-level names a dataset folder holds (DLIO's split folders, our manifest and index folders, and
# the storage's temporary names of writes in progress).
DATASET_NAMES = re.compile(r"^(train|valid|index|manifest\.json)$|\.dldriver-tmp-")
# Top-level names of a checkpoint folder: DLIO's global_epoch{E}_step{S} folders, and DLIO 2.0.0's files
# (model-, optimizer-, layer-{l}-{E}-{S}-{rank} with the mechanism's endings, TensorFlow's `checkpoint`).
CHECKPOINT_NAMES = re.compile(r"^global_epoch[0-9]+_step[0-9]+$|\.dldriver-tmp-|^checkpoint$"
                              r"|^(model|optimizer|layer-[0-9]+)-[0-9]+-[0-9]+-[0-9]+\.(pt|pb-1\.index"
                              r"|pb-1\.data-00000-of-00001)$")


class OutputFolderError(DlDriverError):
    """A folder a command would write into or replace is not one of dl-driver's own."""


def _refuse_unsafe(path: Path, what: str, option: str) -> Path:
    resolved = path.resolve()
    if resolved.exists() and not resolved.is_dir():
        raise OutputFolderError(f"{option} {path}: is an existing file, not a {what} folder; "
                                "name a new folder")
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputFolderError(f"{option} {path}: is the working folder or one above it; "
                                f"name a new folder for the {what}")
    home = Path(os.path.expanduser("~")).resolve()
    if resolved == home or resolved == Path(resolved.anchor):
        raise OutputFolderError(f"{option} {path}: is the home or root folder; name a new folder for the {what}")
    return resolved


def check_replaceable(path, marker: str, what: str, option: str, own_names: re.Pattern) -> Path:
    """`path` resolved, if a command may replace or fill it: absent, empty, carrying `marker`, or
    holding only `own_names` (what that command writes: a folder of a version before the markers).
    Otherwise one line naming the folder and why."""
    path = Path(path)
    resolved = _refuse_unsafe(path, what, option)
    if (resolved.is_dir() and not (resolved / marker).is_file()
            and any(not own_names.search(p.name) for p in resolved.iterdir())):
        raise OutputFolderError(f"{option} {path}: the folder holds files that are not an earlier dl-driver "
                                f"{what} (no {marker} marker); nothing was changed. Name a new or empty folder")
    return resolved


def write_marker(folder, marker: str, what: str) -> None:
    """Mark `folder` as dl-driver's own, so that a later command may replace it."""
    text = json.dumps({"tool": "dl-driver", "folder": what}) + "\n"
    (Path(folder) / marker).write_text(text)


def check_run_folder(path) -> Path:
    """The run folder `path` resolved, if a run may replace it (see check_replaceable)."""
    return check_replaceable(path, RUN_MARKER, "run", "--output", RUN_NAMES)


def check_report_folder(path) -> Path:
    """The aggregate report folder resolved, if aggregate may write into it."""
    return check_replaceable(path, REPORT_MARKER, "report", "--out", REPORT_NAMES)


def _foreign_names(folder: Path, allowed: re.Pattern) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not allowed.search(p.name))


def check_local_folder(uri: str, allowed: re.Pattern, key: str, what: str) -> None:
    """A local dataset or checkpoint folder (file:// or direct:// `uri`) may hold only its own names
    (`allowed`) at the top; object stores are not checked (their writes touch only the named keys)."""
    path = local_path(uri)
    if path is None:
        return
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{key}: {folder} is an existing file, not a {what} folder")
    if not folder.is_dir():
        return
    foreign = _foreign_names(folder, allowed)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputFolderError(f"{key}: {folder} holds files that are not a dl-driver {what} ({shown}); "
                                f"nothing was written. Name a new or empty folder")


def check_dataset_folder(uri: str) -> None:
    """generate writes only into an absent, empty or dl-driver/DLIO dataset folder."""
    check_local_folder(uri, DATASET_NAMES, "dataset.data_folder", "dataset")


def check_checkpoint_folder(uri: str) -> None:
    """Checkpoints are written only into an absent, empty or checkpoint-only folder."""
    check_local_folder(uri, CHECKPOINT_NAMES, "checkpoint.checkpoint_folder", "checkpoint folder")


def existing_ancestor(path) -> Path:
    """`path` itself if it exists, else its nearest ancestor that does: the file system a folder still to be
    made will take its space from."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
