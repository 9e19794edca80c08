"""Key paths as the user wrote them: the loader maps HEAD spellings back to the file's or override's
(`pytorch_config` -> `framework_profiles.pytorch`, `model.model_size_bytes` -> `checkpoint.model_size`),
so messages and `validate` name the key the user can find."""
from __future__ import annotations


def as_written(path: str, spellings: dict) -> str:
    """`path` (HEAD spelling) with its first prefix that the user spelled otherwise replaced by that
    spelling; spellings: HEAD prefix -> written prefix."""
    for head, written in spellings.items():
        if path == head or path.startswith(head + "."):
            return written + path[len(head):]
    return path
