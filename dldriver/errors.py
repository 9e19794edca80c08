"""User-facing errors. Each carries the place it comes from (a key path, a file, an object, a URI).

The CLI turns any DlDriverError into one line on stderr and a non-zero exit code, never a traceback.
"""


class DlDriverError(Exception):
    """An error the user can act on. `str(err)` is the full one-line message."""

    exit_code = 1


class ConfigError(DlDriverError):
    """One or more problems in a workload config; each problem names its key path."""

    exit_code = 2

    def __init__(self, problems, source=None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in self.problems))


class StorageError(DlDriverError):
    """A storage operation failed; the message names the URI."""


class FormatError(DlDriverError):
    """A file could not be decoded as the expected format; the message names the file and the format."""


class DatasetError(DlDriverError):
    """A dataset is missing or does not match its config or manifest."""


class CheckpointError(DlDriverError):
    """A checkpoint is missing, incomplete or cannot be written."""


class ServiceError(DlDriverError):
    """A local service (SeaweedFS, Azurite, Slurm) could not be started, reached or stopped."""
