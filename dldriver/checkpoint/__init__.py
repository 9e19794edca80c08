"""Checkpoint emulation: DLIO's checkpoint layouts written and read through any storage backend.

layout    which files each rank writes and their sizes, per DLIO mechanism (pure)
stream    bounded-memory writes and full reads of those files
runner    schedules, the per-rank Checkpointer, the checkpoint-only run
The checkpoint formulas, the run-folder writer and page-cache control come from dldriver.metrics.
"""
from dldriver.checkpoint.layout import checkpoint_folder, checkpoint_layout, mechanism, transformer_params
from dldriver.checkpoint.runner import (Checkpointer, run_checkpoint_only, should_checkpoint_after_epoch,
                                        should_checkpoint_after_step)

__all__ = ["Checkpointer", "checkpoint_folder", "checkpoint_layout", "mechanism", "run_checkpoint_only",
           "should_checkpoint_after_epoch", "should_checkpoint_after_step", "transformer_params"]
