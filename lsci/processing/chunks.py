"""Chunks of work: planning them and computing one from its raw frames.

A stack of frames can be far larger than memory, so it is processed in independent *chunks*:
each reads a contiguous range of raw frames (with the overlap a temporal window needs) and
yields a contiguous range of output maps. :func:`plan_chunks` makes the plan and
:func:`process_chunk` computes one chunk; every runner of the engine (in-memory stacks,
recordings, the Dask cluster) calls both, so they all give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.calibration.noise import fundamental_k2, subtract_dark
from lsci.processing.calibrations import Calibrations
from lsci.processing.settings import ProcessingSettings

__all__ = [
    "MIN_CHUNK_PIXELS",
    "Chunk",
    "ChunkResult",
    "balance",
    "maps_per_chunk_for",
    "perfusion_from_contrast",
    "plan_chunks",
    "process_chunk",
]


#: New raw pixels a chunk reads at least, whatever the memory budget. A chunk costs CPU besides
#: its pixels (handing it between threads, the HDF5 calls for its frames and maps, the kernels'
#: set-up, a copy of its last map to append the checksum): per-frame maps of 1280×1024 frames,
#: one frame per chunk under a 16 MiB budget, took about 14 ms of CPU per frame, and 11 ms with
#: four frames per chunk (what this minimum gives them).
MIN_CHUNK_PIXELS = 4 << 20


@dataclass(frozen=True)
class Chunk:
    """One unit of work: output maps ``[first_map, stop_map)`` from frames ``[start, stop)``."""

    index: int
    first_map: int
    stop_map: int
    frame_start: int
    frame_stop: int


@dataclass(frozen=True)
class ChunkResult:
    """Contrast and perfusion maps of one :class:`Chunk`; ``perfusion`` is None when the model
    derives no map from K (``'contrast'``)."""

    chunk: Chunk
    contrast: npt.NDArray[np.float32]
    perfusion: npt.NDArray[np.float32] | None


def plan_chunks(n_frames: int, settings: ProcessingSettings, *, maps_per_chunk: int) -> list[Chunk]:
    """Split the output maps of ``n_frames`` raw frames into chunks.

    Parameters
    ----------
    n_frames : int
        Raw frames.
    settings : ProcessingSettings
        Defines how many frames each map needs.
    maps_per_chunk : int
        Output maps per chunk (the last chunk may be shorter), ≥ 1.

    Returns
    -------
    list of Chunk
        In order; empty when there are too few frames for one map.

    Examples
    --------
    >>> s = ProcessingSettings(mode="temporal", frames_window=10, step=5)
    >>> [(c.frame_start, c.frame_stop) for c in plan_chunks(40, s, maps_per_chunk=3)]
    [(0, 20), (15, 35), (30, 40)]
    """
    if maps_per_chunk < 1:
        raise ValueError(f"maps_per_chunk={maps_per_chunk!r} must be ≥ 1")
    n_maps = settings.n_maps(n_frames)
    chunks = []
    for index, first in enumerate(range(0, n_maps, maps_per_chunk)):
        stop = min(first + maps_per_chunk, n_maps)
        start_frame, stop_frame = settings.frames_for(first, stop)
        chunks.append(Chunk(index, first, stop, start_frame, stop_frame))
    return chunks


def balance(chunks: list[Chunk], settings: ProcessingSettings, workers: int) -> list[Chunk]:
    """The maps of ``chunks`` in as few chunks as their largest allows, their number a
    multiple of ``workers``, sizes differing by at most one map.

    Every worker then has work until the end: with an uneven last round, one worker would
    finish the recording alone while the others wait.

    Examples
    --------
    >>> s = ProcessingSettings(average=8)
    >>> [c.stop_map - c.first_map for c in balance(plan_chunks(200, s, maps_per_chunk=3), s, 2)]
    [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    """
    if not chunks:
        return []
    n_maps = chunks[-1].stop_map
    largest = max(chunk.stop_map - chunk.first_map for chunk in chunks)
    fewest = -(-n_maps // largest)
    count = min(n_maps, -(-fewest // workers) * workers)
    balanced = []
    first = 0
    for index in range(count):
        stop = first + n_maps // count + (index < n_maps % count)
        balanced.append(Chunk(index, first, stop, *settings.frames_for(first, stop)))
        first = stop
    return balanced


def maps_per_chunk_for(
    frame_shape: tuple[int, ...],
    settings: ProcessingSettings,
    *,
    memory_bytes: int,
    bytes_per_pixel: int = 4,
) -> int:
    """Output maps per chunk so that its raw frames and float32 results fit ``memory_bytes``.

    ``bytes_per_pixel`` is what a raw frame takes in memory per pixel while it is processed:
    its itemsize, plus 4 when a calibration makes a float32 copy (the default, 4, is the
    float32 input of the array API). A chunk reads at least :data:`MIN_CHUNK_PIXELS` new raw
    pixels (or a quarter of ``memory_bytes``, when smaller), and overlapping temporal windows no
    more old frames than new ones, even where that exceeds the budget.
    """
    height, width = frame_shape[-2:]
    frame_bytes = bytes_per_pixel * height * width
    # Per map: the raw frames between two maps' starts, a K map and a perfusion map; once per
    # chunk, the frames by which a temporal window reaches past the next map's start.
    bytes_per_map = frame_bytes * settings.frames_between_maps + 2 * 4 * height * width
    overlapping = max(0, settings.frames_per_map - settings.frames_between_maps)
    fitting = (memory_bytes - frame_bytes * overlapping) // bytes_per_map
    # Overlapping temporal windows read their overlap once per chunk: enough maps that a chunk
    # reads at least as many new frames as overlapping ones, whatever the budget.
    overlap_paid = -(-overlapping // settings.frames_between_maps)
    least_pixels = min(MIN_CHUNK_PIXELS, memory_bytes // 4)  # a tiny budget is meant
    worth_a_chunk = -(-least_pixels // (height * width * settings.frames_between_maps))
    return max(1, fitting, overlap_paid, worth_a_chunk)


def process_chunk(
    frames: npt.NDArray[Any],
    chunk: Chunk,
    settings: ProcessingSettings,
    calibrations: Calibrations | None = None,
    *,
    out: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None] | None = None,
) -> ChunkResult:
    """Compute the contrast and perfusion maps of ``chunk`` from its raw ``frames``.

    Parameters
    ----------
    frames : ndarray, shape (chunk.frame_stop - chunk.frame_start, H, W)
        The chunk's raw frames (uint8, uint16 or float).
    chunk : Chunk
        From :func:`plan_chunks`.
    settings : ProcessingSettings
        The settings the plan was made with, β resolved
        (:func:`lsci.processing.calibrations.resolve`).
    calibrations : Calibrations, optional
        Dark frame and camera noise to correct for, as resolved.
    out : (ndarray, ndarray or None), optional
        C-contiguous float32 arrays of at least the chunk's maps to write contrast and
        perfusion into (memory reused from chunk to chunk); the result holds views of them.

    Returns
    -------
    ChunkResult
        ``chunk.stop_map - chunk.first_map`` float32 maps of contrast (and perfusion).
    """
    expected = chunk.frame_stop - chunk.frame_start
    if frames.ndim != 3 or frames.shape[0] != expected:
        raise ValueError(
            f"chunk {chunk.index} needs {expected} frames of shape (H, W); got shape {frames.shape}"
        )
    calibrations = Calibrations() if calibrations is None else calibrations
    mode = settings.contrast_mode
    n_maps = chunk.stop_map - chunk.first_map
    k_out, perfusion_out = (None, None) if out is None else (out[0][:n_maps], out[1])
    if calibrations.camera is not None:
        k = _noise_corrected_contrast(frames, settings, calibrations)
        if not mode.temporal and settings.average > 1:
            k = k.reshape(n_maps, settings.average, *k.shape[1:]).mean(axis=1, dtype=np.float32)
    else:
        if calibrations.dark is not None:
            frames = subtract_dark(frames, calibrations.dark)
        k = _contrast(frames, settings, k_out)
    perfusion_out = None if perfusion_out is None else perfusion_out[:n_maps]
    return ChunkResult(chunk, k, perfusion_from_contrast(k, settings, out=perfusion_out))


def _contrast(
    frames: npt.NDArray[Any],
    settings: ProcessingSettings,
    out: npt.NDArray[np.float32] | None,
) -> npt.NDArray[np.float32]:
    return settings.contrast_mode.compute(
        frames,
        window=settings.window,
        frames_window=settings.frames_window,
        step=settings.frames_between_maps,
        ddof=settings.ddof,
        edges=settings.edges,
        average=settings.average,
        out=out,
    )


def _noise_corrected_contrast(
    frames: npt.NDArray[Any], settings: ProcessingSettings, calibrations: Calibrations
) -> npt.NDArray[np.float32]:
    assert calibrations.camera is not None
    mode = settings.contrast_mode
    assert mode.noise_correction  # checked in resolve()
    k2, _ = fundamental_k2(
        frames,
        calibrations.camera,
        dark=calibrations.dark,
        mode="temporal" if mode.temporal else "spatial",
        window=settings.calibration_window,
        ddof=settings.ddof,
        edges=settings.edges,
    )
    # Negative corrected K² means the noise exceeds the measured variance: no visible speckle.
    return np.sqrt(np.maximum(k2, 0, out=k2), out=k2)


def perfusion_from_contrast(
    k: npt.NDArray[np.float32],
    settings: ProcessingSettings,
    *,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32] | None:
    """Apply the settings' perfusion model to contrast maps (None when it derives no map),
    into ``out`` when given."""
    model = settings.perfusion_model
    if not model.derived:
        return None
    beta = 1.0 if settings.beta is None else settings.beta
    perfusion: npt.NDArray[np.float32] = model.apply(
        k, exposure_s=settings.exposure_s, beta=beta, out=out
    )
    return perfusion
