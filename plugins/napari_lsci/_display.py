"""How maps look in napari: names, units, colormaps and robust contrast limits (Qt-free)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.core.models import model_of_product
from lsci.recording import AcquisitionMetadata, DerivedInfo

__all__ = [
    "CHANGE_COLORMAP",
    "CONTRAST_COLORMAP",
    "PERFUSION_COLORMAP",
    "RAW_COLORMAP",
    "frames_between_maps",
    "object_pixel_um",
    "product_style",
    "robust_limits",
    "symmetric_limits",
    "unit_of",
]

#: Perceptually uniform, dark for no flow: an ischemic area reads as a dark hole.
PERFUSION_COLORMAP = "inferno"
#: Low contrast means fast flow; reversed grey keeps "bright = perfused" as in the perfusion map.
CONTRAST_COLORMAP = "gray_r"
RAW_COLORMAP = "gray"
#: Diverging, centred on no change: red where perfusion was lost, blue where it was gained.
CHANGE_COLORMAP = "RdBu"


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
        return "K"
    if product == "perfusion":
        model = model_of_product(parameters)
        return "" if model is None else model.label
    return ""


def robust_limits(
    sample: npt.ArrayLike, *, low: float = 1.0, high: float = 99.0
) -> tuple[float, float]:
    """Contrast limits from percentiles of the finite values, so outliers do not wash out a map.

    Parameters
    ----------
    sample : array_like
        Values to look at (a few maps of the layer are enough).
    low, high : float
        Percentiles, ``0 <= low < high <= 100``.

    Returns
    -------
    tuple of float
        ``(lower, upper)`` with ``upper > lower``; ``(0, 1)`` when nothing is finite.
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

    Products written by :func:`lsci.processing.process.process_recording` record it in their
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
    """Colormap and contrast limits of a derived map.

    Parameters
    ----------
    name : str
        Product name.
    parameters : mapping
        Its provenance parameters.
    sample : array_like
        Some of its values, for the limits.

    Returns
    -------
    dict
        ``colormap`` and ``contrast_limits`` keyword arguments for an Image layer.
    """
    if name == "contrast":
        lower, upper = robust_limits(sample, low=1.0, high=99.0)
        return {"colormap": CONTRAST_COLORMAP, "contrast_limits": (max(lower, 0.0), upper)}
    lower, upper = robust_limits(sample, low=1.0, high=99.0)
    if name == "perfusion":
        # Perfusion is non-negative: starting at 0 keeps "dark = no flow" honest.
        lower = min(lower, 0.0)
        return {"colormap": PERFUSION_COLORMAP, "contrast_limits": (lower, upper)}
    return {"colormap": "viridis", "contrast_limits": (lower, upper)}
