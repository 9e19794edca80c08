"""Command-line overrides in DLIO's Hydra grammar, and the short form without `workload.`.

`++workload.dataset.num_files_train=8`, `+workload.x=1`, `workload.train.epochs=2`, `dataset.num_files_train=8`,
`~reader.transfer_size` (back to the default). Values are YAML, so `[3,224,224]`, `{}` and `null` work.
Hydra's prefixes keep their meaning on the `workload.` form (the loader checks them against the file):
`++` adds or sets, `+` adds a key the file lacks, a bare `workload.KEY=V` sets a key the file has. The short
form without `workload.` is dl-driver's own and adds or sets, like `++`. `hydra.KEY=V` (any prefix) is a
Hydra setting, not a workload key: `Override.hydra` is true and `path` is below `hydra`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

_OVERRIDE = re.compile(r"^(\+\+|\+|~)?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:=(.*))?$", re.DOTALL | re.ASCII)
EXAMPLE = "expected KEY=VALUE, e.g. ++workload.dataset.num_files_train=8 or dataset.num_files_train=8"


class OverrideError(ValueError):
    """A malformed override; the message quotes it."""


@dataclass(frozen=True)
class Override:
    text: str
    path: tuple[str, ...]  # key path below the workload node
    value: object = None
    delete: bool = False
    prefix: str = ""  # "++", "+", "~" or "" as typed
    short: bool = False  # written without `workload.`: dl-driver's add-or-set form
    hydra: bool = False  # a `hydra.*` setting

    def as_tree(self) -> dict:
        """The override as a one-key nested mapping."""
        tree = self.value
        for key in reversed(self.path):
            tree = {key: tree}
        return tree


def parse_override(text) -> Override:
    """One override string -> Override; raises OverrideError quoting it."""
    match = _OVERRIDE.match(text) if isinstance(text, str) else None
    if not match:
        raise OverrideError(f"override {text!r} is malformed: {EXAMPLE}")
    prefix, dotted, raw = match.groups()
    if (raw is None) != (prefix == "~"):
        raise OverrideError(f"override {text!r} is malformed: "
                            + ("`~KEY` removes a key and takes no value" if prefix == "~" else EXAMPLE))
    path = tuple(dotted.split("."))
    short, hydra = path[0] != "workload", path[0] == "hydra"
    if not short or hydra:
        path = path[1:]
    if not path:
        raise OverrideError(f"override {text!r} names no key under {'hydra' if hydra else 'workload'}")
    kind = {"prefix": prefix or "", "short": short and not hydra, "hydra": hydra}
    if prefix == "~":
        return Override(text, path, delete=True, **kind)
    return Override(text, path, _parse_value(text, raw), **kind)


def _parse_value(text: str, raw: str):
    if raw == "":
        return ""  # Hydra reads `key=` as the empty string
    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OverrideError(f"override {text!r}: the value is not valid YAML ({reason})") from None
