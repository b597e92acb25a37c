"""napari writer: export a map layer as TIFF (values) or PNG (a figure: the map as displayed,
with a colour bar labelled with its unit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from matplotlib import colormaps

from lsci.recording.atomic import atomic_write
from lsci.viz.figures import map_figure

__all__ = ["write_map"]


def write_map(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one image layer.

    ``.tif``/``.tiff`` keeps the values (float maps as float32, raw frames their integer
    type; a stack becomes a multi-page TIFF), with the layer name and unit as JSON in the
    image description.
    ``.png`` writes a 2-D map as lsci's figures show one (:func:`lsci.viz.figures.map_figure`):
    the layer's colormap between its contrast limits, titled with the layer's name, with a
    colour bar labelled with its unit. The file appears under its name only once complete
    (napari has already asked about replacing an existing one).

    Parameters
    ----------
    path : str
        Output file.
    data : array_like
        The layer data.
    meta : dict
        The layer attributes napari passes (name, colormap, contrast_limits, metadata).

    Returns
    -------
    list of str
        The file written.

    Raises
    ------
    ValueError
        For a PNG of more than two dimensions, or another suffix.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    array = np.asarray(data)
    if suffix in (".tif", ".tiff"):
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        unit = (meta.get("metadata") or {}).get("unit", "")
        # TIFF text must be ASCII: JSON escapes the Greek letters and superscripts of units.
        description = json.dumps({"name": meta.get("name", ""), "unit": unit})
        with atomic_write(target, overwrite=True) as temporary:
            tifffile.imwrite(temporary, array, description=description, metadata=None)
        return [str(target)]
    if suffix == ".png":
        if array.ndim != 2:
            raise ValueError(
                f"a PNG holds one 2-D map, but the layer has shape {array.shape}: pick one map "
                "(or export the stack as .tif)"
            )
        lower, upper = meta.get("contrast_limits") or (np.nanmin(array), np.nanmax(array))
        name = str(meta.get("name", ""))
        unit = str((meta.get("metadata") or {}).get("unit", ""))
        map_figure(
            array.astype(np.float64),
            target,
            title=name,
            label=unit or name,
            cmap=_colormap_name(meta.get("colormap")),
            limits=(float(lower), float(upper)),
        )
        return [str(target)]
    raise ValueError(f"path={path!r} has suffix {suffix!r}: allowed .tif, .tiff and .png")


def _colormap_name(colormap: Any) -> str:
    name = getattr(colormap, "name", colormap)
    return name if isinstance(name, str) and name in colormaps else "gray"
