"""Repairing a recording whose writer crashed: a verified, cleanly closed copy.

The original file is never modified (``h5clear -s`` on a crashed SWMR file has been seen to
truncate it to a few hundred bytes).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from lsci.recording import layout
from lsci.recording._h5 import open_for_reading
from lsci.recording.annotations import read_annotations
from lsci.recording.errors import RecordingError
from lsci.recording.reader import open_recording
from lsci.recording.writer import RecordingWriter

#: Frames copied per batch.
_BATCH = 64


def repair_copy(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Copy a recording (typically one whose writer crashed) into a new, cleanly closed file.

    Every committed frame is read (so its checksum is verified) and written again with its
    ids and timestamps; metadata, events, calibrations and derived products are copied. The
    copy is verified (frame count and ids) before the function returns; ``source`` is only
    read.

    Parameters
    ----------
    source : str or os.PathLike
        The recording to repair.
    target : str or os.PathLike
        The new file.
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
        cannot be written, or the copy does not match. A failed copy is deleted.

    Examples
    --------
    >>> repair_copy("crashed.h5", "crashed-repaired.h5")  # doctest: +SKIP
    """
    target = Path(target)
    if Path(source).resolve() == target.resolve():
        raise ValueError(f"target={str(target)!r} is invalid: it must differ from the source")
    with open_recording(source) as rec:
        count = len(rec)
        ids = rec.frame_ids
        camera = rec.camera_timestamps_ns
        host = rec.host_timestamps_ns
        writer = RecordingWriter(
            target,
            rec.metadata,
            frame_shape=rec.frame_shape,
            dtype=rec.dtype,
            compression="blosc-lz4" if rec.compression else None,
            checksum=rec.checksum,
            overwrite=overwrite,
            fsync_interval_s=None,
        )
        try:
            with writer:
                for start in range(0, count, _BATCH):
                    stop = min(start + _BATCH, count)
                    writer.append_many(
                        rec.frames[start:stop],
                        frame_ids=ids[start:stop],
                        camera_timestamps_ns=camera[start:stop],
                        host_timestamps_ns=host[start:stop],
                    )
                for event in rec.events:
                    writer.add_event(event.label, host_time_ns=event.host_time_ns)
                # Calibrations added beside the source after acquisition (the ones stored in it
                # are copied below with their attributes as they are).
                _, added = read_annotations(source)
                for name, calibration in added.items():
                    writer.save_calibration(name, dict(calibration.arrays), dict(calibration.attrs))
            _copy_groups(Path(source), target)
            with open_recording(target) as copy:
                if len(copy) != count or not (copy.frame_ids == ids).all():
                    raise RecordingError(target, "the repaired copy does not match the source")
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return target


def _copy_groups(source: Path, target: Path) -> None:
    """Copy calibrations and derived products object by object, attributes included."""
    with open_for_reading(source) as origin, h5py.File(target, "r+") as copy:
        for group_name in (layout.CALIBRATIONS, layout.DERIVED):
            group = origin.get(group_name)
            if group is None:
                continue
            for name in group:
                origin.copy(group[name], copy[group_name], name=name)
