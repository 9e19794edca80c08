"""Loaders: thin adapters over the shared sample source, one module per framework.

`make_loader` imports a framework only when its loader is asked for, so a run with the native or
PyTorch loader never imports TensorFlow or JAX.
"""
from __future__ import annotations

from dldriver.errors import ConfigError
from dldriver.extras import require
from dldriver.loaders.base import Batch, Loader, prefetch_factor

# Each loader and the framework module it imports (None: numpy only); its extra is extras.EXTRAS'.
LOADER_MODULES = {"native": None, "pytorch": "torch", "tensorflow": "tensorflow", "jax": "jax"}
LOADERS = tuple(LOADER_MODULES)
# DLIO loaders dl-driver does not emulate, with what to use instead.
UNSUPPORTED = {
    "dali": "NVIDIA DALI is not emulated; use pytorch or tensorflow (same reads) or native",
    "native_dali": "NVIDIA DALI is not emulated; use tensorflow or native",
    "synthetic": "synthetic reads nothing, which an I/O benchmark cannot measure; use native",
}

__all__ = ["Batch", "Loader", "LOADERS", "LOADER_MODULES", "check_loader", "make_loader", "prefetch_factor"]


def check_loader(name: str) -> None:
    """ConfigError unless `name` (reader.data_loader) is a loader dl-driver runs; a missing framework
    is named with its extra."""
    if name in UNSUPPORTED:
        raise ConfigError(f"reader.data_loader: {name!r} is not supported: {UNSUPPORTED[name]}")
    if name not in LOADER_MODULES:
        raise ConfigError(f"reader.data_loader: {name!r} is not one of {', '.join(LOADERS)}")
    if LOADER_MODULES[name] is not None:
        require(LOADER_MODULES[name])


def make_loader(name: str, source, reader, tfrecord_native: bool = True) -> Loader:
    """The loader `name` (reader.data_loader) over `source`, configured from `reader` (config Reader).

    tfrecord_native lets the tensorflow loader read tfrecord files with TFRecordDataset when they are
    local files; the source is used otherwise.
    """
    check_loader(name)
    if name == "native":
        from dldriver.loaders.native import NativeLoader
        return NativeLoader(source, reader.read_threads, reader.prefetch_size)
    if name == "pytorch":
        from dldriver.loaders.pytorch import PyTorchLoader
        return PyTorchLoader(source, reader.read_threads, reader.prefetch_size, reader.pin_memory,
                             reader.multiprocessing_context)
    if name == "tensorflow":
        from dldriver.loaders.tensorflow import TensorFlowLoader
        return TensorFlowLoader(source, reader.read_threads, reader.prefetch_size,
                                reader.computation_threads, reader.transfer_size, tfrecord_native)
    if name == "jax":
        from dldriver.loaders.jax import JaxLoader
        return JaxLoader(source, reader.read_threads, reader.prefetch_size)
    raise AssertionError(f"check_loader let {name!r} through")
