"""manifest.json at a dataset's root: what `dldriver generate` wrote, so later runs can check it.

It holds the dataset-relevant config keys and their hash (`dataset_hash`), the format, the generator version, the time,
and per file its key, size and checksum (data files also their split, index, samples and record bytes).
The checksum is a CRC-32C, under the key `crc32c` (8 hex digits): it finds damaged or altered files as
surely as a cryptographic hash would (nobody forges a benchmark's random bytes) at a twentieth of the
CPU, which generation would otherwise spend beside the storage it measures. Entries of older manifests
hold a `sha256` instead; `verify` checks each entry with the algorithm it names.
`generate` and `verify` compare the whole hash; a run compares only the signature (every key but the file
counts), because it may read the first N files of a larger dataset, as DLIO's test_subset does.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import crc32c

from dldriver.errors import DatasetError
from dldriver.storage.base import MissingObjectError

MANIFEST_KEY = "manifest.json"
# Bump when the bytes written for a given config change, so older datasets are regenerated, not trusted.
GENERATOR_VERSION = 3
# Keys that change no byte of the dataset (where it lives, what happens after a run, DLIO's unused keys).
_NOT_CONTENT = ("data_folder", "keep_files", "generation_buffer_size", "enable_chunking", "chunk_size",
                "record_length_bytes_resize")
# What a run may ask less of than was generated (DLIO reads the first N files and warns about the rest).
COUNT_KEYS = ("num_files_train", "num_files_eval")
_HASH_BLOCK = 64 << 20


def dataset_config(workload) -> dict:
    """The config keys the dataset's bytes depend on: dataset.* (less _NOT_CONTENT) and train.seed."""
    keys = {k: v for k, v in dataclasses.asdict(workload.dataset).items() if k not in _NOT_CONTENT}
    return {"dataset": keys, "seed": workload.train.seed}


def dataset_hash(workload) -> str:
    """sha256 (16 hex digits) of dataset_config(): which dataset this is. Not the resolved config's
    hash (dldriver.config.config_hash), which changes with every key of the run."""
    canonical = json.dumps(dataset_config(workload), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stored_dataset_hash(manifest: dict) -> str | None:
    """The dataset hash a manifest records (older manifests name it `config_hash`)."""
    return manifest.get("dataset_hash", manifest.get("config_hash"))


def _flat(mapping: dict, prefix: str) -> dict:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def signature(config: dict) -> dict:
    """{key path: value} of a dataset_config() dict less the file counts: what fixes each file's name and
    bytes. Passed through JSON so a workload's values compare equal to a manifest's (tuples, numbers)."""
    flat = _flat(config.get("dataset", {}), "dataset.")
    flat = {k: v for k, v in flat.items() if k.removeprefix("dataset.") not in COUNT_KEYS}
    flat["train.seed"] = config.get("seed")
    return json.loads(json.dumps(flat, default=str))


def dataset_signature(workload) -> dict:
    return signature(dataset_config(workload))


def signature_differences(manifest: dict, workload) -> list[str]:
    """'key: X in the manifest, Y in the config' for each shape-defining key that differs."""
    differences = []
    if manifest.get("generator_version") != GENERATOR_VERSION:
        differences.append(f"generator_version: {manifest.get('generator_version')} in the manifest, "
                           f"this dl-driver writes {GENERATOR_VERSION}")
    stored, wanted = signature(manifest.get("config") or {}), dataset_signature(workload)
    for key in sorted(stored.keys() | wanted.keys()):
        if stored.get(key) != wanted.get(key):
            differences.append(f"{key}: {stored.get(key)!r} in the manifest, {wanted.get(key)!r} in the config")
    return differences


def load_manifest(storage) -> dict | None:
    """The dataset's manifest, or None when it has none."""
    try:
        raw = storage.get(MANIFEST_KEY)
    except MissingObjectError:
        return None
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        damage = f"not JSON ({err})"
    else:
        damage = manifest_damage(manifest)
    if damage is not None:
        raise DatasetError(f"{storage.key_uri(MANIFEST_KEY)}: manifest.json is damaged: {damage}; "
                           "run `dldriver generate --force` to rewrite the dataset")
    return manifest


def manifest_damage(manifest) -> str | None:
    """What makes a parsed manifest unusable (the first thing found, naming the entry), or None."""
    if not isinstance(manifest, dict):
        return f"expected an object, got {type(manifest).__name__}"
    for key in COUNT_KEYS:
        value = manifest.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} is not a file count ({value!r})"
    config = manifest.get("config", {})
    if not isinstance(config, dict):
        return f"config is not an object ({type(config).__name__})"
    if not isinstance(config.get("dataset", {}), dict):
        return f"config.dataset is not an object ({type(config['dataset']).__name__})"
    files = manifest.get("files")
    if not isinstance(files, list):
        return f"files is not a list ({type(files).__name__})"
    for i, entry in enumerate(files):
        where = f"files[{i}]"
        if not isinstance(entry, dict):
            return f"{where} is not an object ({entry!r})"
        if not isinstance(entry.get("key"), str) or not entry["key"]:
            return f"{where} has no key"
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return f"{where} ({entry['key']}) has no size in bytes ({size!r})"
        if "index_of" in entry and not isinstance(entry["index_of"], str):
            return f"{where} ({entry['key']}) has an index_of that is not a key ({entry['index_of']!r})"
    return None


READABLE_UP_TO = 10_000     # files; a bigger manifest is written compact (a million files: 2 s, not 8)


def save_manifest(storage, manifest: dict) -> None:
    indent = 1 if len(manifest["files"]) <= READABLE_UP_TO else None
    storage.put(MANIFEST_KEY, json.dumps(manifest, indent=indent, sort_keys=True).encode(), fsync=True)


# Checksum algorithms by the entry key that holds their hex digest; CHECKSUM is what new entries get.
CHECKSUM = "crc32c"
_HASHERS = {"crc32c": crc32c.CRC32CHash, "sha256": hashlib.sha256}


def new_hasher():
    """An incremental hasher (update, hexdigest) of the algorithm new entries record."""
    return _HASHERS[CHECKSUM]()


def checksum(data) -> dict:
    """{algorithm: hex digest} of `data`, to merge into a manifest entry."""
    return {CHECKSUM: _HASHERS[CHECKSUM](data).hexdigest()}


def _recorded(entry: dict) -> tuple[str, str]:
    """(algorithm, hex digest) that an entry records, whichever manifest version wrote it."""
    for name in _HASHERS:
        if name in entry:
            return name, entry[name]
    raise DatasetError(f"manifest entry {entry['key']!r} holds no checksum; run `dldriver generate --force`")


def stored_digest(storage, key: str, size: int, algorithm: str) -> str:
    """The digest of a stored object, read in bounded pieces."""
    digest = _HASHERS[algorithm]()
    for offset in range(0, size, _HASH_BLOCK):
        digest.update(storage.get_range(key, offset, min(_HASH_BLOCK, size - offset)))
    return digest.hexdigest()


def checksum_problem(storage, entry: dict) -> str | None:
    """Why a stored object of the entry's size holds other bytes than the manifest records, or None.
    (Whether it is there with that size is dldriver.dataset.compare's question, asked first.)"""
    algorithm, recorded = _recorded(entry)
    if stored_digest(storage, entry["key"], entry["size"], algorithm) != recorded:
        return f"{storage.key_uri(entry['key'])}: altered ({algorithm} differs from the manifest)"
    return None
