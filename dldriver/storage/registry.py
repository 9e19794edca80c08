"""Map a storage URI to its backend, as fsspec does: the scheme picks the module.

    /abs/path, rel/path, file:///abs/path   -> FileStorage
    direct:///abs/path                      -> DirectStorage (O_DIRECT reads)
    s3://bucket[/prefix]                    -> S3Storage
    az://container[/prefix]                 -> AzureStorage

Backends are imported only when used, so a file:// run never loads boto3 or the Azure SDK.
"""
from __future__ import annotations

import os

from dldriver.errors import StorageError
from dldriver.extras import require
from dldriver.storage.base import Storage

SCHEMES = ("file", "direct", "s3", "az")


def split_uri(uri: str) -> tuple[str, str]:
    """(scheme, rest): a bare path is ("file", path); "s3://b/p" is ("s3", "b/p")."""
    if "://" not in uri:
        return "file", uri
    scheme, rest = uri.split("://", 1)
    return scheme.lower(), rest


def _local_path(uri: str, rest: str) -> str:
    if not rest:
        raise StorageError(f"{uri}: a path is required")
    # file:///abs keeps its leading slash; file://rel/path is taken relative to the working folder.
    return os.path.abspath(rest)


def _bucket_and_prefix(uri: str, rest: str) -> tuple[str, str]:
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StorageError(f"{uri}: a bucket or container name is required")
    return bucket, prefix.strip("/")


def open_storage(uri: str, options: dict | None = None, threads: int = 8) -> Storage:
    """The storage rooted at `uri`. `options` are DLIO's storage_options (credentials, endpoint, ...);
    `threads` sizes the connection pool of object stores to the readers that will share it."""
    scheme, rest = split_uri(str(uri))
    if scheme == "file":
        from dldriver.storage.file import FileStorage
        return FileStorage(_local_path(uri, rest))
    if scheme == "direct":
        from dldriver.storage.direct import DirectStorage
        return DirectStorage(_local_path(uri, rest))
    if scheme == "s3":
        require("boto3")
        from dldriver.storage.s3 import S3Storage
        return S3Storage(*_bucket_and_prefix(uri, rest), options=options, threads=threads)
    if scheme == "az":
        require("azure.storage.blob")
        from dldriver.storage.azure import AzureStorage
        return AzureStorage(*_bucket_and_prefix(uri, rest), options=options, threads=threads)
    raise StorageError(f"{uri}: unknown storage scheme {scheme!r}; known: {', '.join(SCHEMES)} "
                       "(or a plain path)")
