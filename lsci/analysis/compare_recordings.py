"""The comparison engine: perfusion before and after a treatment, straight from recordings.

Two ways to say what "before" and "after" are:

- :func:`compare_events`: the windows before and after events of one recording (the 10 s
  before "needling start" against the 10 s after "needling end");
- :func:`compare_recordings`: two recordings, each averaged over all its frames.

Either way the frames go through the processing engine with each recording's stored
calibrations (:func:`lsci.analysis.time_windows.window_maps`); pixels saturated in any frame of
a window or without signal are left out (:func:`window_quality`); the after map is registered
onto the before map on their mean intensities (rotation, scale and translation by default); the
regions of interest are compared and the hypoperfused area is delineated before and after
against the healthy reference region, in mm² with the recording's scale
(:func:`lsci.analysis.scale.recording_scale`), all by
:func:`lsci.analysis.compare.compare_before_after`. ``lsci compare``, the napari Compare widget
and the demo call these functions, so they report the same numbers.

:func:`session_time_course` gives, over a whole processed recording, the mean perfusion of
each region and the hypoperfused area as time courses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lsci._version import __version__
from lsci.analysis.compare import (
    DEFAULT_MIN_CORRELATION,
    DEFAULT_REGISTRATION,
    AreaSettings,
    Comparison,
    compare_before_after,
    roi_statistics,
    with_areas,
)
from lsci.analysis.delineation import AreaTimeCourse, area_time_course
from lsci.analysis.quality import (
    NYQUIST_GRAIN_PX,
    low_signal_pixels,
    saturated_pixels,
    speckle_grain_px,
)
from lsci.analysis.roi import RoiSpec, roi_masks
from lsci.analysis.scale import PixelScale, recording_scale
from lsci.analysis.time_windows import (
    DEFAULT_WINDOW_S,
    WindowMaps,
    event_window_maps,
    window_maps,
)
from lsci.processing import ProcessingSettings
from lsci.recording import Recording, open_recording

__all__ = [
    "FIELD_ROI",
    "RecordingComparison",
    "SessionTimeCourse",
    "WindowQuality",
    "compare_events",
    "compare_recordings",
    "comparison_with_rois",
    "default_settings",
    "session_time_course",
    "window_quality",
]

#: Name of the region that is the whole field of view, compared when no region is given.
FIELD_ROI = "field of view"


def default_settings(exposure_s: float | None) -> ProcessingSettings:
    """The settings a comparison uses unless told otherwise: spatial contrast in 7 × 7
    windows, one map per frame, and the default model for the exposure time
    (:func:`lsci.core.models.default_model`: 1/τc when it is known)."""
    return ProcessingSettings(mode="spatial", window=7, exposure_s=exposure_s)


@dataclass(frozen=True, eq=False)
class WindowQuality:
    """Pixels of a window left out of the comparison, and the speckle sampling.

    Attributes
    ----------
    valid : (M, N) ndarray of bool
        True at usable pixels: not saturated in any frame of the window and with signal.
    saturated_px : int
        Pixels at the camera's largest value in at least one frame (their contrast is wrong;
        :func:`lsci.analysis.quality.saturated_pixels`). 0 when the bit depth is unknown.
    low_signal_px : int
        Usable-looking pixels whose mean signal (dark frame subtracted) is below
        ``low_signal_adu`` (:func:`lsci.analysis.quality.low_signal_pixels`).
    low_signal_adu : float
        The threshold: 5 × the camera's read noise when a camera-noise calibration is stored,
        else 0 ADU (only pixels without any signal).
    speckle_grain_px : float or None
        The speckle diameter measured on the window's first frames divided by the window's
        mean image (:func:`lsci.analysis.quality.speckle_grain_px`; ``None`` when it cannot be
        measured).
    undersampled : bool
        True when the grain is below 2 pixels (Nyquist): every contrast value of the map is
        under-estimated; the whole comparison is flagged, no pixel masked.
    """

    valid: npt.NDArray[np.bool_] = field(repr=False)
    saturated_px: int
    low_signal_px: int
    low_signal_adu: float
    speckle_grain_px: float | None
    undersampled: bool

    def to_dict(self) -> dict[str, Any]:
        """The counts and the flag as plain Python values (for JSON)."""
        return {
            "excluded_px": int(np.count_nonzero(~self.valid)),
            "saturated_px": self.saturated_px,
            "low_signal_px": self.low_signal_px,
            "low_signal_adu": self.low_signal_adu,
            "speckle_grain_px": self.speckle_grain_px,
            "undersampled": self.undersampled,
        }


#: Frames whose speckle grain is measured for the quality flag.
_GRAIN_FRAMES = 4
#: Frames read at once when looking for saturated pixels.
_BATCH_FRAMES = 64
#: Multiple of the read noise a pixel's mean signal must exceed (as
#: :func:`lsci.analysis.quality.low_signal_pixels`).
_READ_NOISE_FACTOR = 5.0


def window_quality(recording: Recording, window: WindowMaps) -> WindowQuality:
    """The quality mask of a window of a recording: saturated and unlit pixels, speckle grain.

    Parameters
    ----------
    recording : lsci.recording.Recording
        The open recording the window was computed from.
    window : WindowMaps
        The window (its frames, its mean intensity with the dark frame subtracted, and its
        calibrations).

    Returns
    -------
    WindowQuality
    """
    first, stop = window.frames
    bit_depth = recording.metadata.bit_depth
    saturated = np.zeros(window.intensity.shape, dtype=bool)
    if bit_depth is not None:
        for start in range(first, stop, _BATCH_FRAMES):
            batch = np.asarray(recording.frames[start : min(start + _BATCH_FRAMES, stop)])
            saturated |= saturated_pixels(batch, bit_depth)
    camera = window.calibrations.camera
    threshold = 0.0 if camera is None else _READ_NOISE_FACTOR * camera.read_noise_adu
    low = low_signal_pixels(window.intensity, min_adu=threshold) & ~saturated
    sample = np.asarray(recording.frames[first : min(first + _GRAIN_FRAMES, stop)], np.float64)
    if window.calibrations.dark is not None:
        sample -= np.asarray(window.calibrations.dark.mean, dtype=np.float64)
    # Divided by the window's mean image, the frames keep their speckle and lose the slow
    # shading of the laser spot and the skin, which would read as a large grain.
    mean = np.asarray(window.intensity, dtype=np.float64)
    sample = np.divide(sample, mean, out=np.ones_like(sample), where=mean > 0)
    try:
        grain: float | None = speckle_grain_px(sample, warn=False)
    except ValueError:
        grain = None
    return WindowQuality(
        valid=~(saturated | low),
        saturated_px=int(np.count_nonzero(saturated)),
        low_signal_px=int(np.count_nonzero(low)),
        low_signal_adu=float(threshold),
        speckle_grain_px=grain,
        undersampled=grain is not None and grain < NYQUIST_GRAIN_PX,
    )


@dataclass(frozen=True, eq=False)
class RecordingComparison:
    """A before/after comparison of recordings, with everything needed to report it.

    Attributes
    ----------
    comparison : Comparison
        Maps, registration, the ROI table and the hypoperfused areas.
    before, after : WindowMaps
        The mean maps compared, with their windows and the calibrations applied.
    sources : tuple of str
        The recording files of the before and after windows (the same file twice for
        :func:`compare_events`).
    masks : dict of str to (M, N) bool ndarray
        The regions of the table, in the before map's coordinates (the reference included).
    description : str
        What is compared, in one line.
    quality : tuple of WindowQuality or None
        The pixels left out of the before and the after window (``None`` when not checked).
    scale_sources : tuple of str
        Where each recording's scale came from (``"unknown"`` without one); the before
        recording's scale is :attr:`Comparison.scale` (the after map is resampled onto it).
    """

    comparison: Comparison
    before: WindowMaps
    after: WindowMaps
    sources: tuple[str, str]
    masks: dict[str, npt.NDArray[np.bool_]] = field(repr=False)
    description: str
    quality: tuple[WindowQuality, WindowQuality] | None = None
    scale_sources: tuple[str, str] = ("unknown", "unknown")

    @property
    def label(self) -> str:
        """What the maps show, with the unit, e.g. ``"1/τc (1/s)"``."""
        return self.before.settings.perfusion_model.label

    @property
    def scale(self) -> PixelScale | None:
        """The pixel size on the skin of the compared maps (the before recording's)."""
        return self.comparison.scale

    def with_rois(
        self, rois: Mapping[str, RoiSpec], reference: RoiSpec | str | None = None
    ) -> RecordingComparison:
        """The same comparison with the ROI table and areas of other regions (maps and
        registration kept).

        Parameters
        ----------
        rois, reference
            As :func:`comparison_with_rois`.
        """
        comparison, masks = comparison_with_rois(self.comparison, rois, reference)
        return dataclasses.replace(self, comparison=comparison, masks=masks)

    def to_dict(self) -> dict[str, Any]:
        """Every number, the settings, the calibrations, the registration, the areas, the scale
        and its source, the quality masks and lsci's version."""
        settings = self.before.settings
        model = settings.perfusion_model
        return {
            "lsci_version": __version__,
            "description": self.description,
            "sources": {"before": self.sources[0], "after": self.sources[1]},
            "model": model.name,
            "unit": model.unit,
            "settings": settings.parameters(),
            "windows": {"before": self.before.to_dict(), "after": self.after.to_dict()},
            "scale_sources": {"before": self.scale_sources[0], "after": self.scale_sources[1]},
            "quality": None
            if self.quality is None
            else {"before": self.quality[0].to_dict(), "after": self.quality[1].to_dict()},
            **self.comparison.to_dict(),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON (NaN written as ``null``)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False) + "\n"

    def tidy_rows(self) -> list[dict[str, Any]]:
        """The ROI table and the areas in tidy form.

        One row per region and window (``kind`` = ``"roi"``), then, when areas were delineated,
        one row per window for the hypoperfused area (``kind`` = ``"hypoperfused"``) and one
        row each for the parts of the before area that ``"recovered"``, stayed
        (``"persistent"``) and the area hypoperfused after only (``"new"``, window
        ``"change"``).

        Columns: ``kind``, ``roi``, ``window`` (``before``/``after``/``change``), ``source``,
        ``start_s``, ``stop_s``, ``pixels`` (a region's pixels used, or the area in pixels),
        ``area_mm2`` (empty without a scale), ``mean``, ``median``, ``std``, ``unit``, the
        region's change ``ratio``, ``percent_change``, ``relative_ratio``,
        ``relative_percent_change`` (the same on both of its rows), ``hypoperfused_share``
        (a region's share of hypoperfused pixels in that window), ``threshold`` (the window's
        hypoperfusion threshold) and ``reduction_percent`` (area rows). Cells that do not apply
        are empty.
        """
        comparison = self.comparison
        areas = comparison.areas
        pixel_area = None if comparison.scale is None else comparison.scale.pixel_area_mm2
        unit = self.before.settings.perfusion_model.unit
        windows = (
            ("before", self.before, self.sources[0]),
            ("after", self.after, self.sources[1]),
        )
        rows = []
        for stats in comparison.rois:
            for name, window, source in windows:
                delineation = None if areas is None else getattr(areas, name)
                rows.append(
                    _row(
                        kind="roi",
                        roi=stats.name,
                        window=name,
                        source=source,
                        start_s=window.window_s[0],
                        stop_s=window.window_s[1],
                        pixels=stats.pixel_count,
                        area_mm2="" if pixel_area is None else stats.pixel_count * pixel_area,
                        mean=getattr(stats, f"{name}_mean"),
                        median=getattr(stats, f"{name}_median"),
                        std=getattr(stats, f"{name}_std"),
                        unit=unit,
                        ratio=stats.ratio,
                        percent_change=stats.percent_change,
                        relative_ratio=stats.relative_ratio,
                        relative_percent_change=stats.relative_percent_change,
                        hypoperfused_share=""
                        if delineation is None
                        else delineation.roi_share.get(stats.name, ""),
                    )
                )
        if areas is None:
            return rows
        for name, window, source in windows:
            delineation = getattr(areas, name)
            rows.append(
                _row(
                    kind="hypoperfused",
                    window=name,
                    source=source,
                    start_s=window.window_s[0],
                    stop_s=window.window_s[1],
                    pixels=delineation.area_px,
                    area_mm2=_blank(delineation.area_mm2),
                    unit=unit,
                    threshold=delineation.threshold.value,
                    reduction_percent=areas.reduction_percent,
                )
            )
        for kind in ("recovered", "persistent", "new"):
            rows.append(
                _row(
                    kind=kind,
                    window="change",
                    pixels=getattr(areas, f"{kind}_px"),
                    area_mm2=_blank(getattr(areas, f"{kind}_mm2")),
                )
            )
        return rows

    def to_csv(self) -> str:
        """:meth:`tidy_rows` as CSV (floats written exactly, NaN as ``nan``)."""
        import csv
        import io

        rows = self.tidy_rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
        return buffer.getvalue()


_COLUMNS = (
    "kind", "roi", "window", "source", "start_s", "stop_s", "pixels", "area_mm2", "mean",
    "median", "std", "unit", "ratio", "percent_change", "relative_ratio",
    "relative_percent_change", "hypoperfused_share", "threshold", "reduction_percent",
)  # fmt: skip


def _row(**values: Any) -> dict[str, Any]:
    """A tidy row with every column, empty where not given."""
    return {name: values.get(name, "") for name in _COLUMNS}


def _blank(value: float | None) -> float | str:
    return "" if value is None else value


def compare_events(
    path: str | Path,
    before_label: str,
    after_label: str | None = None,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    gap_s: float = 0.0,
    settings: ProcessingSettings | None = None,
    rois: Mapping[str, RoiSpec] | None = None,
    reference: RoiSpec | str | None = None,
    register: bool = True,
    registration: Literal["similarity", "translation"] = DEFAULT_REGISTRATION,
    refuse_unreliable: bool = True,
    min_correlation: float = DEFAULT_MIN_CORRELATION,
    area: AreaSettings | None = None,
    calibrated: bool = True,
    quality: bool = True,
) -> RecordingComparison:
    """Compare perfusion in the windows before and after events of one recording.

    Parameters
    ----------
    path : str or Path
        The recording.
    before_label : str
        The event the before window ends at, e.g. ``"needling start"``.
    after_label : str, optional
        The event the after window starts at (default ``before_label``).
    window_s : float
        Length of each window, seconds.
    gap_s : float
        Time left out next to each event, seconds.
    settings : ProcessingSettings, optional
        How maps are computed; default :func:`default_settings` for the recording's exposure.
    rois : mapping of str to mask or polygon, optional
        Regions in the before map's coordinates; default the whole field of view.
    reference : str or mask or polygon, optional
        Healthy-skin reference region (a name in ``rois`` or a region); it sets the
        hypoperfusion threshold (``area.fraction`` of its median) of each window.
    register : bool
        Align the after map onto the before map by their mean intensities first.
    registration : {"similarity", "translation"}
        Rotation, scale and translation (default), or translation only.
    refuse_unreliable : bool
        Raise when the similarity registration is unreliable (default); with False, compare
        anyway and flag it (``registration.reliable`` false, with the reasons).
    min_correlation : float
        The smallest correlation a similarity registration accepts.
    area : AreaSettings, optional
        How the hypoperfused area is delineated (threshold fraction, absolute threshold,
        minimum size).
    calibrated : bool
        Apply the recording's stored calibrations (dark frame, camera noise, β).
    quality : bool
        Leave out pixels saturated in any frame of a window or without signal
        (:func:`window_quality`).

    Returns
    -------
    RecordingComparison

    Raises
    ------
    lsci.recording.RecordingError
        When the file cannot be read as a recording.
    ValueError
        When an event is missing, a window holds too few frames, or a region is invalid.
    lsci.analysis.registration.RegistrationError
        When ``register`` is true and the registration is unreliable.
    lsci.calibration.CalibrationMismatchError
        When the stored β was measured with other contrast settings.
    """
    after_label = before_label if after_label is None else after_label
    with open_recording(path) as recording:
        chosen = default_settings(recording.metadata.exposure_s) if settings is None else settings
        before, after = event_window_maps(
            recording,
            chosen,
            before_label,
            after_label,
            window_s=window_s,
            gap_s=gap_s,
            calibrated=calibrated,
        )
        checks = (
            (window_quality(recording, before), window_quality(recording, after))
            if quality
            else None
        )
        scale = recording_scale(recording)
    description = (
        f"{Path(path).name}: {window_s:g} s before {before_label!r} "
        f"({before.window_s[0]:.1f}–{before.window_s[1]:.1f} s) vs {window_s:g} s after "
        f"{after_label!r} ({after.window_s[0]:.1f}–{after.window_s[1]:.1f} s)"
    )
    return _compare(
        before,
        after,
        (str(path), str(path)),
        description,
        rois,
        reference,
        _Options(register, registration, refuse_unreliable, min_correlation, area),
        checks,
        (scale, scale),
    )


def compare_recordings(
    before_path: str | Path,
    after_path: str | Path,
    *,
    settings: ProcessingSettings | None = None,
    rois: Mapping[str, RoiSpec] | None = None,
    reference: RoiSpec | str | None = None,
    register: bool = True,
    registration: Literal["similarity", "translation"] = DEFAULT_REGISTRATION,
    refuse_unreliable: bool = True,
    min_correlation: float = DEFAULT_MIN_CORRELATION,
    area: AreaSettings | None = None,
    calibrated: bool = True,
    quality: bool = True,
) -> RecordingComparison:
    """Compare perfusion of two recordings of the same field, each averaged over all its frames.

    Each recording is processed with its own stored calibrations and, without ``settings``,
    with :func:`default_settings` for its own exposure time. The after map is resampled onto
    the before map's grid, so areas use the before recording's scale. Parameters and errors
    as :func:`compare_events`.
    """
    windows = []
    checks = []
    scales = []
    for path in (before_path, after_path):
        with open_recording(path) as recording:
            chosen = settings
            if chosen is None:
                chosen = default_settings(recording.metadata.exposure_s)
            window = window_maps(recording, None, chosen, calibrated=calibrated)
            windows.append(window)
            if quality:
                checks.append(window_quality(recording, window))
            scales.append(recording_scale(recording))
    before, after = windows
    if before.settings.perfusion_model != after.settings.perfusion_model:
        raise ValueError(
            f"{before_path} gives {before.settings.perfusion_model.label} and {after_path} "
            f"{after.settings.perfusion_model.label}: choose one model for both"
        )
    description = f"{Path(before_path).name} vs {Path(after_path).name}"
    return _compare(
        before,
        after,
        (str(before_path), str(after_path)),
        description,
        rois,
        reference,
        _Options(register, registration, refuse_unreliable, min_correlation, area),
        (checks[0], checks[1]) if quality else None,
        (scales[0], scales[1]),
    )


def comparison_with_rois(
    comparison: Comparison,
    rois: Mapping[str, RoiSpec],
    reference: RoiSpec | str | None = None,
) -> tuple[Comparison, dict[str, npt.NDArray[np.bool_]]]:
    """A comparison's ROI table and areas recomputed for other regions, maps and registration
    kept.

    Parameters
    ----------
    comparison : Comparison
        A computed comparison.
    rois : mapping of str to mask or polygon
        Regions in the before map's coordinates (each must hold a pixel); with none, the whole
        field of view (:data:`FIELD_ROI`) is the one region.
    reference : str or mask or polygon, optional
        Healthy-skin reference: a name in ``rois`` or a region (then named ``"reference"``).
        It sets the hypoperfusion threshold of the areas.

    Returns
    -------
    comparison : Comparison
        With the new table and areas.
    masks : dict of str to bool ndarray
        The regions of the table, the reference included.
    """
    masks = _masks(rois, reference, comparison.before.shape)
    name = _reference_name(reference, masks)
    rows = roi_statistics(comparison.before, comparison.after, masks, reference=name)
    updated = dataclasses.replace(comparison, rois=rows, reference=name)
    return with_areas(updated, masks, name), masks


@dataclass(frozen=True)
class _Options:
    register: bool
    registration: Literal["similarity", "translation"]
    refuse_unreliable: bool
    min_correlation: float
    area: AreaSettings | None


def _compare(
    before: WindowMaps,
    after: WindowMaps,
    sources: tuple[str, str],
    description: str,
    rois: Mapping[str, RoiSpec] | None,
    reference: RoiSpec | str | None,
    options: _Options,
    quality: tuple[WindowQuality, WindowQuality] | None,
    scales: tuple[PixelScale | None, PixelScale | None],
) -> RecordingComparison:
    shape = before.perfusion.shape
    masks = _masks(rois or {}, reference, shape)
    register = options.register
    comparison = compare_before_after(
        before.perfusion,
        after.perfusion,
        masks,
        reference=_reference_name(reference, masks),
        register=register,
        registration=options.registration,
        before_intensity=before.intensity if register else None,
        after_intensity=after.intensity if register else None,
        valid_before=None if quality is None else quality[0].valid,
        valid_after=None if quality is None else quality[1].valid,
        area=options.area,
        scale=scales[0],
        unit=before.settings.perfusion_model.unit,
        min_correlation=options.min_correlation,
        refuse_unreliable=options.refuse_unreliable,
    )
    return RecordingComparison(
        comparison,
        before,
        after,
        sources,
        masks,
        description,
        quality,
        (_source(scales[0]), _source(scales[1])),
    )


def _source(scale: PixelScale | None) -> str:
    return "unknown" if scale is None else scale.source


def _masks(
    rois: Mapping[str, RoiSpec],
    reference: RoiSpec | str | None,
    shape: tuple[int, ...],
) -> dict[str, npt.NDArray[np.bool_]]:
    """The regions as masks, with a reference region added as ``"reference"``; the whole field
    of view first when no region is given."""
    image = (int(shape[0]), int(shape[1]))
    masks = roi_masks(dict(rois), image) if rois else {}
    if isinstance(reference, str):
        if reference not in masks:
            raise ValueError(f"reference {reference!r} is not one of the ROIs {list(masks)}")
    elif reference is not None:
        if "reference" in masks:
            raise ValueError(
                "an ROI is already named 'reference': pass reference='reference' to use it, "
                "or rename it"
            )
        masks |= roi_masks({"reference": reference}, image)
    if not rois:
        masks = {FIELD_ROI: np.ones(image, dtype=bool), **masks}
    return masks


def _reference_name(
    reference: RoiSpec | str | None, masks: Mapping[str, npt.NDArray[np.bool_]]
) -> str | None:
    if isinstance(reference, str):
        return reference
    return None if reference is None else "reference"


@dataclass(frozen=True, eq=False)
class SessionTimeCourse:
    """Perfusion of each region and the hypoperfused area over a session.

    Attributes
    ----------
    times_s : (T,) ndarray of float
        Time of each map, seconds since the start of the recording.
    means : dict of str to (T,) ndarray
        Mean perfusion of each region in each map (NaN ignored).
    area : AreaTimeCourse or None
        The hypoperfused area of each map (``None`` without a reference region or absolute
        threshold).
    unit : str
        The maps' unit.
    """

    times_s: npt.NDArray[np.float64]
    means: dict[str, npt.NDArray[np.float64]]
    area: AreaTimeCourse | None
    unit: str = ""

    def to_csv(self) -> str:
        """One row per map: ``time_s``, each region's ``mean <name>``, and ``area_px``,
        ``area_mm2`` and ``threshold`` of the hypoperfused area (floats written exactly)."""
        header = ["time_s", *(f"mean {name}" for name in self.means)]
        columns: list[npt.ArrayLike] = [self.times_s, *self.means.values()]
        if self.area is not None:
            header += ["area_px", "area_mm2", "threshold"]
            mm2 = self.area.area_mm2
            columns += [
                self.area.area_px,
                np.full(len(self.times_s), np.nan) if mm2 is None else mm2,
                self.area.threshold,
            ]
        lines = [",".join(header)]
        for values in zip(*(np.asarray(c).tolist() for c in columns), strict=True):
            lines.append(",".join(repr(v) for v in values))
        return "\n".join(lines) + "\n"


def session_time_course(
    maps: npt.ArrayLike,
    times_s: npt.ArrayLike,
    rois: Mapping[str, RoiSpec],
    *,
    reference: str | None = None,
    area: AreaSettings | None = None,
    scale: PixelScale | None = None,
    unit: str = "",
) -> SessionTimeCourse:
    """The mean perfusion of each region and the hypoperfused area of each map of a session.

    Parameters
    ----------
    maps : (T, M, N) array_like
        Perfusion maps of the session (e.g. the stored ``perfusion`` product).
    times_s : (T,) array_like
        Their times, seconds since the start of the recording.
    rois : mapping of str to mask or polygon
        The regions.
    reference : str, optional
        The name of the healthy reference region in ``rois``: each map's threshold is
        ``area.fraction`` of its median there (:func:`lsci.analysis.delineation.area_time_course`).
    area : AreaSettings, optional
        How the area is delineated.
    scale : PixelScale, optional
        The pixel size, for mm².
    unit : str
        The maps' unit.

    Returns
    -------
    SessionTimeCourse
    """
    stack = np.asarray(maps, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"maps must be (T, M, N), got shape {stack.shape}")
    masks = roi_masks(dict(rois), (int(stack.shape[1]), int(stack.shape[2])))
    if reference is not None and reference not in masks:
        raise ValueError(f"reference {reference!r} is not one of the ROIs {list(masks)}")
    means = {name: np.nanmean(stack[:, mask], axis=1) for name, mask in masks.items()}
    settings = AreaSettings() if area is None else area
    course = None
    if reference is not None or settings.absolute is not None:
        course = area_time_course(
            stack,
            times_s,
            reference=None if settings.absolute is not None else masks[str(reference)],
            fraction=settings.fraction,
            statistic=settings.statistic,
            absolute=settings.absolute,
            scale=scale,
            min_size_mm2=settings.min_size_mm2,
            min_size_px=settings.min_size_px,
            unit=unit,
        )
    return SessionTimeCourse(np.asarray(times_s, dtype=np.float64), means, course, unit)
