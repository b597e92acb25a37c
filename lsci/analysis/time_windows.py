"""Average maps over a time window: the 10 s before an event, the 10 s after it.

Times are seconds on one clock shared by the maps and the events: for a recording, seconds since
its start on the host clock (:func:`frame_times_s`), the clock its event markers use. A window
``(start_s, stop_s)`` is half-open: a map stamped ``t`` belongs to it when
``start_s <= t < stop_s``.

:func:`window_maps` is the one way lsci computes the mean perfusion of a recording over a time
window (the comparison engine, the command line, the napari plugin and the demo call it): the
frames of the window go through the processing engine with the recording's calibrations.
:func:`event_window_maps` does it for the windows before and after events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from lsci._arrays import check_out
from lsci.processing import Calibrations, ProcessingSettings, iter_maps
from lsci.processing.calibrations import resolve
from lsci.processing.frames import CHUNK_BYTES

__all__ = [
    "DEFAULT_WINDOW_S",
    "WindowMaps",
    "event_window_maps",
    "event_windows",
    "frame_times_s",
    "recording_window_mean",
    "window_maps",
    "window_mean",
]

#: Length of the windows before and after an event compared by default, seconds.
DEFAULT_WINDOW_S = 10.0


class _EventLike(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def time_s(self) -> float: ...


class _RecordingLike(Protocol):
    """What the recording functions use of :class:`lsci.recording.Recording`."""

    @property
    def host_timestamps_ns(self) -> npt.NDArray[np.int64]: ...

    @property
    def start_host_time_ns(self) -> int: ...

    @property
    def frames(self) -> Any: ...

    @property
    def events(self) -> Any: ...


def window_mean(
    maps: npt.ArrayLike,
    timestamps_s: npt.ArrayLike,
    window_s: tuple[float, float],
    *,
    mask: npt.ArrayLike | None = None,
    out: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """Per-pixel mean of the maps stamped inside a time window, ignoring NaN and masked pixels.

    Parameters
    ----------
    maps : (T, M, N) array_like
        One map per time stamp (perfusion, 1/K², K, ...).
    timestamps_s : (T,) array_like of float
        Time of each map, in seconds.
    window_s : tuple of float
        ``(start_s, stop_s)``; the maps with ``start_s <= t < stop_s`` are averaged.
    mask : array_like of bool, optional
        True where a value is valid (the :mod:`lsci.core.contrast` convention), broadcastable to
        ``maps``: an (M, N) mask (for example without the saturated pixels) or (T, M, N).
    out : (M, N) ndarray, optional
        Output array of the result dtype.

    Returns
    -------
    mean : (M, N) ndarray
        ``numpy.result_type(maps.dtype, float32)`` (float32 for float32 maps), accumulated in
        float64. NaN where a pixel has no finite, unmasked value in the window.

    Raises
    ------
    ValueError
        If ``maps`` is not 3-D, ``timestamps_s`` does not have one finite time per map,
        ``window_s`` is not ``start < stop``, ``mask`` does not broadcast, or no map lies in
        the window.

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.array([[[1.0]], [[3.0]], [[np.nan]], [[100.0]]])
    >>> window_mean(maps, [0.0, 0.5, 1.0, 2.0], (0.0, 2.0))
    array([[2.]])
    """
    stack = np.asarray(maps)
    if stack.ndim != 3:
        raise ValueError(f"maps must be a (T, M, N) stack, got shape {stack.shape}")
    times = np.asarray(timestamps_s, dtype=np.float64)
    if times.shape != (stack.shape[0],) or not np.all(np.isfinite(times)):
        raise ValueError(
            f"timestamps_s must hold one finite time per map ({stack.shape[0]}), "
            f"got shape {times.shape}"
        )
    start, stop = _check_window(window_s)
    dtype = _result_dtype(stack.dtype)
    check_out(out, stack.shape[1:], (dtype,))
    selected = np.flatnonzero((times >= start) & (times < stop))
    if selected.size == 0:
        raise ValueError(
            f"no map lies in the window [{start:g}, {stop:g}) s; the maps span "
            f"{times.min() if times.size else float('nan'):g} to "
            f"{times.max() if times.size else float('nan'):g} s"
        )
    valid = None
    if mask is not None:
        try:
            valid = np.broadcast_to(np.asarray(mask, dtype=bool), stack.shape)
        except ValueError:
            raise ValueError(
                f"mask of shape {np.shape(mask)} does not broadcast to maps {stack.shape}"
            ) from None
    total = np.zeros(stack.shape[1:], dtype=np.float64)
    count = np.zeros(stack.shape[1:], dtype=np.int64)
    for index in selected:
        _accumulate(total, count, stack[index], None if valid is None else valid[index])
    return _finish(total, count, dtype, out)


def frame_times_s(recording: _RecordingLike) -> npt.NDArray[np.float64]:
    """Frame times of a recording in seconds since its start, on the host clock.

    Parameters
    ----------
    recording : lsci.recording.Recording
        An open recording.

    Returns
    -------
    times_s : (T,) ndarray of float64
        ``(host_timestamps_ns - start_host_time_ns) / 1e9``: the clock of the event markers'
        ``time_s``.
    """
    stamps = np.asarray(recording.host_timestamps_ns, dtype=np.int64)
    return (stamps - np.int64(recording.start_host_time_ns)).astype(np.float64) / 1e9


def event_windows(
    events: Iterable[_EventLike | tuple[float, str]],
    label: str,
    *,
    before_s: float = 10.0,
    after_s: float = 10.0,
    gap_s: float = 0.0,
    occurrence: int = 0,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The time windows before and after a labelled event.

    Parameters
    ----------
    events : iterable
        Event markers with ``label`` and ``time_s`` attributes (``recording.events``), or
        ``(time_s, label)`` pairs.
    label : str
        The event, e.g. ``"needling"``; compared after stripping surrounding white space.
    before_s, after_s : float, optional
        Length of each window, seconds (> 0).
    gap_s : float, optional
        Time left out on each side of the event (≥ 0): the procedure itself, when the field is
        covered or moving.
    occurrence : int, optional
        Which event of that label, in time order (0: the first; -1: the last).

    Returns
    -------
    before, after : tuple of float
        ``(t - gap_s - before_s, t - gap_s)`` and ``(t + gap_s, t + gap_s + after_s)``, where
        ``t`` is the event time; half-open windows for :func:`window_mean`.

    Raises
    ------
    ValueError
        If a length is not positive, ``gap_s`` is negative, or there is no such event.

    Examples
    --------
    >>> event_windows([(30.0, "needling")], "needling", before_s=10, after_s=5)
    ((20.0, 30.0), (30.0, 35.0))
    """
    for name, value in (("before_s", before_s), ("after_s", after_s)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {value}")
    if not (np.isfinite(gap_s) and gap_s >= 0):
        raise ValueError(f"gap_s must be >= 0 seconds, got {gap_s}")
    times: list[float] = []
    labels: list[str] = []
    for event in events:
        if isinstance(event, tuple):
            time, name = event
        else:
            time, name = event.time_s, event.label
        labels.append(str(name).strip())
        if labels[-1] == label.strip():
            times.append(float(time))
    if not times:
        raise ValueError(f"no event labelled {label!r}; the events are {sorted(set(labels))}")
    times.sort()
    try:
        t = times[occurrence]
    except IndexError:
        raise ValueError(
            f"occurrence={occurrence} but there are {len(times)} events labelled {label!r}"
        ) from None
    return (t - gap_s - before_s, t - gap_s), (t + gap_s, t + gap_s + after_s)


def recording_window_mean(
    recording: _RecordingLike,
    window_s: tuple[float, float],
    to_maps: Callable[[npt.NDArray[Any]], npt.ArrayLike],
    *,
    batch_frames: int = 50,
    mask: npt.ArrayLike | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """Mean map of a recording over a time window, reading the frames in batches.

    Parameters
    ----------
    recording : lsci.recording.Recording
        An open recording.
    window_s : tuple of float
        ``(start_s, stop_s)`` in seconds since the recording's start (:func:`frame_times_s`);
        the frames with ``start_s <= t < stop_s`` are used.
    to_maps : callable
        Turns a (B, M, N) batch of raw frames into maps: either a (B', M, N) stack, each map
        counting once in the mean, or one (M, N) map standing for the batch. For example
        ``lambda f: speckle_flow_index(spatial_contrast(f))``. For temporal contrast, which needs
        the frames together, set ``batch_frames`` to the temporal window.
    batch_frames : int, optional
        Frames read at once (bounds memory). The last batch of the window may be shorter.
    mask : (M, N) array_like of bool, optional
        True at valid pixels (the :mod:`lsci.core.contrast` convention); the others are ignored.

    Returns
    -------
    mean : (M, N) ndarray
        Mean of the maps, NaN where a pixel has no finite unmasked value
        (``result_type(map dtype, float32)``).

    Raises
    ------
    ValueError
        If the window is invalid or holds no frame, ``batch_frames`` < 1, or ``to_maps`` returns
        maps of another size than the frames.
    """
    start, stop = _check_window(window_s)
    if isinstance(batch_frames, bool) or not isinstance(batch_frames, int) or batch_frames < 1:
        raise ValueError(f"batch_frames must be a positive int, got {batch_frames!r}")
    times = frame_times_s(recording)
    selected = np.flatnonzero((times >= start) & (times < stop))
    if selected.size == 0:
        raise ValueError(
            f"no frame lies in the window [{start:g}, {stop:g}) s of the recording"
            + (f" (frames span {times[0]:g} to {times[-1]:g} s)" if times.size else " (empty)")
        )
    valid = None if mask is None else np.asarray(mask, dtype=bool)
    first, end = int(selected[0]), int(selected[-1]) + 1
    # Frames of a window are contiguous (host timestamps increase), so the frames are read as
    # consecutive slices.
    produced = _batch_maps(recording, first, min(first + batch_frames, end), to_maps)
    total = np.zeros(produced.shape[1:], dtype=np.float64)
    count = np.zeros(produced.shape[1:], dtype=np.int64)
    dtype = _result_dtype(produced.dtype)
    if valid is not None and valid.shape != total.shape:
        raise ValueError(f"mask must have shape {total.shape}, got {valid.shape}")
    for start_frame in range(first, end, batch_frames):
        if start_frame != first:
            produced = _batch_maps(
                recording, start_frame, min(start_frame + batch_frames, end), to_maps
            )
        for single in produced:
            _accumulate(total, count, single, valid)
    return _finish(total, count, dtype, None)


@dataclass(frozen=True, eq=False)
class WindowMaps:
    """Mean maps of a recording over one time window (:func:`window_maps`).

    Attributes
    ----------
    perfusion : (M, N) ndarray of float32
        Per-pixel mean of the model's maps (perfusion, or K for the ``'contrast'`` model) over
        the window, NaN ignored.
    intensity : (M, N) ndarray of float32
        Mean raw intensity over the window's frames (dark frame subtracted when one is
        applied): the anatomy registration aligns, and the underlay of the maps.
    window_s : tuple of float
        The window ``(start_s, stop_s)``, seconds since the recording's start.
    frames : tuple of int
        The frames ``[first, stop)`` it holds.
    n_maps : int
        Maps averaged.
    settings : ProcessingSettings
        The settings used, β resolved.
    calibrations : Calibrations
        The calibrations applied.
    """

    perfusion: npt.NDArray[np.float32] = field(repr=False)
    intensity: npt.NDArray[np.float32] = field(repr=False)
    window_s: tuple[float, float]
    frames: tuple[int, int]
    n_maps: int
    settings: ProcessingSettings
    calibrations: Calibrations

    def to_dict(self) -> dict[str, Any]:
        """The window, the frames and maps in it, and the calibrations applied."""
        return {
            "window_s": list(self.window_s),
            "frames": list(self.frames),
            "maps": self.n_maps,
            "calibrations": self.calibrations.parameters(),
        }


class _FrameRange:
    """Frames ``[first, stop)`` of a recording, sliced lazily like an array."""

    def __init__(self, frames: Any, first: int, stop: int) -> None:
        self._frames = frames
        self._first = first
        self.shape = (stop - first, *frames.shape[1:])

    def __getitem__(self, index: slice) -> npt.NDArray[Any]:
        start, stop, _ = index.indices(self.shape[0])
        return np.asarray(self._frames[self._first + start : self._first + stop])


def window_maps(
    recording: Any,
    window_s: tuple[float, float] | None,
    settings: ProcessingSettings,
    *,
    calibrated: bool = True,
    memory_bytes: int = CHUNK_BYTES,
) -> WindowMaps:
    """Mean perfusion and intensity of a recording over a time window.

    The window's frames go through the processing engine
    (:func:`lsci.processing.iter_maps`) with the recording's stored calibrations (dark frame,
    camera noise, β), as ``lsci process`` applies them; the maps are averaged as they come, so
    memory does not grow with the window.

    Parameters
    ----------
    recording : lsci.recording.Recording
        An open recording.
    window_s : tuple of float or None
        ``(start_s, stop_s)`` in seconds since the recording's start (:func:`frame_times_s`);
        the frames with ``start_s <= t < stop_s`` are used. None: every frame.
    settings : ProcessingSettings
        How maps are computed.
    calibrated : bool
        Apply the recording's stored calibrations.
    memory_bytes : int
        Rough budget for one chunk of frames and maps.

    Returns
    -------
    WindowMaps

    Raises
    ------
    ValueError
        If the window is invalid, holds no frame, or too few frames for one map, or a
        calibration does not fit the frames.
    lsci.calibration.CalibrationMismatchError
        When the stored β was measured with other contrast settings.
    """
    times = frame_times_s(recording)
    if window_s is None:
        first, end = 0, len(times)
        if end == 0:
            raise ValueError("the recording holds no frame")
        window = (float(times[0]), float(np.nextafter(times[-1], math.inf)))
    else:
        window = _check_window(window_s)
        selected = np.flatnonzero((times >= window[0]) & (times < window[1]))
        if selected.size == 0:
            raise ValueError(
                f"no frame lies in the window [{window[0]:g}, {window[1]:g}) s of the recording"
                + (f" (frames span {times[0]:g} to {times[-1]:g} s)" if times.size else " (empty)")
            )
        # Host timestamps increase: the frames of a window are contiguous.
        first, end = int(selected[0]), int(selected[-1]) + 1
    frames = _FrameRange(recording.frames, first, end)
    stored = Calibrations.from_recording(recording, settings) if calibrated else None
    settings, calibrations = resolve(settings, stored, frames.shape[1:])
    total = np.zeros(settings.map_shape(frames.shape), dtype=np.float64)
    count = np.zeros(total.shape, dtype=np.int64)
    n_maps = 0
    for result in iter_maps(frames, settings, calibrations, memory_bytes=memory_bytes):
        maps = result.contrast if result.perfusion is None else result.perfusion
        for single in maps:
            _accumulate(total, count, single, None)
        n_maps += len(maps)
    perfusion = _finish(total, count, np.dtype(np.float32), None)
    dark = None if calibrations.dark is None else calibrations.dark.mean
    intensity = _frames_mean(frames, dark)
    return WindowMaps(perfusion, intensity, window, (first, end), n_maps, settings, calibrations)


def _frames_mean(
    frames: _FrameRange, dark: npt.ArrayLike | None, batch: int = 50
) -> npt.NDArray[np.float32]:
    total = np.zeros(frames.shape[1:], dtype=np.float64)
    for start in range(0, frames.shape[0], batch):
        total += frames[start : start + batch].sum(axis=0, dtype=np.float64)
    total /= frames.shape[0]
    if dark is not None:
        total -= np.asarray(dark, dtype=np.float64)
    mean: npt.NDArray[np.float32] = total.astype(np.float32)
    return mean


def event_window_maps(
    recording: Any,
    settings: ProcessingSettings,
    before_label: str,
    after_label: str | None = None,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    gap_s: float = 0.0,
    calibrated: bool = True,
) -> tuple[WindowMaps, WindowMaps]:
    """Mean maps of a recording in the windows before and after its events.

    The before window ends ``gap_s`` before the first event labelled ``before_label``, the
    after window starts ``gap_s`` after the first event labelled ``after_label`` (default the
    same event): :func:`event_windows`, then :func:`window_maps` for each.

    Parameters
    ----------
    recording : lsci.recording.Recording
        An open recording with the event markers.
    settings : ProcessingSettings
        How maps are computed.
    before_label, after_label : str
        The events, e.g. ``"needling start"`` and ``"needling end"``.
    window_s : float
        Length of each window, seconds (> 0).
    gap_s : float
        Time left out next to each event, seconds (≥ 0).
    calibrated : bool
        Apply the recording's stored calibrations.

    Returns
    -------
    before, after : WindowMaps

    Raises
    ------
    ValueError
        If there is no such event, or a window holds too few frames.
    """
    after_label = before_label if after_label is None else after_label
    events = recording.events
    before = event_windows(events, before_label, before_s=window_s, gap_s=gap_s)[0]
    after = event_windows(events, after_label, after_s=window_s, gap_s=gap_s)[1]
    return (
        window_maps(recording, before, settings, calibrated=calibrated),
        window_maps(recording, after, settings, calibrated=calibrated),
    )


def _batch_maps(
    recording: _RecordingLike,
    first: int,
    stop: int,
    to_maps: Callable[[npt.NDArray[Any]], npt.ArrayLike],
) -> npt.NDArray[Any]:
    batch = np.asarray(recording.frames[first:stop])
    produced = np.asarray(to_maps(batch))
    if produced.ndim == 2:
        produced = produced[np.newaxis]
    if produced.ndim != 3 or produced.shape[1:] != batch.shape[1:]:
        raise ValueError(
            f"to_maps turned frames of shape {batch.shape} into shape {produced.shape}; "
            f"expected (k, {batch.shape[1]}, {batch.shape[2]}) or one 2-D map"
        )
    return produced


def _accumulate(
    total: npt.NDArray[np.float64],
    count: npt.NDArray[np.int64],
    values: npt.NDArray[Any],
    mask: npt.NDArray[np.bool_] | None,
) -> None:
    values64 = values.astype(np.float64, copy=False)
    valid = np.isfinite(values64)
    if mask is not None:
        valid &= mask
    total += np.where(valid, values64, 0.0)
    count += valid


def _finish(
    total: npt.NDArray[np.float64],
    count: npt.NDArray[np.int64],
    dtype: np.dtype[Any],
    out: npt.NDArray[np.floating[Any]] | None,
) -> npt.NDArray[np.floating[Any]]:
    mean = np.full(total.shape, np.nan, dtype=np.float64)
    np.divide(total, count, out=mean, where=count > 0)
    if out is None:
        return mean.astype(dtype, copy=False)
    out[...] = mean
    return out


def _check_window(window_s: Sequence[float] | tuple[float, float]) -> tuple[float, float]:
    try:
        start, stop = (float(t) for t in window_s)
    except (TypeError, ValueError):
        raise ValueError(f"window_s must be (start_s, stop_s), got {window_s!r}") from None
    if not (np.isfinite(start) and np.isfinite(stop) and start < stop):
        raise ValueError(f"window_s must be finite with start_s < stop_s, got {window_s!r}")
    return start, stop


def _result_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    result = np.result_type(dtype, np.float32)
    if not np.issubdtype(result, np.floating):
        raise ValueError(f"maps must hold real numbers, got dtype {dtype}")
    return result
