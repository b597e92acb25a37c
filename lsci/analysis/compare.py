"""Before/after comparison of perfusion maps: registration, ratio maps, ROI statistics, areas.

The clinical question: did perfusion in the ischemic area come back after treatment, and by how
much, compared with healthy skin nearby, and how large is the area still hypoperfused?
:func:`compare_before_after` aligns the "after" map with the "before" map (similarity
registration, :mod:`lsci.analysis.similarity`, or translation only,
:mod:`lsci.analysis.registration`), computes the ratio and percent-change maps, one row of
statistics per region of interest (:mod:`lsci.analysis.roi`) and, with a healthy reference
region or an absolute threshold, the hypoperfused area before and after
(:func:`lsci.analysis.delineation.compare_areas`), and returns a :class:`Comparison` that
exports to CSV and JSON.

Conventions
-----------
- ROI coordinates are in the "before" image; the "after" map is moved onto it.
- A pixel counts in a region's statistics when it is finite in both the before map and the
  aligned after map, so both means are over the same pixels. A region with no such pixel
  reports ``pixel_count = 0`` and NaN statistics (no error, no warning).
- ``std`` is the population standard deviation (ddof = 0).
- ``ratio`` is ``after_mean / before_mean`` (ratio of means, not mean of per-pixel ratios, which
  noise in small before values would dominate); ``percent_change = 100 · (ratio − 1)``.
- ``relative_ratio`` is the region's ratio divided by the reference region's ratio: the change
  in the region beyond the change in healthy skin (global effects such as a different
  illumination or skin temperature cancel);
  ``relative_percent_change = 100 · (relative_ratio − 1)``.
- Pixels outside a quality mask (``valid_before`` / ``valid_after``: saturated, too dark) are
  set to NaN before anything else, so they count in no statistic and no area; the areas report
  them as excluded.
- The hypoperfused areas use each map's own reference level (a fraction of the reference
  region's median, default :data:`lsci.analysis.delineation.DEFAULT_FRACTION`), or an absolute
  threshold in the maps' unit; without either there is no area.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lsci._arrays import check_out
from lsci.analysis.delineation import DEFAULT_FRACTION, AreaComparison, compare_areas
from lsci.analysis.registration import Registration, apply_shift, register_translation
from lsci.analysis.roi import RoiSpec, roi_masks
from lsci.analysis.scale import PixelScale
from lsci.analysis.similarity import (
    SimilarityRegistration,
    align_to_reference,
    register_similarity,
)
from lsci.recording.atomic import write_text_atomically

__all__ = [
    "DEFAULT_MIN_CORRELATION",
    "DEFAULT_REGISTRATION",
    "REGISTRATION_METHODS",
    "AreaSettings",
    "Comparison",
    "RoiStatistics",
    "compare_before_after",
    "percent_change_map",
    "ratio_map",
    "roi_statistics",
    "with_areas",
]

#: How the after map is aligned unless told otherwise: rotation, scale and translation (a face
#: imaged again is never in the same pose).
DEFAULT_REGISTRATION: Literal["similarity"] = "similarity"
#: The registration methods: ``"similarity"`` (:func:`lsci.analysis.similarity.register_similarity`)
#: or ``"translation"`` (:func:`lsci.analysis.registration.register_translation`, cheaper, for a
#: camera on a fixed mount).
REGISTRATION_METHODS = ("similarity", "translation")
#: Smallest correlation of the aligned images a similarity registration accepts (its default).
DEFAULT_MIN_CORRELATION = 0.3

AnyRegistration = Registration | SimilarityRegistration


@dataclass(frozen=True)
class AreaSettings:
    """How the hypoperfused area is delineated (:func:`lsci.analysis.delineation.compare_areas`).

    Attributes
    ----------
    fraction : float
        Hypoperfused below this fraction of the reference region's ``statistic``.
    statistic : {"median", "mean"}
        The reference statistic.
    absolute : float or None
        A threshold in the maps' unit instead of the reference (then no reference is needed).
    min_size_mm2, min_size_px : float or int or None
        Islands and holes smaller than this are cleaned (defaults of the delineation: 1 mm²
        with a scale, 49 px without).
    """

    fraction: float = DEFAULT_FRACTION
    statistic: Literal["median", "mean"] = "median"
    absolute: float | None = None
    min_size_mm2: float | None = None
    min_size_px: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain Python values (for JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class RoiStatistics:
    """Before/after statistics of one region of interest (see the module conventions).

    Attributes
    ----------
    name : str
        Region name.
    roi_pixels : int
        Pixels in the region.
    pixel_count : int
        Pixels of the region finite in both maps: those the statistics use.
    before_mean, before_median, before_std : float
        Of the before map over those pixels.
    after_mean, after_median, after_std : float
        Of the aligned after map over those pixels.
    ratio : float
        ``after_mean / before_mean``.
    percent_change : float
        ``100 · (ratio − 1)``.
    relative_ratio : float
        ``ratio / reference ratio`` (NaN without a reference).
    relative_percent_change : float
        ``100 · (relative_ratio − 1)``.
    """

    name: str
    roi_pixels: int
    pixel_count: int
    before_mean: float
    before_median: float
    before_std: float
    after_mean: float
    after_median: float
    after_std: float
    ratio: float
    percent_change: float
    relative_ratio: float
    relative_percent_change: float


@dataclass(frozen=True, eq=False)
class Comparison:
    """Result of :func:`compare_before_after`.

    Attributes
    ----------
    before : (M, N) ndarray
        The before map.
    after : (M, N) ndarray
        The after map aligned with ``before`` (NaN where the shift left no data).
    ratio : (M, N) ndarray
        ``after / before`` per pixel (:func:`ratio_map`).
    percent_change : (M, N) ndarray
        ``100 · (after / before − 1)`` per pixel.
    registration : SimilarityRegistration or Registration or None
        How the after map was aligned and how surely; ``None`` when not registered. A
        similarity registration accepted with ``refuse_unreliable=False`` may be marked
        ``reliable=False`` with its reasons.
    rois : tuple of RoiStatistics
        One row per region, in the given order (the reference included).
    reference : str or None
        Name of the reference region.
    areas : AreaComparison or None
        The hypoperfused area before and after; ``None`` without a reference region or an
        absolute threshold.
    area_settings : AreaSettings
        How the areas are (or would be) delineated.
    scale : PixelScale or None
        The pixel size on the skin (of the before map), for mm and mm².
    unit : str
        The maps' unit (for the threshold's description).
    """

    before: npt.NDArray[np.floating[Any]] = field(repr=False)
    after: npt.NDArray[np.floating[Any]] = field(repr=False)
    ratio: npt.NDArray[np.floating[Any]] = field(repr=False)
    percent_change: npt.NDArray[np.floating[Any]] = field(repr=False)
    registration: AnyRegistration | None
    rois: tuple[RoiStatistics, ...]
    reference: str | None
    areas: AreaComparison | None = None
    area_settings: AreaSettings = AreaSettings()
    scale: PixelScale | None = None
    unit: str = ""

    def roi(self, name: str) -> RoiStatistics:
        """The statistics of the region called ``name`` (KeyError if there is none)."""
        for row in self.rois:
            if row.name == name:
                return row
        raise KeyError(f"no ROI named {name!r}; the ROIs are {[r.name for r in self.rois]}")

    def to_dict(self) -> dict[str, Any]:
        """Everything but the maps, as plain Python values; NaN becomes ``None``."""
        return {
            "shape": list(self.before.shape),
            "reference": self.reference,
            "registration": None
            if self.registration is None
            else _json_tree(self._registration_dict()),
            "rois": [{k: _json_value(v) for k, v in asdict(row).items()} for row in self.rois],
            "areas": None if self.areas is None else _json_tree(self.areas.to_dict()),
            "area_settings": self.area_settings.to_dict(),
            "scale": None if self.scale is None else self.scale.to_dict(),
            "unit": self.unit,
        }

    def _registration_dict(self) -> dict[str, Any]:
        assert self.registration is not None
        values = self.registration.to_dict()
        if isinstance(self.registration, Registration):
            values = {"model": "translation", **values}
        return values

    def to_json(self, path: str | Path | None = None) -> str:
        """The :meth:`to_dict` content as JSON (standard JSON: NaN written as ``null``).

        Parameters
        ----------
        path : str or pathlib.Path, optional
            Also write it to this file (UTF-8).

        Returns
        -------
        str
            The JSON text.
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            write_text_atomically(path, text + "\n")
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        """The ROI table as CSV: a header, then one row per region.

        Columns are the :class:`RoiStatistics` fields; ``hypoperfused_before`` and
        ``hypoperfused_after``, the share (0 to 1) of the region's measured pixels that is
        hypoperfused (empty without areas); then the registration: ``registration`` (the
        method), ``shift_dy_px``, ``shift_dx_px``, ``rotation_deg``, ``scale``, ``correlation``
        (similarity) and ``peak_ratio`` (translation), empty when they do not apply; and
        ``reference``. The registration and the reference are repeated on each row so the file
        stands alone. NaN is written as ``nan``.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            Also write it to this file (UTF-8).

        Returns
        -------
        str
            The CSV text.
        """
        columns = [f.name for f in fields(RoiStatistics)]
        shares = ["hypoperfused_before", "hypoperfused_after"]
        extra = ["registration", "shift_dy_px", "shift_dx_px", "rotation_deg", "scale",
                 "correlation", "peak_ratio", "reference"]  # fmt: skip
        tail = [_cell(v) for v in _registration_cells(self.registration)]
        tail.append(self.reference or "")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns + shares + extra)
        for row in self.rois:
            values = [getattr(row, name) for name in columns]
            share: list[Any] = ["", ""]
            if self.areas is not None:
                share = [
                    self.areas.before.roi_share.get(row.name, ""),
                    self.areas.after.roi_share.get(row.name, ""),
                ]
            writer.writerow([_cell(v) for v in values + share] + tail)
        text = buffer.getvalue()
        if path is not None:
            write_text_atomically(path, text)
        return text


def _registration_cells(registration: AnyRegistration | None) -> list[Any]:
    """Method, dy, dx, rotation, scale, correlation, peak ratio (``""`` where they do not apply)."""
    if registration is None:
        return ["", "", "", "", "", "", ""]
    dy, dx = registration.shift_px
    if isinstance(registration, SimilarityRegistration):
        return ["similarity", dy, dx, registration.rotation_deg, registration.scale,
                registration.correlation, ""]  # fmt: skip
    return ["translation", dy, dx, "", "", "", registration.peak_ratio]


def _cell(value: Any) -> Any:
    """A CSV cell: floats written exactly (``repr``), NaN as ``nan``."""
    return repr(float(value)) if isinstance(value, float | np.floating) else value


def ratio_map(
    before: npt.ArrayLike,
    after: npt.ArrayLike,
    *,
    out: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """Per-pixel ratio ``after / before``.

    Parameters
    ----------
    before, after : (M, N) array_like
        Maps of the same shape.
    out : (M, N) ndarray, optional
        Output array of the result dtype.

    Returns
    -------
    ratio : (M, N) ndarray
        ``result_type(before, after, float32)``. NaN where either value is not finite or
        ``before <= 0`` (a ratio to zero or negative perfusion means nothing).

    Raises
    ------
    ValueError
        If the maps are not 2-D of the same shape.

    Examples
    --------
    >>> ratio_map([[2.0, 0.0]], [[3.0, 1.0]])
    array([[1.5, nan]])
    """
    b, a, dtype = _pair(before, after)
    check_out(out, b.shape, (dtype,))
    b64 = b.astype(np.float64)
    a64 = a.astype(np.float64)
    ratio = np.full(b.shape, np.nan)
    valid = np.isfinite(b64) & np.isfinite(a64) & (b64 > 0)
    np.divide(a64, b64, out=ratio, where=valid)
    if out is None:
        return ratio.astype(dtype)
    out[...] = ratio
    return out


def percent_change_map(
    before: npt.ArrayLike,
    after: npt.ArrayLike,
    *,
    out: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """Per-pixel percent change ``100 · (after / before − 1)``.

    Parameters
    ----------
    before, after : (M, N) array_like
        Maps of the same shape.
    out : (M, N) ndarray, optional
        Output array of the result dtype.

    Returns
    -------
    change : (M, N) ndarray
        Same dtype and NaN rule as :func:`ratio_map`.

    Examples
    --------
    >>> percent_change_map([[2.0]], [[3.0]])
    array([[50.]])
    """
    ratio = ratio_map(before, after)
    change = 100.0 * (ratio.astype(np.float64) - 1.0)
    if out is None:
        return change.astype(ratio.dtype)
    check_out(out, ratio.shape, (ratio.dtype,))
    out[...] = change
    return out


def roi_statistics(
    before: npt.ArrayLike,
    after: npt.ArrayLike,
    rois: Mapping[str, RoiSpec] | npt.ArrayLike,
    *,
    reference: str | RoiSpec | None = None,
) -> tuple[RoiStatistics, ...]:
    """Statistics of each region in the before map and in the (already aligned) after map.

    Parameters
    ----------
    before, after : (M, N) array_like
        Maps of the same shape, ``after`` aligned with ``before``. NaN pixels are left out.
    rois : mapping or array_like
        A label image or a mapping from name to mask or polygon (see
        :func:`lsci.analysis.roi.roi_masks`;
        polygons are ``(row, col)`` vertices, napari's Shapes convention).
    reference : str or mask or polygon, optional
        The healthy-skin region the others are compared with: the name of one of ``rois``, or a
        mask/polygon, which is then added as a row named ``"reference"``.

    Returns
    -------
    tuple of RoiStatistics
        One per region, in order (the module docstring states the conventions).

    Raises
    ------
    ValueError
        If the maps differ in shape, a region is malformed or empty (no pixel in the image), or
        ``reference`` names no region.

    Examples
    --------
    >>> import numpy as np
    >>> before = np.full((4, 4), 2.0)
    >>> after = np.full((4, 4), 3.0)
    >>> roi_statistics(before, after, {"all": np.ones((4, 4), bool)})[0].percent_change
    50.0
    """
    b, a, _ = _pair(before, after)
    masks = roi_masks(rois, b.shape)
    reference_name = _add_reference(masks, reference, b.shape)
    b64 = b.astype(np.float64)
    a64 = a.astype(np.float64)
    both = np.isfinite(b64) & np.isfinite(a64)
    raw = {name: _stats(b64[mask & both], a64[mask & both], int(mask.sum()))
           for name, mask in masks.items()}  # fmt: skip
    ref_ratio = raw[reference_name]["ratio"] if reference_name is not None else math.nan
    rows = []
    for name, values in raw.items():
        relative = _safe_divide(values["ratio"], ref_ratio)
        rows.append(
            RoiStatistics(
                name=name,
                roi_pixels=int(values["roi_pixels"]),
                pixel_count=int(values["pixel_count"]),
                before_mean=values["before_mean"],
                before_median=values["before_median"],
                before_std=values["before_std"],
                after_mean=values["after_mean"],
                after_median=values["after_median"],
                after_std=values["after_std"],
                ratio=values["ratio"],
                percent_change=100.0 * (values["ratio"] - 1.0),
                relative_ratio=relative,
                relative_percent_change=100.0 * (relative - 1.0),
            )
        )
    return tuple(rows)


def compare_before_after(
    before: npt.ArrayLike,
    after: npt.ArrayLike,
    rois: Mapping[str, RoiSpec] | npt.ArrayLike,
    *,
    reference: str | RoiSpec | None = None,
    register: bool = True,
    registration: Literal["similarity", "translation"] = DEFAULT_REGISTRATION,
    before_intensity: npt.ArrayLike | None = None,
    after_intensity: npt.ArrayLike | None = None,
    valid_before: npt.ArrayLike | None = None,
    valid_after: npt.ArrayLike | None = None,
    area: AreaSettings | None = None,
    scale: PixelScale | None = None,
    unit: str = "",
    min_correlation: float = DEFAULT_MIN_CORRELATION,
    refuse_unreliable: bool = True,
    upsample_factor: int = 20,
    min_peak_ratio: float = 3.0,
    max_shift_px: float | None = None,
) -> Comparison:
    """Compare perfusion before and after a treatment, region by region and by area.

    Parameters
    ----------
    before, after : (M, N) or (T, M, N) array_like
        Perfusion maps (any linear perfusion index: 1/K², 1/τc, ...). A stack is averaged over
        its first axis, ignoring NaN (use :func:`lsci.analysis.time_windows.window_mean` to pick a
        time window first). With similarity registration ``after`` may have another shape; it
        is resampled onto the before map's grid.
    rois : mapping or array_like
        Regions in the coordinates of ``before``: a label image, or a mapping from name to a
        boolean mask or to polygon vertices ``(row, col)`` (napari Shapes convention).
    reference : str or mask or polygon, optional
        Healthy-skin reference region: a name in ``rois``, or a mask/polygon added as
        ``"reference"``. It also sets the hypoperfusion threshold of each map.
    register : bool, optional
        Align ``after`` with ``before`` first. With ``False`` the maps are compared pixel by
        pixel as given.
    registration : {"similarity", "translation"}, optional
        Rotation, scale and translation (default), or translation only.
    before_intensity, after_intensity : (M, N) array_like, optional
        Mean-intensity images of the two recordings, to register on (they show the anatomy
        better than perfusion, which the treatment changes). Default: the maps themselves.
    valid_before, valid_after : (M, N) array_like of bool, optional
        Usable pixels of each map (:func:`lsci.analysis.quality.valid_pixels`); the others are
        set to NaN first.
    area : AreaSettings, optional
        How the hypoperfused area is delineated; default :class:`AreaSettings()`.
    scale : PixelScale, optional
        Pixel size of the before map on the skin, for areas in mm².
    unit : str, optional
        The maps' unit.
    min_correlation, refuse_unreliable
        Similarity registration: the smallest correlation accepted, and whether an unreliable
        registration raises (default) or is kept, marked ``reliable=False`` with its reasons
        (:func:`lsci.analysis.similarity.register_similarity`).
    upsample_factor, min_peak_ratio, max_shift_px
        Translation registration: passed to
        :func:`lsci.analysis.registration.register_translation`.

    Returns
    -------
    Comparison
        Maps, registration, the ROI table and the hypoperfused areas.

    Raises
    ------
    ValueError
        If shapes differ (maps without similarity registration, intensity images, masks), a
        region is invalid or empty, ``reference`` names no region, ``registration`` is unknown,
        or the reference region has no measured pixel.
    lsci.analysis.registration.RegistrationError
        If ``register`` is true and the registration is unreliable (for similarity, unless
        ``refuse_unreliable`` is false): the maps are not compared misaligned.

    Notes
    -----
    The statistics follow the module conventions: only pixels finite in both maps count; the
    ratio is a ratio of means; the relative ratio divides by the reference region's ratio.

    Examples
    --------
    >>> import numpy as np
    >>> before = np.ones((16, 16))
    >>> after = 2.0 * before
    >>> result = compare_before_after(before, after, {"all": np.ones((16, 16), bool)},
    ...                               register=False)
    >>> result.roi("all").ratio
    2.0
    """
    if registration not in REGISTRATION_METHODS:
        raise ValueError(
            f"registration must be one of {REGISTRATION_METHODS}, got {registration!r}"
        )
    b = _masked(_mean_map(before, "before"), valid_before, "valid_before")
    a = _masked(_mean_map(after, "after"), valid_after, "valid_after")
    similarity = register and registration == "similarity"
    if b.shape != a.shape and not similarity:
        raise ValueError(
            f"before and after maps must have the same shape, got {b.shape} and {a.shape}"
        )
    aligned: AnyRegistration | None = None
    if register:
        fixed = b if before_intensity is None else _intensity(before_intensity, b.shape, "before")
        moving = a if after_intensity is None else _intensity(after_intensity, a.shape, "after")
        if similarity:
            aligned = register_similarity(
                fixed, moving, min_correlation=min_correlation, refuse=refuse_unreliable
            )
            a = align_to_reference(a, aligned).astype(a.dtype)
        else:
            aligned = register_translation(
                fixed,
                moving,
                upsample_factor=upsample_factor,
                min_peak_ratio=min_peak_ratio,
                max_shift_px=max_shift_px,
            )
            a = apply_shift(a, aligned.shift_px)
    table = roi_statistics(b, a, rois, reference=reference)
    reference_name = None
    if reference is not None:
        reference_name = reference if isinstance(reference, str) else "reference"
    comparison = Comparison(
        before=b,
        after=a,
        ratio=ratio_map(b, a),
        percent_change=percent_change_map(b, a),
        registration=aligned,
        rois=table,
        reference=reference_name,
        area_settings=AreaSettings() if area is None else area,
        scale=scale,
        unit=unit,
    )
    return with_areas(comparison, rois, reference)


def with_areas(
    comparison: Comparison,
    rois: Mapping[str, RoiSpec] | npt.ArrayLike,
    reference: str | RoiSpec | None,
) -> Comparison:
    """The comparison with its hypoperfused areas (re)computed for these regions.

    The before map and the aligned after map are delineated with
    :func:`lsci.analysis.delineation.compare_areas` and the comparison's
    :attr:`~Comparison.area_settings`, scale and unit; the threshold of each map is the
    fraction of its own reference level (or the absolute threshold).

    Parameters
    ----------
    comparison : Comparison
        A computed comparison.
    rois : mapping or array_like
        The regions whose hypoperfused share is reported (as :func:`roi_statistics`).
    reference : str or mask or polygon or None
        The reference region (a name in ``rois`` or a region); ``None`` leaves the areas out
        unless the settings give an absolute threshold.

    Returns
    -------
    Comparison
        With :attr:`~Comparison.areas` set (``None`` when there is no threshold).
    """
    settings = comparison.area_settings
    shape = (int(comparison.before.shape[0]), int(comparison.before.shape[1]))
    masks = roi_masks(rois, shape)
    region: RoiSpec | None = None
    if settings.absolute is None:
        if reference is None:
            return dataclasses.replace(comparison, areas=None)
        region = masks[reference] if isinstance(reference, str) else reference
    areas = compare_areas(
        comparison.before,
        comparison.after,
        reference=region,
        fraction=settings.fraction,
        statistic=settings.statistic,
        absolute=settings.absolute,
        rois=masks,
        scale=comparison.scale,
        min_size_mm2=settings.min_size_mm2,
        min_size_px=settings.min_size_px,
        unit=comparison.unit,
    )
    return dataclasses.replace(comparison, areas=areas)


def _masked(
    values: npt.NDArray[np.floating[Any]], valid: npt.ArrayLike | None, name: str
) -> npt.NDArray[np.floating[Any]]:
    """``values`` with NaN where ``valid`` is False."""
    if valid is None:
        return values
    usable = np.asarray(valid)
    if usable.shape != values.shape or usable.dtype != np.bool_:
        raise ValueError(
            f"{name} must be a boolean mask of the map's shape {values.shape}, got "
            f"{usable.dtype} {usable.shape}"
        )
    return np.where(usable, values, np.nan).astype(values.dtype)


def _stats(b: npt.NDArray[np.float64], a: npt.NDArray[np.float64], area: int) -> dict[str, float]:
    if b.size == 0:
        nan = math.nan
        return {"roi_pixels": area, "pixel_count": 0, "before_mean": nan, "before_median": nan,
                "before_std": nan, "after_mean": nan, "after_median": nan, "after_std": nan,
                "ratio": nan}  # fmt: skip
    before_mean = float(b.mean())
    after_mean = float(a.mean())
    return {
        "roi_pixels": area,
        "pixel_count": int(b.size),
        "before_mean": before_mean,
        "before_median": float(np.median(b)),
        "before_std": float(b.std()),
        "after_mean": after_mean,
        "after_median": float(np.median(a)),
        "after_std": float(a.std()),
        "ratio": _safe_divide(after_mean, before_mean),
    }


def _safe_divide(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN for a zero, negative or NaN denominator."""
    if not (denominator > 0) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def _add_reference(
    masks: dict[str, npt.NDArray[np.bool_]],
    reference: str | RoiSpec | None,
    shape: tuple[int, int],
) -> str | None:
    if reference is None:
        return None
    if isinstance(reference, str):
        if reference not in masks:
            raise ValueError(f"reference {reference!r} is not one of the ROIs {list(masks)}")
        return reference
    if "reference" in masks:
        raise ValueError(
            "an ROI is already named 'reference': pass reference='reference' to use it, "
            "or rename it"
        )
    masks.update(roi_masks({"reference": reference}, shape))
    return "reference"


def _pair(
    before: npt.ArrayLike, after: npt.ArrayLike
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], np.dtype[Any]]:
    b = np.asarray(before)
    a = np.asarray(after)
    if b.ndim != 2 or a.ndim != 2:
        raise ValueError(f"before and after must be 2-D maps, got shapes {b.shape} and {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"before and after must have the same shape, got {b.shape} and {a.shape}")
    dtype = np.result_type(b.dtype, a.dtype, np.float32)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"maps must hold real numbers, got dtypes {b.dtype} and {a.dtype}")
    return b, a, dtype


def _mean_map(maps: npt.ArrayLike, name: str) -> npt.NDArray[np.floating[Any]]:
    arr = np.asarray(maps)
    dtype = np.result_type(arr.dtype, np.float32)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 2:
        return arr.astype(dtype, copy=False)
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be an (M, N) map or a (T, M, N) stack, got {arr.shape}")
    values = arr.astype(np.float64)
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    total = np.where(finite, values, 0.0).sum(axis=0)
    mean = np.full(arr.shape[1:], np.nan)
    np.divide(total, count, out=mean, where=count > 0)
    return mean.astype(dtype)


def _intensity(image: npt.ArrayLike, shape: tuple[int, ...], name: str) -> npt.NDArray[Any]:
    arr = np.asarray(image)
    if arr.shape != shape:
        raise ValueError(f"{name}_intensity must have the maps' shape {shape}, got {arr.shape}")
    return arr


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_tree(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth, replaced by ``None``."""
    if isinstance(value, dict):
        return {k: _json_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_tree(v) for v in value]
    return _json_value(value)
