"""Map a storage URI to its backend, as fsspec's registry does: the scheme picks the module.

    /abs/path, rel/path, file:///abs/path   -> FileStorage
    direct:///abs/path                      -> DirectStorage (O_DIRECT reads)
    s3://bucket[/prefix]                    -> S3Storage
    az://container[/prefix]                 -> AzureStorage

The schemes and their parsing are dldriver.uri's. Backends are imported only when used, so a file:// run
never loads boto3 or the Azure SDK.
"""
from __future__ import annotations

import os

from dldriver.errors import StorageError
from dldriver.extras import require
from dldriver.storage.base import Storage
from dldriver.uri import SCHEMES, root_and_prefix, scheme_problem, split_uri


def _local_path(uri: str, rest: str) -> str:
    if not rest:
        raise StorageError(f"{uri}: a path is required")
    # file:///abs keeps its leading slash; file://rel/path is taken relative to the working folder.
    return os.path.abspath(rest)


def _root_and_prefix(uri: str, scheme: str, rest: str) -> tuple[str, str]:
    root, prefix = root_and_prefix(rest)
    if not root:
        raise StorageError(f"{uri}: a {SCHEMES[scheme].root} name is required")
    return root, prefix


def open_storage(uri: str, options: dict | None = None, threads: int = 8) -> Storage:
    """The storage rooted at `uri`. `options` are DLIO's storage_options (credentials, endpoint, ...);
    `threads` sizes the connection pool of object stores to the readers that will share it."""
    uri = str(uri)
    scheme, rest = split_uri(uri)
    scheme = scheme or "file"
    if scheme == "file":
        from dldriver.storage.file import FileStorage
        return FileStorage(_local_path(uri, rest))
    if scheme == "direct":
        from dldriver.storage.direct import DirectStorage
        return DirectStorage(_local_path(uri, rest))
    if scheme == "s3":
        require(SCHEMES[scheme].sdk)
        from dldriver.storage.s3 import S3Storage
        return S3Storage(*_root_and_prefix(uri, scheme, rest), options=options, threads=threads)
    if scheme == "az":
        require(SCHEMES[scheme].sdk)
        from dldriver.storage.azure import AzureStorage
        return AzureStorage(*_root_and_prefix(uri, scheme, rest), options=options, threads=threads)
    raise StorageError(scheme_problem(scheme, uri))
