"""Defaults of older DLIO generations, for files written when those were DLIO's defaults.

dl-driver fills DLIO HEAD's code defaults (model.py). A file written for an older DLIO ran with that
version's defaults where it left a key out; `load_workload(..., dlio_defaults=NAME)` fills those instead.
Only the defaults that differ from HEAD's and change what a run does are listed, each from the named
tag's dlio_benchmark/utils/config.py (src/utils/config.py before 2.0).

Not here yet: v2.0.0's checkpoint defaults (num_layers 1, layer_parameters [17371, 24740228]), under which
DLIO 2.0.0 wrote one extra int8 file of 24757599 bytes beside model_size's. dl-driver's checkpoint layout
follows HEAD's layer model, which gives those keys another meaning; filling them would misstate the size.
"""
from __future__ import annotations

# name -> {key path (HEAD spelling): default}; "head" is model.py's own.
GENERATIONS: dict[str, dict[tuple, object]] = {
    "head": {},
    # v1.0.0 (dd187e93) and v1.1 (09bc4f7b): no prefetching; checkpoints are model_size alone.
    "1.0": {("reader", "prefetch_size"): 0},
}


def generation_problem(name) -> str | None:
    if name in GENERATIONS:
        return None
    return f"unknown DLIO defaults {name!r}; known: {', '.join(GENERATIONS)}"


def fill_generation_defaults(doc: dict, name: str) -> None:
    """Put the generation's defaults into doc where it lacks the key (in place)."""
    for path, value in GENERATIONS[name].items():
        node = doc
        for key in path[:-1]:
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                break
        else:
            node.setdefault(path[-1], list(value) if isinstance(value, list) else value)
