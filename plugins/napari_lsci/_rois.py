"""Named regions of interest drawn in napari, for the live analysis and the comparison.

Regions are the shapes of one Shapes layer (:data:`ROI_LAYER`); each shape's name is its
``name`` feature, shown as its text. A shape drawn without a name gets the next of
:data:`DEFAULT_NAMES` not used yet (the lesion first, then healthy skin), then ``"ROI 3"``,
``"ROI 4"``...; the one named :data:`REFERENCE_NAME` is the healthy reference. Polygons and
rectangles are kept as ``(row, col)`` polygons in the map's pixels, rasterised by
:func:`lsci.analysis.roi.polygon_mask` as ``lsci compare`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_NAMES",
    "REFERENCE_NAME",
    "ROI_LAYER",
    "ensure_roi_layer",
    "name_new_shapes",
    "named_rois",
    "roi_layer",
    "shape_names",
]

ROI_LAYER = "ROIs (named)"
REFERENCE_NAME = "healthy skin"
DEFAULT_NAMES = ("lesion", REFERENCE_NAME)


def roi_layer(viewer: Any) -> Any:
    """The viewer's named-ROI Shapes layer, None when there is none."""
    return next((layer for layer in viewer.layers if layer.name == ROI_LAYER), None)


def ensure_roi_layer(viewer: Any, like: Any = None) -> Any:
    """The viewer's named-ROI Shapes layer, added (on top, selected) when missing.

    A new layer takes the pixel size and units of the map layer ``like``, so its vertices are
    in the map's pixels.
    """
    if ROI_LAYER in viewer.layers:
        return viewer.layers[ROI_LAYER]
    placement = {} if like is None else {"scale": like.scale[-2:], "units": like.units[-2:]}
    layer = viewer.add_shapes(
        **placement,
        name=ROI_LAYER,
        edge_color="yellow",
        face_color="transparent",
        edge_width=1.5,
        features=pd.DataFrame({"name": pd.Series([], dtype=str)}),
        text={"string": "{name}", "color": "yellow", "size": 10, "anchor": "upper_left"},
    )
    layer.feature_defaults = {"name": ""}
    layer.events.data.connect(lambda _event: name_new_shapes(layer))
    viewer.layers.selection.active = layer
    return layer


def name_new_shapes(layer: Any, wanted: str | None = None) -> None:
    """Give every shape without a name (or with the name of an earlier shape) one: ``wanted``
    or the next default name."""
    features = layer.features
    if "name" not in features:
        features = features.assign(name=[""] * len(features))
    names: list[str] = []
    for value in features["name"]:
        name = value if isinstance(value, str) else ""
        names.append("" if name in names else name)
    if all(names) and names == list(features["name"]):
        return
    for index, name in enumerate(names):
        if name:
            continue
        choice = wanted if wanted and wanted not in names else _next_name(names)
        names[index] = choice
        wanted = None
    layer.features = features.assign(name=names)
    # napari gives a new shape the feature values of the last one: a new shape has no name.
    layer.feature_defaults = {"name": ""}
    layer.refresh_text()


def _next_name(names: list[str]) -> str:
    for name in DEFAULT_NAMES:
        if name not in names:
            return name
    number = len(DEFAULT_NAMES) + 1
    while f"ROI {number}" in names:
        number += 1
    return f"ROI {number}"


def named_rois(layer: Any) -> dict[str, np.ndarray]:
    """The polygons and rectangles of the layer by name, as ``(row, col)`` vertices.

    Other shapes (ellipses, lines, paths) are left out: only polygons carry over exactly to
    ``lsci compare`` and to later sessions.
    """
    if layer is None or not len(layer.data):
        return {}
    rois: dict[str, np.ndarray] = {}
    for name, kind, vertices in zip(shape_names(layer), layer.shape_type, layer.data, strict=True):
        if kind in ("polygon", "rectangle") and name:
            rois[name] = np.asarray(vertices, dtype=np.float64)[:, -2:]
    return rois


def shape_names(layer: Any) -> list[str]:
    """The name of each shape of the layer, in order ("" for a shape without one)."""
    if "name" not in layer.features:
        return [""] * len(layer.data)
    return [name if isinstance(name, str) else "" for name in layer.features["name"]]
