"""Regions of interest of a subject's body site, stored as GeoJSON-like polygons.

A ROI file is a GeoJSON ``FeatureCollection`` whose features are ``Polygon`` geometries with
the properties ``name`` and ``role``::

    {"type": "FeatureCollection", "features": [
      {"type": "Feature", "properties": {"name": "healthy", "role": "reference"},
       "geometry": {"type": "Polygon", "coordinates": [[[2, 1], [62, 1], [62, 7], [2, 7]]]}}]}

Coordinates are pixels of the recording's frames, GeoJSON order ``[x, y]`` = ``[column, row]``
with pixel centres at integers (the inside rule is :func:`lsci.analysis.roi.polygon_mask`'s).
Only the outer ring of a polygon is used; holes are refused rather than ignored.

Roles: ``reference`` (healthy or contralateral skin; perfusion is expressed as % of it; one per
site), ``lesion`` (the hypoperfused area is measured inside it) and ``other``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.analysis.roi import polygon_mask
from lsci.study.errors import StudyError

__all__ = ["ROLES", "Roi", "read_roi_file", "roi_masks_of"]

#: The roles a ROI can have.
ROLES: tuple[str, ...] = ("reference", "lesion", "other")


@dataclass(frozen=True)
class Roi:
    """A named polygon with a role.

    Attributes
    ----------
    name : str
        Unique per subject and site.
    role : {'reference', 'lesion', 'other'}
    vertices : tuple of (row, col)
        Polygon corners in pixel coordinates (napari's ``(row, col)`` order).
    """

    name: str
    role: str
    vertices: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name.strip()) <= 64:
            raise StudyError(f"ROI name {self.name!r} must be 1 to 64 characters")
        if self.role not in ROLES:
            raise StudyError(f"ROI {self.name!r}: role {self.role!r} is not one of {ROLES}")
        if len(self.vertices) < 3 or not all(
            len(v) == 2 and all(math.isfinite(c) for c in v) for v in self.vertices
        ):
            raise StudyError(f"ROI {self.name!r} needs at least 3 finite (x, y) corners")

    def geometry(self) -> dict[str, Any]:
        """The GeoJSON Polygon geometry (``[x, y]`` = ``[col, row]``, ring closed)."""
        ring = [[col, row] for row, col in self.vertices]
        return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}

    @classmethod
    def from_geometry(cls, name: str, role: str, geometry: Any) -> Roi:
        """Rebuild a ROI from its stored GeoJSON Polygon geometry."""
        if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
            raise StudyError(f"ROI {name!r}: the geometry must be a GeoJSON Polygon")
        rings = geometry.get("coordinates")
        if not isinstance(rings, list) or len(rings) != 1:
            raise StudyError(
                f"ROI {name!r}: a polygon must have exactly one ring (holes are not supported)"
            )
        try:
            ring = [(float(point[1]), float(point[0])) for point in rings[0]]
        except (TypeError, ValueError, IndexError):
            raise StudyError(f"ROI {name!r}: corners must be [x, y] number pairs") from None
        if len(ring) > 1 and ring[0] == ring[-1]:
            ring = ring[:-1]
        return cls(name, role, tuple(ring))

    def to_feature(self) -> dict[str, Any]:
        """The GeoJSON Feature of this ROI."""
        properties = {"name": self.name, "role": self.role}
        return {"type": "Feature", "properties": properties, "geometry": self.geometry()}

    def mask(self, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
        """The pixels of an image of ``shape`` inside this ROI."""
        return polygon_mask(np.asarray(self.vertices), shape)


def read_roi_file(path: str | os.PathLike[str]) -> list[Roi]:
    """Read the ROIs of a GeoJSON ``FeatureCollection`` file (see the module docstring).

    Raises
    ------
    StudyError
        When the file cannot be read, is not such a collection, or a ROI is invalid, repeated
        or there is more than one reference ROI.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError(f"{path}: cannot read the ROI file: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudyError(f"{path}: not a GeoJSON file: {exc}") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise StudyError(f"{path}: expected a GeoJSON FeatureCollection of polygons")
    rois = []
    for number, feature in enumerate(data.get("features") or [], start=1):
        properties = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(properties, dict) or not isinstance(properties.get("name"), str):
            raise StudyError(f"{path}: feature {number} has no 'name' property")
        role = properties.get("role", "other")
        try:
            rois.append(Roi.from_geometry(properties["name"], role, feature.get("geometry")))
        except StudyError as exc:
            raise StudyError(f"{path}: {exc}") from None
    check_rois(rois, str(path))
    return rois


def check_rois(rois: Sequence[Roi], where: str) -> None:
    """Refuse an empty set, repeated names and more than one reference ROI."""
    if not rois:
        raise StudyError(f"{where}: no ROI")
    names = [roi.name for roi in rois]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise StudyError(f"{where}: ROI names repeated: {', '.join(repeated)}")
    if sum(roi.role == "reference" for roi in rois) > 1:
        raise StudyError(f"{where}: more than one ROI has the role 'reference'")


def roi_masks_of(rois: Sequence[Roi], shape: tuple[int, int]) -> dict[str, npt.NDArray[np.bool_]]:
    """The mask of every ROI on an image of ``shape``; a ROI outside the image is refused."""
    masks = {roi.name: roi.mask(shape) for roi in rois}
    empty = [name for name, mask in masks.items() if not mask.any()]
    if empty:
        raise StudyError(
            f"ROI(s) {', '.join(empty)} contain no pixel of the {shape[0]}×{shape[1]} frames"
        )
    return masks
