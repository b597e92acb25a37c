"""Opening recording files with h5py and turning its errors into clear lsci errors."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter so compressed files read)
import numpy as np

from lsci.recording import layout
from lsci.recording.errors import (
    RecordingError,
    RecordingFormatError,
    RecordingStateError,
    RecordingWriteError,
)

#: Resolved paths of the files this process's writers have open: HDF5 would let a second
#: in-process handle modify them behind the writer's back.
WRITING: set[Path] = set()

#: What h5py raises when writing a file fails: OSError from most calls, RuntimeError when
#: HDF5's metadata cache cannot write while flushing or closing the file ("Unable to
#: synchronously flush file", "Disable slist on flush dest failure failed"; errno 28 on a
#: full disk). Catch these around h5py calls that write, and only there.
H5_WRITE_ERRORS = (OSError, RuntimeError)

_H5_DETAIL = re.compile(r"error message = '([^']*)'")
_H5_REASON = re.compile(r"\((.*)\)\s*$", re.DOTALL)


def describe_os_error(exc: BaseException) -> str:
    """The cause inside an h5py/OS error message, without HDF5's wrapping.

    Parameters
    ----------
    exc : BaseException
        Usually an :class:`OSError` raised by h5py.

    Returns
    -------
    str
        For example ``"No space left on device"`` or ``"file signature not found"``.
    """
    text = str(exc)
    detail = _H5_DETAIL.search(text)
    if detail:
        return detail.group(1)
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return os.strerror(code)
    reason = _H5_REASON.search(text)
    return reason.group(1) if reason else text


def open_for_reading(path: str | Path) -> h5py.File:
    """Open a recording read-only, whether it was closed, is still growing, or its writer crashed.

    A file still being written, or whose SWMR writer was killed, refuses a normal open ("already
    open for write") and opens only in SWMR-read mode, which is then used.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    h5py.File

    Raises
    ------
    RecordingError
        When the file is missing, unreadable or not HDF5, or points outside itself (see
        :func:`check_internal`) (:class:`RecordingFormatError`).
    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(path, "no such file")
    if path.is_dir():
        raise RecordingError(path, "is a directory, not a recording file")
    if path.stat().st_size == 0:
        raise RecordingFormatError(path, "the file is empty (0 bytes), not an HDF5 recording")
    handle = _open_read_only(path)
    try:
        check_internal(handle, path)
    except BaseException:
        handle.close()
        raise
    return handle


def has_recording_marker(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file marked as an lsci recording; never raises.

    Opens like :func:`open_for_reading` (files still being written, or left by a crashed
    writer, included) but checks nothing else: a marked file that is malformed or unsafe is
    still claimed, so that opening it gives lsci's clear error instead of "no reader".
    """
    try:
        path = Path(path)
        if not path.is_file() or path.stat().st_size == 0:
            return False
        with _open_read_only(path) as handle:
            return bool(decode(handle.attrs.get("lsci_format")) == layout.FORMAT_NAME)
    except (RecordingError, OSError):
        return False


def _open_read_only(path: Path) -> h5py.File:
    try:
        try:
            # A closed file opens normally, with HDF5's checks (e.g. truncation) intact.
            return h5py.File(path, "r")
        except BlockingIOError:
            return h5py.File(path, "r", swmr=True)
        except OSError as exc:
            if "already open for write" not in str(exc):
                raise
            return h5py.File(path, "r", swmr=True)
    except BlockingIOError:
        raise RecordingStateError(
            path, "the file is locked by another program writing it; try again in a moment"
        ) from None
    except PermissionError as exc:
        raise RecordingError(path, f"cannot open: {describe_os_error(exc)}") from None
    except OSError as exc:
        cause = describe_os_error(exc)
        if "signature" in cause:
            problem = "not an HDF5 file (no HDF5 signature found): not an lsci recording"
        elif "truncated" in cause:
            problem = f"truncated HDF5 file ({cause}): the file was cut short, e.g. by a copy"
        else:
            problem = f"cannot be opened as HDF5: {cause}"
        raise RecordingFormatError(path, problem) from None


#: Dataset storage layouts whose bytes are inside the file.
_INTERNAL_LAYOUTS = (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED)


def check_internal(handle: h5py.File, path: str | Path) -> None:
    """Refuse a file whose objects or data live outside it.

    HDF5 lets a file point elsewhere: external links (to objects in other files), datasets
    whose bytes are stored in other files (external raw storage) and virtual datasets (mapped
    from other files). Following them would make lsci read, export or modify files the user
    never named, and a missing source silently reads as fill values. Only hard links, soft
    links that resolve inside the file, and datasets stored inside the file are accepted.

    Parameters
    ----------
    handle : h5py.File
        The open file.
    path : str or pathlib.Path
        Its path, for messages.

    Raises
    ------
    RecordingFormatError
        Naming the first object that points outside the file, or a soft link that points to
        nothing or loops.
    """
    problems: list[str] = []

    def visit(name: str) -> int | None:
        link = handle.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            problems.append(
                f"/{name} is an external link to {link.filename}:{link.path}; lsci reads only "
                "objects stored inside the recording"
            )
            return 1
        if isinstance(link, h5py.SoftLink):
            try:
                handle[name]
            except (KeyError, RuntimeError, OSError, RecursionError):
                problems.append(f"/{name} is a soft link to {link.path} that is missing or loops")
                return 1
            return None
        if not isinstance(link, h5py.HardLink):
            problems.append(f"/{name} is a link of a kind lsci does not follow")
            return 1
        item = handle[name]
        if isinstance(item, h5py.Dataset):
            plist = item.id.get_create_plist()
            if plist.get_layout() not in _INTERNAL_LAYOUTS:
                problems.append(
                    f"/{name} is a virtual dataset mapped from other files; lsci reads only "
                    "data stored inside the recording"
                )
                return 1
            if plist.get_external_count():
                problems.append(
                    f"/{name} stores its data in another file (external raw storage); lsci "
                    "reads only data stored inside the recording"
                )
                return 1
        return None

    try:
        handle.visit_links(visit)
    except (KeyError, RuntimeError, OSError, RecursionError, ValueError) as exc:
        raise RecordingFormatError(path, f"malformed HDF5 structure: {exc}") from None
    if problems:
        raise RecordingFormatError(path, problems[0])


def open_for_editing(path: str | Path) -> h5py.File:
    """Open a closed recording to add events, calibrations or derived products.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    h5py.File
        Opened in ``"r+"`` mode, root checked as an lsci recording.

    Raises
    ------
    RecordingError
        When the file is missing, not a recording, still being written, was not closed
        cleanly (:class:`RecordingStateError`), or cannot be written
        (:class:`RecordingWriteError`).
    """
    path = Path(path)
    if path.resolve() in WRITING:
        raise RecordingStateError(
            path, "the recording is still being written by this program; close the writer first"
        )
    with open_for_reading(path) as probe:
        check_root(probe, path)
    try:
        handle = h5py.File(path, "r+")
    except BlockingIOError:
        raise RecordingStateError(path, _held_by(path)) from None
    except OSError as exc:
        cause = describe_os_error(exc)
        if "already open for write" in cause or "file is already open" in str(exc):
            raise RecordingStateError(path, _held_by(path)) from None
        raise RecordingWriteError(path, f"cannot open for writing: {cause}") from None
    return handle


def in_use(path: str | os.PathLike[str]) -> bool:
    """Whether another descriptor holds an advisory lock on the regular file ``path``.

    True for a recording being written (see :func:`lsci.recording.atomic.hold`) and for a
    file HDF5 has open.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)
    return False


def _held_by(path: Path) -> str:
    """Why a recording cannot be opened for editing: who holds it, as far as can be told.

    A live writer holds a lock and leaves the file marked open for writing; a writer that
    died leaves only the mark; a reader (a viewer, ``lsci info``) holds only a lock.
    """
    try:
        with h5py.File(path, "r"):
            marked = False
    except OSError:
        marked = True
    if marked and in_use(path):
        return (
            "the recording is still being written by another program; it can be read but not "
            "modified until that writer closes it"
        )
    if marked:
        return (
            "the recording was left open: its writer stopped without closing it (killed or "
            "crashed); it can be read but not modified. Work on a repaired copy (lsci repair "
            "FILE --out COPY.h5)"
        )
    return "the file is open in another program (a viewer or reader); close it there first"


def check_root(handle: h5py.File, path: str | Path) -> int:
    """Check the root attributes that mark an lsci recording and return its format version.

    Parameters
    ----------
    handle : h5py.File
        The open file.
    path : str or pathlib.Path
        Its path, for messages.

    Returns
    -------
    int
        The ``format_version`` attribute.

    Raises
    ------
    RecordingFormatError
        When the marker is missing or the version is unknown.
    """
    marker = decode(handle.attrs.get("lsci_format"))
    if marker != layout.FORMAT_NAME:
        raise RecordingFormatError(
            path,
            f"an HDF5 file but not an lsci recording (root attribute lsci_format is "
            f"{marker!r}, expected {layout.FORMAT_NAME!r})",
        )
    version = handle.attrs.get("format_version")
    if not isinstance(version, np.integer | int) or isinstance(version, bool):
        raise RecordingFormatError(path, f"invalid format_version attribute {version!r}")
    version = int(version)
    if version > layout.FORMAT_VERSION:
        raise RecordingFormatError(
            path,
            f"format version {version} is newer than this lsci reads "
            f"(up to {layout.FORMAT_VERSION}); update lsci",
        )
    if version < 1:
        raise RecordingFormatError(path, f"invalid format_version {version}")
    return version


def decode(value: Any) -> Any:
    """An HDF5 attribute value as plain Python: bytes to str, NumPy scalars to int/float/bool."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """All attributes of an HDF5 object, decoded with :func:`decode`."""
    return {name: decode(attrs[name]) for name in attrs}


def check_name(kind: str, name: object) -> str:
    """Validate the name of a calibration or derived product (one HDF5 path component).

    Raises
    ------
    TypeError, ValueError
        When ``name`` is not a non-empty string without ``/`` or a leading ``.``.
    """
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {name!r}")
    if not name or "/" in name or name.startswith(".") or name != name.strip():
        raise ValueError(
            f"{kind} name {name!r} is invalid: use a non-empty name without '/', leading '.' "
            "or surrounding spaces"
        )
    return name


def write_error(path: str | Path, exc: Exception, doing: str) -> RecordingWriteError:
    """A :class:`RecordingWriteError` for one of :data:`H5_WRITE_ERRORS` raised while
    ``doing`` something."""
    return RecordingWriteError(path, f"{doing} failed: {describe_os_error(exc)}")
