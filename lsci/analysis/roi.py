"""Regions of interest: polygons rasterised to masks, label images split into masks.

Coordinates follow napari's Shapes layer: a vertex is ``(row, col)`` in pixel units, and pixel
``(r, c)`` has its centre at ``(r, c)``.

Inside rule (:func:`polygon_mask`): a pixel belongs to a polygon when its centre lies inside it
under the even–odd rule. A centre exactly on an edge belongs to the polygon on the edge's top or
left side and not on its bottom or right side (half-open, as in [r0, r1) × [c0, c1)). So two
polygons that share an edge never share a pixel, and an axis-aligned rectangle with integer
corners ``(r0, c0)``, ``(r1, c1)`` covers exactly ``(r1 - r0) × (c1 - c0)`` pixels: the pixel
count equals the polygon's area.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci._arrays import as_real, frame_shape

__all__ = ["label_masks", "polygon_mask", "roi_masks"]

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
