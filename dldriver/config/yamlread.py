"""YAML text -> plain data, refusing what a YAML parser would silently accept.

PyYAML keeps the last of two equal keys in one mapping; DLIO then runs with a value the user may not
have meant. Here a duplicate key is an error naming its key path and both lines. The C parser
(libyaml) is used where PyYAML was built with it (it parses DLIO-sized files several times faster);
the construction, and so the duplicate check, is the same Python code either way.
"""
from __future__ import annotations

import yaml

# A workload file is a few KB; a file over this is not a config (a dataset named by mistake?).
MAX_CONFIG_BYTES = 1024 * 1024

_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKeyError(ValueError):
    """A key given twice in one mapping; the message names the key path and both lines."""


class StrictLoader(_BASE):
    """SafeLoader (C parser where available) that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self._refuse_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_duplicates(self, node) -> None:
        seen = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:
                continue
            if first != line:
                path = ".".join(_path_to(self._root, node) + [str(key)])
                raise DuplicateKeyError(f"{path}: given twice in one mapping (lines {first} and {line}); "
                                        "keep one")

    def get_single_data(self):
        self._root = self.get_single_node()
        if self._root is None:
            return None
        return self.construct_document(self._root)


def _path_to(root, target) -> list[str]:
    """Key path from the document root to the mapping node `target` (its keys as written)."""
    stack = [(root, [])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if isinstance(node, yaml.MappingNode):
            stack += [(value, path + [str(key.value)]) for key, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, path + [f"[{i}]"]) for i, item in enumerate(node.value)]
    return []


def parse_yaml(text: str):
    """The data of one YAML document; raises DuplicateKeyError or yaml.YAMLError."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def check_size(nbytes: int) -> str | None:
    """Why a file of nbytes is refused as a config, or None."""
    if nbytes > MAX_CONFIG_BYTES:
        return (f"is {nbytes} bytes, over the {MAX_CONFIG_BYTES // 1024} KiB a workload config may have "
                "(is this really a DLIO YAML file?)")
    return None
