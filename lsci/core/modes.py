"""Contrast modes: which intensity samples make up one speckle contrast value.

One registry, :data:`MODES`, names every mode lsci computes; the command line (``lsci process
--mode``), the napari Process widget and the processing engine (:mod:`lsci.processing`) read
their choices and their behaviour from it, so a mode is added in one place. Each entry says which
windows it uses (a spatial window of ``window`` × ``window`` pixels, a temporal window of
``frames_window`` frames, or both) and computes K with the function of
:mod:`lsci.core.contrast` that defines it (Boas & Dunn, J. Biomed. Opt. 15, 011109, 2010).

Adding a mode
-------------
Append one :class:`ContrastMode` to ``_ENTRIES`` whose ``compute`` takes the raw frames and the
keyword arguments of :meth:`ContrastMode.compute`, and add its tests (the processing engine's
``tests/test_process.py`` and ``tests/test_modes.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.core.contrast import spatial_contrast, spatiotemporal_contrast, temporal_contrast

__all__ = ["MODES", "ContrastMode", "get_mode"]

ContrastFunction = Callable[..., np.ndarray]


@dataclass(frozen=True)
class ContrastMode:
    """One way of computing speckle contrast from a stack of frames.

    Attributes
    ----------
    name : str
        The registry key, as typed on the command line and stored in provenance.
    description : str
        One line for help texts.
    spatial : bool
        Uses a spatial window (``window``, ``edges``).
    temporal : bool
        Uses a temporal window of ``frames_window`` frames started every ``step`` frames; a
        mode without one gives one map per frame.
    noise_correction : bool
        The camera-noise correction of :func:`lsci.calibration.noise.fundamental_k2` is defined
        for it (in non-overlapping windows when temporal).
    function : callable
        ``function(frames, *, window, frames_window, step, ddof, edges, average, out)`` returning
        float32 K; a mode without a temporal window returns the mean K of every ``average``
        frames.
    """

    name: str
    description: str
    spatial: bool
    temporal: bool
    noise_correction: bool
    function: ContrastFunction

    def compute(
        self,
        frames: npt.ArrayLike,
        *,
        window: int,
        frames_window: int,
        step: int,
        ddof: int,
        edges: str,
        average: int = 1,
        out: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """K of a (T, H, W) stack of raw frames with this mode's windows.

        A mode without a temporal window gives one map per ``average`` frames, their mean K
        (T a multiple of ``average``); the others ignore ``average``. ``out``: C-contiguous
        float32 maps of the output shape to write into.
        """
        k: npt.NDArray[np.float32] = self.function(
            frames,
            window=window,
            frames_window=frames_window,
            step=step,
            ddof=ddof,
            edges=edges,
            average=1 if self.temporal else average,
            out=out,
        )
        return k


def _spatial(
    frames: npt.ArrayLike,
    *,
    window: int,
    ddof: int,
    edges: Any,
    average: int,
    out: np.ndarray | None,
    **_: Any,
) -> np.ndarray:
    return spatial_contrast(frames, window, ddof=ddof, edges=edges, average=average, out=out)


def _temporal(
    frames: npt.ArrayLike,
    *,
    frames_window: int,
    step: int,
    ddof: int,
    out: np.ndarray | None,
    **_: Any,
) -> np.ndarray:  # no ``average``: every map already pools frames_window frames
    return temporal_contrast(frames, frames_window, step=step, ddof=ddof, out=out)


def _spatiotemporal(
    frames: npt.ArrayLike,
    *,
    window: int,
    frames_window: int,
    step: int,
    ddof: int,
    edges: Any,
    out: np.ndarray | None,
    **_: Any,
) -> np.ndarray:
    return spatiotemporal_contrast(
        frames, window, frames_window, step=step, ddof=ddof, edges=edges, out=out
    )


_ENTRIES = (
    ContrastMode(
        "spatial",
        "K over a window × window neighbourhood of each frame",
        spatial=True,
        temporal=False,
        noise_correction=True,
        function=_spatial,
    ),
    ContrastMode(
        "temporal",
        "K of each pixel over frames_window consecutive frames",
        spatial=False,
        temporal=True,
        noise_correction=True,
        function=_temporal,
    ),
    ContrastMode(
        "spatiotemporal",
        "K over a window × window × frames_window voxel",
        spatial=True,
        temporal=True,
        noise_correction=False,
        function=_spatiotemporal,
    ),
)

#: Every contrast mode, by name.
MODES: dict[str, ContrastMode] = {mode.name: mode for mode in _ENTRIES}


def get_mode(name: str) -> ContrastMode:
    """The registered mode called ``name``.

    Raises
    ------
    ValueError
        When there is none (the message lists the names).
    """
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ValueError(f"mode={name!r} is not one of {', '.join(MODES)}") from None
