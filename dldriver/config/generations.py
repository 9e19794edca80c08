"""Defaults of older DLIO generations, for files written when those were DLIO's defaults.

dl-driver fills DLIO HEAD's code defaults (model.py). A file written for an older DLIO ran with that
version's defaults where it left a key out; `load_workload(..., dlio_defaults=NAME)` fills those instead.
Only the defaults that differ from HEAD's and change what a run does are listed, each from the named
tag's dlio_benchmark/utils/config.py (src/utils/config.py before 2.0).

A generation also names the checkpoint layout its DLIO wrote (CHECKPOINT_LAYOUT): HEAD's DeepSpeed-style
layout (dldriver.config.checkpoint_sizes), or 2.0.0's flat model / optimizer / layer files
(dldriver.config.checkpoint_sizes_v2), under which 2.0.0's default num_layers 1 and layer_parameters
[17371, 24740228] make one extra int8 file of 24757599 bytes per checkpoint.
"""
from __future__ import annotations

# name -> {key path (HEAD spelling): default}; "head" is model.py's own.
GENERATIONS: dict[str, dict[tuple, object]] = {
    "head": {},
    # v2.0.0 (866828ce): ConfigArguments.num_layers = 1, layer_parameters = [17371, 24740228].
    "2.0.0": {("model", "num_layers"): 1, ("model", "layer_parameters"): [17371, 24740228]},
    # v1.0.0 (dd187e93) and v1.1 (09bc4f7b): no prefetching; checkpoints are model_size alone.
    "1.0": {("reader", "prefetch_size"): 0},
}
# name -> the checkpoint layout that generation's DLIO writes. 1.0's one model-{e}-{s}.bin file of
# model_size bytes is HEAD's flat model_states file under another name: HEAD's layout stands in for it.
CHECKPOINT_LAYOUT = {"head": "head", "2.0.0": "2.0.0", "1.0": "head"}
# Keys DLIO 2.0.0 never reads (it has no transformer model, no ZeRO, no subset mode): under its layout
# they would change nothing DLIO 2.0.0 did, so writing one is an error rather than silently ignored.
UNREAD_BY_2_0_0 = ("model.type", "model.transformer", "model.model_datatype", "model.optimizer_datatype",
                   "model.parallelism.zero_stage", "model.parallelism.data", "checkpoint.mode")


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


def generation_problems(workload, bad_paths) -> list[tuple[str, str]]:
    """What the workload's generation refuses: for 2.0.0, the keys its DLIO never reads (when written)
    and its own check that num_layers is a multiple of the tensor and pipeline parallelism."""
    if CHECKPOINT_LAYOUT[workload.dlio_defaults] != "2.0.0":
        return []
    problems = [(path, "DLIO 2.0.0 does not read this key (its checkpoint is model_size, optimization_groups "
                       "and num_layers x layer_parameters); drop it, or use --dlio-defaults head")
                for path in sorted(workload.written)
                if any(path == k or path.startswith(k + ".") for k in UNREAD_BY_2_0_0)]
    m = workload.model
    if not bad_paths & {"model.num_layers", "model.parallelism.tensor", "model.parallelism.pipeline"}:
        for key, size in (("pipeline", m.parallelism.pipeline), ("tensor", m.parallelism.tensor)):
            if m.num_layers > 0 and size > 0 and m.num_layers % size:
                problems.append(("model.num_layers", f"{m.num_layers} must be a multiple of the "
                                                     f"{key} parallelism {size} (DLIO 2.0.0's rule)"))
    return problems
