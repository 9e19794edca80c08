"""Which files each rank writes for one checkpoint, and how many bytes each holds (pure).

The names and the rank rules are DLIO HEAD's (DeepSpeed-style, see docs/dlio-facts.md). Each rank saves
these tensor files (NAME below; their sizes: dldriver.config.checkpoint_sizes):

  model_states-{rank}                           a flat model of model.model_size_bytes (non-transformer)
  zero_pp_rank_{dp}_mp_rank_{mp}_model_states   all of a rank's layers (ZeRO 0 or 3)
  model_{mp}_model_states                       all layers, ZeRO 1/2 with one pipeline stage (dp 0 only)
  layer_{l}-model_{mp}_model_states             one per layer, ZeRO 1/2 with pipeline stages (dp 0 only)
  zero_pp_rank_{dp}_mp_rank_{mp}_optim_states   optimizer state

and DLIO picks the mechanism that writes them from the framework:

  pt_save (pytorch)     NAME.pt, the tensor bytes
  tf_save (tensorflow)  NAME.pb-1.index (the tensor bundle's index) and NAME.pb-1.data-00000-of-00001 (the
                        tensor bytes), plus one `checkpoint` state file per folder, written by rank 0

with mp = rank % (TP*PP), dp = rank // (TP*PP), pipeline stage = (rank // TP) % PP; under ZeRO 0 only
ranks < TP*PP write (the other data-parallel replicas hold the same state). Layers are numbered 0 (embedding),
1..L (transformer blocks) and L+1 (lm_head and the final norm); layer 0 lives on the first pipeline stage,
L+1 on the last. A file's size is the sum of its tensors; a tensor scaled by `scale` keeps at least
MIN_TENSOR_BYTES so that every file of a huge layout still exists when shrunk to laptop size. jax and native
have no mechanism of their own in DLIO (whose frameworks are tensorflow and pytorch): they use the pytorch layout.

That is HEAD's layout. Under `--dlio-defaults 2.0.0` (config/generations.py CHECKPOINT_LAYOUT) the files are
DLIO 2.0.0's instead (dldriver.config.checkpoint_sizes_v2): model-, optimizer- and layer-{l}- files with
epoch, step and rank in their names, flat in the checkpoint folder, through the same two mechanisms.
"""
from __future__ import annotations

from dldriver.config import checkpoint_sizes_v2
from dldriver.config.checkpoint_sizes import (DTYPE_BYTES, MIN_TENSOR_BYTES, rank_tensors, stage_layers,
                                              topology, transformer_params)
from dldriver.config.generations import CHECKPOINT_LAYOUT
from dldriver.errors import ConfigError

__all__ = ["DTYPE_BYTES", "MIN_TENSOR_BYTES", "checkpoint_folder", "checkpoint_layout", "layer_mode", "mechanism",
           "stage_layers", "transformer_params"]

# tf.train.Checkpoint.save(prefix) appends "-{save_counter}"; DLIO makes a fresh Checkpoint for every file,
# so the counter is always 1. Its variables fit one shard, hence data-00000-of-00001.
TF_PREFIX = ".pb-1"
TF_INDEX = ".index"
TF_DATA = ".data-00000-of-00001"
TF_STATE = "checkpoint"
# The index is a table of one entry per tensor (key, dtype, shape, offset, crc) plus a header and a footer.
# TensorFlow 2.21 writes 259 B for one tensor, 472 B for DLIO's five-tensor optimizer state and 517 B for a
# six-tensor layer; 512 B stands for the handful of tensors a DLIO state holds.
TF_INDEX_BYTES = 512


def mechanism(framework: str) -> str:
    """DLIO's checkpoint mechanism for a framework: tf_save for tensorflow, pt_save for pytorch.

    jax and native are dl-driver's own frameworks, with no mechanism in DLIO: they use the pytorch layout.
    """
    return "tf_save" if framework == "tensorflow" else "pt_save"


def pt_save_files(tensors: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """torch.save writes one NAME.pt per tensor file."""
    return [(f"{name}.pt", nbytes) for name, nbytes in tensors]


def tf_save_files(tensors: list[tuple[str, int]], state_file: bool) -> list[tuple[str, int]]:
    """tf.train.Checkpoint writes an index and a data file per tensor file, then the folder's `checkpoint`.

    The data file holds the tensor bytes, so totals match the pytorch layout up to the small index and
    state files. (DLIO's own tf_save hands tf.train.Checkpoint plain tensors, which it does not save: its
    data files hold only the object graph. dl-driver writes the bytes such a checkpoint is meant to carry.)

    Every TensorFlow save rewrites the folder's `checkpoint` file to name the prefix it just wrote, so in
    DLIO all ranks race to rewrite it; here one rank (`state_file`, rank 0) writes it once, after its last
    file, and the folder ends as DLIO's does: with one `checkpoint` file.
    """
    files = [f for name, nbytes in tensors
             for f in ((f"{name}{TF_PREFIX}{TF_INDEX}", TF_INDEX_BYTES), (f"{name}{TF_PREFIX}{TF_DATA}", nbytes))]
    if state_file and tensors:
        files.append((TF_STATE, tf_state_bytes(tensors[-1][0] + TF_PREFIX)))
    return files


def tf_state_bytes(prefix: str) -> int:
    """Size of the `checkpoint` file TensorFlow writes after saving `prefix` (a CheckpointState text proto)."""
    return len(f'model_checkpoint_path: "{prefix}"\nall_model_checkpoint_paths: "{prefix}"\n')


def layer_mode(workload) -> str:
    """The checkpoint layout of the workload's DLIO generation: "head" (DeepSpeed-style) or "2.0.0"."""
    return CHECKPOINT_LAYOUT[workload.dlio_defaults]


def checkpoint_layout(workload, world_size: int, scale: float = 1.0, epoch: int = 1,
                      step: int = 1) -> list[list[tuple[str, int]]]:
    """Per rank (index = rank), the (name, bytes) of the files it writes for the checkpoint of (epoch, step),
    names relative to checkpoint_folder(epoch, step, layer_mode(workload)). Only 2.0.0's names depend
    on epoch and step; no layout's sizes do."""
    if not 0 < scale <= 1.0:
        raise ConfigError(f"--checkpoint-scale: must be in (0, 1], got {scale}")
    if layer_mode(workload) == "2.0.0":
        tensors = [checkpoint_sizes_v2.rank_tensors(workload, world_size, r, epoch, step, scale)
                   for r in range(world_size)]
    else:
        topo = topology(workload, world_size)
        tensors = [rank_tensors(workload, topo, r, scale) for r in range(world_size)]
    if mechanism(workload.framework) == "tf_save":
        return [tf_save_files(t, state_file=r == 0) for r, t in enumerate(tensors)]
    return [pt_save_files(t) for t in tensors]


def checkpoint_folder(epoch: int, step: int, mode: str = "head") -> str:
    """The folder of one checkpoint, relative to the checkpoint URI, as DLIO names it: global_epoch{E}_step{S}
    (HEAD); "" for 2.0.0, which writes its files into the checkpoint URI itself."""
    return "" if mode == "2.0.0" else f"global_epoch{epoch}_step{step}"
