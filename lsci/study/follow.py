"""ROIs that follow the subject: ROIs drawn once, mapped onto every other visit by registration.

ROIs are drawn on one recording of a subject's body site (normally the first visit's). Another
visit sees the same skin in another pose: the camera a little closer, turned, moved. Its mean
intensity is registered onto the mean intensity of the recording the ROIs were drawn on
(:func:`lsci.analysis.similarity.register_similarity`: rotation, scale and translation with a
confidence), and the ROI corners are moved by the similarity transform found
(:func:`map_roi`). A registration that cannot be trusted is refused with its reasons, never used;
the user then gives control points: the same landmarks (a mole, a pore, a mark on the skin) in
both recordings, at least two pairs, from which the similarity transform is fitted by least
squares (:func:`control_point_transform`, ``skimage.transform.SimilarityTransform``; Umeyama
1991).

A transform is a 3 × 3 matrix on homogeneous ``(row, col, 1)`` pixel coordinates of the
recording the ROIs were drawn on, giving the ``(row, col)`` of the same skin in the other
recording (the convention of :attr:`lsci.analysis.similarity.SimilarityRegistration.matrix`).

Control points are given as text, ``"r,c r,c r,c r,c"``: pairs of points, each the landmark in
the recording the ROIs were drawn on followed by the same landmark in the visit's recording; or
as a CSV file with the header ``drawn_row,drawn_col,row,col`` and one landmark per line.

References
----------
.. [1] S. Umeyama, "Least-squares estimation of transformation parameters between two point
   patterns", IEEE Trans. Pattern Anal. Mach. Intell. 13, 376-380 (1991).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from skimage.transform import SimilarityTransform

from lsci.analysis.similarity import SimilarityRegistrationError, register_similarity
from lsci.study.errors import StudyError
from lsci.study.rois import Roi

__all__ = [
    "RoiTransform",
    "control_point_transform",
    "map_roi",
    "parse_points",
    "read_control_points",
    "register_visit",
]

#: Control point file columns: the landmark where the ROIs were drawn, then in the visit.
POINT_COLUMNS = ("drawn_row", "drawn_col", "row", "col")

Points = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RoiTransform:
    """How ROIs move from the recording they were drawn on to another recording.

    Attributes
    ----------
    method : {'registration', 'control_points'}
    accepted : bool
        False when the registration was refused; such a transform is never applied.
    matrix : tuple of tuple of float
        3 × 3 on ``(row, col, 1)`` (module docstring); the attempt's when refused.
    confidence : dict
        Registration: its correlation, residual, overlap, rotation, scale and shift
        (:meth:`lsci.analysis.similarity.SimilarityRegistration.to_dict`). Control points:
        their number and the RMS distance in pixels between the visit's points and the drawn
        points moved by the fitted transform.
    reason : str
        Why it was refused (empty when accepted).
    """

    method: Literal["registration", "control_points"]
    accepted: bool
    matrix: tuple[tuple[float, ...], ...] = field(repr=False)
    confidence: dict[str, Any]
    reason: str = ""

    @property
    def rotation_deg(self) -> float:
        """Rotation of the transform, counter-clockwise as displayed."""
        return math.degrees(math.atan2(self.matrix[1][0], self.matrix[0][0]))

    @property
    def scale(self) -> float:
        """Scale of the transform (> 1: the skin looks larger in the visit)."""
        return math.hypot(self.matrix[0][0], self.matrix[1][0])

    def summary(self) -> str:
        """One line: method, pose and confidence."""
        pose = (
            f"rotation {self.rotation_deg:.2f}°, scale {self.scale:.4f}, "
            f"shift ({self.matrix[0][2]:.1f}, {self.matrix[1][2]:.1f}) px"
        )
        if self.method == "registration":
            return f"registration ({pose}; correlation {self.confidence['correlation']:.2f})"
        return (
            f"{self.confidence['points']} control points ({pose}; RMS residual "
            f"{self.confidence['rms_residual_px']:.2f} px)"
        )


def register_visit(
    drawn_intensity: npt.ArrayLike, intensity: npt.ArrayLike, **options: Any
) -> RoiTransform:
    """Register a visit's mean intensity onto the recording the ROIs were drawn on.

    Parameters
    ----------
    drawn_intensity : (M, N) array_like
        Mean intensity of the recording the ROIs were drawn on (the reference).
    intensity : (M', N') array_like
        Mean intensity of the other visit's recording.
    **options
        Passed to :func:`lsci.analysis.similarity.register_similarity` (``min_correlation``...).

    Returns
    -------
    RoiTransform
        Method ``registration``; ``accepted`` False with the reasons when the registration is
        not reliable.
    """
    try:
        found = register_similarity(drawn_intensity, intensity, refuse=False, **options)
    except (ValueError, SimilarityRegistrationError) as exc:
        # Too small, nothing finite, or no texture at all: nothing to register on.
        return RoiTransform("registration", False, _as_tuple(np.eye(3)), {}, str(exc))
    return RoiTransform(
        "registration",
        found.reliable,
        _as_tuple(found.matrix),
        found.to_dict(),
        "; ".join(found.reasons),
    )


def control_point_transform(drawn_points: npt.ArrayLike, points: npt.ArrayLike) -> RoiTransform:
    """The similarity transform that best maps landmarks where the ROIs were drawn onto a visit.

    Parameters
    ----------
    drawn_points, points : (K, 2) array_like
        ``(row, col)`` of K >= 2 landmarks in the recording the ROIs were drawn on and in the
        visit's recording, in the same order.

    Returns
    -------
    RoiTransform
        Method ``control_points``, accepted, fitted by least squares (Umeyama 1991); with two
        pairs the fit is exact.

    Raises
    ------
    StudyError
        Fewer than two pairs, not finite, unequal numbers, or landmarks that coincide.

    Examples
    --------
    >>> found = control_point_transform([[10, 10], [10, 50]], [[12, 13], [12, 53]])
    >>> found.scale, found.matrix[0][2], found.matrix[1][2]
    (1.0, 2.0, 3.0)
    """
    drawn, visit = _points("drawn_points", drawn_points), _points("points", points)
    if drawn.shape != visit.shape:
        raise StudyError(
            f"control points: {len(drawn)} drawn points but {len(visit)} visit points; give "
            "them in pairs"
        )
    for name, values in (("drawn", drawn), ("visit", visit)):
        if np.ptp(values, axis=0).max() < 1.0:
            raise StudyError(f"control points: the {name} landmarks coincide; use distinct ones")
    # A similarity in (row, col) is one in (x, y) too (swapping the axes is a reflection that
    # only reverses the rotation's sense), so the points are fitted as they are.
    fitted = SimilarityTransform.from_estimate(drawn, visit)
    if not fitted:
        raise StudyError(f"control points: no similarity transform fits them ({fitted})")
    matrix = np.asarray(fitted.params, dtype=np.float64)
    moved = drawn @ matrix[:2, :2].T + matrix[:2, 2]
    rms = float(np.sqrt(np.mean(np.sum((moved - visit) ** 2, axis=1))))
    confidence = {"points": len(drawn), "rms_residual_px": rms}
    return RoiTransform("control_points", True, _as_tuple(matrix), confidence)


def map_roi(roi: Roi, matrix: npt.ArrayLike) -> Roi:
    """The ROI with its corners moved by a 3 × 3 transform on ``(row, col, 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> shift = np.array([[1.0, 0, 2], [0, 1, -1], [0, 0, 1]])
    >>> map_roi(Roi("a", "other", ((0, 0), (0, 4), (4, 4))), shift).vertices
    ((2.0, -1.0), (2.0, 3.0), (6.0, 3.0))
    """
    transform = np.asarray(matrix, dtype=np.float64)
    corners = np.asarray(roi.vertices, dtype=np.float64)
    moved = corners @ transform[:2, :2].T + transform[:2, 2]
    return Roi(roi.name, roi.role, tuple((float(r), float(c)) for r, c in moved))


def parse_points(text: str) -> tuple[Points, Points]:
    """Control points from ``"r,c r,c ..."``: drawn landmark, then visit landmark, per pair.

    Raises
    ------
    StudyError
        When the text is not an even number (at least 4) of ``row,col`` points.

    Examples
    --------
    >>> drawn, visit = parse_points("10,10 12,13  10,50 12,53")
    >>> drawn.tolist(), visit.tolist()
    ([[10.0, 10.0], [10.0, 50.0]], [[12.0, 13.0], [12.0, 53.0]])
    """
    points = []
    for item in text.split():
        try:
            row, col = (float(value) for value in item.split(","))
        except ValueError:
            raise StudyError(f"control point {item!r} is not 'row,col'") from None
        points.append((row, col))
    if len(points) < 4 or len(points) % 2:
        raise StudyError(
            f"control points: {len(points)} points given; give at least 2 pairs, each the "
            "landmark where the ROIs were drawn followed by the same landmark in this visit "
            "('r,c r,c r,c r,c')"
        )
    values = np.asarray(points, dtype=np.float64)
    return values[0::2], values[1::2]


def read_control_points(path: str | os.PathLike[str]) -> tuple[Points, Points]:
    """Control points from a CSV file with the header ``drawn_row,drawn_col,row,col``.

    Raises
    ------
    StudyError
        When the file cannot be read, lacks the columns, or holds a value that is no number.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StudyError(f"{path}: cannot read the control points: {exc}") from None
    if not rows or not set(POINT_COLUMNS) <= set(rows[0]):
        raise StudyError(f"{path}: expected the columns {','.join(POINT_COLUMNS)} and a row each")
    try:
        values = np.array([[float(row[c]) for c in POINT_COLUMNS] for row in rows])
    except (TypeError, ValueError):
        raise StudyError(f"{path}: every control point value must be a number") from None
    return values[:, :2], values[:, 2:]


def _points(name: str, points: npt.ArrayLike) -> Points:
    values = np.asarray(points, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != 2 or len(values) < 2:
        raise StudyError(f"control points: {name} must be at least 2 (row, col) points")
    if not np.all(np.isfinite(values)):
        raise StudyError(f"control points: {name} must be finite numbers")
    return values


def _as_tuple(matrix: npt.ArrayLike) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(matrix, dtype=np.float64))
