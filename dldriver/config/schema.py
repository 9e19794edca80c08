"""Typed construction of a Workload from plain YAML data: unknown keys, wrong types, unknown enum values.

Every problem is collected as (key path, message); a bad value leaves the field at DLIO's default so the
walk can go on and report the rest of the file.
"""
from __future__ import annotations

import difflib
import functools
import math
import typing
from dataclasses import fields, is_dataclass

import numpy as np

from dldriver.config.model import ENUMS, Workload
from dldriver.config.timespec import TimeSpec, parse_time

Problem = tuple[str, str]

# int64 bounds: every count ends up in numpy or in a file format's header.
INT_LIMIT = 2**63

# Element kinds of list fields: "dim" a positive size, "count" a non-negative size, "str" a name.
LIST_ITEMS = {
    "model.optimization_groups": "count",
    "model.layer_parameters": "count",
    "dataset.record_dims": "dim",
    "dataset.hdf5.chunk_dims": "dim",
    "dataset.hdf5.max_shape": "dim",
    "reader.transformed_record_dims": "dim",
    "profiling.iostat_devices": "str",
}
DTYPE_KEYS = ("dataset.record_element_type", "reader.transformed_record_element_type")
_BAD = object()  # a value with a problem: the field keeps its default


def build_workload(data) -> tuple[Workload, list[Problem]]:
    """Plain data (already in HEAD spellings) -> (Workload, problems)."""
    problems: list[Problem] = []
    return _build(Workload, data, "", problems), problems


def join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def known_paths() -> list[str]:
    """Every leaf key path a workload knows, in declaration order."""
    return _paths(Workload, "")


def _paths(cls, path: str) -> list[str]:
    out = []
    for name, hint in _hints(cls).items():
        inner = _strip_optional(hint)
        sub = join(path, name)
        out += _paths(inner, sub) if is_dataclass(inner) and inner is not TimeSpec else [sub]
    return out


@functools.cache
def _hints(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if not f.metadata.get("internal")}


def _strip_optional(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union else hint


def _build(cls, data, path: str, problems: list[Problem]):
    if data is None and path:
        return cls()  # an empty section (`dataset:` with nothing under it) means all defaults
    if not isinstance(data, dict):
        problems.append((path or "(top level)", f"expected a mapping of keys, got {_show(data)}"))
        return cls()
    hints = _hints(cls)
    values = {}
    for key, value in data.items():
        key_path = join(path, key)
        if key not in hints:
            problems.append((key_path, _unknown(key, list(hints), path)))
            continue
        converted = _convert(hints[key], value, key_path, problems)
        if converted is not _BAD:
            values[key] = converted
    return cls(**values)


def _convert(hint, value, path: str, problems: list[Problem]):
    optional = type(None) in typing.get_args(hint)
    hint = _strip_optional(hint)
    if value is None and optional:
        return None
    if hint is TimeSpec:
        spec, found = parse_time(value, path)
        problems += found
        return _BAD if found else spec
    if is_dataclass(hint):
        return _build(hint, {} if value is None else value, path, problems)
    checker = {bool: _bool, int: _int, float: _float, str: _str, list: _list, dict: _options}[hint]
    problem = checker(value, path)
    if problem:
        problems.append((path, problem))
        return _BAD
    if hint is list and isinstance(value, str):
        value = [value]  # iostat_devices may name one device as a plain string, as in DLIO
    problem = _enum(value, path) or _dtype(value, path)
    if problem:
        problems.append((path, problem))
        return _BAD
    return float(value) if hint is float else value


def _bool(value, path):
    return None if isinstance(value, bool) else f"expected true or false, got {_show(value)}"


def _int(value, path):
    # bool is an int subclass in Python, but `True` for a count is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an integer, got {_show(value)}"
    return None if -INT_LIMIT < value < INT_LIMIT else f"{value} is out of the 64-bit integer range"


def _float(value, path):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {_show(value)}"
    if isinstance(value, int):
        return _int(value, path)
    return None if math.isfinite(value) else f"expected a finite number, got {value}"


def _str(value, path):
    return None if isinstance(value, str) else f"expected a string, got {_show(value)}"


def _list(value, path):
    kind = LIST_ITEMS[path]
    if kind == "str" and isinstance(value, str):
        return None
    if not isinstance(value, list):
        return f"expected a list, got {_show(value)}"
    for i, item in enumerate(value):
        if kind == "str":
            if not isinstance(item, str):
                return f"item {i}: expected a string, got {_show(item)}"
            continue
        low = 1 if kind == "dim" else 0
        problem = _int(item, path)
        if problem:
            return f"item {i}: {problem}"
        if item < low:
            return f"item {i}: must be >= {low}, got {item}"
    return None


def _options(value, path):
    if not isinstance(value, dict):
        return f"expected a mapping, got {_show(value)}"
    for key, item in value.items():
        if not isinstance(key, str):
            return f"option names must be strings, got {_show(key)}"
        if item is not None and not isinstance(item, (str, int, float, bool)):
            return f"{key}: expected a plain value, got {_show(item)}"
    return None


def _enum(value, path):
    allowed = ENUMS.get(path)
    if allowed is None or value in allowed:
        return None
    return f"unknown value {_show(value)}; allowed: {', '.join(str(a) for a in allowed)}"


def _dtype(value, path):
    if path not in DTYPE_KEYS:
        return None
    try:
        kind = np.dtype(value).kind
    except (TypeError, ValueError):
        kind = None
    if kind in ("b", "i", "u", "f"):
        return None
    return f"unknown element type {_show(value)}; use a numeric numpy dtype name such as uint8, int32, float32"


def _unknown(key, names: list[str], section: str) -> str:
    close = difflib.get_close_matches(str(key), names, n=1)
    if close:
        return f"unknown key; did you mean {join(section, close[0])}?"
    elsewhere = [p for p in known_paths() if p.rsplit(".", 1)[-1] == str(key)]
    if elsewhere:
        return f"unknown key here; did you mean {elsewhere[0]}?"
    return f"unknown key; known keys here: {', '.join(names)}"


def _show(value) -> str:
    """A short rendering of a YAML value for messages."""
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def path_problem(path: tuple) -> str | None:
    """Why a key path (HEAD spelling) names no workload key, or None; for deletions, which build no value.

    The walk stops at a time value or an options mapping, whose inner keys are checked when built.
    """
    cls = Workload
    for depth, key in enumerate(path):
        if not is_dataclass(cls) or cls is TimeSpec:
            return None
        hints = _hints(cls)
        if key not in hints:
            return _unknown(key, list(hints), ".".join(path[:depth]))
        cls = _strip_optional(hints[key])
    return None
