"""Where a workload's dataset and checkpoints live, as one normalised URI each.

A folder may be a bare path or carry its own scheme (file://, direct://, s3://bucket/prefix,
az://container/prefix). DLIO's own form, storage.storage_type + storage.storage_root, maps onto the same
URIs: for object stores storage_root is the bucket (container) and the folder is the prefix; for local
files storage_root is a directory the folder is joined to, as DLIO joins them. Relative local paths are
resolved against the current working directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from dldriver.errors import ConfigError
from dldriver.uri import (SCHEME_OF_STORAGE, SCHEMES, is_local, normal_prefix, object_uri, root_and_prefix,
                          scheme_problem, split_uri)

Problem = tuple[str, str]


@dataclass(frozen=True)
class Locations:
    """Where a workload's dataset and checkpoints live, resolved once, with DLIO's storage_options."""

    dataset: str
    checkpoint: str
    options: dict


def locations(workload) -> Locations:
    """Both roots as normalised URIs (`file:///abs`, `direct:///abs`, `s3://bucket/prefix`,
    `az://container/prefix`) and the storage options; a ConfigError naming the first bad key."""
    dataset, checkpoint = (_raise_or(found) for found in _both(workload))
    return Locations(dataset, checkpoint, storage_options(workload))


def dataset_uri(workload) -> str:
    """The dataset root, for a command that needs only it (generate, verify)."""
    return locations(workload).dataset


def checkpoint_uri(workload) -> str:
    """The checkpoint root, for a caller that needs only it."""
    return locations(workload).checkpoint


def storage_options(workload) -> dict:
    """DLIO's storage.storage_options (credentials, endpoint, region...) as a fresh dict."""
    return dict(workload.storage.storage_options or {})


def storage_problems(workload) -> list[Problem]:
    """Every reason the dataset or checkpoint location cannot be resolved, for the config checker."""
    problems = [p for p in _both(workload) if isinstance(p, tuple)]
    return list(dict.fromkeys(problems))  # a bad storage_type would otherwise be named twice


def _both(workload) -> list:
    """The dataset's and the checkpoints' root, each a URI or a (key path, problem) tuple."""
    return [_resolve(workload, workload.dataset.data_folder, "dataset.data_folder"),
            _resolve(workload, workload.checkpoint.checkpoint_folder, "checkpoint.checkpoint_folder")]


def _raise_or(result):
    if isinstance(result, tuple):
        raise ConfigError(f"{result[0]}: {result[1]}")
    return result


def _resolve(workload, folder: str, key: str):
    """A URI string, or a (key path, problem) tuple."""
    storage_type = workload.storage.storage_type
    if storage_type not in SCHEME_OF_STORAGE:
        return ("storage.storage_type",
                f"{storage_type} has no dl-driver backend; use one of {', '.join(SCHEME_OF_STORAGE)}")
    scheme, rest = split_uri(folder)
    if scheme is None:
        return _from_storage(workload, folder, SCHEME_OF_STORAGE[storage_type])
    problem = scheme_problem(scheme, folder)
    if problem:
        return (key, problem)
    # The default local_fs defers to the folder's scheme; any other storage_type must agree with it.
    if storage_type != "local_fs" and SCHEME_OF_STORAGE[storage_type] != scheme:
        return (key, f"{scheme}:// does not match storage.storage_type {storage_type}")
    if is_local(scheme):
        return f"{scheme}://{_absolute(rest)}"
    return _object_uri(scheme, rest, key, folder)


def _from_storage(workload, folder: str, scheme: str):
    root = workload.storage.storage_root
    if is_local(scheme):
        return f"{scheme}://{_absolute(os.path.join(root, folder))}"
    root_scheme, root_rest = split_uri(root)
    bucket = (root_rest if root_scheme == scheme else root).strip("/")
    if bucket in ("", "."):
        return ("storage.storage_root", f"must name the {SCHEMES[scheme].root} for storage.storage_type "
                                        f"{workload.storage.storage_type}, got {root!r}")
    problem = SCHEMES[scheme].root_problem(bucket)
    if problem:
        return ("storage.storage_root", problem)
    return object_uri(scheme, bucket, normal_prefix(folder))


def _object_uri(scheme: str, rest: str, key: str, folder: str):
    bucket, prefix = root_and_prefix(rest)
    if not bucket:
        return (key, f"{folder!r} names no {SCHEMES[scheme].root}")
    problem = SCHEMES[scheme].root_problem(bucket)
    if problem:
        return (key, f"{folder!r}: {problem}")
    return object_uri(scheme, bucket, prefix)


def _absolute(path: str) -> str:
    return os.path.abspath(path or ".")
