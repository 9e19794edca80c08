"""Storage URIs: the one table of schemes and the one parser that config, storage and outputs share.

    /abs/path, rel/path, file:///abs/path   local files
    direct:///abs/path                      local files, read with O_DIRECT
    s3://bucket[/prefix]                    S3
    az://container[/prefix]                 Azure Blob Storage

Pure: nothing here touches a file or a store. The backend of each scheme is storage.registry's, the
naming rules of buckets and containers dldriver.root_names'.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Callable

from dldriver.root_names import azure_container_problem, s3_bucket_problem


@dataclass(frozen=True)
class Scheme:
    storage_type: str               # DLIO's storage.storage_type that means this scheme
    root: str | None = None         # what an object store's first path part names; None for a local path
    sdk: str | None = None          # the module its backend talks through (dldriver.extras names its extra)
    sdk_distribution: str | None = None  # ... and the distribution that installs it (for its version)
    root_problem: Callable[[str], str | None] | None = None  # why a root name is refused (root_names)


SCHEMES = {
    "file": Scheme("local_fs"),
    "direct": Scheme("direct"),
    "s3": Scheme("s3", "bucket", "boto3", "boto3", s3_bucket_problem),
    "az": Scheme("azure", "container", "azure.storage.blob", "azure-storage-blob", azure_container_problem),
}
SCHEME_OF_STORAGE = {s.storage_type: name for name, s in SCHEMES.items()}
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)


def split_uri(text: str) -> tuple[str | None, str]:
    """(scheme in lower case, the rest): "s3://b/p" is ("s3", "b/p"); a bare path is (None, path)."""
    match = _URI.match(text)
    return (match.group(1).lower(), match.group(2)) if match else (None, text)


def scheme_problem(scheme: str, uri: str) -> str | None:
    """Why `scheme` (of `uri`) names no backend, or None."""
    if scheme in SCHEMES:
        return None
    known = ", ".join(f"{s}://" for s in SCHEMES)
    return f"unknown URI scheme {scheme}:// in {uri!r}; known schemes: {known} (or a plain path)"


def is_local(scheme: str | None) -> bool:
    """Whether a scheme (None: a bare path) names a local folder."""
    return scheme is None or (scheme in SCHEMES and SCHEMES[scheme].root is None)


def local_path(uri: str) -> str | None:
    """The path of a local URI (file://, direct:// or a bare path), None for any other."""
    scheme, rest = split_uri(uri)
    return rest if is_local(scheme) else None


def normal_prefix(path: str) -> str:
    """A prefix inside a bucket or container without empty, '.' or '..' parts: "a//./c/" is "a/c"."""
    return posixpath.normpath("/" + path).strip("/")


def root_and_prefix(rest: str) -> tuple[str, str]:
    """An object-store URI's rest as (bucket or container, normal prefix): "b/a//c/" is ("b", "a/c")."""
    root, _, prefix = rest.partition("/")
    return root, normal_prefix(prefix)


def object_uri(scheme: str, root: str, prefix: str) -> str:
    return f"{scheme}://{root}/{prefix}" if prefix else f"{scheme}://{root}"
