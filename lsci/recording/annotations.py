"""Events and calibrations added to a sealed recording, kept beside it.

Events and calibrations captured during acquisition are written into the recording by its
writer. Those added later (a needling mark set while reviewing, a β measured the next day) go
into ``session.lsci/annotations.h5`` beside it: the recording itself is never opened for
writing again. The file has the recording's ``/events`` and ``/calibrations`` layout (see
``docs/format.md``); each addition rewrites it under a temporary name and renames it into
place, under a lock, so concurrent additions are not lost and a reader never sees half of one.
:class:`lsci.recording.Recording` shows both sources as one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from lsci._version import __version__
from lsci.calibration.stored import BetaCalibration, CameraNoise, DarkFrame
from lsci.recording import layout
from lsci.recording._h5 import (
    H5_WRITE_ERRORS,
    decode,
    describe_os_error,
    open_for_reading,
    write_error,
)
from lsci.recording.calibration import (
    Calibration,
    check_calibration,
    read_calibration,
    write_calibration,
)
from lsci.recording.errors import RecordingFormatError
from lsci.recording.events import (
    Event,
    check_label,
    create_event_datasets,
    read_events,
    write_event,
)
from lsci.recording.sidecar import (
    create_temporary,
    folder_lock,
    make_folder,
    publish,
    sidecar_folder,
)

__all__ = [
    "ANNOTATIONS_FORMAT_NAME",
    "add_event",
    "annotations_path",
    "read_annotations",
    "save_calibration",
    "store_calibration",
]

#: Root attribute ``lsci_format`` of an annotations file.
ANNOTATIONS_FORMAT_NAME = "lsci-annotations"
ANNOTATIONS_FORMAT_VERSION = 1
_NAME = "annotations.h5"

T = TypeVar("T")


def annotations_path(recording: str | os.PathLike[str]) -> Path:
    """Where the events and calibrations added to ``recording`` after acquisition are kept."""
    return sidecar_folder(recording) / _NAME


def read_annotations(
    recording: str | os.PathLike[str],
) -> tuple[tuple[Event, ...], dict[str, Calibration]]:
    """Events and calibrations added after acquisition (empty when there are none)."""
    path = annotations_path(recording)
    if not path.is_file() or path.is_symlink():
        return (), {}
    try:
        with h5py.File(path, "r") as handle:
            _check(handle, path, Path(recording))
            events = read_events(handle)
            group = handle.get(layout.CALIBRATIONS)
            calibrations = (
                {}
                if group is None
                else {
                    name: read_calibration(item)
                    for name, item in group.items()
                    if isinstance(item, h5py.Group)
                }
            )
    except OSError as exc:
        raise RecordingFormatError(path, f"unreadable: {describe_os_error(exc)}") from None
    return events, calibrations


def _check(handle: h5py.File, path: Path, recording: Path) -> None:
    if decode(handle.attrs.get("lsci_format")) != ANNOTATIONS_FORMAT_NAME:
        raise RecordingFormatError(path, "not an lsci annotations file")
    if decode(handle.attrs.get("recording")) != recording.name:
        raise RecordingFormatError(
            path, f"holds annotations of another recording, not {recording.name}"
        )


def _rewrite(recording: Path, edit: Callable[[h5py.File], T]) -> T:
    """Apply ``edit`` to a fresh copy of the annotations file and publish it atomically."""
    folder = make_folder(recording)
    final = folder / _NAME
    with folder_lock(folder, _NAME):
        temporary = create_temporary(folder)
        try:
            with h5py.File(temporary, "w") as target:
                if final.is_file() and not final.is_symlink():
                    with h5py.File(final, "r") as source:
                        _check(source, final, recording)
                        for name in (layout.EVENTS, layout.CALIBRATIONS):
                            if name in source:
                                source.copy(source[name], target, name=name)
                target.attrs["lsci_format"] = ANNOTATIONS_FORMAT_NAME
                target.attrs["format_version"] = np.int64(ANNOTATIONS_FORMAT_VERSION)
                target.attrs["recording"] = recording.name
                target.attrs["lsci_version"] = __version__
                result = edit(target)
            publish(temporary, final)
        except H5_WRITE_ERRORS as exc:
            raise write_error(final, exc, "updating the annotations") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
    return result


def add_event(
    path: str | os.PathLike[str],
    label: str,
    *,
    time_s: float | None = None,
    host_time_ns: int | None = None,
    frame_index: int | None = None,
) -> Event:
    """Add an event marker to a closed recording, beside it (the recording is not modified).

    Give the moment in exactly one way: seconds since the recording's start, host time, or the
    index of a frame (the event is then at that frame's host timestamp).

    Parameters
    ----------
    path : str or pathlib.Path
        The recording.
    label : str
        1 to 128 UTF-8 bytes, e.g. ``"needling start"``.
    time_s : float, optional
        Seconds since ``start_host_time_ns``.
    host_time_ns : int, optional
        Host clock, nanoseconds since the Unix epoch.
    frame_index : int, optional
        Index of a stored frame.

    Returns
    -------
    Event
        The stored event, with all three time fields filled in.

    Raises
    ------
    TypeError, ValueError
        When the label or the moment is invalid.
    RecordingError
        When the recording cannot be read or the annotations cannot be written.

    Examples
    --------
    >>> add_event("run.h5", "needling start", time_s=12.5)  # doctest: +SKIP
    """
    encoded = check_label(label)
    given = [v is not None for v in (time_s, host_time_ns, frame_index)]
    if sum(given) != 1:
        raise ValueError(
            "give exactly one of time_s, host_time_ns and frame_index, got "
            f"time_s={time_s!r}, host_time_ns={host_time_ns!r}, frame_index={frame_index!r}"
        )
    recording = Path(path)
    with open_for_reading(recording) as handle:
        count = min(handle[name].shape[0] for name in layout.PER_FRAME)
        stamps = np.asarray(handle[layout.HOST_TIMESTAMP][:count])
        acquisition = handle.get(layout.ACQUISITION)
        start = None if acquisition is None else acquisition.attrs.get("start_host_time_ns")
    start_ns = int(start) if start is not None else (int(stamps[0]) if count else 0)
    if frame_index is not None:
        if isinstance(frame_index, bool) or not 0 <= int(frame_index) < count:
            raise ValueError(f"frame_index={frame_index!r} is invalid: allowed 0 to {count - 1}")
        moment = int(stamps[int(frame_index)])
    elif time_s is not None:
        if not np.isfinite(time_s):
            raise ValueError(f"time_s={time_s!r} is invalid: it must be finite")
        moment = start_ns + round(float(time_s) * 1e9)
    else:
        moment = int(host_time_ns)  # type: ignore[arg-type]
    index = int(np.count_nonzero(stamps < moment))

    def append(handle: h5py.File) -> Event:
        if layout.EVENTS not in handle:
            create_event_datasets(handle)
        return write_event(handle, encoded, moment, start_ns, index)

    return _rewrite(recording, append)


def save_calibration(
    path: str | os.PathLike[str],
    name: str,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Save a calibration for a closed recording, beside it (the recording is not modified).

    Parameters
    ----------
    path : str or pathlib.Path
        The recording.
    name : str
        Calibration name, e.g. ``"dark_frame"`` or ``"beta"``.
    arrays : dict of str to numpy.ndarray
        The arrays to store (bool, integer or float), each as a dataset.
    attrs : dict, optional
        Scalar, string or 1-D numeric attributes (units in the names).
    overwrite : bool
        Replace an existing calibration of the same name.

    Raises
    ------
    TypeError, ValueError
        When the calibration cannot be stored.
    RecordingError
        When the file cannot be modified or the name exists.

    Examples
    --------
    >>> save_calibration("run.h5", "dark_frame", {"mean": dark}, {"exposure_s": 0.005})
    ... # doctest: +SKIP
    """
    name, checked, clean = check_calibration(name, arrays, attrs)
    recording = Path(path)
    with open_for_reading(recording):
        pass  # it must be a readable recording; it is not modified

    def store(handle: h5py.File) -> None:
        parent = handle.require_group(layout.CALIBRATIONS)
        write_calibration(parent, name, checked, clean, overwrite=overwrite)

    _rewrite(recording, store)


def store_calibration(
    path: str | os.PathLike[str],
    calibration: BetaCalibration | DarkFrame | CameraNoise,
    name: str | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Store a calibration of :mod:`lsci.calibration` for a closed recording, beside it.

    Parameters
    ----------
    path : str or pathlib.Path
        The recording.
    calibration : BetaCalibration, DarkFrame or CameraNoise
        What to store.
    name : str, optional
        Calibration name; default the type's ``default_name`` (``"beta"``, ``"dark_frame"``,
        ``"camera_noise"``).
    overwrite : bool
        Replace an existing calibration of that name.

    Raises
    ------
    RecordingError
        When the file cannot be modified or the name exists.
    """
    arrays, attrs = calibration.to_arrays_attrs()
    key = calibration.default_name if name is None else name
    save_calibration(path, key, arrays, attrs, overwrite=overwrite)
