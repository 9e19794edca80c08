"""Reading a DLIO workload file: YAML, both key spellings, overrides, then the strict checks.

Steps, each a pure function of the data before it:
  read_document   file -> mapping (unwrapping Hydra's top-level `workload:` node)
  to_head         2.0.0 spellings -> HEAD spellings (model: <name>, record_length*, checkpoint.model_size,
                  data_reader) plus model.model_size, which shipped YAMLs use and DLIO HEAD ignores
  overrides       merged on top, spelled either way, Hydra's prefixes checked against the file (_apply);
                  `hydra.*` ones give the run folder and the resolved config's subfolder (hydra_settings)
  drop_never_read keys shipped files carry that no DLIO reads, dropped with a warning
  fold_stdev      `*_time_stdev` siblings folded into their time value
  generations     an older DLIO's defaults where the user gave no value (only with --dlio-defaults)
  build + check   typed Workload, every problem collected, all raised together in one ConfigError
"""
from __future__ import annotations

import copy
import logging
import os

import yaml

from dldriver.config.check import check_workload
from dldriver.config.generations import fill_generation_defaults, generation_problem, generation_problems
from dldriver.config.model import Workload
from dldriver.config.overrides import OverrideError, parse_override
from dldriver.config.profiles import fold_framework_profiles
from dldriver.config.schema import build_workload, path_problem
from dldriver.config.spelling import as_written
from dldriver.config.yamlread import MAX_CONFIG_BYTES, DuplicateKeyError, check_size, parse_yaml
from dldriver.errors import ConfigError

log = logging.getLogger(__name__)

# Old spelling -> HEAD spelling. model.model_size is not a DLIO 2.0.0 key but what the shipped unet3d and
# megatron YAMLs say; DLIO HEAD silently ignores it, dl-driver honours it as model_size_bytes.
RENAMES = {
    ("data_reader",): ("reader",),
    ("dataset", "record_length"): ("dataset", "record_length_bytes"),
    ("dataset", "record_length_stdev"): ("dataset", "record_length_bytes_stdev"),
    ("dataset", "record_length_resize"): ("dataset", "record_length_bytes_resize"),
    ("checkpoint", "model_size"): ("model", "model_size_bytes"),
    ("model", "model_size"): ("model", "model_size_bytes"),
    # DLIO 2.0.0 put the layer model under checkpoint:
    ("checkpoint", "num_layers"): ("model", "num_layers"),
    ("checkpoint", "layer_parameters"): ("model", "layer_parameters"),
    ("checkpoint", "optimization_groups"): ("model", "optimization_groups"),
    ("checkpoint", "tensor_parallelism"): ("model", "parallelism", "tensor"),
    ("checkpoint", "pipeline_parallelism"): ("model", "parallelism", "pipeline"),
    # DLIO reads output.metric.*; dl-driver's earlier output.exclude_* stay as an alias.
    ("output", "metric", "exclude_start_steps"): ("output", "exclude_start_steps"),
    ("output", "metric", "exclude_end_steps"): ("output", "exclude_end_steps"),
}
RENAMED = {".".join(new) for new in RENAMES.values()}
# Sections that exist only to hold renamed keys: dropped once emptied.
RENAME_ONLY_SECTIONS = {("output", "metric")}
# Keys in shipped workload files that no DLIO version reads (DLIO ignores unknown keys), -> where seen.
NEVER_READ = {
    ("workflow", "do_eval"): "DLIO 2.0.0 dlrm.yaml",
    ("dataset", "eval_num_samples_per_file"): "DLIO 2.0.0 dlrm.yaml",
    ("train", "total_eval_steps"): "DLIO 2.0.0 dlrm.yaml",
    ("evaluation", "steps_between_evals"): "DLIO 2.0.0 dlrm.yaml",
}
# Hydra settings dl-driver uses: the run folder and the folder for the resolved config.
HYDRA_KEYS = {("run", "dir"), ("output_subdir",)}
TIME_STDEV = {
    ("train", "computation_time_stdev"): "computation_time",
    ("evaluation", "eval_time_stdev"): "eval_time",
    ("reader", "preprocess_time_stdev"): "preprocess_time",
}


def load_workload(path, overrides=(), dlio_defaults: str = "head") -> Workload:
    """Load, check and fill a DLIO workload; raise ConfigError naming every problem.

    dlio_defaults names the DLIO generation whose defaults fill the keys the file leaves out
    (generations.GENERATIONS: head, 2.0.0, 1.0).
    """
    source = str(path)
    problem = generation_problem(dlio_defaults)
    if problem:
        raise ConfigError(problem)
    try:
        return _load(source, list(overrides), dlio_defaults)
    except RecursionError:
        raise ConfigError("the data nests too deeply (a YAML alias that contains itself?)", source) from None


def load_workload_mapping(doc: dict, overrides=(), source: str = "<mapping>",
                          dlio_defaults: str = "head") -> Workload:
    """load_workload for a workload given as plain data (a dict as the YAML would give it)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"expected a mapping of DLIO sections, got {type(doc).__name__}", source)
    problem = generation_problem(dlio_defaults)
    if problem:
        raise ConfigError(problem)
    if list(doc) == ["workload"]:
        doc = doc["workload"]
    return _load(source, list(overrides), dlio_defaults, copy.deepcopy(doc))


def read_document(source: str) -> dict:
    """The workload mapping of a YAML file, unwrapped from a top-level `workload:` node if there is one."""
    try:
        with open(source, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
            too_big = check_size(os.fstat(f.fileno()).st_size) or check_size(len(raw))
        if too_big:
            raise ConfigError(f"the file {too_big}", source)
        text = raw.decode("utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the file: {err.strerror or err}", source) from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", source) from None
    try:
        doc = parse_yaml(text)
    except DuplicateKeyError as err:
        raise ConfigError(str(err), source) from None
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


def _load(source: str, overrides: list, dlio_defaults: str, doc: dict | None = None) -> Workload:
    doc = read_document(source) if doc is None else doc
    doc, problems, origin = to_head(doc)
    hydra, overridden = {}, set()
    for text in overrides:
        try:
            override = parse_override(text)
        except OverrideError as err:
            problems.append(("", str(err)))
            continue
        if override.hydra:
            hydra[override.path] = override
        else:
            found = _apply(doc, override, origin)
            problems += found
            if not found:
                overridden.add(".".join(override.path))
    drop_never_read(doc)
    run_dir, output_subdir = hydra_settings(hydra)
    if run_dir is not None and _get(doc, ("output", "folder")) in (_ABSENT, None):
        # DLIO's run folder is Hydra's run.dir unless output.folder names one.
        if doc.get("output") is None:
            doc["output"] = {}
        if isinstance(doc["output"], dict):
            doc["output"]["folder"] = str(run_dir)
    problems += fold_stdev(doc, origin)
    problems += fold_framework_profiles(doc, origin)
    written = frozenset(_leaves(doc))
    fill_generation_defaults(doc, dlio_defaults)
    workload, found = build_workload(doc)
    workload.written = written
    workload.dlio_defaults = dlio_defaults
    problems += found
    problems += check_workload(workload, {p for p, _ in found})
    problems += generation_problems(workload, {p for p, _ in found})
    if problems:
        raise ConfigError([_format(p, m, origin) for p, m in problems], source)
    workload.source = source
    workload.output_subdir = output_subdir
    workload.spellings = dict(origin)
    workload.overridden = frozenset(overridden)
    return workload


def _apply(doc: dict, override, origin: dict) -> list:
    """Merge (or delete) one override into doc, in place; the problems it has with the file."""
    tree = to_head(override.as_tree())[0]
    path = head_path(override.path)
    written, head = ".".join(override.path), ".".join(path)
    exists = _get(doc, path) is not _ABSENT
    if head in RENAMED and exists and origin.get(head, head) != written:
        return [("", f"{written}: conflicts with {origin.get(head, head)} in the file; "
                     "give only one of the two spellings")]
    if override.prefix == "+" and exists:
        return [("", f"{written}: is already in the file: `+` adds a key the file lacks (Hydra's rule); "
                     f"use ++{'workload.' * (not override.short)}{written}=... to set it")]
    if override.prefix == "" and not override.short and not exists:
        return [("", f"{written}: is not in the file: a bare workload.KEY=VALUE sets a key the file has "
                     f"(Hydra's rule); use ++workload.{written}=... to add it")]
    if override.delete:
        problem = path_problem(path)
        if problem:
            return [("", f"{written}: {problem}")]
        _delete(doc, path)
    else:
        _merge(doc, tree)
    # The override's value replaces the file's, so messages about it use the override's spelling.
    for key in [k for k in origin if k == head or k.startswith(head + ".")]:
        del origin[key]
    if written != head:
        origin[head] = written
    return []


def hydra_settings(hydra: dict) -> tuple:
    """(run folder, resolved-config subfolder) from `hydra.*` overrides; the others are warned about once."""
    ignored = sorted(".".join(("hydra",) + p) for p in hydra if p not in HYDRA_KEYS)
    if ignored:
        log.warning("ignoring Hydra settings dl-driver has no use for: %s", ", ".join(ignored))
    run_dir = hydra.get(("run", "dir"))
    subdir = hydra.get(("output_subdir",))
    return (None if run_dir is None or run_dir.delete else run_dir.value,
            None if subdir is None or subdir.delete or subdir.value is None else str(subdir.value))


def drop_never_read(doc: dict) -> None:
    """Remove keys that shipped DLIO files carry but no DLIO version reads, with one warning line."""
    dropped = []
    for path, where in NEVER_READ.items():
        parent = _section(doc, path[:-1])
        if parent is not None and path[-1] in parent:
            parent.pop(path[-1])
            dropped.append(f"{'.'.join(path)} ({where})")
    if dropped:
        log.warning("ignoring keys no DLIO version reads: %s", ", ".join(dropped))


_ABSENT = object()


def _get(doc: dict, path: tuple):
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def _leaves(doc: dict, prefix: str = ""):
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from _leaves(value, path)
        else:
            yield path


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
        if not parent and old[:-1] in RENAME_ONLY_SECTIONS:
            _section(doc, old[:-2]).pop(old[-2])
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


def head_path(path: tuple) -> tuple:
    """A key path in HEAD spelling (a rename may change its depth: checkpoint.tensor_parallelism)."""
    for old, new in RENAMES.items():
        if path[:len(old)] == old:
            return new + path[len(old):]
    return path


def _delete(doc: dict, path: tuple) -> None:
    parent = _section(doc, path[:-1])
    if parent is not None:
        parent.pop(path[-1], None)


def _format(path: str, message: str, origin: dict) -> str:
    """`key.path: message`, naming the key as the user spelled it."""
    path = as_written(path, origin)
    return f"{path}: {message}" if path else message
