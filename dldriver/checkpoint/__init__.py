"""Checkpoint emulation: DLIO's checkpoint layouts written and read through any storage backend.

layout        which files each rank writes and their sizes, per DLIO mechanism (pure)
stream        bounded-memory writes and full reads of those files
checkpointer  one rank's timed saves and loads on the storage it is handed
When checkpoints happen (DLIO's schedules, the checkpoint-only phases) is the run driver's:
dldriver.engine.checkpointing.
"""
from dldriver.checkpoint.checkpointer import Checkpointer
from dldriver.checkpoint.layout import checkpoint_folder, checkpoint_layout, mechanism, transformer_params

__all__ = ["Checkpointer", "checkpoint_folder", "checkpoint_layout", "mechanism", "transformer_params"]
