"""Processing a stack of frames held by the caller: an array in memory, or any lazy array.

:func:`process_frames` returns every map; :func:`iter_maps` yields them chunk by chunk, for
callers that reduce them as they come (the mean maps of a time window,
:func:`lsci.analysis.time_windows.window_maps`). Both read the frames one chunk at a time, so a
lazy array (an HDF5 dataset, a dask array) is never read whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.processing.calibrations import Calibrations, resolve
from lsci.processing.chunks import ChunkResult, maps_per_chunk_for, plan_chunks, process_chunk
from lsci.processing.settings import ProcessingSettings

__all__ = ["ProcessedMaps", "frames_shape", "iter_maps", "process_frames"]

Progress = Callable[[int, int], None]
#: Memory budget of one chunk (raw frames as float32 plus its maps).
CHUNK_BYTES = 256 << 20


@dataclass(frozen=True, eq=False)
class ProcessedMaps:
    """What :func:`process_frames` computed.

    Attributes
    ----------
    contrast : (maps, H', W') ndarray of float32
        K.
    perfusion : (maps, H', W') ndarray of float32 or None
        The model's map; None when the model derives none (``'contrast'``).
    settings : ProcessingSettings
        The settings used, β resolved.
    calibrations : Calibrations
        The calibrations applied.
    """

    contrast: npt.NDArray[np.float32] = field(repr=False)
    perfusion: npt.NDArray[np.float32] | None = field(repr=False)
    settings: ProcessingSettings
    calibrations: Calibrations

    @property
    def maps(self) -> npt.NDArray[np.float32]:
        """The model's maps: perfusion, or contrast for the ``'contrast'`` model."""
        return self.contrast if self.perfusion is None else self.perfusion

    def parameters(self) -> dict[str, Any]:
        """Settings and calibrations applied: the provenance of these maps."""
        return self.settings.parameters() | self.calibrations.parameters()


def frames_shape(frames: Any) -> tuple[int, int, int]:
    """The ``(T, H, W)`` shape of a stack of frames, read without reading the frames.

    Raises
    ------
    ValueError
        When it is not a 3-D stack.
    """
    shape = tuple(getattr(frames, "shape", np.shape(frames)))
    if len(shape) != 3:
        raise ValueError(
            f"the frames have shape {shape}: processing needs a (frames, height, width) stack of "
            "raw frames"
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def iter_maps(
    frames: Any,
    settings: ProcessingSettings,
    calibrations: Calibrations | None = None,
    *,
    memory_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
) -> Iterator[ChunkResult]:
    """Contrast and perfusion maps of a stack of raw frames, one chunk at a time.

    Parameters
    ----------
    frames : (T, H, W) array_like
        Raw frames; anything sliced along its first axis gives them (an HDF5 dataset is read
        one chunk at a time).
    settings : ProcessingSettings
        What to compute.
    calibrations : Calibrations, optional
        What to apply (:func:`lsci.processing.calibrations.resolve` checks them and settles β).
    memory_bytes : int
        Rough budget for one chunk's frames and maps.
    progress : callable, optional
        ``progress(maps_done, maps_total)`` after each chunk.

    Yields
    ------
    ChunkResult
        In order.

    Raises
    ------
    ValueError
        When the frames are not a 3-D stack, are too few for one map, or a calibration does not
        fit.
    lsci.calibration.CalibrationMismatchError
        When the β calibration was measured with other contrast settings.
    """
    n_frames, *frame_shape = frames_shape(frames)
    settings, applied = resolve(settings, calibrations, tuple(frame_shape))
    n_maps = settings.n_maps(n_frames)
    if n_maps == 0:
        raise ValueError(
            f"{n_frames} frames are too few for one map ({settings.frames_per_map} frames per map)"
        )
    per_chunk = maps_per_chunk_for(tuple(frame_shape), settings, memory_bytes=memory_bytes)
    for chunk in plan_chunks(n_frames, settings, maps_per_chunk=per_chunk):
        raw = np.asarray(frames[chunk.frame_start : chunk.frame_stop])
        yield process_chunk(raw, chunk, settings, applied)
        if progress is not None:
            progress(chunk.stop_map, n_maps)


def process_frames(
    frames: Any,
    settings: ProcessingSettings,
    calibrations: Calibrations | None = None,
    *,
    memory_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
) -> ProcessedMaps:
    """Contrast and perfusion maps of a stack of raw frames.

    Parameters
    ----------
    frames : (T, H, W) array_like
        Raw frames (uint8, uint16 or float); a lazy array is read one chunk at a time.
    settings : ProcessingSettings
        What to compute.
    calibrations : Calibrations, optional
        Dark frame, camera noise and β to apply; for a recording's frames,
        :meth:`Calibrations.from_recording` gives those it stores.
    memory_bytes : int
        Rough budget for one chunk's frames and maps.
    progress : callable, optional
        ``progress(maps_done, maps_total)`` after each chunk.

    Returns
    -------
    ProcessedMaps
        The maps, with the settings and calibrations applied.

    Raises
    ------
    ValueError, lsci.calibration.CalibrationMismatchError
        As :func:`iter_maps`.

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.random.default_rng(0).exponential(100, (4, 32, 32)).astype(np.uint16)
    >>> result = process_frames(frames, ProcessingSettings(window=7, exposure_s=0.005))
    >>> result.perfusion.shape, result.settings.model, result.settings.beta
    ((4, 32, 32), 'inverse_tau', 1.0)
    """
    _, *frame_shape = frames_shape(frames)
    resolved, applied = resolve(settings, calibrations, tuple(frame_shape))
    contrast: list[npt.NDArray[np.float32]] = []
    perfusion: list[npt.NDArray[np.float32]] = []
    for result in iter_maps(
        frames, resolved, applied, memory_bytes=memory_bytes, progress=progress
    ):
        contrast.append(result.contrast)
        if result.perfusion is not None:
            perfusion.append(result.perfusion)
    return ProcessedMaps(
        np.concatenate(contrast),
        np.concatenate(perfusion) if perfusion else None,
        resolved,
        applied,
    )
