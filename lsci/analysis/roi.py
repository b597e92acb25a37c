"""Regions of interest: polygons rasterised to masks, label images split into masks.

Coordinates follow napari's Shapes layer: a vertex is ``(row, col)`` in pixel units, and pixel
``(r, c)`` has its centre at ``(r, c)``.

Inside rule (:func:`polygon_mask`): a pixel belongs to a polygon when its centre lies inside it
under the even–odd rule. A centre exactly on an edge belongs to the polygon on the edge's top or
left side and not on its bottom or right side (half-open, as in [r0, r1) × [c0, c1)). So two
polygons that share an edge never share a pixel, and an axis-aligned rectangle with integer
corners ``(r0, c0)``, ``(r1, c1)`` covers exactly ``(r1 - r0) × (c1 - c0)`` pixels: the pixel
count equals the polygon's area.

ROI files
---------
:func:`rois_geojson` (written with :func:`lsci.recording.atomic_write`) and :func:`read_rois`
keep regions in a GeoJSON file (RFC 7946 structure),
so the regions drawn for one session apply to the next:

.. code-block:: json

    {"type": "FeatureCollection",
     "lsci_rois": 1,
     "coordinates": "pixel [col, row] of the before map, pixel centres at integers",
     "features": [
       {"type": "Feature",
        "properties": {"name": "ischemic patch", "role": "roi"},
        "geometry": {"type": "Polygon",
                     "coordinates": [[[38, 38], [58, 38], [58, 58], [38, 58], [38, 38]]]}}]}

- One ``Feature`` per region, a ``Polygon`` with one ring (no holes), in *pixel* coordinates
  of the before map, not longitude and latitude: GeoJSON's ``[x, y]`` order is
  ``[col, row]`` (x to the right, y down, as in an image), so the file opens in GIS tools
  and image viewers with the regions where they were drawn. The ring is closed (its first
  position repeated last), as GeoJSON requires.
- ``properties.name`` (unique, required) names the region; ``properties.role`` is ``"roi"``
  or ``"reference"`` (the healthy-skin reference; at most one).
- ``lsci_rois`` is the version of this layout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci._arrays import as_real, frame_shape

__all__ = [
    "ROI_FILE_VERSION",
    "RoiFile",
    "label_masks",
    "polygon_mask",
    "read_rois",
    "read_rois_text",
    "roi_masks",
    "rois_geojson",
]

#: Version of the ROI file layout (module docstring).
ROI_FILE_VERSION = 1
_ROLES = ("roi", "reference")

RoiSpec = npt.ArrayLike
"""A region: a boolean mask of the image's shape, or polygon vertices as an (N, 2) array."""


def polygon_mask(vertices: npt.ArrayLike, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Rasterise a polygon to a boolean mask.

    Parameters
    ----------
    vertices : (N, 2) array_like of float
        Polygon corners as ``(row, col)`` in pixel coordinates (napari Shapes convention), in
        order, N ≥ 3; the last vertex connects back to the first. Self-intersecting polygons are
        filled by the even–odd rule. Vertices may lie outside the image: the polygon is clipped.
    shape : tuple of int
        ``(rows, cols)`` of the mask.

    Returns
    -------
    mask : (rows, cols) ndarray of bool
        True at the pixels whose centre is inside the polygon (module docstring: inside rule).

    Raises
    ------
    ValueError
        If ``vertices`` is not an (N, 2) array of finite numbers with N ≥ 3, or ``shape`` does
        not hold two positive integers.
    TypeError
        If ``vertices`` are not numbers or ``shape`` is not a sequence of integers.

    Notes
    -----
    Scan-line fill: for each pixel row ``r`` the crossings of the line ``row = r`` with every
    edge that spans it half-open (``min(r0, r1) <= r < max(r0, r1)``, so horizontal edges never
    count and a vertex is counted once) are sorted; columns ``c`` with
    ``x[2k] <= c < x[2k + 1]`` are inside. Cost ``O(rows × edges)``.

    Examples
    --------
    >>> polygon_mask([(1, 1), (1, 3), (3, 3), (3, 1)], (4, 4)).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    rows, cols = frame_shape(shape)
    verts = as_real("vertices", vertices)
    if verts.ndim != 2 or verts.shape[1] != 2 or verts.shape[0] < 3:
        raise ValueError(
            f"vertices must be an (N, 2) array of (row, col) with N >= 3, got shape {verts.shape}"
        )
    if not np.all(np.isfinite(verts)):
        raise ValueError("vertices must be finite numbers")
    mask = np.zeros((rows, cols), dtype=bool)
    r0, c0 = verts[:, 0], verts[:, 1]
    r1, c1 = np.roll(r0, -1), np.roll(c0, -1)
    first = max(int(np.ceil(verts[:, 0].min())), 0)
    last = min(int(np.ceil(verts[:, 0].max())), rows)
    for r in range(first, last):
        # A closed polygon crosses every row between its top and bottom an even number of times.
        spans = (np.minimum(r0, r1) <= r) & (r < np.maximum(r0, r1))
        t = (r - r0[spans]) / (r1[spans] - r0[spans])
        xs = np.sort(c0[spans] + t * (c1[spans] - c0[spans]))
        starts = np.clip(np.ceil(xs[0::2]), 0, cols).astype(np.intp)
        stops = np.clip(np.ceil(xs[1::2]), 0, cols).astype(np.intp)
        for start, stop in zip(starts, stops, strict=True):
            mask[r, start:stop] = True
    return mask


def label_masks(labels: npt.ArrayLike) -> dict[str, npt.NDArray[np.bool_]]:
    """Split a label image into one boolean mask per positive label.

    Parameters
    ----------
    labels : (M, N) array_like of int
        0 (and negative values) is background; each positive value is one region.

    Returns
    -------
    masks : dict of str to ndarray of bool
        ``{str(label): labels == label}`` in increasing label order.

    Raises
    ------
    ValueError
        If ``labels`` is not 2-D.
    TypeError
        If ``labels`` is not an integer (or boolean) array.

    Examples
    --------
    >>> sorted(label_masks([[0, 1], [2, 2]]))
    ['1', '2']
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be a 2-D label image, got shape {lab.shape}")
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == np.bool_):
        raise TypeError(f"labels must hold integers, got dtype {lab.dtype}")
    lab = lab.astype(np.int64)
    return {str(int(value)): lab == value for value in np.unique(lab[lab > 0])}


def roi_masks(
    rois: Mapping[str, RoiSpec] | npt.ArrayLike, shape: tuple[int, int]
) -> dict[str, npt.NDArray[np.bool_]]:
    """Turn any accepted ROI description into named boolean masks of ``shape``.

    Parameters
    ----------
    rois : mapping or array_like
        Either a label image of ``shape`` (see :func:`label_masks`; the names are the labels as
        strings), or a mapping from name to a boolean mask of ``shape`` or to polygon vertices
        ``(N, 2)`` in ``(row, col)`` (see :func:`polygon_mask`).
    shape : tuple of int
        ``(rows, cols)`` of the image the regions belong to.

    Returns
    -------
    masks : dict of str to ndarray of bool
        One mask per region, in the given order.

    Raises
    ------
    ValueError
        If there is no region, a mask or label image has the wrong shape, a polygon is malformed,
        or a region contains no pixel of the image (empty, or entirely outside it).
    """
    shape = frame_shape(shape)
    masks: dict[str, npt.NDArray[np.bool_]]
    if isinstance(rois, Mapping):
        masks = {}
        for name, spec in rois.items():
            masks[str(name)] = _one_mask(str(name), spec, shape)
    else:
        labels = np.asarray(rois)
        if labels.shape != shape:
            raise ValueError(f"label image must have shape {shape}, got {labels.shape}")
        masks = label_masks(labels)
    if not masks:
        raise ValueError("rois must contain at least one region")
    for name, mask in masks.items():
        if not mask.any():
            raise ValueError(f"ROI {name!r} contains no pixel of the {shape} image")
    return masks


def _one_mask(name: str, spec: Any, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    arr = np.asarray(spec)
    if arr.dtype == np.bool_:
        if arr.shape != shape:
            raise ValueError(f"mask of ROI {name!r} must have shape {shape}, got {arr.shape}")
        return arr.copy()
    try:
        return polygon_mask(arr, shape)
    except ValueError as exc:
        raise ValueError(
            f"ROI {name!r} is neither a boolean mask of shape {shape} nor valid polygon vertices: "
            f"{exc}"
        ) from exc


@dataclass(frozen=True)
class RoiFile:
    """Regions read from an ROI file (:func:`read_rois`).

    Attributes
    ----------
    rois : dict of str to (K, 2) ndarray of float
        Each region's polygon as ``(row, col)`` vertices (the napari Shapes convention of
        :func:`polygon_mask`), the closing vertex dropped; the reference included.
    reference : str or None
        The name of the region whose role is ``"reference"``.
    """

    rois: dict[str, npt.NDArray[np.float64]]
    reference: str | None


def rois_geojson(rois: Mapping[str, npt.ArrayLike], reference: str | None = None) -> str:
    """The regions as the text of an ROI file (module docstring: ROI files).

    Parameters
    ----------
    rois : mapping of str to (K, 2) array_like
        Polygons as ``(row, col)`` vertices, K >= 3.
    reference : str, optional
        The name of the reference region among ``rois``.

    Returns
    -------
    str
        GeoJSON text ending with a newline; write it with :func:`lsci.recording.atomic_write`.

    Raises
    ------
    ValueError
        If a polygon is malformed, there is no region, or ``reference`` names none of them.

    Examples
    --------
    >>> text = rois_geojson({"patch": [(1, 1), (1, 3), (3, 3), (3, 1)]})
    >>> read = read_rois_text(text)
    >>> read.rois["patch"].tolist(), read.reference
    ([[1.0, 1.0], [1.0, 3.0], [3.0, 3.0], [3.0, 1.0]], None)
    """
    if not rois:
        raise ValueError("there are no regions to save")
    if reference is not None and reference not in rois:
        raise ValueError(f"reference {reference!r} is not one of the ROIs {list(rois)}")
    features = []
    for name, vertices in rois.items():
        verts = _polygon(str(name), vertices)
        ring = [[float(c), float(r)] for r, c in verts]
        ring.append(ring[0])
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "name": str(name),
                    "role": "reference" if name == reference else "roi",
                },
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    document = {
        "type": "FeatureCollection",
        "lsci_rois": ROI_FILE_VERSION,
        "coordinates": "pixel [col, row] of the before map, pixel centres at integers",
        "features": features,
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def read_rois(path: str | Path) -> RoiFile:
    """Read the regions of an ROI file (module docstring: ROI files).

    Parameters
    ----------
    path : str or Path
        The GeoJSON file.

    Returns
    -------
    RoiFile

    Raises
    ------
    ValueError
        If the file cannot be read or is not an ROI file; the message says what is wrong.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the ROI file {path}: {exc}") from None
    try:
        return read_rois_text(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid ROI file: {exc}") from None


def read_rois_text(text: str) -> RoiFile:
    """Parse the text of an ROI file (as :func:`read_rois`)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise ValueError("expected a GeoJSON FeatureCollection")
    version = document.get("lsci_rois", ROI_FILE_VERSION)
    if version != ROI_FILE_VERSION:
        raise ValueError(f"ROI file layout {version!r}; this lsci reads {ROI_FILE_VERSION}")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise ValueError("it holds no features")
    rois: dict[str, npt.NDArray[np.float64]] = {}
    reference = None
    for index, feature in enumerate(features):
        name, role, ring = _feature(index, feature)
        if name in rois:
            raise ValueError(f"two regions are named {name!r}")
        if role == "reference":
            if reference is not None:
                raise ValueError(f"two reference regions: {reference!r} and {name!r}")
            reference = name
        rois[name] = ring
    return RoiFile(rois, reference)


def _feature(index: int, feature: Any) -> tuple[str, str, npt.NDArray[np.float64]]:
    where = f"feature {index}"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ValueError(f"{where} is not a GeoJSON Feature")
    properties = feature.get("properties") or {}
    name = properties.get("name") if isinstance(properties, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where} has no properties.name")
    role = properties.get("role", "roi")
    if role not in _ROLES:
        raise ValueError(f"{where} ({name!r}) has role {role!r}; expected one of {_ROLES}")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        raise ValueError(f"{where} ({name!r}) is not a Polygon")
    rings = geometry.get("coordinates")
    if not isinstance(rings, list) or len(rings) != 1:
        raise ValueError(f"{where} ({name!r}) must have exactly one ring (no holes)")
    try:
        xy = np.asarray(rings[0], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where} ({name!r}) has coordinates that are not numbers") from None
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"{where} ({name!r}) coordinates must be [col, row] pairs")
    if len(xy) > 1 and np.array_equal(xy[0], xy[-1]):
        xy = xy[:-1]
    return name.strip(), role, _polygon(name, xy[:, ::-1])


def _polygon(name: str, vertices: npt.ArrayLike) -> npt.NDArray[np.float64]:
    verts = np.asarray(vertices, dtype=np.float64)
    if verts.ndim != 2 or verts.shape[1] != 2 or verts.shape[0] < 3:
        raise ValueError(
            f"ROI {name!r} must be a polygon of at least 3 (row, col) vertices, got shape "
            f"{verts.shape}"
        )
    if not all(math.isfinite(v) for v in verts.ravel()):
        raise ValueError(f"ROI {name!r} has vertices that are not finite")
    return verts
