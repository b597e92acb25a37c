"""Hypoperfused area: where a perfusion map is below a threshold, its outline, area and centroid.

:func:`delineate_hypoperfusion` is the one definition of "hypoperfused" in lsci; the comparison
of two maps (:func:`compare_areas`) and the area over a session (:func:`area_time_course`) are
made of it.

Definition
----------
A pixel is hypoperfused when its value is *below* the threshold (strictly), where the threshold
is either

* a fraction of a healthy reference region's median (or mean) perfusion on the same map
  (default: 0.5 of the median), or
* an absolute value in the map's own unit (e.g. perfusion units of a calibrated map).

Pixels that are not measured are never hypoperfused, and their number is reported: non-finite
map values (NaN where contrast could not be computed) and pixels outside an optional ``valid``
mask (``True`` at usable pixels, the convention of :func:`lsci.analysis.quality.valid_pixels`:
saturated or too dark pixels are ``False``). Then regions smaller than the minimum size are
dropped (islands: 8-connected) and holes smaller than it are filled (4-connected, the pairing
that keeps the outline of a region and of its holes consistent); filled holes that were not
measured stay out of the mask and are reported as ``excluded_inside_px``.

Geometry follows :mod:`lsci.analysis.roi`: ``(row, col)`` pixel coordinates, pixel ``(r, c)``
centred at ``(r, c)``; the outlines run half way between pixel centres, so a region's outline
encloses exactly its pixel centres (:func:`lsci.analysis.roi.polygon_mask` of it gives the mask
back). Millimetres use a :class:`lsci.analysis.scale.PixelScale`
(square pixels, origin at the centre of pixel ``(0, 0)``).

The default fraction 0.5
------------------------
There is no published relative threshold for occlusion after fillers that we know of; the
studies this package serves quote absolute levels for flaps instead (perfusion below 25 PU at
30 min predicted necrosis in a porcine flap model, Zötterman et al. 2019, PMID 30711464; pass
``absolute=``). The default is the half-way level between no flow and the reference, for a
reason of measurement: every map is blurred by a symmetric point spread (the contrast window,
light diffusing in the skin), and the blurred profile across the straight edge of a region
without flow crosses half the surrounding level exactly at the true edge, whatever the blur's
width (the edge response of a symmetric kernel is 1/2 at the edge, by symmetry). So at 0.5 the
measured area of an occluded region does not grow or shrink with the blur. It is a measurement
convention, not a clinical cut-off: state the threshold with every result
(:attr:`Threshold.description`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from skimage import measure, morphology

from lsci.analysis.roi import RoiSpec, roi_masks
from lsci.analysis.scale import PixelScale

__all__ = [
    "DEFAULT_FRACTION",
    "DEFAULT_MIN_SIZE_MM2",
    "DEFAULT_MIN_SIZE_PX",
    "AreaComparison",
    "AreaTimeCourse",
    "Delineation",
    "Threshold",
    "area_time_course",
    "compare_areas",
    "delineate_hypoperfusion",
]

#: Default threshold: hypoperfused below half the reference region's perfusion (module docstring).
DEFAULT_FRACTION = 0.5
#: Smallest region kept when the scale is known, mm²: well below the spacing of needle
#: punctures (about 5 mm) and of a lesion worth outlining, above single-pixel noise.
DEFAULT_MIN_SIZE_MM2 = 1.0
#: Smallest region kept when the scale is unknown, pixels: the footprint of a 7 × 7 spatial
#: contrast window, over which neighbouring contrast values are correlated, so a smaller
#: region is below the resolution of a spatial-contrast map.
DEFAULT_MIN_SIZE_PX = 49

FloatMap = npt.NDArray[np.float64]
BoolMap = npt.NDArray[np.bool_]
Scale = PixelScale | float | None


@dataclass(frozen=True)
class Threshold:
    """The perfusion level below which a pixel is hypoperfused, and how it was derived.

    Attributes
    ----------
    value : float
        The level, in the map's unit.
    method : {"reference_fraction", "absolute"}
        A fraction of a reference region's statistic, or given as it is.
    fraction : float or None
        The fraction (``reference_fraction`` only).
    statistic : {"median", "mean"} or None
        The reference statistic (``reference_fraction`` only).
    reference_value : float or None
        The statistic over the reference region's measured pixels.
    reference_px : int or None
        The number of measured pixels it was taken over.
    unit : str
        The map's unit as the caller named it (may be empty).
    """

    value: float
    method: Literal["reference_fraction", "absolute"]
    fraction: float | None = None
    statistic: Literal["median", "mean"] | None = None
    reference_value: float | None = None
    reference_px: int | None = None
    unit: str = ""

    @property
    def description(self) -> str:
        """One sentence stating the threshold, for reports and figure captions."""
        unit = f" {self.unit}" if self.unit else ""
        if self.method == "absolute":
            return f"hypoperfused below {self.value:.4g}{unit} (absolute threshold)"
        return (
            f"hypoperfused below {self.value:.4g}{unit} = {self.fraction} × the {self.statistic} "
            f"of the reference region ({self.reference_value:.4g}{unit} over "
            f"{self.reference_px} px)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The threshold as plain Python values (for JSON)."""
        return {
            "value": self.value,
            "method": self.method,
            "fraction": self.fraction,
            "statistic": self.statistic,
            "reference_value": self.reference_value,
            "reference_px": self.reference_px,
            "unit": self.unit,
            "description": self.description,
        }


@dataclass(frozen=True)
class Delineation:
    """The hypoperfused region of one map.

    Attributes
    ----------
    mask : (M, N) ndarray of bool
        True at hypoperfused (measured) pixels, after cleaning.
    outlines : tuple of (K, 2) ndarray of float
        Closed contours of the region as ``(row, col)`` vertices, half way between pixel
        centres (first vertex repeated last): outer boundaries and the boundaries of holes.
        Unmeasured pixels inside a hole smaller than the minimum size belong to the region's
        outline (not to its area): a saturated pixel does not punch a hole in the lesion. Usable
        as napari Shapes polygons and, as ``plot(c[:, 1], c[:, 0])``, in matplotlib.
    area_px : int
        Hypoperfused pixels.
    area_mm2 : float or None
        Their area on the skin (``None`` without a scale).
    centroid_px : tuple of float or None
        ``(row, col)`` of the region's centre of mass (``None`` when empty).
    centroid_mm : tuple of float or None
        The same in millimetres from the centre of pixel ``(0, 0)`` (``None`` without a
        scale or when empty).
    roi_share : dict of str to float
        For each region given: the fraction (0 to 1) of its measured pixels that are
        hypoperfused (NaN when none of its pixels is measured).
    threshold : Threshold
        The level used and how it was derived.
    min_size_px : int
        Islands and holes smaller than this many pixels were cleaned.
    min_size_mm2 : float or None
        The same minimum in mm², when it was given that way (or defaulted with a scale).
    excluded_px : int
        Pixels of the whole map not measured (non-finite, or outside ``valid``).
    excluded_inside_px : int
        Of those, the ones enclosed by the hypoperfused region: part of the lesion whose
        perfusion is unknown.
    scale : PixelScale or None
        The scale used for mm and mm².
    """

    mask: BoolMap = field(repr=False)
    outlines: tuple[FloatMap, ...] = field(repr=False)
    area_px: int
    area_mm2: float | None
    centroid_px: tuple[float, float] | None
    centroid_mm: tuple[float, float] | None
    roi_share: dict[str, float]
    threshold: Threshold
    min_size_px: int
    min_size_mm2: float | None
    excluded_px: int
    excluded_inside_px: int
    scale: PixelScale | None

    @property
    def extent_px(self) -> int:
        """Pixels the outline encloses: the hypoperfused ones and the unmeasured ones inside
        (``area_px + excluded_inside_px``), the lesion's extent when some of it could not be
        measured (saturated, for example)."""
        return self.area_px + self.excluded_inside_px

    @property
    def extent_mm2(self) -> float | None:
        """:attr:`extent_px` in mm² (``None`` without a scale)."""
        return _mm2(self.extent_px, self.scale)

    def to_dict(self) -> dict[str, Any]:
        """Every number of the delineation as plain Python values (for JSON; no arrays)."""
        return {
            "area_px": self.area_px,
            "area_mm2": self.area_mm2,
            "extent_px": self.extent_px,
            "extent_mm2": self.extent_mm2,
            "centroid_px": _listed(self.centroid_px),
            "centroid_mm": _listed(self.centroid_mm),
            "roi_share": dict(self.roi_share),
            "threshold": self.threshold.to_dict(),
            "min_size_px": self.min_size_px,
            "min_size_mm2": self.min_size_mm2,
            "excluded_px": self.excluded_px,
            "excluded_inside_px": self.excluded_inside_px,
            "scale": None if self.scale is None else self.scale.to_dict(),
        }


def delineate_hypoperfusion(
    perfusion: npt.ArrayLike,
    *,
    reference: RoiSpec | None = None,
    fraction: float = DEFAULT_FRACTION,
    statistic: Literal["median", "mean"] = "median",
    absolute: float | None = None,
    valid: npt.ArrayLike | None = None,
    rois: Mapping[str, RoiSpec] | None = None,
    scale: Scale = None,
    min_size_mm2: float | None = None,
    min_size_px: int | None = None,
    unit: str = "",
) -> Delineation:
    """Delineate the hypoperfused region of a perfusion map.

    Parameters
    ----------
    perfusion : (M, N) array_like of float
        A perfusion map (any index that grows with flow: 1/τc, 1/K², perfusion units). NaN or
        infinite values are not measured.
    reference : (M, N) bool array or (K, 2) polygon, optional
        Healthy reference skin (:mod:`lsci.analysis.roi`): the threshold is ``fraction`` times
        its ``statistic`` over its measured pixels. Give this or ``absolute``.
    fraction : float, optional
        0 < fraction <= 1; default 0.5 (module docstring: why).
    statistic : {"median", "mean"}, optional
        The reference statistic; the median is robust to a vessel crossing the region.
    absolute : float, optional
        A threshold in the map's unit (e.g. 25 for "below 25 PU"), instead of a reference.
    valid : (M, N) array_like of bool, optional
        True at usable pixels (e.g. :func:`lsci.analysis.quality.valid_pixels`); the others
        are not measured.
    rois : mapping of str to ROI, optional
        Regions whose hypoperfused share is reported.
    scale : PixelScale or float, optional
        The pixel size on the skin (a float is mm per pixel), for areas in mm², the centroid in
        mm and a minimum size in mm².
    min_size_mm2 : float, optional
        Islands and holes smaller than this are cleaned; needs a scale. Default 1 mm² when a
        scale is given.
    min_size_px : int, optional
        The same in pixels (>= 1; 1 cleans nothing). Default 49 px without a scale. Give at
        most one of ``min_size_mm2`` and ``min_size_px``.
    unit : str, optional
        The map's unit, for the threshold's description.

    Returns
    -------
    Delineation

    Raises
    ------
    ValueError
        If the map is not 2-D, neither or both of ``reference`` and ``absolute`` are given, the
        reference region has no measured pixel or a statistic that is not > 0, a mask has the
        wrong shape, or a parameter is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> perfusion = np.full((40, 40), 100.0)
    >>> perfusion[10:20, 10:20] = 20.0
    >>> reference = np.zeros((40, 40), bool)
    >>> reference[30:, 30:] = True
    >>> result = delineate_hypoperfusion(perfusion, reference=reference, scale=0.5)
    >>> result.area_px, result.area_mm2, result.centroid_px
    (100, 25.0, (14.5, 14.5))
    >>> result.threshold.description
    'hypoperfused below 50 = 0.5 × the median of the reference region (100 over 100 px)'
    """
    values = _as_map(perfusion)
    shape = values.shape
    measured = np.isfinite(values)
    if valid is not None:
        usable = np.asarray(valid)
        if usable.shape != shape or usable.dtype != np.bool_:
            raise ValueError(f"valid must be a boolean array of shape {shape}, got {usable.shape}")
        measured &= usable
    pixel_scale = _scale(scale)
    threshold = _threshold(values, measured, reference, fraction, statistic, absolute, unit, shape)
    size_px, size_mm2 = _min_size(min_size_px, min_size_mm2, pixel_scale)
    raw = measured & (values < threshold.value)
    filled = _clean(raw, size_px)
    mask = filled & measured
    enclosed = _fill_all_holes(mask | (filled & ~measured))
    return _describe(
        mask,
        threshold=threshold,
        scale=pixel_scale,
        rois=rois,
        measured=measured,
        size_px=size_px,
        size_mm2=size_mm2,
        excluded_inside_px=int(np.count_nonzero(enclosed & ~measured)),
        outlined=filled,
    )


@dataclass(frozen=True)
class AreaComparison:
    """Hypoperfused area before and after, and where it changed.

    The two maps are on the same pixel grid (register them first, e.g. with
    :func:`lsci.analysis.similarity.register_similarity`).

    Attributes
    ----------
    before, after : Delineation
        Each map's delineation (each with its own reference level).
    reduction_px : int
        ``before.area_px - after.area_px`` (negative when the area grew).
    reduction_mm2 : float or None
        The same in mm².
    reduction_percent : float
        ``100 · reduction / before`` (NaN when there was no area before).
    recovered : (M, N) ndarray of bool
        Hypoperfused before, measured and not hypoperfused after.
    persistent : (M, N) ndarray of bool
        Hypoperfused before and after.
    new : (M, N) ndarray of bool
        Hypoperfused after only.
    recovered_px, persistent_px, new_px : int
        Their pixel counts.
    recovered_mm2, persistent_mm2, new_mm2 : float or None
        Their areas.
    unmeasured_after_px : int
        Hypoperfused before but not measured after: neither recovered nor persistent.
    """

    before: Delineation
    after: Delineation
    reduction_px: int
    reduction_mm2: float | None
    reduction_percent: float
    recovered: BoolMap = field(repr=False)
    persistent: BoolMap = field(repr=False)
    new: BoolMap = field(repr=False)
    recovered_px: int
    persistent_px: int
    new_px: int
    recovered_mm2: float | None
    persistent_mm2: float | None
    new_mm2: float | None
    unmeasured_after_px: int

    def to_dict(self) -> dict[str, Any]:
        """Every number of the comparison as plain Python values (for JSON; no arrays)."""
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "reduction_px": self.reduction_px,
            "reduction_mm2": self.reduction_mm2,
            "reduction_percent": _json_float(self.reduction_percent),
            "recovered_px": self.recovered_px,
            "persistent_px": self.persistent_px,
            "new_px": self.new_px,
            "recovered_mm2": self.recovered_mm2,
            "persistent_mm2": self.persistent_mm2,
            "new_mm2": self.new_mm2,
            "unmeasured_after_px": self.unmeasured_after_px,
        }


def compare_areas(
    before: npt.ArrayLike,
    after: npt.ArrayLike,
    *,
    reference: RoiSpec | None = None,
    fraction: float = DEFAULT_FRACTION,
    statistic: Literal["median", "mean"] = "median",
    absolute: float | None = None,
    valid_before: npt.ArrayLike | None = None,
    valid_after: npt.ArrayLike | None = None,
    rois: Mapping[str, RoiSpec] | None = None,
    scale: Scale = None,
    min_size_mm2: float | None = None,
    min_size_px: int | None = None,
    unit: str = "",
) -> AreaComparison:
    """Compare the hypoperfused area of two registered maps (before and after a treatment).

    Each map is delineated with :func:`delineate_hypoperfusion` and the same settings; with a
    ``reference`` region each map's threshold is the fraction of *its own* reference level, so
    a change that affects the whole field (temperature, a different exposure) does not move
    the outline.

    Parameters
    ----------
    before, after : (M, N) array_like of float
        The perfusion maps, on the same pixel grid.
    valid_before, valid_after : (M, N) array_like of bool, optional
        Usable pixels of each map.
    reference, fraction, statistic, absolute, rois, scale, min_size_mm2, min_size_px, unit
        As in :func:`delineate_hypoperfusion`.

    Returns
    -------
    AreaComparison

    Raises
    ------
    ValueError
        If the maps differ in shape, or as :func:`delineate_hypoperfusion`.

    Examples
    --------
    >>> import numpy as np
    >>> before = np.full((60, 60), 100.0)
    >>> before[10:30, 10:30] = 10.0
    >>> after = before.copy()
    >>> after[10:20, 10:30] = 90.0
    >>> reference = np.zeros((60, 60), bool)
    >>> reference[40:, 40:] = True
    >>> result = compare_areas(before, after, reference=reference)
    >>> result.before.area_px, result.after.area_px, result.reduction_percent
    (400, 200, 50.0)
    >>> result.recovered_px, result.persistent_px
    (200, 200)
    """
    if np.shape(before) != np.shape(after):
        raise ValueError(
            f"before and after must have the same shape, got {np.shape(before)} and "
            f"{np.shape(after)}; register and resample them onto one grid first"
        )
    settings: dict[str, Any] = {
        "reference": reference,
        "fraction": fraction,
        "statistic": statistic,
        "absolute": absolute,
        "rois": rois,
        "scale": scale,
        "min_size_mm2": min_size_mm2,
        "min_size_px": min_size_px,
        "unit": unit,
    }
    first = delineate_hypoperfusion(before, valid=valid_before, **settings)
    second = delineate_hypoperfusion(after, valid=valid_after, **settings)
    measured_after = _measured(after, valid_after)
    recovered = first.mask & measured_after & ~second.mask
    persistent = first.mask & second.mask
    new = second.mask & ~first.mask
    reduction = first.area_px - second.area_px
    percent = 100.0 * reduction / first.area_px if first.area_px else math.nan
    pixel_scale = first.scale
    return AreaComparison(
        before=first,
        after=second,
        reduction_px=reduction,
        reduction_mm2=_mm2(reduction, pixel_scale),
        reduction_percent=percent,
        recovered=recovered,
        persistent=persistent,
        new=new,
        recovered_px=int(np.count_nonzero(recovered)),
        persistent_px=int(np.count_nonzero(persistent)),
        new_px=int(np.count_nonzero(new)),
        recovered_mm2=_mm2(int(np.count_nonzero(recovered)), pixel_scale),
        persistent_mm2=_mm2(int(np.count_nonzero(persistent)), pixel_scale),
        new_mm2=_mm2(int(np.count_nonzero(new)), pixel_scale),
        unmeasured_after_px=int(np.count_nonzero(first.mask & ~measured_after)),
    )


@dataclass(frozen=True)
class AreaTimeCourse:
    """Hypoperfused area of each map of a session.

    Attributes
    ----------
    times_s : (T,) ndarray of float
        Time of each map, seconds (as given).
    area_px : (T,) ndarray of int64
        Hypoperfused pixels of each map.
    area_mm2 : (T,) ndarray of float or None
        Their areas (``None`` without a scale).
    threshold : (T,) ndarray of float
        The threshold each map was delineated with.
    excluded_px : (T,) ndarray of int64
        Unmeasured pixels of each map.
    delineations : tuple of Delineation
        The full result for each map.
    """

    times_s: FloatMap
    area_px: npt.NDArray[np.int64]
    area_mm2: FloatMap | None
    threshold: FloatMap
    excluded_px: npt.NDArray[np.int64]
    delineations: tuple[Delineation, ...] = field(repr=False)


def area_time_course(
    maps: npt.ArrayLike | Sequence[npt.ArrayLike],
    times_s: npt.ArrayLike,
    *,
    reference: RoiSpec | None = None,
    fraction: float = DEFAULT_FRACTION,
    statistic: Literal["median", "mean"] = "median",
    absolute: float | None = None,
    valid: npt.ArrayLike | None = None,
    scale: Scale = None,
    min_size_mm2: float | None = None,
    min_size_px: int | None = None,
    unit: str = "",
) -> AreaTimeCourse:
    """Hypoperfused area of each map of a session, to plot beside the perfusion curves.

    Parameters
    ----------
    maps : (T, M, N) array_like or sequence of (M, N) maps
        Perfusion maps, e.g. one per few seconds of a recording.
    times_s : (T,) array_like of float
        The time of each map in seconds.
    valid : (M, N) or (T, M, N) array_like of bool, optional
        Usable pixels, for all maps or per map.
    reference, fraction, statistic, absolute, scale, min_size_mm2, min_size_px, unit
        As in :func:`delineate_hypoperfusion`; with a reference, each map's threshold is
        derived from its own reference level.

    Returns
    -------
    AreaTimeCourse

    Raises
    ------
    ValueError
        If ``maps`` is not 3-D, ``times_s`` does not have one time per map, ``valid`` has the
        wrong shape, or as :func:`delineate_hypoperfusion`.
    """
    stack = np.asarray(maps, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"maps must be (T, M, N), got shape {stack.shape}")
    times = np.asarray(times_s, dtype=np.float64)
    if times.shape != (stack.shape[0],):
        raise ValueError(
            f"times_s must hold one time per map ({stack.shape[0]}), got shape {times.shape}"
        )
    usable = None if valid is None else np.asarray(valid)
    if usable is not None and usable.shape not in (stack.shape, stack.shape[1:]):
        raise ValueError(
            f"valid must have shape {stack.shape[1:]} or {stack.shape}, got {usable.shape}"
        )
    results = tuple(
        delineate_hypoperfusion(
            frame,
            reference=reference,
            fraction=fraction,
            statistic=statistic,
            absolute=absolute,
            valid=None if usable is None else (usable if usable.ndim == 2 else usable[i]),
            scale=scale,
            min_size_mm2=min_size_mm2,
            min_size_px=min_size_px,
            unit=unit,
        )
        for i, frame in enumerate(stack)
    )
    area_px = np.array([r.area_px for r in results], dtype=np.int64)
    pixel_scale = _scale(scale)
    return AreaTimeCourse(
        times_s=times,
        area_px=area_px,
        area_mm2=(
            None if pixel_scale is None else area_px.astype(np.float64) * pixel_scale.pixel_area_mm2
        ),
        threshold=np.array([r.threshold.value for r in results], dtype=np.float64),
        excluded_px=np.array([r.excluded_px for r in results], dtype=np.int64),
        delineations=results,
    )


# --------------------------------------------------------------------------------- helpers


def _as_map(perfusion: npt.ArrayLike) -> FloatMap:
    values = np.asarray(perfusion)
    if values.ndim != 2:
        raise ValueError(f"perfusion must be a 2-D map, got shape {values.shape}")
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise ValueError(f"perfusion must hold real numbers, got dtype {values.dtype}")
    return values.astype(np.float64, copy=False)


def _measured(perfusion: npt.ArrayLike, valid: npt.ArrayLike | None) -> BoolMap:
    measured: BoolMap = np.isfinite(_as_map(perfusion))
    if valid is not None:
        measured &= np.asarray(valid, dtype=bool)
    return measured


def _scale(scale: Scale) -> PixelScale | None:
    if scale is None or isinstance(scale, PixelScale):
        return scale
    if isinstance(scale, bool) or not isinstance(scale, int | float | np.floating | np.integer):
        raise TypeError(f"scale must be a PixelScale, a number (mm per px) or None, got {scale!r}")
    return PixelScale(
        pixel_size_mm=float(scale), method="given", source=f"given: {float(scale):g} mm/px"
    )


def _threshold(
    values: FloatMap,
    measured: BoolMap,
    reference: RoiSpec | None,
    fraction: float,
    statistic: str,
    absolute: float | None,
    unit: str,
    shape: tuple[int, ...],
) -> Threshold:
    if reference is None:
        if absolute is None:
            raise ValueError(
                "give a healthy reference region (reference=) or an absolute threshold (absolute=)"
            )
        if not math.isfinite(absolute):
            raise ValueError(f"absolute must be a finite number, got {absolute!r}")
        return Threshold(value=float(absolute), method="absolute", unit=unit)
    if absolute is not None:
        raise ValueError("give a reference region or an absolute threshold, not both")
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
    rows, cols = shape
    region = roi_masks({"reference": reference}, (rows, cols))["reference"] & measured
    count = int(np.count_nonzero(region))
    if count == 0:
        raise ValueError(
            "the reference region has no measured pixel (all NaN or excluded by the quality "
            "mask): choose healthy skin with good signal"
        )
    samples = values[region]
    level = float(np.median(samples) if statistic == "median" else np.mean(samples))
    if not level > 0:
        raise ValueError(
            f"the reference region's {statistic} is {level:g}: a perfusion level must be > 0"
        )
    return Threshold(
        value=fraction * level,
        method="reference_fraction",
        fraction=float(fraction),
        statistic="median" if statistic == "median" else "mean",
        reference_value=level,
        reference_px=count,
        unit=unit,
    )


def _min_size(
    size_px: int | None, size_mm2: float | None, scale: PixelScale | None
) -> tuple[int, float | None]:
    if size_px is not None and size_mm2 is not None:
        raise ValueError("give min_size_px or min_size_mm2, not both")
    if size_mm2 is not None:
        if scale is None:
            raise ValueError("min_size_mm2 needs a scale (scale=); without one give min_size_px")
        if not (math.isfinite(size_mm2) and size_mm2 >= 0):
            raise ValueError(f"min_size_mm2 must be a finite number >= 0, got {size_mm2!r}")
    if size_px is None:
        if scale is None:
            return DEFAULT_MIN_SIZE_PX, None
        mm2 = DEFAULT_MIN_SIZE_MM2 if size_mm2 is None else float(size_mm2)
        return max(1, math.ceil(mm2 / scale.pixel_area_mm2 - 1e-9)), mm2
    if isinstance(size_px, bool) or not isinstance(size_px, int | np.integer) or size_px < 1:
        raise ValueError(f"min_size_px must be an int >= 1, got {size_px!r}")
    return int(size_px), None


def _clean(mask: BoolMap, size_px: int) -> BoolMap:
    """Drop 8-connected islands and fill 4-connected holes smaller than ``size_px``."""
    if size_px <= 1:
        return mask.copy()
    kept: BoolMap = morphology.remove_small_objects(mask, max_size=size_px - 1, connectivity=2)
    filled: BoolMap = morphology.remove_small_holes(kept, max_size=size_px - 1, connectivity=1)
    return filled


def _fill_all_holes(mask: BoolMap) -> BoolMap:
    """``mask`` with every hole filled: 4-connected background not connected to the border."""
    labels = measure.label(~mask, connectivity=1)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = (labels > 0) & ~np.isin(labels, border)
    filled: BoolMap = mask | holes
    return filled


def _outlines(mask: BoolMap) -> tuple[FloatMap, ...]:
    if not mask.any():
        return ()
    # Padding closes the contours of regions that touch the image border.
    padded = np.pad(mask.astype(np.float64), 1)
    return tuple(
        np.asarray(contour - 1.0, dtype=np.float64)
        for contour in measure.find_contours(padded, 0.5, fully_connected="high")
    )


def _describe(
    mask: BoolMap,
    *,
    threshold: Threshold,
    scale: PixelScale | None,
    rois: Mapping[str, RoiSpec] | None,
    measured: BoolMap,
    size_px: int,
    size_mm2: float | None,
    excluded_inside_px: int,
    outlined: BoolMap | None = None,
) -> Delineation:
    area = int(np.count_nonzero(mask))
    centroid: tuple[float, float] | None = None
    if area:
        rows, cols = np.nonzero(mask)
        centroid = (float(rows.mean()), float(cols.mean()))
    share: dict[str, float] = {}
    if rois is not None:
        shape = (int(mask.shape[0]), int(mask.shape[1]))
        for name, region in roi_masks(rois, shape).items():
            seen = int(np.count_nonzero(region & measured))
            share[name] = float(np.count_nonzero(region & mask)) / seen if seen else math.nan
    return Delineation(
        mask=mask,
        outlines=_outlines(mask if outlined is None else outlined),
        area_px=area,
        area_mm2=_mm2(area, scale),
        centroid_px=centroid,
        centroid_mm=(
            None
            if centroid is None or scale is None
            else (centroid[0] * scale.pixel_size_mm, centroid[1] * scale.pixel_size_mm)
        ),
        roi_share=share,
        threshold=threshold,
        min_size_px=size_px,
        min_size_mm2=size_mm2,
        excluded_px=int(np.count_nonzero(~measured)),
        excluded_inside_px=excluded_inside_px,
        scale=scale,
    )


def _mm2(count: int, scale: PixelScale | None) -> float | None:
    return None if scale is None else count * scale.pixel_area_mm2


def _listed(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else [pair[0], pair[1]]


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None
