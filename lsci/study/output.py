"""Files of the study's outputs, each written under a temporary name and renamed when complete."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path

from lsci.recording.sidecar import create_temporary, publish
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
    """Call ``write(temporary)`` and rename the finished temporary file to ``path``.

    A reader never sees half of the file, and an interrupted run leaves at most a hidden
    ``.partial`` file that the next run removes.
    """
    temporary = create_temporary(path.parent, path.name)
    try:
        write(temporary)
        publish(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(exc, OSError):
            raise StudyError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise
    return path


def safe_name(text: str) -> str:
    """A file-name fragment of ``text``: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "unnamed"
