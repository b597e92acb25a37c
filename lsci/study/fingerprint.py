"""What a catalogued recording is: its bytes (SHA-256, size) and its annotations beside it.

A recording is sealed when acquisition closes it, but events and calibrations added later live
in ``session.lsci/annotations.h5`` beside it (:mod:`lsci.recording.annotations`), and a
calibration changes the numbers computed from the recording. Both files are therefore part of
what the catalog checks before a recording is used.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lsci.recording.annotations import annotations_path

__all__ = ["Fingerprint", "Status", "fingerprint", "sha256_file", "status"]

Status = Literal["ok", "changed", "missing"]
_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """The recording file's SHA-256 and size, and its annotations file's SHA-256 (if any)."""

    sha256: str
    size_bytes: int
    annotations_sha256: str | None


def fingerprint(path: str | os.PathLike[str]) -> Fingerprint:
    """Fingerprint a recording now.

    Raises
    ------
    OSError
        When the recording cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    sha = sha256_file(path)
    side = annotations_path(path)
    return Fingerprint(sha, size, sha256_file(side) if side.is_file() else None)


def status(path: Path, expected: Fingerprint, *, quick: bool = False) -> tuple[Status, str]:
    """Whether the recording at ``path`` is still what was catalogued.

    Parameters
    ----------
    path : Path
        Where the catalog says the recording is.
    expected : Fingerprint
        What it was when it was added.
    quick : bool
        Compare existence and sizes only (no hashing): finds moved, truncated and grown files,
        not bytes rewritten in place.

    Returns
    -------
    status : {'ok', 'changed', 'missing'}
    reason : str
        Empty when ok; otherwise what differs, in words.
    """
    if not path.is_file():
        return "missing", "the file is not there (moved, renamed or deleted)"
    try:
        size = path.stat().st_size
        if size != expected.size_bytes:
            return "changed", f"its size is {size} bytes, {expected.size_bytes} when added"
        side = annotations_path(path)
        if side.is_file() != (expected.annotations_sha256 is not None):
            return "changed", "annotations (events, calibrations) were added or removed beside it"
        if quick:
            return "ok", ""
        now = fingerprint(path)
    except OSError as exc:
        return "missing", f"it cannot be read: {exc.strerror or exc}"
    if now.sha256 != expected.sha256:
        return "changed", "its bytes differ from when it was added (SHA-256)"
    if now.annotations_sha256 != expected.annotations_sha256:
        return "changed", "its annotations (events, calibrations) changed since it was added"
    return "ok", ""
