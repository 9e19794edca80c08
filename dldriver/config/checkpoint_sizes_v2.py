"""DLIO 2.0.0's checkpoint: which files each rank saves and the bytes of each (pure).

From dlio_benchmark/checkpointing/base_checkpointing.py, pytorch_checkpointing.py and tf_checkpointing.py
at tag v2.0.0 (866828ce), see docs/dlio-facts.md §6a. DLIO 2.0.0 has no transformer model and no
DeepSpeed layout: it writes three kinds of state, flat in checkpoint_folder, with epoch, step and rank
in each name (NAME below; the mechanism adds .pt, or tf_save's .pb-1.index / .pb-1.data-00000-of-00001):

  model-{epoch}-{step}-{rank}            {"a": tensor(model_size)}                      when model_size > 0
  optimizer-{epoch}-{step}-{rank}        per group g > 0 {"a": tensor(g), "b": tensor(g)},
                                         plus "combined": tensor(sum of those g)     when optimization_groups
  layer-{l}-{epoch}-{step}-{rank}        one tensor(p) per p > 0 of layer_parameters, for
                                         l in range(num_layers + TP if TP > 1 else num_layers),
                                         on ranks with rank % PP == 0                 when layer_parameters

checkpoint.type rank_zero (the default) means only rank 0 saves; all_ranks, every rank. A tensor of
`size` is int8 of size elements under pt_save (size bytes) and int32 of int(size / 4) elements under
tf_save (4 * int(size / 4) bytes). The keys are read under their HEAD spellings: model.model_size_bytes
(2.0.0's checkpoint.model_size), model.optimization_groups, model.num_layers, model.layer_parameters,
model.parallelism.tensor|pipeline (checkpoint.tensor_parallelism|pipeline_parallelism).
"""
from __future__ import annotations

MIN_TENSOR_BYTES = 8


def tensor_bytes(size: int, framework: str) -> int:
    """Bytes of DLIO 2.0.0's get_tensor(size): int8 elements (pytorch), int32 of int(size / 4) (tensorflow)."""
    return 4 * int(size / 4) if framework == "tensorflow" else size


def saving_ranks(workload, world_size: int) -> range:
    """The ranks that save: rank 0 alone under checkpoint.type rank_zero, every rank under all_ranks."""
    return range(world_size) if workload.checkpoint.type == "all_ranks" else range(min(1, world_size))


def layer_count(workload) -> int:
    """How many layer files a saving rank writes: num_layers, plus TP when TP > 1 (2.0.0's own rule)."""
    m = workload.model
    if m.num_layers <= 0 or not [p for p in m.layer_parameters if p > 0]:
        return 0
    tp = m.parallelism.tensor
    return m.num_layers + (tp if tp > 1 else 0)


def rank_tensors(workload, world_size: int, rank: int, epoch: int = 1, step: int = 1,
                 scale: float = 1.0) -> list[tuple[str, int]]:
    """(NAME, bytes) of every state file `rank` saves for the checkpoint of (epoch, step); [] for a rank
    that saves none."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    if rank not in saving_ranks(workload, world_size):
        return []
    m, fw = workload.model, workload.framework

    def nbytes(sizes):
        full = [tensor_bytes(s, fw) for s in sizes]
        return sum(full) if scale >= 1.0 else sum(max(MIN_TENSOR_BYTES, int(b * scale)) for b in full)

    tag = f"{epoch}-{step}-{rank}"
    files = []
    if m.model_size_bytes > 0:
        files.append((f"model-{tag}", nbytes([m.model_size_bytes])))
    if m.optimization_groups:
        groups = [g for g in m.optimization_groups if g > 0]
        files.append((f"optimizer-{tag}", nbytes(groups + groups + [sum(groups)])))
    if rank % max(1, m.parallelism.pipeline) == 0:
        layer = [p for p in m.layer_parameters if p > 0]
        files += [(f"layer-{l}-{tag}", nbytes(layer)) for l in range(layer_count(workload))]
    return files


def checkpoint_bytes(workload, world_size: int) -> int:
    """Tensor bytes of one DLIO 2.0.0 checkpoint summed over the ranks (no scaling)."""
    return sum(n for rank in range(world_size) for _, n in rank_tensors(workload, world_size, rank))
