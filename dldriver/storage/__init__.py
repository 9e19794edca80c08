"""Storage backends behind one small protocol (see base.Storage), picked by URI scheme."""
from dldriver.storage.base import MissingContainerError, MissingObjectError, Storage, Writer
from dldriver.storage.registry import SCHEMES, open_storage, split_uri

__all__ = ["MissingContainerError", "MissingObjectError", "SCHEMES", "Storage", "Writer", "open_storage",
           "split_uri"]
