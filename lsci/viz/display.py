"""How maps are shown, stated once: colormaps, colour limits and units of each kind of map.

The figures (:mod:`lsci.viz.figures`) and the napari plugin read these, so a map looks the same
in a PNG written by ``lsci demo`` and in the viewer.

Conventions
-----------
- Perfusion: ``inferno``, perceptually uniform and dark for no flow, so an ischemic area reads
  as a dark hole; limits start at 0 (perfusion is non-negative).
- Speckle contrast K: reversed grey, so low K (fast flow) is bright as in the perfusion map.
- Raw frames and intensity: grey.
- Change (after / before, in %): ``RdBu_r``, diverging and centred on no change with symmetric
  limits: **a gain of perfusion is red, a loss blue**, everywhere. napari resolves the name to
  matplotlib's colormap, so the viewer and the figures show the same colours.
- Limits: robust percentiles of the finite values, so a few outliers do not wash out a map.
- Hypoperfused area: its outline before the treatment dashed, after it solid, in the same
  bright green (not in any of the map colormaps), with a dark edge so it shows on every map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from lsci.core.models import model_of_product

__all__ = [
    "CHANGE_COLORMAP",
    "CHANGE_UNIT",
    "CONTRAST_COLORMAP",
    "CONTRAST_UNIT",
    "HYPOPERFUSED_COLOUR",
    "HYPOPERFUSED_EDGE",
    "OTHER_COLORMAP",
    "PERFUSION_COLORMAP",
    "RAW_COLORMAP",
    "RAW_UNIT",
    "colormap_of",
    "display_limits",
    "robust_limits",
    "symmetric_limits",
    "unit_of",
]

#: Perfusion maps: perceptually uniform, dark for no flow.
PERFUSION_COLORMAP: Final = "inferno"
#: Speckle contrast: low contrast means fast flow; reversed grey keeps "bright = perfused".
CONTRAST_COLORMAP: Final = "gray_r"
#: Raw frames and mean intensity.
RAW_COLORMAP: Final = "gray"
#: Percent change after / before, centred on no change: gain red, loss blue.
CHANGE_COLORMAP: Final = "RdBu_r"
#: Any other map.
OTHER_COLORMAP: Final = "viridis"

#: Outline of the hypoperfused area (before: dashed, after: solid) and its dark edge.
HYPOPERFUSED_COLOUR: Final = "#39ff14"
HYPOPERFUSED_EDGE: Final = "#000000"

RAW_UNIT: Final = "ADU"
CONTRAST_UNIT: Final = "K"
CHANGE_UNIT: Final = "%"
#: Unit of the perfusion map of each offline perfusion model.

_COLORMAPS: Final[Mapping[str, str]] = {
    "raw": RAW_COLORMAP,
    "intensity": RAW_COLORMAP,
    "contrast": CONTRAST_COLORMAP,
    "perfusion": PERFUSION_COLORMAP,
    "change": CHANGE_COLORMAP,
}


def unit_of(product: str, parameters: Mapping[str, Any]) -> str:
    """The unit of a derived product, from its name and provenance parameters.

    Parameters
    ----------
    product : str
        Product name, e.g. ``"perfusion"`` or ``"contrast"``.
    parameters : mapping
        Its provenance parameters (``model`` decides the perfusion unit).

    Returns
    -------
    str
        For example ``"1/τc (1/s)"``; ``"K"`` for contrast; ``""`` when unknown.
    """
    if product == "contrast":
        return CONTRAST_UNIT
    if product == "perfusion":
        model = model_of_product(parameters)
        return "" if model is None else model.label
    return ""


def colormap_of(product: str) -> str:
    """The colormap name of a kind of map (``"raw"``, ``"contrast"``, ``"perfusion"``, ...)."""
    return _COLORMAPS.get(product, OTHER_COLORMAP)


def robust_limits(
    sample: npt.ArrayLike, *, low: float = 1.0, high: float = 99.0
) -> tuple[float, float]:
    """Colour limits from percentiles of the finite values, so outliers do not wash out a map.

    Parameters
    ----------
    sample : array_like
        Values to look at (a few maps of a stack are enough).
    low, high : float
        Percentiles, ``0 <= low < high <= 100``.

    Returns
    -------
    tuple of float
        ``(lower, upper)`` with ``upper > lower``; ``(0, 1)`` when nothing is finite.

    Raises
    ------
    ValueError
        If the percentiles are out of order or range.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(
            f"percentiles low={low!r}, high={high!r} invalid: need 0 <= low < high <= 100"
        )
    values = np.asarray(sample, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lower, upper = (float(v) for v in np.percentile(values, [low, high]))
    if upper <= lower:
        upper = lower + max(abs(lower), 1.0) * 1e-3
    return lower, upper


def symmetric_limits(
    change: npt.ArrayLike, *, percentile: float = 98.0, minimum: float = 10.0
) -> tuple[float, float]:
    """Limits ``(-L, L)`` centred on no change for a percent-change map.

    Parameters
    ----------
    change : array_like
        Percent change values (NaN ignored).
    percentile : float
        ``L`` is this percentile of ``|change|``.
    minimum : float
        Smallest ``L``, so noise around zero is not stretched into strong colours.

    Returns
    -------
    tuple of float
    """
    values = np.abs(np.asarray(change, dtype=np.float64))
    values = values[np.isfinite(values)]
    bound = float(np.percentile(values, percentile)) if values.size else minimum
    bound = max(bound, minimum)
    return -bound, bound


def display_limits(product: str, sample: npt.ArrayLike) -> tuple[float, float]:
    """Colour limits of a kind of map, from some of its values.

    Raw frames and intensity: 0.5th–99.5th percentile. Contrast: 1st–99th, not below 0.
    Perfusion: from 0 (or the 1st percentile if lower) to the 99th. Change: symmetric about 0
    (:func:`symmetric_limits`). Anything else: 1st–99th.
    """
    if product == "change":
        return symmetric_limits(sample)
    if product in ("raw", "intensity"):
        return robust_limits(sample, low=0.5, high=99.5)
    lower, upper = robust_limits(sample)
    if product == "contrast":
        return max(lower, 0.0), upper
    if product == "perfusion":
        return min(lower, 0.0), upper
    return lower, upper
