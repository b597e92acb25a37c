"""Errors raised when a recording cannot be created, written or read.

Every message names the file and the cause, so the command line can show it as it is.
"""

from __future__ import annotations

from os import PathLike

from lsci.errors import LsciError


class RecordingError(LsciError):
    """Base class of the recording errors.

    Parameters
    ----------
    path : str or os.PathLike
        The file concerned.
    problem : str
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type[RecordingError], tuple[str, str]]:
        # Pickled with its own arguments, so that it crosses processes whole (the error of a
        # task on a Dask worker, raised again in the client).
        return type(self), (self.path, self.problem)


class RecordingFormatError(RecordingError):
    """The file is not a readable lsci recording (not HDF5, truncated, malformed, too new)."""


class CorruptRecordingError(RecordingError):
    """Stored data fails its checksum: the bytes on disk changed after they were written."""


class RecordingWriteError(RecordingError):
    """Writing failed (disk full, permission denied, read-only file system...)."""


class RecordingExistsError(RecordingError):
    """The target file exists and overwriting was not requested."""


class RecordingStateError(RecordingError):
    """The operation is not possible in the recording's current state (closed, still open...)."""


class DerivedProductExistsError(RecordingError):
    """A derived product of that name exists with different provenance."""


class RecordingWarning(UserWarning):
    """Something in a recording is invalid but not needed to read it (e.g. one metadata field)."""
