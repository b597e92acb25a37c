"""Errors of the study catalog; each message names the problem and what to do about it."""

from __future__ import annotations

from lsci.errors import LsciError

__all__ = ["CatalogError", "RecordingChangedError", "StudyError"]


class StudyError(LsciError):
    """An operation on a study cannot be done (unknown subject, invalid code, no ROIs...)."""


class CatalogError(StudyError):
    """The catalog database cannot be opened, created, migrated or written."""


class RecordingChangedError(StudyError):
    """A catalogued recording changed (other bytes) or moved since it was added."""
