"""The tensor bytes of one checkpoint, per rank and in total: DLIO's formulas, pure.

The one source of checkpoint sizes: dldriver.checkpoint.layout names the files these tensors go to,
and derive_plan's checkpoint_bytes is their sum. It lives in config/ because the plan needs it and
config imports nothing above it. Layers, ranks and tensors as dldriver.checkpoint.layout describes.
"""
from __future__ import annotations

from dataclasses import dataclass

from dldriver.config import checkpoint_sizes_v2
from dldriver.config.generations import CHECKPOINT_LAYOUT
from dldriver.config.model import DTYPE_BYTES
from dldriver.errors import ConfigError

MIN_TENSOR_BYTES = 8


@dataclass(frozen=True)
class Topology:
    """Parallel layout of the emulated job: sizes of each dimension and which ranks hold state."""

    world: int
    tp: int
    pp: int
    dp: int
    zero: int

    @property
    def mp(self) -> int:
        return self.tp * self.pp

    def writes(self, rank: int) -> bool:
        # ZeRO 0 replicates everything over data-parallel ranks: only the first replica saves it.
        # In subset mode (dp given) the ranks past TP*PP*DP hold no state at all.
        if self.zero == 0:
            return rank < self.mp
        return rank < self.mp * self.dp


def topology(workload, world_size: int) -> Topology:
    """Check the parallelism against the world size; ConfigError names every offending key."""
    m = workload.model
    par = m.parallelism
    tp, pp, zero = par.tensor, par.pipeline, par.zero_stage
    problems = []
    if world_size < 1:
        problems.append(f"ranks: world size must be at least 1, got {world_size}")
    if tp < 1 or pp < 1:
        problems.append(f"model.parallelism.tensor, model.parallelism.pipeline: must be >= 1, got {tp} and {pp}")
    elif world_size % (tp * pp):
        problems.append(f"model.parallelism.tensor, model.parallelism.pipeline: world size {world_size} is not "
                        f"divisible by tensor x pipeline = {tp} x {pp} = {tp * pp}")
    if zero not in (0, 1, 2, 3):
        problems.append(f"model.parallelism.zero_stage: must be 0, 1, 2 or 3, got {zero}")
    if zero == 3 and pp > 1:
        problems.append(f"model.parallelism.zero_stage, model.parallelism.pipeline: ZeRO-3 shards the model over "
                        f"data-parallel ranks and cannot be combined with pipeline {pp} > 1")
    if _has_layers(m) and m.num_layers < pp:
        problems.append(f"model.num_layers: {m.num_layers} layers cannot fill model.parallelism.pipeline = {pp} stages")
    dp = par.data if par.data > 0 else (world_size // (tp * pp) if tp > 0 and pp > 0 else 0)
    if par.data > 0 and tp > 0 and pp > 0 and world_size > tp * pp * par.data:
        problems.append(f"model.parallelism.data: world size {world_size} exceeds tensor x pipeline x data = "
                        f"{tp * pp * par.data}")
    if problems:
        raise ConfigError(problems)
    return Topology(world=world_size, tp=tp, pp=pp, dp=dp, zero=zero)


def _has_layers(model) -> bool:
    return model.type == "transformer" or model.num_layers > 0


def transformer_params(model) -> int:
    """Parameter count: 2*V*H + L*(2H + H*(H + 2*dkv) + H^2 + 3*H*F) + H with dkv = H/heads*kv_heads."""
    t = model.transformer
    h, v, f, layers = t.hidden_size, t.vocab_size, t.ffn_hidden_size, model.num_layers
    dkv = h // t.num_attention_heads * t.num_kv_heads
    return 2 * v * h + layers * (2 * h + h * (h + 2 * dkv) + h * h + 3 * h * f) + h


def _layer_tensors(model, layer: int, shards: int) -> list[int]:
    """Element counts of one layer's tensors on one rank, divided over `shards` (TP, times DP under ZeRO-3)."""
    t = model.transformer
    h, v, f, last = t.hidden_size, t.vocab_size, t.ffn_hidden_size, model.num_layers + 1
    if model.layer_parameters:
        # DLIO's legacy form: explicit tensor sizes, identical for every layer.
        return [p // shards for p in model.layer_parameters if p > 0]
    if layer == 0:
        sizes = [v * h]                                   # embedding
    elif layer == last:
        sizes = [v * h, h]                                # lm_head, final norm
    else:
        dkv = h // t.num_attention_heads * t.num_kv_heads
        sizes = [h, h * (h + 2 * dkv), h * h, h, 2 * h * f, h * f]  # norm, qkv, dense, norm, mlp in, mlp out
    return [s // shards for s in sizes]


def stage_layers(num_layers: int, pp: int, stage: int) -> range:
    """Layers of one pipeline stage: blocks 1..L split as evenly as possible, earlier stages take the extra."""
    base, extra = divmod(num_layers, pp)
    first = 1 + stage * base + min(stage, extra)
    count = base + (1 if stage < extra else 0)
    start = 0 if stage == 0 else first
    stop = num_layers + 2 if stage == pp - 1 else first + count
    return range(start, stop)


def _optimizer_tensors(model, topo: Topology) -> list[int]:
    """Element counts of the optimizer groups [P', 5H, P', 5H, P', 5H] of one rank."""
    if model.optimization_groups:
        # DLIO's legacy form: each group twice (two moments) plus one tensor combining all of them.
        groups = [g for g in model.optimization_groups if g > 0]
        return groups + groups + [sum(groups)]
    h = model.transformer.hidden_size
    share = transformer_params(model) // (topo.mp * topo.dp if topo.zero > 0 else topo.mp)
    return [share, 5 * h] * 3


def _nbytes(counts: list[int], dtype_bytes: int, scale: float) -> int:
    if scale >= 1.0:
        return sum(counts) * dtype_bytes
    return sum(max(MIN_TENSOR_BYTES, int(c * dtype_bytes * scale)) for c in counts)


def rank_tensors(workload, topo: Topology, rank: int, scale: float = 1.0) -> list[tuple[str, int]]:
    """(NAME, bytes) of every tensor file `rank` saves into one checkpoint folder, before the mechanism adds
    its extension; [] for ranks that save none."""
    if not 0 <= rank < topo.world:
        raise ValueError(f"rank {rank} outside world of {topo.world}")
    if not topo.writes(rank):
        return []
    m = workload.model
    mbytes, obytes = DTYPE_BYTES[m.model_datatype], DTYPE_BYTES[m.optimizer_datatype]
    mp, dp, stage = rank % topo.mp, rank // topo.mp, (rank // topo.tp) % topo.pp
    files = []
    if m.type != "transformer" and m.model_size_bytes > 0:
        # The flat model is a blob of int8, as DLIO's get_tensor makes it.
        files.append((f"model_states-{rank}", _nbytes([m.model_size_bytes], 1, scale)))
    if _has_layers(m):
        shards = topo.tp * (topo.dp if topo.zero == 3 else 1)
        layers = {l: _layer_tensors(m, l, shards) for l in stage_layers(m.num_layers, topo.pp, stage)}
        if topo.zero in (0, 3):
            counts = [c for tensors in layers.values() for c in tensors]
            files.append((f"zero_pp_rank_{dp}_mp_rank_{mp}_model_states", _nbytes(counts, mbytes, scale)))
        elif dp == 0 and topo.pp == 1:
            counts = [c for tensors in layers.values() for c in tensors]
            files.append((f"model_{mp}_model_states", _nbytes(counts, mbytes, scale)))
        elif dp == 0:
            files += [(f"layer_{l}-model_{mp}_model_states", _nbytes(t, mbytes, scale))
                      for l, t in layers.items()]
    if _has_layers(m) or m.optimization_groups:
        files.append((f"zero_pp_rank_{dp}_mp_rank_{mp}_optim_states",
                      _nbytes(_optimizer_tensors(m, topo), obytes, scale)))
    return files


def checkpoint_bytes(workload, world_size: int) -> int:
    """Tensor bytes of one checkpoint summed over the ranks of a `world_size` job (no scaling), in the
    layout of the workload's DLIO generation."""
    if CHECKPOINT_LAYOUT[workload.dlio_defaults] == "2.0.0":
        return checkpoint_sizes_v2.checkpoint_bytes(workload, world_size)
    topo = topology(workload, world_size)
    return sum(n for rank in range(world_size) for _, n in rank_tensors(workload, topo, rank))
