"""Storage backends behind one small protocol (see base.Storage), picked by URI scheme (registry)."""
from dldriver.storage.base import MissingContainerError, MissingObjectError, Storage, Writer
from dldriver.storage.registry import open_storage

__all__ = ["MissingContainerError", "MissingObjectError", "Storage", "Writer", "open_storage"]
