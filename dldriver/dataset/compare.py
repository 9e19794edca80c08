"""One answer to "do the stored files match the manifest?", for run start, resume and verify.

`compare(listing, entries)` is pure: `listing` is what the store holds ({key: size}, the size None where
the listing does not tell it), `entries` the manifest entries that should be there. Each caller builds
the listing its way (one listing per prefix on an object store, a stat per file on a file system when
sizes are needed) and says the mismatches in the same words (`Mismatch.message`). Checksums are not a
listing's business: `verify` checks them after the sizes match (dldriver.dataset.manifest.checksum_problem).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional

from dldriver.storage.base import MissingContainerError, MissingObjectError

MISSING, CUT_SHORT, REPLACED, EXTRA, FOREIGN = "missing", "cut short", "replaced", "extra", "foreign"
DATA_PREFIXES = ("train/", "valid/", "index/")   # the folders a dataset's files (and index files) are in


@dataclass(frozen=True)
class Mismatch:
    """One file that is not as the manifest says: `kind` is one of the five above."""

    key: str
    kind: str
    size: Optional[int] = None       # what is stored (cut short, replaced)
    expected: Optional[int] = None   # what the manifest says

    def message(self, key_uri: Callable[[str], str]) -> str:
        where = key_uri(self.key)
        if self.kind == MISSING:
            return f"{where}: missing"
        if self.kind == CUT_SHORT:
            return f"{where}: truncated ({self.size} of {self.expected} bytes)"
        if self.kind == REPLACED:
            return f"{where}: {self.size} bytes, the manifest says {self.expected} (replaced)"
        if self.kind == EXTRA:
            return f"{where}: extra file, not in the manifest"
        return f"{where}: not generated (absent from the manifest)"


def compare(listing: Mapping[str, Optional[int]], entries: Iterable[dict], expected: Iterable[str] = (),
            extras: bool = False) -> list[Mismatch]:
    """The mismatches between what is stored and what should be, in the order found.

    - each entry ({key, size}) absent from `listing` is missing; one whose listed size is smaller is cut
      short, another size replaced (a size None is not checked);
    - each key of `expected` (the files the config asks for) with no entry is foreign to the manifest;
    - with `extras`, each listed key with no entry is extra.
    """
    entries = list(entries)
    found = []
    for entry in entries:
        key, want = entry["key"], entry["size"]
        if key not in listing:
            found.append(Mismatch(key, MISSING, expected=want))
        elif listing[key] is not None and listing[key] != want:
            kind = CUT_SHORT if listing[key] < want else REPLACED
            found.append(Mismatch(key, kind, listing[key], want))
    recorded = {entry["key"] for entry in entries}
    found += [Mismatch(key, FOREIGN) for key in expected if key not in recorded]
    if extras:
        found += [Mismatch(key, EXTRA, size) for key, size in listing.items() if key not in recorded]
    return found


def stat_listing(storage, keys: Iterable[str]) -> dict[str, int]:
    """{key: size} of the keys that exist, by a stat each: the listing of a file system, where sizes
    would otherwise cost the same stat."""
    sizes = {}
    for key in keys:
        try:
            sizes[key] = storage.stat(key)
        except MissingObjectError:
            pass
    return sizes


def data_listing(storage) -> dict:
    """{key: size} under the data prefixes, as one listing each tells them (Storage.listing); empty while
    the bucket or container does not exist yet (the first put creates it, possibly after this ran)."""
    found = {}
    try:
        for prefix in DATA_PREFIXES:
            found.update(storage.listing(prefix))
    except MissingContainerError:
        return {}
    return found


def entry_keys(entries: Iterable[dict]) -> list[str]:
    return [entry["key"] for entry in entries]
