"""Live maps for display: spatial contrast of the newest frames, through a perfusion model.

The map is the mean K of the newest ``average`` frames (as offline processing's ``average`` in
spatial mode), or any model of :data:`lsci.core.models.MODELS` applied to it (1/K², or 1/τc
when the exposure time is given), the same models offline processing offers.

Why several frames: the spatial contrast of one frame over a w × w window has a large
sampling error (a 7 × 7 window holds only a few speckle grains), and one bright speckle lifts K
evenly over the w² windows that contain it. On a perfusion map each such pixel is a dark square
exactly the size of the window, in new places in every frame: a single-frame live map flickers
with dark squares that read like small ischemic spots. The speckle pattern changes from frame
to frame (τc is far below the frame interval on skin), so the mean K of n frames has 1/n of the
variance, and the squares fade to 1/n of their depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lsci.core.contrast import spatial_contrast
from lsci.core.models import PerfusionModel, get_model

__all__ = ["LiveSettings", "live_map"]


@dataclass(frozen=True)
class LiveSettings:
    """What live processing computes and how often.

    Attributes
    ----------
    window
        Odd side of the spatial contrast window in pixels (>= 3).
    average
        Frames whose K maps are averaged into one live map (>= 1): the newest frame and the
        ones before it (module docstring).
    model
        A name in :data:`lsci.core.models.MODELS`: ``"contrast"`` (K, the default),
        ``"inverse_k2"`` (1/K², proportional to flow for T ≫ τc) or ``"inverse_tau"`` (1/τc,
        needs ``exposure_s``).
    exposure_s
        Exposure time in seconds, for models that need it.
    beta
        Coherence factor β in (0, 1], for models that use it.
    max_rate_hz
        Most maps per second (> 0), None for as many as the machine affords. Each map uses
        the newest ``average`` frames; older frames arriving meanwhile are not shown (they
        are still recorded).
    threads
        Threads computing a map (>= 1); None for all of numba's threads but one, so that the
        camera and recorder threads always find a free core.
    """

    window: int = 7
    average: int = 8
    model: str = "contrast"
    exposure_s: float | None = None
    beta: float = 1.0
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
        average = self.average
        if isinstance(average, bool) or not isinstance(average, int) or average < 1:
            raise ValueError(f"average={average!r} is invalid: allowed integers >= 1")
        model = self.perfusion_model
        if model.needs_exposure and not (self.exposure_s is not None and self.exposure_s > 0):
            raise ValueError(
                f"model={self.model!r} needs the exposure time: exposure_s={self.exposure_s!r} "
                "must be > 0"
            )
        if not 0 < self.beta <= 1:
            raise ValueError(f"beta={self.beta!r} is invalid: allowed numbers in (0, 1]")
        rate = self.max_rate_hz
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"max_rate_hz={rate!r} is invalid: allowed numbers > 0 or None")
        threads = self.threads
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads={threads!r} is invalid: allowed integers >= 1 or None")

    @property
    def perfusion_model(self) -> PerfusionModel:
        """The registry entry of :attr:`model` (ValueError when there is none)."""
        return get_model(self.model)

    def thread_count(self, available: int) -> int:
        """The threads a map uses when ``available`` numba threads exist (at least 1)."""
        wanted = available - 1 if self.threads is None else self.threads
        return max(1, min(wanted, available))


def live_map(frames: np.ndarray, settings: LiveSettings) -> np.ndarray:
    """The live map of one raw frame (H, W), or of consecutive frames (n, H, W).

    Returns a new float32 (H, W) array: the model applied to the mean K of the frames (the
    same mean offline processing takes with ``average=n``).
    """
    k = spatial_contrast(frames, settings.window)
    if k.ndim == 3:
        k = k.mean(axis=0, dtype=np.float32)
    model = settings.perfusion_model
    if model.derived:
        model.apply(k, exposure_s=settings.exposure_s, beta=settings.beta, out=k)
    return k
