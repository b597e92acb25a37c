"""Live analysis at the bedside: what the live view shows, computed away from the GUI.

:class:`LiveAnalysis` listens to an :class:`lsci.acquisition.AcquisitionPipeline` (its live
maps, frames and event marks) and emits, through psygnal signals (no Qt needed), a
:class:`LiveUpdate` for each live map it analyses:

- the perfusion map in the unit of the live settings' model (:mod:`lsci.core.models`: 1/τc
  in 1/s when the exposure is known, with the stored β when there is one), and the same as %
  of the healthy reference region;
- colour limits that stay fixed (:class:`ColourLimits`): set once from the first seconds of
  maps or by the user, never refitted behind the user's back, so a real rise of perfusion
  shows as a brighter map (the rule that fits them is the display convention's, given by the
  caller: :func:`lsci.viz.display.display_limits` sits above this layer);
- the hypoperfused outline and area against the reference region, from
  :func:`lsci.analysis.delineation.delineate_hypoperfusion` (the one definition of
  "hypoperfused"), in mm² when the pixel size on the skin is known;
- the mean of every named region and the hypoperfused area over time (:meth:`traces`), with
  the event marks of the acquisition (:attr:`marks`).

The analysis runs on its own thread and always takes the newest live map, skipping those it
had no time for: it never holds up the pipeline's threads (frames are recorded whatever it
costs). A GUI only listens to :attr:`LiveAnalysis.events`.

Times are seconds since the acquisition's first frame; event marks are placed on the same
axis by their host time (a recording counts its events' ``time_s`` from its creation instead,
which may be earlier).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt
from psygnal import Signal, SignalGroup

from lsci.acquisition import LiveSettings
from lsci.analysis.delineation import (
    DEFAULT_FRACTION,
    Delineation,
    Scale,
    delineate_hypoperfusion,
)
from lsci.analysis.roi import RoiSpec, roi_masks
from lsci.analysis.scale import PixelScale
from lsci.drivers.base import FrameInfo
from lsci.recording import Event

if TYPE_CHECKING:
    from lsci.acquisition import AcquisitionPipeline, PipelineSummary

__all__ = [
    "AREA_TRACE",
    "DEFAULT_SETTLE_S",
    "ColourLimits",
    "LiveAnalysis",
    "LiveAnalysisSignals",
    "LiveUpdate",
    "Trace",
]

_log = logging.getLogger(__name__)

#: Seconds of live maps the colour limits are fitted to once, at the start.
DEFAULT_SETTLE_S: Final = 2.0
#: Name of the trace of the hypoperfused area.
AREA_TRACE: Final = "hypoperfused area"
#: Name a reference region given as a region (not as the name of an ROI) gets.
REFERENCE: Final = "reference"
# Every n-th pixel of the maps of the first seconds is kept for the colour limits.
_LIMITS_STRIDE: Final = 4


@dataclass(frozen=True)
class ColourLimits:
    """The colour scale of the live map.

    Attributes
    ----------
    lower, upper : float
        Limits in the map's unit, ``upper > lower``.
    source : {"settling", "first seconds", "user"}
        Fitted to the maps seen so far while the first seconds last; fixed from the first
        seconds; or set by the user. Only the user changes fixed limits.
    """

    lower: float
    upper: float
    source: Literal["settling", "first seconds", "user"]

    @property
    def fixed(self) -> bool:
        """True once the limits no longer change on their own."""
        return self.source != "settling"


@dataclass(frozen=True)
class LiveUpdate:
    """One analysed live map.

    Attributes
    ----------
    perfusion : (M, N) float32 ndarray
        The live map, in :attr:`unit`.
    time_s : float
        Seconds since the acquisition's first frame, of the newest frame of the map.
    frame_id : int
        The camera's id of that frame.
    unit : str
        What the map shows with its unit, e.g. ``"1/τc (1/s)"``.
    limits : ColourLimits
        The colour scale to show it with.
    reference_level : float or None
        Median perfusion of the reference region (None without one): 100 % of healthy skin.
    roi_means : dict of str to float
        Mean perfusion of each named region (NaN where none of its pixels is measured).
    delineation : Delineation or None
        The hypoperfused region against the reference (None without a reference).
    """

    perfusion: npt.NDArray[np.float32] = field(repr=False)
    time_s: float
    frame_id: int
    unit: str
    limits: ColourLimits
    reference_level: float | None
    roi_means: dict[str, float]
    delineation: Delineation | None

    def percent_of_reference(self, value: float) -> float:
        """``value`` as % of the reference level (NaN without a reference)."""
        level = self.reference_level
        return math.nan if level is None or level <= 0 else 100.0 * value / level


@dataclass(frozen=True)
class Trace:
    """One quantity over time.

    Attributes
    ----------
    name : str
        A region's name, or :data:`AREA_TRACE`.
    times_s : (T,) float64 ndarray
        Seconds since the acquisition's first frame.
    values : (T,) float64 ndarray
        The region's mean perfusion, or the hypoperfused area.
    unit : str
        Their unit (the map's, ``"mm²"`` or ``"px"``).
    percent_of_reference : (T,) float64 ndarray
        The values as % of the reference level at the same time (NaN for the area, or
        without a reference).
    """

    name: str
    times_s: npt.NDArray[np.float64] = field(repr=False)
    values: npt.NDArray[np.float64] = field(repr=False)
    unit: str
    percent_of_reference: npt.NDArray[np.float64] = field(repr=False)


class LiveAnalysisSignals(SignalGroup):
    """What a :class:`LiveAnalysis` tells its listeners (emitted from its own thread).

    Signals
    -------
    updated(LiveUpdate)
        A live map was analysed.
    marked(Event)
        An event was marked during the acquisition (a mark on the time axis).
    limits_changed(ColourLimits)
        The colour limits changed: fixed after the first seconds, or set by the user.
    error(BaseException)
        Analysing a map failed; the analysis goes on with the next one.
    """

    updated = Signal(LiveUpdate)
    marked = Signal(Event)
    limits_changed = Signal(ColourLimits)
    error = Signal(BaseException)


class LiveAnalysis:
    """Calibrated perfusion, fixed colour limits, hypoperfused area and ROI traces, live.

    Parameters
    ----------
    settings : LiveSettings
        The live settings of the pipeline analysed: their model gives the unit.
    pixel_scale : PixelScale or float, optional
        Pixel size on the skin (a float is mm per pixel): areas in mm² (else in pixels).
    rois : mapping of str to ROI, optional
        Named regions (boolean masks or ``(row, col)`` polygons, :mod:`lsci.analysis.roi`),
        traced over time.
    reference : str or ROI, optional
        Healthy reference skin: the name of one of ``rois``, or a region (then traced as
        ``"reference"``). Without it there is no outline and no % of healthy skin.
    fraction : float
        Hypoperfused below this fraction of the reference median
        (:data:`lsci.analysis.delineation.DEFAULT_FRACTION`).
    fit_limits : callable
        ``fit_limits(values) -> (lower, upper)``: the colour limits of perfusion values, e.g.
        ``functools.partial(lsci.viz.display.display_limits, "perfusion")``.
    settle_s : float
        Seconds of maps the colour limits are fitted to once (> 0).

    Attributes
    ----------
    events : LiveAnalysisSignals
        Connect here (with ``thread=`` or a Qt helper to handle them in the GUI thread).
    marks : list of Event
        The event marks so far, their ``time_s`` on the analysis's time axis.

    Examples
    --------
    >>> analysis = LiveAnalysis(pipeline.live_settings, fit_limits=perfusion_limits,
    ...                         rois={"lesion": lesion}, reference=healthy,
    ...                         pixel_scale=0.05)  # doctest: +SKIP
    >>> analysis.events.updated.connect(show)  # doctest: +SKIP
    >>> analysis.attach(pipeline)  # doctest: +SKIP
    >>> pipeline.start()  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: LiveSettings,
        *,
        fit_limits: Callable[[np.ndarray], tuple[float, float]],
        pixel_scale: Scale = None,
        rois: Mapping[str, RoiSpec] | None = None,
        reference: str | RoiSpec | None = None,
        fraction: float = DEFAULT_FRACTION,
        settle_s: float = DEFAULT_SETTLE_S,
    ) -> None:
        if not (math.isfinite(settle_s) and settle_s > 0):
            raise ValueError(f"settle_s={settle_s!r} is invalid: allowed seconds > 0")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction={fraction!r} is invalid: allowed numbers in (0, 1]")
        self.settings = settings
        self.fit_limits = fit_limits
        self.unit = settings.perfusion_model.label
        self.pixel_scale = pixel_scale
        self.fraction = float(fraction)
        self.settle_s = float(settle_s)
        self.events = LiveAnalysisSignals()
        self.marks: list[Event] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._rois: dict[str, RoiSpec] = {}
        self._reference: str | RoiSpec | None = None
        self._masks: dict[str, npt.NDArray[np.bool_]] | None = None
        self._origin_ns: int | None = None
        # Frames carry monotonic host time stamps, events the host's Unix time.
        self._epoch_offset_ns = time.time_ns() - time.monotonic_ns()
        self._limits: ColourLimits | None = None
        self._settle_from_s: float | None = None
        self._settle_values: list[npt.NDArray[np.float32]] = []
        self._times: list[float] = []
        self._series: dict[str, list[float]] = {}
        self._levels: list[float] = []
        self._pending: tuple[np.ndarray, FrameInfo] | None = None
        self._finishing = False
        self._thread: threading.Thread | None = None
        self.set_rois(rois or {}, reference)

    # -- regions and colour scale -------------------------------------------------------
    def set_rois(self, rois: Mapping[str, RoiSpec], reference: str | RoiSpec | None = None) -> None:
        """Use these named regions and reference from the next map on (traces restart).

        Raises
        ------
        ValueError
            When ``reference`` names no region, or a region is named ``"reference"`` while
            the reference is given as a region.
        """
        if isinstance(reference, str) and reference not in rois:
            raise ValueError(f"reference {reference!r} is not one of the ROIs {list(rois)}")
        if reference is not None and not isinstance(reference, str) and REFERENCE in rois:
            raise ValueError(
                f"an ROI is already named {REFERENCE!r}: pass reference={REFERENCE!r} to use it"
            )
        with self._lock:
            self._rois = dict(rois)
            self._reference = reference
            self._masks = None
            self._times.clear()
            self._series.clear()
            self._levels.clear()

    @property
    def limits(self) -> ColourLimits | None:
        """The colour limits now (None before the first map)."""
        return self._limits

    def set_limits(self, lower: float, upper: float) -> ColourLimits:
        """Fix the colour limits to the user's choice; they stay until the user changes them.

        Raises
        ------
        ValueError
            Unless ``lower < upper``, both finite.
        """
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            raise ValueError(
                f"colour limits {lower!r}, {upper!r} are invalid: need finite lower < upper"
            )
        limits = ColourLimits(float(lower), float(upper), "user")
        with self._lock:
            self._limits = limits
            self._settle_from_s = None
            self._settle_values.clear()
        self.events.limits_changed.emit(limits)
        return limits

    def refit_limits(self) -> None:
        """Fit the colour limits again, once, to the maps of the next ``settle_s`` seconds."""
        with self._lock:
            self._limits = None
            self._settle_from_s = None
            self._settle_values.clear()

    # -- the pipeline -------------------------------------------------------------------
    def attach(self, pipeline: AcquisitionPipeline) -> None:
        """Listen to a pipeline (before it starts) and start the analysis thread.

        The thread ends after the pipeline's ``finished`` signal, once the last map is
        analysed.
        """
        signals = pipeline.events
        signals.frame_acquired.connect(self._first_frame)
        signals.live_map_ready.connect(self.submit)
        signals.event_marked.connect(self._marked)
        signals.finished.connect(self._pipeline_finished)
        self.start()

    def start(self) -> None:
        """Start the analysis thread (:meth:`attach` does)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="lsci-live-analysis", daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray, info: FrameInfo) -> None:
        """Queue a live map; one not analysed yet is replaced (the newest wins)."""
        with self._wake:
            self._pending = (image, info)
            self._wake.notify()

    def close(self, timeout_s: float | None = None) -> None:
        """Analyse the map still queued, then end the thread and wait for it."""
        with self._wake:
            self._finishing = True
            self._wake.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _first_frame(self, info: FrameInfo) -> None:
        with self._lock:
            if self._origin_ns is None:
                self._origin_ns = info.host_timestamp_ns

    def _marked(self, event: Event) -> None:
        with self._lock:
            origin = self._origin_ns
            if origin is not None:
                moment_ns = event.host_time_ns - self._epoch_offset_ns
                event = dataclasses.replace(event, time_s=(moment_ns - origin) / 1e9)
            self.marks.append(event)
        self.events.marked.emit(event)

    def _pipeline_finished(self, _summary: PipelineSummary) -> None:
        with self._wake:
            self._finishing = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending is not None or self._finishing)
                pending, self._pending = self._pending, None
                finishing = self._finishing
            if pending is not None:
                try:
                    update = self.analyse(*pending)
                except Exception as error:
                    _log.exception("a live map could not be analysed")
                    self.events.error.emit(error)
                else:
                    self.events.updated.emit(update)
            if finishing and pending is None:
                return

    # -- one map ------------------------------------------------------------------------
    def analyse(self, image: npt.ArrayLike, info: FrameInfo) -> LiveUpdate:
        """Analyse one live map now (the analysis thread calls this for every map it takes).

        Returns
        -------
        LiveUpdate

        Raises
        ------
        ValueError
            When a region does not fit the map, or the reference holds no measured pixel.
        """
        perfusion = np.asarray(image, dtype=np.float32)
        with self._lock:
            if self._origin_ns is None:
                self._origin_ns = info.host_timestamp_ns
            time_s = (info.host_timestamp_ns - self._origin_ns) / 1e9
            masks = self._masks
            if masks is None:
                masks = self._masks = _masks(self._rois, self._reference, perfusion.shape)
            reference = self._reference_name()
        limits, changed = self._update_limits(perfusion, time_s)
        if changed:
            self.events.limits_changed.emit(limits)
        means = {name: _mean(perfusion, mask) for name, mask in masks.items()}
        delineation = None
        level = None
        if reference is not None:
            others = {n: m for n, m in masks.items() if n != reference}
            delineation = delineate_hypoperfusion(
                perfusion,
                reference=masks[reference],
                fraction=self.fraction,
                rois=others or None,
                scale=self.pixel_scale,
                unit=self.unit,
            )
            level = delineation.threshold.reference_value
        with self._lock:
            if masks is self._masks:  # the regions did not change meanwhile
                self._times.append(time_s)
                for name, value in means.items():
                    self._series.setdefault(name, []).append(value)
                if delineation is not None:
                    area = delineation.area_mm2
                    self._series.setdefault(AREA_TRACE, []).append(
                        float(delineation.area_px) if area is None else area
                    )
                self._levels.append(math.nan if level is None else level)
        return LiveUpdate(
            perfusion=perfusion,
            time_s=time_s,
            frame_id=info.frame_id,
            unit=self.unit,
            limits=limits,
            reference_level=level,
            roi_means=means,
            delineation=delineation,
        )

    def _reference_name(self) -> str | None:
        reference = self._reference
        if reference is None:
            return None
        return reference if isinstance(reference, str) else REFERENCE

    def _update_limits(self, perfusion: np.ndarray, time_s: float) -> tuple[ColourLimits, bool]:
        with self._lock:
            limits = self._limits
            if limits is not None and limits.fixed:
                return limits, False
            if self._settle_from_s is None:
                self._settle_from_s = time_s
            self._settle_values.append(perfusion[::_LIMITS_STRIDE, ::_LIMITS_STRIDE].copy())
            lower, upper = self.fit_limits(np.stack(self._settle_values))
            settled = time_s - self._settle_from_s >= self.settle_s
            limits = ColourLimits(lower, upper, "first seconds" if settled else "settling")
            if settled:
                self._settle_values.clear()
            self._limits = limits
            return limits, settled

    # -- results ------------------------------------------------------------------------
    def traces(self) -> dict[str, Trace]:
        """Every region's mean perfusion, and the hypoperfused area, over time."""
        with self._lock:
            times = np.array(self._times, dtype=np.float64)
            series = {name: np.array(v, dtype=np.float64) for name, v in self._series.items()}
            levels = np.array(self._levels, dtype=np.float64)
        area_unit = "px" if _scale_mm(self.pixel_scale) is None else "mm²"
        traces = {}
        for name, values in series.items():
            area = name == AREA_TRACE
            n = len(values)
            percent = np.full(n, np.nan) if area else 100.0 * values / levels[-n:]
            traces[name] = Trace(
                name, times[-n:], values, area_unit if area else self.unit, percent
            )
        return traces

    def trace_rows(self) -> list[dict[str, Any]]:
        """The traces in tidy form: one row per trace and time.

        Columns: ``time_s``, ``name``, ``value``, ``unit``, ``percent_of_reference``.
        """
        rows = []
        for trace in self.traces().values():
            for t, value, percent in zip(
                trace.times_s, trace.values, trace.percent_of_reference, strict=True
            ):
                rows.append(
                    {
                        "time_s": float(t),
                        "name": trace.name,
                        "value": float(value),
                        "unit": trace.unit,
                        "percent_of_reference": float(percent),
                    }
                )
        return sorted(rows, key=lambda row: row["time_s"])


def _masks(
    rois: Mapping[str, RoiSpec], reference: str | RoiSpec | None, shape: tuple[int, ...]
) -> dict[str, npt.NDArray[np.bool_]]:
    image = (int(shape[0]), int(shape[1]))
    masks = roi_masks(dict(rois), image) if rois else {}
    if reference is not None and not isinstance(reference, str):
        masks |= roi_masks({REFERENCE: reference}, image)
    return masks


def _mean(perfusion: np.ndarray, mask: npt.NDArray[np.bool_]) -> float:
    values = perfusion[mask]
    values = values[np.isfinite(values)]
    return float(values.mean(dtype=np.float64)) if values.size else math.nan


def _scale_mm(scale: Scale) -> float | None:
    if isinstance(scale, PixelScale):
        return scale.pixel_size_mm
    return None if scale is None else float(scale)
