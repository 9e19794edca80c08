"""Reading a DLIO workload file: YAML, both key spellings, overrides, then the strict checks.

Steps, each a pure function of the data before it:
  read_document   file -> mapping (unwrapping Hydra's top-level `workload:` node)
  to_head         2.0.0 spellings -> HEAD spellings (model: <name>, record_length*, checkpoint.model_size,
                  data_reader) plus model.model_size, which shipped YAMLs use and DLIO HEAD ignores
  overrides       merged on top, spelled either way
  fold_stdev      `*_time_stdev` siblings folded into their time value
  build + check   typed Workload, every problem collected, all raised together in one ConfigError
"""
from __future__ import annotations

import copy

import yaml

from dldriver.config.check import check_workload
from dldriver.config.model import Workload
from dldriver.config.overrides import OverrideError, parse_override
from dldriver.config.profiles import fold_framework_profiles
from dldriver.config.schema import build_workload
from dldriver.errors import ConfigError

# Old spelling -> HEAD spelling. model.model_size is not a DLIO 2.0.0 key but what the shipped unet3d and
# megatron YAMLs say; DLIO HEAD silently ignores it, dl-driver honours it as model_size_bytes.
RENAMES = {
    ("data_reader",): ("reader",),
    ("dataset", "record_length"): ("dataset", "record_length_bytes"),
    ("dataset", "record_length_stdev"): ("dataset", "record_length_bytes_stdev"),
    ("dataset", "record_length_resize"): ("dataset", "record_length_bytes_resize"),
    ("checkpoint", "model_size"): ("model", "model_size_bytes"),
    ("model", "model_size"): ("model", "model_size_bytes"),
}
TIME_STDEV = {
    ("train", "computation_time_stdev"): "computation_time",
    ("evaluation", "eval_time_stdev"): "eval_time",
    ("reader", "preprocess_time_stdev"): "preprocess_time",
}


def load_workload(path, overrides=()) -> Workload:
    """Load, check and fill a DLIO workload; raise ConfigError naming every problem."""
    source = str(path)
    try:
        return _load(source, list(overrides))
    except RecursionError:
        raise ConfigError("the data nests too deeply (a YAML alias that contains itself?)", source) from None


def load_workload_mapping(doc: dict, overrides=(), source: str = "<mapping>") -> Workload:
    """load_workload for a workload given as plain data (a dict as the YAML would give it)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"expected a mapping of DLIO sections, got {type(doc).__name__}", source)
    if list(doc) == ["workload"]:
        doc = doc["workload"]
    return _load(source, list(overrides), copy.deepcopy(doc))


def read_document(source: str) -> dict:
    """The workload mapping of a YAML file, unwrapped from a top-level `workload:` node if there is one."""
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise ConfigError(f"cannot read the file: {err.strerror or err}", source) from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", source) from None
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as err:
        raise ConfigError(f"not valid YAML: {' '.join(str(err).split())}", source) from None
    if doc is None:
        raise ConfigError("the file is empty; expected a mapping of DLIO sections (model, dataset, reader, ...)",
                          source)
    if isinstance(doc, dict) and list(doc) == ["workload"]:
        doc = doc["workload"]
    if not isinstance(doc, dict):
        kind = "a list" if isinstance(doc, list) else f"the value {doc!r}"[:80]
        raise ConfigError(f"expected a mapping of DLIO sections (model, dataset, reader, ...), got {kind}", source)
    return doc


def _load(source: str, overrides: list, doc: dict | None = None) -> Workload:
    doc = read_document(source) if doc is None else doc
    doc, problems, origin = to_head(doc)
    for text in overrides:
        try:
            override = parse_override(text)
        except OverrideError as err:
            problems.append(("", str(err)))
            continue
        tree = to_head(override.as_tree())[0]
        path = _chain(tree, len(override.path))
        if override.delete:
            _delete(doc, path)
        else:
            _merge(doc, tree)
        # The override's value replaces the file's, so messages about it use the override's spelling.
        origin = {k: v for k, v in origin.items() if not k.startswith(".".join(path))}
    problems += fold_stdev(doc, origin)
    problems += fold_framework_profiles(doc, origin)
    workload, found = build_workload(doc)
    problems += found
    problems += check_workload(workload, {p for p, _ in found})
    if problems:
        raise ConfigError([_format(p, m, origin) for p, m in problems], source)
    workload.source = source
    return workload


def to_head(doc: dict) -> tuple[dict, list, dict]:
    """Rename 2.0.0 spellings in place -> (doc, conflicts, {HEAD path: path as written})."""
    problems, origin = [], {}
    if isinstance(doc.get("model"), str):
        doc["model"] = {"name": doc["model"]}
        origin["model.name"] = "model"
    for old, new in RENAMES.items():
        parent = _section(doc, old[:-1])
        target = _section(doc, new[:-1], create=True) if parent is not None and old[-1] in parent else None
        if target is None:
            continue
        old_path, new_path = ".".join(old), ".".join(new)
        if new[-1] in target:
            problems.append((old_path, f"conflicts with {new_path}; give only one of the two spellings"))
            continue
        target[new[-1]] = parent.pop(old[-1])
        origin[new_path] = old_path
    return doc, problems, origin


def fold_stdev(doc: dict, origin: dict) -> list:
    """Fold `train.computation_time_stdev` etc. into the time value, as DLIO reads them together."""
    problems = []
    for (section, key), base in TIME_STDEV.items():
        parent = _section(doc, (section,))
        if parent is None or key not in parent:
            continue
        stdev, value = parent.pop(key), parent.get(base, 0)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[base] = {"mean": value, "stdev": stdev}
        elif isinstance(value, dict) and value.get("type", "normal") == "normal" and "stdev" not in value:
            parent[base] = {**value, "stdev": stdev}
        else:
            problems.append((f"{section}.{key}", f"conflicts with the distribution given in {section}.{base}"))
            continue
        origin[f"{section}.{base}.stdev"] = f"{section}.{key}"
    return problems


def _section(doc: dict, path: tuple, create: bool = False):
    node = doc
    for key in path:
        if create and key not in node:
            node[key] = {}
        node = node.get(key)
        if not isinstance(node, dict):
            return None
    return node


def _merge(base: dict, tree: dict) -> None:
    for key, value in tree.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _chain(tree: dict, depth: int) -> tuple:
    """The key path of an override tree (renames keep its depth), as to_head may have respelled it.

    A rename across sections leaves the old section empty beside the new one; the chain follows the new.
    """
    path = []
    for _ in range(depth):
        items = list(tree.items())
        key, tree = next(((k, v) for k, v in items if v != {}), items[0])
        path.append(key)
    return tuple(path)


def _delete(doc: dict, path: tuple) -> None:
    parent = _section(doc, path[:-1])
    if parent is not None:
        parent.pop(path[-1], None)


def _format(path: str, message: str, origin: dict) -> str:
    """`key.path: message`, naming the key as the user spelled it."""
    for head, written in origin.items():
        if path == head or path.startswith(head + "."):
            path = written + path[len(head):]
            break
    return f"{path}: {message}" if path else message
