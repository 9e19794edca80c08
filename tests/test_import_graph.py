"""The package's import graph: layers run one way (design.md's rooms, lowest first) and nothing cycles.

Every import counts, at the top of a file or inside a function: a function-local import hides a
dependency, it does not remove it.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dldriver"

# Lowest first; a module may import rooms of its own layer or lower ones, never a higher one (rooms of
# one layer importing each other in a circle is caught by the cycle test).
LAYERS = [
    {"errors", "heap", "lifetime", "units", "extras", "redact", "root_names", "uri", "outputs"},
    {"config"},
    {"storage", "formats", "metrics", "services"},
    {"dataset"},
    {"generate", "checkpoint", "loaders", "version", "mlperf"},
    {"engine"},
    {"frameworks", "aggregate"},
    {"cli"},
]
# Modules whose room is not their folder: the public framework modules re-export dldriver.frameworks.
ROOM_OF = {"dldriver.torch": "frameworks", "dldriver.tensorflow": "frameworks", "dldriver.jax": "frameworks"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The dldriver modules `name` imports (`from pkg import sub` is an import of the module pkg.sub)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dldriver")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("dldriver"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= subs or {node.module}
    return found - {name}


def room(name: str) -> str:
    return ROOM_OF.get(name) or name.split(".")[1]


def layer(name: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if room(name) in rooms)


def test_every_room_has_a_layer():
    assert [m for m in MODULES if m != "dldriver" and not any(room(m) in rooms for rooms in LAYERS)] == []


def test_no_module_imports_a_layer_above_it():
    upward = sorted(f"{a} -> {b}" for a in MODULES if a != "dldriver" for b in imports(a)
                    if layer(b) > layer(a))
    assert upward == []


def test_no_import_cycle():
    graph = {m: imports(m) & MODULES.keys() for m in MODULES}
    done, path, cycles = set(), [], []

    def visit(m):
        if m in path:
            cycles.append(path[path.index(m):] + [m])
            return
        if m in done:
            return
        path.append(m)
        for b in sorted(graph[m]):
            visit(b)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
    assert cycles == []


def test_the_graph_is_read_as_python_reads_it():
    """The checks above can fail: the three upward imports this test was written against are refused."""
    assert layer("dldriver.config.plan") < layer("dldriver.checkpoint.layout")
    assert layer("dldriver.checkpoint.checkpointer") < layer("dldriver.engine.ranks")
    assert "dldriver.dataset.source" in imports("dldriver.loaders.base")
    assert "dldriver.config.checkpoint_sizes" in imports("dldriver.checkpoint.layout")
