"""Live maps for display: spatial contrast, or the flow index 1/K², of the newest frame."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lsci.core.contrast import spatial_contrast
from lsci.core.perfusion import speckle_flow_index

__all__ = ["LiveSettings", "live_map"]

Quantity = Literal["contrast", "flow_index"]


@dataclass(frozen=True)
class LiveSettings:
    """What live processing computes and how often.

    Attributes
    ----------
    window
        Odd side of the spatial contrast window in pixels (>= 3).
    quantity
        ``"contrast"`` (K) or ``"flow_index"`` (1/K², proportional to flow for T ≫ τc).
    max_rate_hz
        Most maps per second (> 0), None for as many as the machine affords. Each map uses
        the newest frame; frames arriving meanwhile are skipped (they are still recorded).
    threads
        Threads computing a map (>= 1); None for all of numba's threads but one, so that the
        camera and recorder threads always find a free core.
    """

    window: int = 7
    quantity: Quantity = "contrast"
    max_rate_hz: float | None = 20.0
    threads: int | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.window, bool)
            or not isinstance(self.window, int)
            or self.window < 3
            or self.window % 2 == 0
        ):
            raise ValueError(f"window={self.window!r} is invalid: allowed odd integers >= 3")
        if self.quantity not in ("contrast", "flow_index"):
            raise ValueError(
                f"quantity={self.quantity!r} is invalid: allowed 'contrast' and 'flow_index'"
            )
        rate = self.max_rate_hz
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"max_rate_hz={rate!r} is invalid: allowed numbers > 0 or None")
        threads = self.threads
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads={threads!r} is invalid: allowed integers >= 1 or None")

    def thread_count(self, available: int) -> int:
        """The threads a map uses when ``available`` numba threads exist (at least 1)."""
        wanted = available - 1 if self.threads is None else self.threads
        return max(1, min(wanted, available))


def live_map(frame: np.ndarray, settings: LiveSettings) -> np.ndarray:
    """The live map of one raw frame: a new float32 array of the frame's shape."""
    k = spatial_contrast(frame, settings.window)
    if settings.quantity == "flow_index":
        speckle_flow_index(k, out=k)
    return k
