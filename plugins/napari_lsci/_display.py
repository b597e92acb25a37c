"""How maps look in napari (Qt-free): lsci's display conventions as layer keywords.

The colormaps, units and limits are lsci's (:mod:`lsci.viz.display`), imported here so the
viewer and the figures agree; this module adds what only napari needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy.typing as npt

from lsci.recording import AcquisitionMetadata, DerivedInfo
from lsci.viz.display import (
    CHANGE_COLORMAP,
    CONTRAST_COLORMAP,
    PERFUSION_COLORMAP,
    RAW_COLORMAP,
    colormap_of,
    display_limits,
    robust_limits,
    symmetric_limits,
    unit_of,
)

__all__ = [
    "CHANGE_COLORMAP",
    "CONTRAST_COLORMAP",
    "PERFUSION_COLORMAP",
    "RAW_COLORMAP",
    "display_limits",
    "frames_between_maps",
    "object_pixel_um",
    "product_style",
    "robust_limits",
    "symmetric_limits",
    "unit_of",
]


def object_pixel_um(metadata: AcquisitionMetadata) -> float | None:
    """Size of one pixel on the skin in micrometres, when the optics are known.

    The sensor pitch divided by the magnification; ``None`` when either is unknown (the
    sensor pitch alone does not give a size on the object).
    """
    if metadata.pixel_size_um is None or metadata.magnification is None:
        return None
    return metadata.pixel_size_um / metadata.magnification


def frames_between_maps(info: DerivedInfo, n_frames: int) -> int:
    """Raw frames between consecutive maps of a product, to place its maps on the frame axis.

    Products written by :func:`lsci.processing.process_recording` record it in their
    parameters
    (``average`` in spatial mode, ``step`` otherwise); a product with one map per frame, or
    of unknown origin, gets 1.
    """
    params = info.parameters
    if len(info.shape) != 3 or info.shape[0] == n_frames:
        return 1
    if params.get("mode") == "spatial":
        value = params.get("average", 1)
    else:
        value = params.get("step", params.get("frames_window", 1))
    return int(value) if isinstance(value, int) and value >= 1 else 1


def product_style(
    name: str, parameters: Mapping[str, Any], sample: npt.ArrayLike
) -> dict[str, Any]:
    """Colormap and contrast limits of a derived map (:mod:`lsci.viz.display` conventions).

    Parameters
    ----------
    name : str
        Product name (``"contrast"``, ``"perfusion"``, ...).
    parameters : mapping
        Its provenance parameters.
    sample : array_like
        Some of its values, for the limits.

    Returns
    -------
    dict
        ``colormap`` and ``contrast_limits`` keyword arguments for an Image layer.
    """
    return {"colormap": colormap_of(name), "contrast_limits": display_limits(name, sample)}
