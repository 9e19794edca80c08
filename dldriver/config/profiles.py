"""Framework profiles: `pytorch_config`, `tensorflow_config`, `jax_config` (or the nested
`framework_profiles: {pytorch, tensorflow, jax}` form), and how they resolve against DLIO's keys.

A profile key left out (None) falls back to the DLIO key that says the same thing (batch_size ->
reader.batch_size, num_workers -> reader.read_threads, ...) or to the framework loader's own default, so
`resolve_profile` gives every key a value and names where it came from. The same resolution feeds the
public API (dldriver.frameworks) and `dldriver run`'s loaders (`apply_profile`), so an emulation and a
real training run of one config read the data the same way.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

from dldriver.config.spelling import as_written

RETURN_TYPES = ("tensor", "bytes", "reader")
AUTOTUNE = -1


def prefetch_factor(prefetch_size: int, read_threads: int) -> int:
    """Batches in flight per worker, derived from prefetch_size as DLIO derives torch's prefetch_factor:
    ceil(prefetch_size / read_threads), and 2 (torch's default) when prefetch_size is 0."""
    if prefetch_size <= 0:
        return 2
    return max(1, math.ceil(prefetch_size / max(1, read_threads)))


@dataclass
class PyTorchProfile:
    batch_size: Optional[int] = None
    num_workers: Optional[int] = None
    shuffle: Optional[bool] = None
    seed: Optional[int] = None
    pin_memory: Optional[bool] = None
    drop_last: Optional[bool] = None
    prefetch_factor: Optional[int] = None
    persistent_workers: Optional[bool] = None
    return_type: Optional[str] = None
    distributed: Optional[bool] = None


@dataclass
class TensorFlowProfile:
    batch_size: Optional[int] = None
    shuffle_buffer_size: Optional[int] = None
    seed: Optional[int] = None
    num_parallel_calls: Optional[int] = None
    prefetch_buffer_size: Optional[int] = None
    deterministic: Optional[bool] = None
    drop_remainder: Optional[bool] = None
    reshuffle_each_iteration: Optional[bool] = None
    writable: Optional[bool] = None


@dataclass
class JaxProfile:
    seed: Optional[int] = None
    writable: Optional[bool] = None
    batch_size: Optional[int] = None
    prefetch_buffer_size: Optional[int] = None


# framework name (as reader.data_loader and the API say it) -> (top-level key, profile class)
PROFILES = {
    "pytorch": ("pytorch_config", PyTorchProfile),
    "tensorflow": ("tensorflow_config", TensorFlowProfile),
    "jax": ("jax_config", JaxProfile),
}
NESTED = "framework_profiles"

PROFILE_ENUMS = {"pytorch_config.return_type": RETURN_TYPES}


def _optional_at_least(low):
    return lambda v: v is None or v >= low, f"must be >= {low}"


PROFILE_RANGES = {
    "pytorch_config.batch_size": _optional_at_least(1),
    "pytorch_config.num_workers": _optional_at_least(0),
    "pytorch_config.seed": _optional_at_least(0),
    "pytorch_config.prefetch_factor": _optional_at_least(1),
    "tensorflow_config.batch_size": _optional_at_least(1),
    "tensorflow_config.shuffle_buffer_size": _optional_at_least(0),
    "tensorflow_config.seed": _optional_at_least(0),
    "tensorflow_config.num_parallel_calls": (lambda v: v is None or v == AUTOTUNE or v >= 1,
                                             "must be -1 (AUTOTUNE) or >= 1"),
    "tensorflow_config.prefetch_buffer_size": (lambda v: v is None or v >= AUTOTUNE,
                                               "must be -1 (AUTOTUNE), 0 (none) or >= 1"),
    "jax_config.seed": _optional_at_least(0),
    "jax_config.batch_size": _optional_at_least(1),
    "jax_config.prefetch_buffer_size": _optional_at_least(0),
}


def fold_framework_profiles(doc: dict, origin: dict) -> list[tuple[str, str]]:
    """Move `framework_profiles.{pytorch,tensorflow,jax}` to the top-level `*_config` keys in place.

    origin records the spelling the user wrote, so messages name `framework_profiles.pytorch.x`.
    """
    if NESTED not in doc:
        return []
    nested = doc.pop(NESTED)
    if nested is None:
        return []
    if not isinstance(nested, dict):
        return [(NESTED, "expected a mapping with pytorch, tensorflow and/or jax")]
    both = [PROFILES[name][0] for name in PROFILES if PROFILES[name][0] in doc]
    if both:
        return [(NESTED, f"give the profiles either under {NESTED} or as top-level {', '.join(both)}, "
                         "not both")]
    problems = []
    for name, value in nested.items():
        if name not in PROFILES:
            problems.append((f"{NESTED}.{name}", f"unknown framework; known: {', '.join(PROFILES)}"))
            continue
        key = PROFILES[name][0]
        doc[key] = value
        origin[key] = f"{NESTED}.{name}"
    return problems


@dataclass(frozen=True)
class ResolvedProfile:
    """Every key of one framework's profile with its value and where it came from: the file and the
    profile key as written there (`w.yaml: framework_profiles.pytorch.batch_size`), the override that set
    it (`override pytorch_config.batch_size`), the DLIO key it falls back to (`reader.batch_size`), or
    `default`."""

    framework: str
    values: dict
    origins: dict = field(default_factory=dict)

    def __getattr__(self, name):
        if name.startswith("_") or name in ("values", "origins", "framework"):
            raise AttributeError(name)  # while unpickling, before the fields are set
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        return {key: {"value": self.values[key], "from": self.origins[key]} for key in self.values}


def _shuffled(reader) -> bool:
    return reader.file_shuffle != "off" or reader.sample_shuffle != "off"


def _fallbacks(workload, framework: str) -> dict:
    """key -> (value, origin) when the profile leaves the key out."""
    rd, tr = workload.reader, workload.train
    common = {"batch_size": (rd.batch_size, "reader.batch_size"), "seed": (tr.seed, "train.seed")}
    if framework == "pytorch":
        return common | {
            "num_workers": (rd.read_threads, "reader.read_threads"),
            "shuffle": (_shuffled(rd), "reader.file_shuffle/sample_shuffle"),
            "pin_memory": (rd.pin_memory, "reader.pin_memory"),
            "drop_last": (True, "default"),
            "prefetch_factor": (prefetch_factor(rd.prefetch_size, rd.read_threads),
                                "reader.prefetch_size/read_threads"),
            "persistent_workers": (True, "default"),
            "return_type": ("tensor", "default"),
            "distributed": (True, "default"),
        }
    if framework == "tensorflow":
        return common | {
            "shuffle_buffer_size": (rd.shuffle_size if rd.sample_shuffle != "off" else 0,
                                    "reader.shuffle_size/sample_shuffle"),
            "num_parallel_calls": (max(1, rd.read_threads), "reader.read_threads"),
            "prefetch_buffer_size": (rd.prefetch_size, "reader.prefetch_size"),
            "deterministic": (True, "default"),
            "drop_remainder": (True, "default"),
            "reshuffle_each_iteration": (True, "default"),
            "writable": (False, "default"),
        }
    return common | {
        "writable": (False, "default"),
        "prefetch_buffer_size": (max(1, rd.prefetch_size), "reader.prefetch_size"),
    }


def given_at(workload, path: str) -> str:
    """Where the value of key `path` (HEAD spelling) was given: `override <key as written>` when an
    override set it, else `<file>: <key as written>` (the key alone when the workload has no source)."""
    written = as_written(path, workload.spellings)
    if any(written == o or written.startswith(o + ".") for o in workload.overridden):
        return f"override {written}"
    return f"{workload.source}: {written}" if workload.source else written


def resolve_profile(workload, framework: str) -> ResolvedProfile:
    """The profile of `framework` (pytorch, tensorflow, jax) with every key filled."""
    key, _ = PROFILES[framework]
    profile = getattr(workload, key)
    values, origins = {}, {}
    for name, (fallback, where) in _fallbacks(workload, framework).items():
        given = getattr(profile, name)
        values[name], origins[name] = ((fallback, where) if given is None
                                       else (given, given_at(workload, f"{key}.{name}")))
    return ResolvedProfile(framework, values, origins)


def apply_profile(workload):
    """The workload as `dldriver run` runs it: the loader's profile written onto the DLIO keys it
    overrides (batch size, workers, prefetch, pin_memory). Unchanged for the native loader."""
    framework = workload.reader.data_loader
    if framework not in PROFILES:
        return workload
    given = getattr(workload, PROFILES[framework][0])
    changes = {}
    if given.batch_size is not None:
        changes["batch_size"] = given.batch_size
    if framework == "pytorch":
        if given.num_workers is not None:
            changes["read_threads"] = given.num_workers
        if given.pin_memory is not None:
            changes["pin_memory"] = given.pin_memory
        if given.prefetch_factor is not None:
            changes["prefetch_size"] = given.prefetch_factor * max(1, changes.get(
                "read_threads", workload.reader.read_threads))
    elif framework == "tensorflow":
        if given.num_parallel_calls is not None and given.num_parallel_calls > 0:
            changes["read_threads"] = given.num_parallel_calls
        if given.prefetch_buffer_size is not None and given.prefetch_buffer_size >= 0:
            changes["prefetch_size"] = given.prefetch_buffer_size
    elif given.prefetch_buffer_size is not None:
        changes["prefetch_size"] = given.prefetch_buffer_size
    if not changes:
        return workload
    return dataclasses.replace(workload, reader=dataclasses.replace(workload.reader, **changes))


def profile_report(workload) -> dict:
    """framework -> {key: {value, from}} for `dldriver validate`."""
    return {name: resolve_profile(workload, name).to_dict() for name in PROFILES}
