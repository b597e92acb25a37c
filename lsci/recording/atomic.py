"""Creating files so that a name only ever shows a complete file, never a partial one.

Every file lsci creates is written under a temporary name in the target folder and renamed to
its final name only once it is complete and on disk. A failure (disk full, read-only folder,
an error while computing what to write) removes the temporary file, so the final name keeps
whatever it held before, and running the command again works.

The temporary names are random and created exclusively (``O_EXCL | O_NOFOLLOW``), so a
symbolic link planted in the folder can never redirect what lsci writes; their length does not
depend on the final name, so a final name of up to the file-system limit (255 bytes) works.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from lsci.recording._h5 import describe_os_error, in_use
from lsci.recording.errors import (
    RecordingError,
    RecordingExistsError,
    RecordingStateError,
    RecordingWriteError,
)

__all__ = [
    "atomic_write",
    "atomic_writes",
    "check_target",
    "create_exclusive",
    "hold",
    "in_use",
    "publish",
    "write_text_atomically",
]

_PREFIX = ".lsci-"
_ATTEMPTS = 100


def create_exclusive(folder: str | os.PathLike[str], suffix: str) -> tuple[Path, int]:
    """Create a new, empty file under a random name in ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        Where the file goes (the folder of the final file, so that renaming it is atomic).
    suffix : str
        End of the name, e.g. ``".partial"``.

    Returns
    -------
    path : pathlib.Path
        ``folder/.lsci-<32 hex digits><suffix>``.
    descriptor : int
        The file, open for writing; the caller closes it.

    Raises
    ------
    OSError
        When the folder does not allow creating a file.
    """
    folder = Path(folder)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_ATTEMPTS):
        path = folder / f"{_PREFIX}{secrets.token_hex(16)}{suffix}"
        try:
            return path, os.open(path, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def check_target(
    target: str | os.PathLike[str],
    *,
    overwrite: bool,
    inputs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Refuse an output name that would lose data or write somewhere unexpected.

    Parameters
    ----------
    target : str or os.PathLike
        The final name.
    overwrite : bool
        Whether an existing file may be replaced.
    inputs : sequence of path
        Files the output is made from: the output may not be any of them under any name
        (the same path, a relative path, a symbolic or a hard link).

    Returns
    -------
    pathlib.Path
        ``target``.

    Raises
    ------
    RecordingError
        When ``target`` is one of ``inputs``, a directory, or a symbolic link to nothing.
    RecordingExistsError
        When ``target`` exists and ``overwrite`` is false.
    RecordingStateError
        When ``target`` is to be replaced but another program has it open (see
        :func:`in_use`).
    """
    target = Path(target)
    if target.is_symlink() and not target.exists():
        raise RecordingError(
            target,
            "is a symbolic link to a missing file; lsci does not write through it: remove "
            "the link or choose another output name",
        )
    if target.exists():
        for source in inputs:
            with contextlib.suppress(OSError):
                if os.path.samefile(target, source):
                    raise RecordingError(
                        target,
                        f"is the input {source} (the same file under this name); writing it "
                        "would destroy the input: choose another output name",
                    )
        if target.is_dir():
            raise RecordingError(target, "is a directory; give a file name")
    if os.path.lexists(target) and not overwrite:
        raise RecordingExistsError(target, "exists and overwriting was not requested")
    if overwrite and in_use(target):
        raise RecordingStateError(
            target,
            "is open in another program (a recording still being written, or a viewer); "
            "it is not replaced: close it first or choose another output name",
        )
    return target


def hold(path: str | os.PathLike[str]) -> int:
    """Mark a file as in use for as long as the returned descriptor stays open.

    A shared advisory lock (``flock``) on a descriptor of its own: other programs see it with
    :func:`in_use`, and HDF5 readers, which take shared locks too, are not blocked.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def publish(temporary: Path, target: Path, *, overwrite: bool) -> None:
    """Give a complete file its final name atomically, never replacing a file unless asked.

    With ``overwrite``, a symbolic link at ``target`` is replaced, not the file it points to.

    Raises
    ------
    RecordingExistsError
        When ``target`` exists (perhaps created meanwhile) and ``overwrite`` is false;
        ``temporary`` is then removed.
    OSError
        When renaming fails.
    """
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target, follow_symlinks=False)
    except FileExistsError:
        temporary.unlink()
        raise RecordingExistsError(target, "exists and overwriting was not requested") from None
    except OSError:
        # File systems without hard links: check, then rename (not atomic against a race).
        if os.path.lexists(target):
            temporary.unlink()
            raise RecordingExistsError(target, "exists and overwriting was not requested") from None
        os.rename(temporary, target)
        return
    temporary.unlink()


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse it)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def atomic_writes(
    targets: Sequence[str | os.PathLike[str]],
    *,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike[str]] = (),
) -> Iterator[list[Path]]:
    """Write several files, each under a temporary name, and publish them all at the end.

    Parameters
    ----------
    targets : sequence of path
        The final names.
    overwrite : bool
        Replace existing files.
    inputs : sequence of path
        Files the outputs are made from; none of the outputs may be one of them.

    Yields
    ------
    list of pathlib.Path
        One empty temporary file per target, in the same folder, for the caller to fill.

    Raises
    ------
    RecordingError
        When a target is refused (see :func:`check_target`).
    RecordingWriteError
        When creating, writing or renaming fails (disk full, read-only folder...): every
        temporary file is removed and no final name is touched.

    Examples
    --------
    >>> with atomic_writes(["a.csv"]) as [temporary]:  # doctest: +SKIP
    ...     temporary.write_text("1,2\\n")
    """
    finals = [check_target(t, overwrite=overwrite, inputs=inputs) for t in targets]
    temporaries: list[Path] = []
    current = finals[0] if finals else Path()
    try:
        for target in finals:
            current = target
            path, descriptor = create_exclusive(target.parent, ".partial")
            os.close(descriptor)
            temporaries.append(path)
        current = finals[0] if finals else current
        yield temporaries
        for target, path in zip(finals, temporaries, strict=True):
            current = target
            sync_file(path)
        published: list[Path] = []
        try:
            for target, path in zip(finals, temporaries, strict=True):
                current = target
                publish(path, target, overwrite=overwrite)
                published.append(target)
        except RecordingExistsError:
            if not overwrite:
                for target in published:
                    target.unlink(missing_ok=True)
            raise
        for folder in {target.parent for target in finals}:
            sync_folder(folder)
    except OSError as exc:
        raise RecordingWriteError(
            current,
            f"writing failed: {describe_os_error(exc)}; nothing was written under this name",
        ) from None
    finally:
        for path in temporaries:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike[str]] = (),
) -> Iterator[Path]:
    """Write one file under a temporary name and publish it when the block succeeds.

    See :func:`atomic_writes`; this yields the single temporary path.
    """
    with atomic_writes([target], overwrite=overwrite, inputs=inputs) as [temporary]:
        yield temporary


def sync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_text_atomically(target: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text to ``target`` under a temporary name and publish it (replacing)."""
    with atomic_write(target, overwrite=True) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(target)
