"""Repairing a recording: a verified, cleanly closed copy of every frame that can be read.

The original file is never modified (``h5clear -s`` on a crashed SWMR file has been seen to
truncate it to a few hundred bytes). The copy is written under a temporary name and appears
under its own name only once it is complete and verified.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from lsci.recording import layout
from lsci.recording._h5 import open_for_reading
from lsci.recording.annotations import read_annotations
from lsci.recording.atomic import atomic_write
from lsci.recording.errors import CorruptRecordingError, RecordingError
from lsci.recording.reader import Recording, open_recording
from lsci.recording.writer import RecordingWriter

#: Frames copied per batch; a batch with a damaged frame is retried frame by frame.
_BATCH = 64


@dataclass(frozen=True)
class RepairReport:
    """What :func:`salvage_copy` copied.

    Attributes
    ----------
    path : pathlib.Path
        The new recording.
    frames_copied : int
        Frames in the copy.
    frames_lost : tuple of int
        Indices (in the source) of the frames that failed their checksum and were left out.
    """

    path: Path
    frames_copied: int
    frames_lost: tuple[int, ...]


def repair_copy(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Copy a recording (typically one whose writer crashed) into a new, cleanly closed file.

    Every committed frame is read (so its checksum is verified) and written again with its
    ids and timestamps; metadata, events, calibrations and derived products are copied. The
    copy is verified (frame count and ids) before the function returns; ``source`` is only
    read. Use :func:`salvage_copy` to keep the readable frames of a damaged file.

    Parameters
    ----------
    source : str or os.PathLike
        The recording to repair.
    target : str or os.PathLike
        The new file; never the source under any name.
    overwrite : bool
        Replace an existing ``target``.

    Returns
    -------
    pathlib.Path
        ``target``, which opens normally and can be modified (events, derived products).

    Raises
    ------
    RecordingError
        When ``source`` cannot be read (a frame failing its checksum included), ``target``
        is the source or cannot be written, or the copy does not match. Nothing is left under
        ``target`` then.

    Examples
    --------
    >>> repair_copy("crashed.h5", "crashed-repaired.h5")  # doctest: +SKIP
    """
    return _copy(Path(source), Path(target), overwrite=overwrite, skip_damaged=False).path


def salvage_copy(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, overwrite: bool = False
) -> RepairReport:
    """Copy every readable frame of a recording into a new file, leaving out damaged ones.

    Like :func:`repair_copy`, but a frame that fails its checksum is left out instead of
    stopping the copy. The copy keeps the frame ids of the source, so the missing frames show
    as gaps (dropped frames), and its notes name the frames left out.

    Parameters
    ----------
    source : str or os.PathLike
        The recording to repair.
    target : str or os.PathLike
        The new file; never the source under any name.
    overwrite : bool
        Replace an existing ``target``.

    Returns
    -------
    RepairReport
        The copy, the number of frames copied and the indices of the frames lost.

    Raises
    ------
    RecordingError
        When ``source`` cannot be opened or its per-frame ids and timestamps fail their
        checksum, or ``target`` cannot be written. Nothing is left under ``target`` then.

    Examples
    --------
    >>> report = salvage_copy("damaged.h5", "damaged-repaired.h5")  # doctest: +SKIP
    >>> report.frames_lost  # doctest: +SKIP
    (118,)
    """
    return _copy(Path(source), Path(target), overwrite=overwrite, skip_damaged=True)


def _copy(source: Path, target: Path, *, overwrite: bool, skip_damaged: bool) -> RepairReport:
    with open_recording(source) as rec:
        ids = rec.frame_ids
        camera = rec.camera_timestamps_ns
        host = rec.host_timestamps_ns
        good, lost = _readable_frames(rec, skip_damaged)
        metadata = rec.metadata
        if lost:
            note = (
                f"Repaired from {source.name}: {len(lost)} frame(s) failed their checksum and "
                f"were left out (source indices {describe_indices(lost)})."
            )
            metadata = replace(metadata, notes=f"{metadata.notes}\n{note}".lstrip("\n"))
        with atomic_write(target, overwrite=overwrite, inputs=[source]) as temporary:
            with RecordingWriter(
                temporary,
                metadata,
                frame_shape=rec.frame_shape,
                dtype=rec.dtype,
                compression="blosc-lz4" if rec.compression else None,
                checksum=rec.checksum,
                overwrite=True,
                fsync_interval_s=None,
            ) as writer:
                for start in range(0, len(good), _BATCH):
                    batch = good[start : start + _BATCH]
                    writer.append_many(
                        _read(rec, batch),
                        frame_ids=ids[batch],
                        camera_timestamps_ns=camera[batch],
                        host_timestamps_ns=host[batch],
                    )
                for event in rec.events:
                    writer.add_event(event.label, host_time_ns=event.host_time_ns)
                # Calibrations added beside the source after acquisition (the ones stored in it
                # are copied below with their attributes as they are).
                _, added = read_annotations(source)
                for name, calibration in added.items():
                    writer.save_calibration(name, dict(calibration.arrays), dict(calibration.attrs))
            _copy_groups(source, temporary)
            with open_recording(temporary) as copy:
                if len(copy) != len(good) or not (copy.frame_ids == ids[good]).all():
                    raise RecordingError(target, "the repaired copy does not match the source")
    return RepairReport(target, len(good), tuple(lost))


def _readable_frames(rec: Recording, skip_damaged: bool) -> tuple[np.ndarray, list[int]]:
    """Indices of the frames whose checksum holds, and of those that fail it."""
    count = len(rec)
    lost: list[int] = []
    for start in range(0, count, _BATCH):
        stop = min(start + _BATCH, count)
        try:
            rec.frames[start:stop]
            continue
        except CorruptRecordingError:
            if not skip_damaged:
                raise
        for index in range(start, stop):
            try:
                rec.frames[index]
            except CorruptRecordingError:
                lost.append(index)
    good = np.setdiff1d(np.arange(count), np.asarray(lost, dtype=np.int64))
    return good, lost


def _read(rec: Recording, indices: np.ndarray) -> np.ndarray:
    """The frames at ``indices`` (ascending), read as contiguous runs."""
    if indices.size and indices[-1] - indices[0] == indices.size - 1:
        return rec.frames[int(indices[0]) : int(indices[-1]) + 1]
    return np.stack([rec.frames[int(i)] for i in indices])


def describe_indices(indices: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` as ``"1-3, 7"``."""
    parts: list[str] = []
    first = previous = indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(first) if first == previous else f"{first}-{previous}")
        if index is not None:
            first = previous = index
    return ", ".join(parts)


def _copy_groups(source: Path, target: Path) -> None:
    """Copy calibrations and derived products object by object, attributes included."""
    with open_for_reading(source) as origin, h5py.File(target, "r+") as copy:
        for group_name in (layout.CALIBRATIONS, layout.DERIVED):
            group = origin.get(group_name)
            if group is None:
                continue
            for name in group:
                origin.copy(group[name], copy[group_name], name=name)
