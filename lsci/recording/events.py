"""Event markers: labelled moments such as "needling start", stored under ``/events``."""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from lsci.recording import layout

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


def restate_event_times(handle: h5py.File, start_ns: int) -> None:
    """Recompute ``time_s`` of the stored events against a new ``start_ns`` (the recording's
    start moved to its first frame after these events were written)."""
    host, time_s = handle[layout.EVENT_HOST_TIME], handle[layout.EVENT_TIME]
    count = min(host.shape[0], time_s.shape[0])
    if count:
        time_s[:count] = (host[:count] - np.int64(start_ns)) / 1e9
