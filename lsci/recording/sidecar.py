"""The folder beside a sealed recording, and writing files into it safely.

Everything lsci makes from a recording after acquisition closed it goes into ``session.lsci/``
beside ``session.h5``: product sets (:mod:`lsci.recording.products`) and annotations added
later (:mod:`lsci.recording.annotations`). Every file there is written under a hidden temporary
name created exclusively (never through a symbolic link) and renamed into place only when it is
complete, so readers see whole files or nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from lsci.recording._h5 import describe_os_error
from lsci.recording.atomic import create_exclusive, sync_file, sync_folder
from lsci.recording.atomic import publish as replace
from lsci.recording.errors import RecordingError

__all__ = [
    "FOLDER_SUFFIX",
    "create_temporary",
    "create_temporary_folder",
    "folder_lock",
    "publish",
    "publish_folder",
    "remove_tree",
    "sidecar_folder",
]

#: Suffix of the folder beside a recording: ``session.lsci`` for ``session.h5``.
FOLDER_SUFFIX = ".lsci"
PARTIAL = ".partial"
#: A temporary file older than this, whose writer is gone, was left by an interrupted run.
_STALE_AFTER_S = 60.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def sidecar_folder(recording: str | os.PathLike[str]) -> Path:
    """The folder beside a recording that holds what was made from it later."""
    path = Path(recording)
    return path.with_name(path.stem + FOLDER_SUFFIX)


def make_folder(recording: str | os.PathLike[str]) -> Path:
    """Create the sidecar folder if needed; refuse a symbolic link or a non-folder there."""
    folder = sidecar_folder(recording)
    if folder.is_symlink():
        raise RecordingError(
            folder, "is a symbolic link; lsci writes only into a real folder beside the recording"
        )
    try:
        folder.mkdir(exist_ok=True)
    except FileExistsError:
        pass  # not a folder: refused below
    except OSError as exc:
        raise RecordingError(folder, f"cannot create the folder: {exc.strerror}") from None
    if not folder.is_dir():
        raise RecordingError(
            folder,
            "exists and is not a folder; lsci keeps the recording's products, events and "
            "calibrations in a folder of that name: move the file away",
        )
    return folder


def create_temporary(folder: Path) -> Path:
    """A new, empty, hidden file in ``folder``, created exclusively and never through a link.

    The name carries this process's id, so a later run can tell a file whose writer is gone.
    """
    _remove_stale(folder)
    try:
        path, descriptor = create_exclusive(folder, f".{os.getpid()}{PARTIAL}")
    except OSError as exc:
        raise RecordingError(folder, f"cannot create a file: {describe_os_error(exc)}") from None
    os.close(descriptor)
    return path


def create_temporary_folder(folder: Path) -> Path:
    """A new, empty, hidden folder in ``folder`` (created exclusively, private to this user).

    Like :func:`create_temporary`, its name carries this process's id.
    """
    _remove_stale(folder)
    try:
        return Path(
            tempfile.mkdtemp(prefix=".lsci-", suffix=f".{os.getpid()}{PARTIAL}", dir=folder)
        )
    except OSError as exc:
        raise RecordingError(folder, f"cannot create a folder: {describe_os_error(exc)}") from None


def publish_folder(temporary: Path, final: Path) -> None:
    """Give a finished temporary folder its final name, replacing a folder of that name.

    The files in it must be durable already. A folder cannot replace a non-empty folder in one
    rename, so an existing ``final`` is first renamed to a hidden temporary name (readers then
    see neither for an instant, never a mix of both) and removed after.
    """
    sync_folder(temporary)
    old: Path | None = None
    if final.is_dir() and not final.is_symlink():
        old = Path(
            tempfile.mkdtemp(prefix=".lsci-", suffix=f".{os.getpid()}{PARTIAL}", dir=final.parent)
        )
        os.replace(final, old)
    os.rename(temporary, final)
    sync_folder(final.parent)
    if old is not None:
        remove_tree(old)


def remove_tree(path: Path) -> None:
    """Remove a folder lsci created, and everything in it (never following a link out of it)."""
    with contextlib.suppress(OSError):
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)


def publish(temporary: Path, final: Path) -> None:
    """Make a finished temporary file durable and give it its final name atomically."""
    sync_file(temporary)
    replace(temporary, final, overwrite=True)
    sync_folder(final.parent)


@contextlib.contextmanager
def folder_lock(folder: Path, name: str) -> Iterator[None]:
    """Hold an exclusive advisory lock for read-modify-write updates of one file in ``folder``."""
    path = folder / f".{name}.lock"
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
    except OSError as exc:
        raise RecordingError(path, f"cannot create the lock file: {exc.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _remove_stale(folder: Path) -> None:
    """Remove temporary files and folders of interrupted runs: old ones whose writer is gone."""
    now = time.time()
    for path in folder.glob(f".*{PARTIAL}"):
        pid_text = path.name[: -len(PARTIAL)].rsplit(".", 1)[-1]
        alive = pid_text.isdigit() and _process_alive(int(pid_text))
        with contextlib.suppress(OSError):
            if not alive and now - path.lstat().st_mtime > _STALE_AFTER_S:
                remove_tree(path)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
