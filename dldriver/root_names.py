"""The naming rules of S3 buckets and Azure containers, so that a bad name is refused by `validate`
rather than by the service (or by an SDK's regular expression) in the middle of a generation.

S3 (general purpose buckets): 3 to 63 characters of lowercase letters, digits, '.' and '-'; begins and
ends with a letter or digit; no '..'; not an IPv4 address; not starting with xn--, sthree- or
amzn-s3-demo-; not ending with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3.
Azure containers: 3 to 63 characters of lowercase letters, digits and '-'; begins with a letter or digit;
every '-' between letters or digits; or the special container $root.
"""
from __future__ import annotations

import re

_S3_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
_S3_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_AZURE_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_AZURE_SPECIAL = ("$root",)


def s3_bucket_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name, or None."""
    if not 3 <= len(name) <= 63:
        return f"S3 bucket name {name!r} must be 3 to 63 characters long"
    if not _S3_CHARS.fullmatch(name):
        return (f"S3 bucket name {name!r} may hold only lowercase letters, digits, '.' and '-', and must "
                "begin and end with a letter or digit")
    if ".." in name or _IPV4.fullmatch(name):
        return f"S3 bucket name {name!r} must not hold '..' or be an IP address"
    if name.startswith(_S3_PREFIXES) or name.endswith(_S3_SUFFIXES):
        return f"S3 bucket name {name!r} uses a prefix or suffix S3 reserves"
    return None


def azure_container_problem(name: str) -> str | None:
    """Why `name` is not a valid Azure container name, or None."""
    if name in _AZURE_SPECIAL:
        return None
    if not 3 <= len(name) <= 63:
        return f"Azure container name {name!r} must be 3 to 63 characters long"
    if not _AZURE_NAME.fullmatch(name):
        return (f"Azure container name {name!r} may hold only lowercase letters, digits and single '-' "
                "between them, beginning with a letter or digit")
    return None
