"""Spatial scale: how many millimetres on the skin one pixel of a recording spans.

A scale comes from one of two places, and every result that uses it states which:

``"metadata"``
    The optics written with the recording: the sensor pixel pitch ``pixel_size_um`` divided by
    the optical magnification ``magnification`` (:class:`lsci.recording.AcquisitionMetadata`;
    ``docs/format.md``) is the size of one pixel on the object. Both are needed: the sensor
    pitch alone says nothing about the skin.
``"ruler"``
    Measured afterwards in the image: two points of known distance (the marks of a ruler or of
    a sticker held against the skin), :func:`scale_from_points`. It is stored with the
    recording's analysis, beside the sealed recording, as the calibration
    ``"spatial_scale"`` (:func:`save_scale`), and it takes precedence over the metadata
    (:func:`recording_scale`): it measures the skin's actual distance from the camera.

Pixels are assumed square. Point coordinates follow napari's Shapes layer: ``(row, col)`` in
pixels, pixel ``(r, c)`` centred at ``(r, c)`` (as :mod:`lsci.analysis.roi`).

The ``spatial_scale`` calibration holds one dataset, ``pixel_size_mm`` (a float64 scalar), and
the attributes ``method`` (``"ruler"``), ``points_px`` (``[r0, c0, r1, c1]``) and
``distance_mm``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lsci.recording import (
    AcquisitionMetadata,
    Calibration,
    Recording,
    RecordingFormatError,
    save_calibration,
)

__all__ = [
    "SPATIAL_SCALE",
    "PixelScale",
    "recording_scale",
    "ruler_scale",
    "save_scale",
    "scale_from_metadata",
    "scale_from_points",
]

#: Name of the calibration that stores a measured scale.
SPATIAL_SCALE = "spatial_scale"

# Two points closer than this cannot give a useful scale: a click is uncertain by about half a
# pixel at each end, so the scale would be uncertain by more than 10 %.
_MIN_SEPARATION_PX = 10.0

Point = Sequence[float]


@dataclass(frozen=True)
class PixelScale:
    """The size of one (square) pixel on the skin, and where it comes from.

    Attributes
    ----------
    pixel_size_mm : float
        Millimetres on the skin per pixel, > 0.
    method : {"ruler", "metadata", "given"}
        Measured in the image between two points, computed from the optics metadata, or
        given as a number by the caller.
    source : str
        A sentence saying how it was obtained, for reports.
    points_px : tuple of tuple of float, optional
        The two ``(row, col)`` points of a ruler measurement.
    distance_mm : float, optional
        Their distance on the skin.
    """

    pixel_size_mm: float
    method: Literal["ruler", "metadata", "given"]
    source: str
    points_px: tuple[tuple[float, float], tuple[float, float]] | None = None
    distance_mm: float | None = None

    def __post_init__(self) -> None:
        _positive("pixel_size_mm", self.pixel_size_mm)
        if self.method not in ("ruler", "metadata", "given"):
            raise ValueError(f"method must be 'ruler', 'metadata' or 'given', got {self.method!r}")

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one pixel on the skin, mm²."""
        return self.pixel_size_mm**2

    def to_dict(self) -> dict[str, Any]:
        """The scale as plain Python values (for JSON)."""
        return {
            "pixel_size_mm": self.pixel_size_mm,
            "method": self.method,
            "source": self.source,
            "points_px": None if self.points_px is None else [list(p) for p in self.points_px],
            "distance_mm": self.distance_mm,
        }


def scale_from_points(p0: Point, p1: Point, distance_mm: float) -> float:
    """Millimetres per pixel from two points a known distance apart on the skin.

    Parameters
    ----------
    p0, p1 : sequence of 2 float
        ``(row, col)`` of the two points in pixels (e.g. two marks of a ruler).
    distance_mm : float
        Their true distance in millimetres, > 0.

    Returns
    -------
    float
        ``distance_mm`` divided by the distance between the points in pixels.

    Raises
    ------
    ValueError
        If a point is not two finite numbers, the points are less than 10 pixels apart (half a
        pixel of uncertainty at each end would then change the scale by more than 10 %), or
        ``distance_mm`` is not a finite number > 0.

    Examples
    --------
    >>> scale_from_points((10, 10), (10, 210), 20.0)
    0.1
    """
    a, b = _point("p0", p0), _point("p1", p1)
    _positive("distance_mm", distance_mm)
    separation = math.hypot(b[0] - a[0], b[1] - a[1])
    if separation < _MIN_SEPARATION_PX:
        raise ValueError(
            f"the points {a} and {b} are {separation:.2f} px apart: at least "
            f"{_MIN_SEPARATION_PX:g} px are needed for a scale good to 10 %; mark points farther "
            "apart (e.g. the ends of a longer stretch of the ruler)"
        )
    return float(distance_mm) / separation


def scale_from_metadata(metadata: AcquisitionMetadata) -> PixelScale | None:
    """The pixel size on the skin from the optics written with a recording.

    Parameters
    ----------
    metadata : AcquisitionMetadata
        The recording's acquisition metadata.

    Returns
    -------
    PixelScale or None
        ``pixel_size_um / magnification / 1000`` mm per pixel (method ``"metadata"``), or
        ``None`` when either is unknown.

    Examples
    --------
    >>> from lsci.recording import AcquisitionMetadata
    >>> scale_from_metadata(AcquisitionMetadata(pixel_size_um=5.5, magnification=0.11))
    ... # doctest: +ELLIPSIS
    PixelScale(pixel_size_mm=0.05, method='metadata', ...)
    """
    pitch_um, magnification = metadata.pixel_size_um, metadata.magnification
    if pitch_um is None or magnification is None:
        return None
    return PixelScale(
        pixel_size_mm=pitch_um / magnification / 1000.0,
        method="metadata",
        source=(f"optics metadata: sensor pixel {pitch_um:g} µm / magnification {magnification:g}"),
    )


def ruler_scale(p0: Point, p1: Point, distance_mm: float) -> PixelScale:
    """A :class:`PixelScale` measured between two points of known distance.

    Parameters
    ----------
    p0, p1, distance_mm
        As in :func:`scale_from_points`.

    Returns
    -------
    PixelScale
        Method ``"ruler"``, with the points and the distance.
    """
    size = scale_from_points(p0, p1, distance_mm)
    a, b = _point("p0", p0), _point("p1", p1)
    return PixelScale(
        pixel_size_mm=size,
        method="ruler",
        source=(
            f"measured: {float(distance_mm):g} mm between ({a[0]:g}, {a[1]:g}) and "
            f"({b[0]:g}, {b[1]:g}) px"
        ),
        points_px=(a, b),
        distance_mm=float(distance_mm),
    )


def save_scale(
    path: str | os.PathLike[str], p0: Point, p1: Point, distance_mm: float
) -> PixelScale:
    """Measure a recording's scale between two points and store it with its analysis.

    The recording itself is not modified: the scale goes into the calibrations kept beside it
    (:func:`lsci.recording.save_calibration`), replacing an earlier measurement.

    Parameters
    ----------
    path : str or pathlib.Path
        The recording.
    p0, p1 : sequence of 2 float
        ``(row, col)`` of two points in the recording's frames.
    distance_mm : float
        Their distance on the skin in millimetres.

    Returns
    -------
    PixelScale
        The stored scale (method ``"ruler"``).

    Raises
    ------
    ValueError
        As :func:`scale_from_points`.
    RecordingError
        If the recording cannot be read or the calibration cannot be written.
    """
    scale = ruler_scale(p0, p1, distance_mm)
    assert scale.points_px is not None  # ruler_scale always records them
    (r0, c0), (r1, c1) = scale.points_px
    save_calibration(
        path,
        SPATIAL_SCALE,
        {"pixel_size_mm": np.asarray(scale.pixel_size_mm, dtype=np.float64)},
        {"method": "ruler", "points_px": [r0, c0, r1, c1], "distance_mm": scale.distance_mm},
        overwrite=True,
    )
    return scale


def recording_scale(recording: Recording) -> PixelScale | None:
    """The scale of a recording: a measured one if stored, else the optics metadata's.

    Parameters
    ----------
    recording : Recording
        An open recording.

    Returns
    -------
    PixelScale or None
        The ``spatial_scale`` calibration (:func:`save_scale`) when there is one, else
        :func:`scale_from_metadata`; ``None`` when neither is known.

    Raises
    ------
    RecordingFormatError
        If a stored ``spatial_scale`` calibration is malformed.
    """
    calibration = recording.calibrations.get(SPATIAL_SCALE)
    if calibration is not None:
        return _from_calibration(recording, calibration)
    return scale_from_metadata(recording.metadata)


def _from_calibration(recording: Recording, calibration: Calibration) -> PixelScale:
    try:
        size = float(np.asarray(calibration.arrays["pixel_size_mm"]).item())
        points = np.asarray(calibration.attrs["points_px"], dtype=np.float64).reshape(2, 2)
        distance = float(calibration.attrs["distance_mm"])
        method = str(calibration.attrs["method"])
        if method != "ruler":
            raise ValueError(f"unknown method {method!r}")
        stored = PixelScale(
            pixel_size_mm=size,
            method="ruler",
            source=(
                f"measured: {distance:g} mm between ({points[0, 0]:g}, {points[0, 1]:g}) and "
                f"({points[1, 0]:g}, {points[1, 1]:g}) px, saved {calibration.created_utc}"
            ),
            points_px=((points[0, 0], points[0, 1]), (points[1, 0], points[1, 1])),
            distance_mm=distance,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordingFormatError(
            recording.path, f"malformed {SPATIAL_SCALE!r} calibration: {exc}"
        ) from None
    return stored


def _point(name: str, point: Point) -> tuple[float, float]:
    values = np.asarray(point, dtype=np.float64)
    if values.shape != (2,) or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be two finite numbers (row, col), got {point!r}")
    return float(values[0]), float(values[1])


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
