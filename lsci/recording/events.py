"""Event markers: labelled moments such as "needling start", stored under ``/events``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from lsci.recording import layout
from lsci.recording._h5 import open_for_editing, write_error

#: HDF5 type of the labels: fixed-length UTF-8, which MATLAB's h5read returns as text.
LABEL_DTYPE = h5py.string_dtype("utf-8", layout.EVENT_LABEL_BYTES)


@dataclass(frozen=True)
class Event:
    """One event marker.

    Attributes
    ----------
    label : str
        What happened, e.g. ``"needling start"``.
    host_time_ns : int
        When, in nanoseconds since the Unix epoch on the host clock (the clock of
        ``host_timestamp_ns``).
    time_s : float
        The same moment in seconds since the recording's start (``start_host_time_ns``).
    frame_index : int
        Number of frames whose host timestamp is earlier than the event: the index of the
        first frame at or after it (equal to the frame count when the event is after the last
        frame).
    """

    label: str
    host_time_ns: int
    time_s: float
    frame_index: int


def check_label(label: object) -> bytes:
    """Validate an event label and return its UTF-8 bytes.

    Raises
    ------
    TypeError, ValueError
        When ``label`` is not a non-empty string of at most 128 UTF-8 bytes.
    """
    if not isinstance(label, str):
        raise TypeError(f"event label must be a string, got {label!r}")
    encoded = label.strip().encode("utf-8")
    if not encoded or len(encoded) > layout.EVENT_LABEL_BYTES or b"\0" in encoded:
        raise ValueError(
            f"event label {label!r} is invalid: allowed are 1 to {layout.EVENT_LABEL_BYTES} "
            "UTF-8 bytes of text without NUL"
        )
    return encoded


def create_event_datasets(handle: h5py.File) -> None:
    """Create the empty, resizable ``/events`` datasets (before SWMR mode starts)."""
    group = handle.create_group(layout.EVENTS)
    chunks = (layout.EVENT_CHUNK,)
    for name, dtype in (
        ("host_time_ns", np.int64),
        ("time_s", np.float64),
        ("frame_index", np.int64),
        ("label", LABEL_DTYPE),
    ):
        group.create_dataset(name, shape=(0,), maxshape=(None,), chunks=chunks, dtype=dtype)


def write_event(
    handle: h5py.File, label: bytes, host_time_ns: int, start_ns: int, frame_index: int
) -> Event:
    """Append one event to the ``/events`` datasets of an open, writable file."""
    datasets = [
        handle[name]
        for name in (
            layout.EVENT_HOST_TIME,
            layout.EVENT_TIME,
            layout.EVENT_FRAME_INDEX,
            layout.EVENT_LABEL,
        )
    ]
    count = min(d.shape[0] for d in datasets)
    time_s = (host_time_ns - start_ns) / 1e9
    for dataset, value in zip(datasets, (host_time_ns, time_s, frame_index, label), strict=True):
        dataset.resize(count + 1, axis=0)
        dataset[count] = value
    return Event(label.decode("utf-8"), host_time_ns, time_s, frame_index)


def read_events(handle: h5py.File) -> tuple[Event, ...]:
    """All events of an open recording, in stored order (empty when there is no group)."""
    if layout.EVENTS not in handle:
        return ()
    datasets = [
        handle[name]
        for name in (
            layout.EVENT_HOST_TIME,
            layout.EVENT_TIME,
            layout.EVENT_FRAME_INDEX,
            layout.EVENT_LABEL,
        )
    ]
    for dataset in datasets:
        if handle.swmr_mode:
            dataset.refresh()
    count = min(d.shape[0] for d in datasets)
    host, time_s, index, labels = (d[:count] for d in datasets)
    return tuple(
        Event(
            bytes(labels[i]).decode("utf-8", errors="replace"),
            int(host[i]),
            float(time_s[i]),
            int(index[i]),
        )
        for i in range(count)
    )


def add_event(
    path: str | Path,
    label: str,
    *,
    time_s: float | None = None,
    host_time_ns: int | None = None,
    frame_index: int | None = None,
) -> Event:
    """Add an event marker to a closed recording.

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
        When the file is not a closed, writable recording.

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
    with open_for_editing(path) as handle:
        host = handle[layout.HOST_TIMESTAMP]
        count = min(handle[name].shape[0] for name in layout.PER_FRAME)
        acquisition = handle.get(layout.ACQUISITION)
        start = None if acquisition is None else acquisition.attrs.get("start_host_time_ns")
        if start is None:
            start = host[0] if count else 0
        start_ns = int(start)
        if frame_index is not None:
            if isinstance(frame_index, bool) or not 0 <= int(frame_index) < count:
                raise ValueError(
                    f"frame_index={frame_index!r} is invalid: allowed 0 to {count - 1}"
                )
            moment = int(host[int(frame_index)])
        elif time_s is not None:
            if not np.isfinite(time_s):
                raise ValueError(f"time_s={time_s!r} is invalid: it must be finite")
            moment = start_ns + round(float(time_s) * 1e9)
        else:
            moment = int(host_time_ns)  # type: ignore[arg-type]
        stamps = host[:count]
        index = int(np.count_nonzero(stamps < moment))
        try:
            return write_event(handle, encoded, moment, start_ns, index)
        except OSError as exc:
            raise write_error(path, exc, "adding an event") from None
