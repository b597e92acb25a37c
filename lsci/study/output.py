"""Files of the study's outputs, each written under a temporary name and renamed when complete."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from lsci.recording.atomic import atomic_write
from lsci.study.errors import StudyError

__all__ = ["output_folder", "safe_name", "write_atomically"]


def output_folder(path: str | Path) -> Path:
    """Create the output folder (and its parents) if needed; refuse a file in its place."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StudyError(f"{folder}: exists and is not a folder") from None
    except OSError as exc:
        raise StudyError(f"{folder}: cannot create the folder: {exc.strerror or exc}") from None
    return folder


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` and give the finished file the name ``path``.

    The outputs of an earlier run are replaced; a reader never sees half of a file, and a
    failure leaves the earlier file as it was (:func:`lsci.recording.atomic.atomic_write`).
    """
    with atomic_write(path, overwrite=True) as temporary:
        write(temporary)
    return path


def safe_name(text: str) -> str:
    """A file-name fragment of ``text``: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "unnamed"
