"""Offline processing of recordings: contrast and perfusion in chunks of frames.

A recording can be far larger than memory, so processing is planned as independent *chunks*:
each chunk reads a contiguous range of raw frames (with the overlap a temporal window needs)
and yields a contiguous range of output maps. :func:`plan_chunks` makes the plan,
:func:`process_chunk` computes one chunk from its frames, and :func:`process_recording` runs the
plan on one machine, reading the next chunk while the current one is computed and storing the
result as derived products of the recording. :mod:`lsci.processing.distributed` runs the same plan
on a Dask
cluster; both call :func:`process_chunk`, so they give the same numbers.

Output maps
-----------
``mode='spatial'``
    One K map per frame, or the mean K of ``average`` consecutive frames (K is averaged, not K²,
    as FOIL's speckle software does).
``mode='temporal'`` / ``'spatiotemporal'``
    One K map per window of ``frames_window`` frames, windows starting every ``step`` frames
    (default: non-overlapping), as :func:`lsci.core.contrast.temporal_contrast` defines them.

Perfusion models
----------------
``'1/K2'``
    Speckle flow index 1/K² (:func:`lsci.core.perfusion.speckle_flow_index`), no unit.
``'tau'``
    Inverse correlation time 1/τc in 1/s from the exact visibility equation
    (:func:`lsci.core.perfusion.inverse_correlation_time`; Bandyopadhyay et al. 2005, Boas & Dunn
    2010); needs the exposure time and β.
``'none'``
    Contrast only.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lsci.calibration import BetaCalibration, CameraNoise, DarkFrame
from lsci.calibration.noise import fundamental_k2, subtract_dark
from lsci.core.contrast import (
    EDGE_MODES,
    Edges,
    spatial_contrast,
    spatiotemporal_contrast,
    temporal_contrast,
)
from lsci.core.perfusion import inverse_correlation_time, speckle_flow_index
from lsci.recording import Recording, open_recording
from lsci.recording.calibration import load_calibration
from lsci.recording.sink import DerivedSink

__all__ = [
    "MODELS",
    "MODES",
    "Chunk",
    "ChunkResult",
    "Corrections",
    "ProcessingResult",
    "ProcessingSettings",
    "RecordingPlan",
    "beta_from_recording",
    "plan_chunks",
    "plan_recording",
    "process_chunk",
    "process_recording",
    "store_chunk",
]

Mode = Literal["spatial", "temporal", "spatiotemporal"]
Model = Literal["1/K2", "tau", "none"]
MODES: tuple[str, ...] = ("spatial", "temporal", "spatiotemporal")
MODELS: tuple[str, ...] = ("1/K2", "tau", "none")

# Product names in the recording's /derived group.
CONTRAST_PRODUCT = "contrast"
PERFUSION_PRODUCT = "perfusion"


@dataclass(frozen=True)
class ProcessingSettings:
    """How to turn raw frames into contrast and perfusion maps.

    Parameters
    ----------
    mode : {'spatial', 'temporal', 'spatiotemporal'}
        Which samples make up one contrast value (see :mod:`lsci.core.contrast`).
    window : int
        Spatial window side in pixels (odd, ≥ 3); unused in temporal mode.
    frames_window : int
        Frames per temporal (or spatio-temporal) window, ≥ 2; unused in spatial mode.
    step : int or None
        Frames between the starts of consecutive temporal windows; None = ``frames_window``.
    average : int
        Spatial mode: consecutive per-frame K maps averaged into one output map, ≥ 1.
    ddof : {0, 1}
        Variance divisor n − ddof.
    edges : str
        Spatial border handling (:data:`lsci.core.contrast.EDGE_MODES`).
    model : {'1/K2', 'tau', 'none'}
        Perfusion model.
    exposure_s : float or None
        Exposure time in seconds, needed by ``model='tau'``.
    beta : float or None
        Coherence factor β in (0, 1], used by ``model='tau'``. None: from the recording's β
        calibration when it has one (checked against mode, window and ddof), else 1.
    """

    mode: Mode = "spatial"
    window: int = 7
    frames_window: int = 25
    step: int | None = None
    average: int = 1
    ddof: int = 0
    edges: Edges = "reflect"
    model: Model = "1/K2"
    exposure_s: float | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not one of {', '.join(MODES)}")
        if self.edges not in EDGE_MODES:
            raise ValueError(f"edges={self.edges!r} is not one of {', '.join(EDGE_MODES)}")
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r} is not one of {', '.join(MODELS)}")
        for name in ("window", "frames_window", "average"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive whole number")
        if self.step is not None and (not isinstance(self.step, int) or self.step < 1):
            raise ValueError(f"step={self.step!r} must be a positive whole number or None")
        if self.model == "tau" and (self.exposure_s is None or not self.exposure_s > 0):
            raise ValueError(
                f"model='tau' needs the exposure time: exposure_s={self.exposure_s!r} must "
                "be > 0 (the recording's metadata gives it when it was recorded)"
            )
        if self.beta is not None and not 0 < self.beta <= 1:
            raise ValueError(f"beta={self.beta!r} must be in (0, 1] (or None: calibrated)")

    @property
    def frames_per_map(self) -> int:
        """Raw frames that one output map is computed from."""
        return self.average if self.mode == "spatial" else self.frames_window

    @property
    def frames_between_maps(self) -> int:
        """Raw frames between the first frames of consecutive output maps."""
        if self.mode == "spatial":
            return self.average
        return self.step if self.step is not None else self.frames_window

    def n_maps(self, n_frames: int) -> int:
        """Number of output maps from ``n_frames`` raw frames (incomplete windows are dropped)."""
        if n_frames < self.frames_per_map:
            return 0
        return (n_frames - self.frames_per_map) // self.frames_between_maps + 1

    def frames_for(self, first_map: int, stop_map: int) -> tuple[int, int]:
        """The raw frame range ``[start, stop)`` that output maps ``[first_map, stop_map)`` need."""
        start = first_map * self.frames_between_maps
        stop = (stop_map - 1) * self.frames_between_maps + self.frames_per_map
        return start, stop

    def map_shape(self, frame_shape: tuple[int, ...]) -> tuple[int, int]:
        """Shape of one output map from frames of ``frame_shape`` ('valid' edges crop it)."""
        height, width = frame_shape[-2:]
        if self.edges == "valid" and self.mode != "temporal":
            return height - self.window + 1, width - self.window + 1
        return height, width

    def parameters(self) -> dict[str, Any]:
        """Every setting that changes the result: the provenance of the derived products."""
        params = asdict(self)
        if self.mode == "spatial":
            del params["frames_window"], params["step"]
        else:
            params["step"] = self.frames_between_maps
            del params["average"]
            if self.mode == "temporal":
                del params["window"], params["edges"]
        if self.model != "tau":
            del params["exposure_s"], params["beta"]
        return params


@dataclass(frozen=True)
class Corrections:
    """Calibrations applied to the raw frames before contrast is computed.

    Parameters
    ----------
    dark : DarkFrame, optional
        Subtracted from every frame (:func:`lsci.calibration.noise.subtract_dark`).
    camera : CameraNoise, optional
        Gain and read noise: the camera-noise bias of K² (shot, read and quantisation noise;
        Kim et al., Commun Biol 6:844, 2023) is removed
        (:func:`lsci.calibration.noise.fundamental_k2`),
        and K is the square root of the corrected K² (0 where noise exceeds the measured
        variance). Supported for spatial contrast and for temporal contrast in
        non-overlapping windows.
    """

    dark: DarkFrame | None = None
    camera: CameraNoise | None = None

    @classmethod
    def from_recording(cls, recording: Recording) -> Corrections:
        """The dark frame and camera noise stored in a recording, where it has them."""
        stored = recording.calibrations
        dark = load_calibration(recording, DarkFrame) if DarkFrame.default_name in stored else None
        camera = (
            load_calibration(recording, CameraNoise) if CameraNoise.default_name in stored else None
        )
        return cls(dark, camera)

    def check(self, settings: ProcessingSettings, frame_shape: tuple[int, int]) -> None:
        """Raise ValueError when these corrections cannot apply to ``settings`` and frames."""
        if self.dark is not None and self.dark.shape != tuple(frame_shape):
            raise ValueError(
                f"the dark frame is {self.dark.shape}, the frames {tuple(frame_shape)}: it was "
                "taken with another region of interest"
            )
        if self.camera is None:
            return
        if settings.mode == "spatiotemporal" or (
            settings.mode == "temporal" and settings.frames_between_maps != settings.frames_window
        ):
            raise ValueError(
                "camera-noise correction applies to spatial contrast and to temporal contrast in "
                f"non-overlapping windows; mode={settings.mode!r} with step="
                f"{settings.frames_between_maps} is not supported (drop the camera-noise "
                "calibration or use such a mode)"
            )

    def parameters(self) -> dict[str, Any]:
        """What was applied, for the provenance of the derived products."""
        applied: dict[str, Any] = {}
        if self.dark is not None:
            applied["dark_frame_frames"] = self.dark.n_frames
            applied["dark_frame_mean_adu"] = round(float(np.mean(self.dark.mean)), 6)
        if self.camera is not None:
            applied["gain_adu_per_e"] = self.camera.gain_adu_per_e
            applied["read_noise_e"] = self.camera.read_noise_e
        return applied


def beta_from_recording(recording: Recording, settings: ProcessingSettings) -> float | None:
    """β from the recording's β calibration, checked against the contrast settings.

    Returns None when the recording holds no β calibration.

    Raises
    ------
    lsci.calibration.CalibrationMismatchError
        When the calibration was measured with another mode, window or ddof.
    """
    if BetaCalibration.default_name not in recording.calibrations:
        return None
    calibration = load_calibration(recording, BetaCalibration)
    window = settings.frames_window if settings.mode == "temporal" else settings.window
    return calibration.beta_for(mode=settings.mode, window=window, ddof=settings.ddof)


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
    """Contrast and perfusion maps of one :class:`Chunk`; ``perfusion`` is None for 'none'."""

    chunk: Chunk
    contrast: npt.NDArray[np.float32]
    perfusion: npt.NDArray[np.float32] | None


def plan_chunks(n_frames: int, settings: ProcessingSettings, *, maps_per_chunk: int) -> list[Chunk]:
    """Split the output maps of a recording of ``n_frames`` frames into chunks.

    Parameters
    ----------
    n_frames : int
        Raw frames in the recording.
    settings : ProcessingSettings
        Defines how many frames each map needs.
    maps_per_chunk : int
        Output maps per chunk (the last chunk may be shorter), ≥ 1.

    Returns
    -------
    list of Chunk
        In order; empty when the recording is too short for one map.

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


def maps_per_chunk_for(
    frame_shape: tuple[int, int], settings: ProcessingSettings, *, memory_bytes: int
) -> int:
    """Output maps per chunk so that its raw frames and float32 results fit ``memory_bytes``."""
    height, width = frame_shape
    # Per map: its share of raw frames (as float32 at worst, for the kernels' offsets), a K map
    # and a perfusion map.
    frames_per_map = max(settings.frames_between_maps, 1)
    bytes_per_map = 4 * height * width * (frames_per_map + 2)
    overlap = 4 * height * width * settings.frames_per_map
    return max(1, (memory_bytes - overlap) // bytes_per_map)


def process_chunk(
    frames: npt.NDArray[Any],
    chunk: Chunk,
    settings: ProcessingSettings,
    corrections: Corrections | None = None,
) -> ChunkResult:
    """Compute the contrast and perfusion maps of ``chunk`` from its raw ``frames``.

    Parameters
    ----------
    frames : ndarray, shape (chunk.frame_stop - chunk.frame_start, H, W)
        The chunk's raw frames (uint8, uint16 or float).
    chunk : Chunk
        From :func:`plan_chunks`.
    settings : ProcessingSettings
        The same settings the plan was made with.
    corrections : Corrections, optional
        Dark frame and camera noise to correct for.

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
    corrections = corrections or Corrections()
    if corrections.camera is not None:
        k = _noise_corrected_contrast(frames, settings, corrections)
    else:
        if corrections.dark is not None:
            frames = subtract_dark(frames, corrections.dark)
        k = _contrast(frames, settings)
    if settings.mode == "spatial" and settings.average > 1:
        n_maps = chunk.stop_map - chunk.first_map
        k = k.reshape(n_maps, settings.average, *k.shape[1:]).mean(axis=1, dtype=np.float32)
    return ChunkResult(chunk, k, perfusion_from_contrast(k, settings))


def _contrast(frames: npt.NDArray[Any], settings: ProcessingSettings) -> npt.NDArray[np.float32]:
    if settings.mode == "spatial":
        return spatial_contrast(frames, settings.window, ddof=settings.ddof, edges=settings.edges)
    if settings.mode == "temporal":
        return temporal_contrast(
            frames, settings.frames_window, step=settings.frames_between_maps, ddof=settings.ddof
        )
    return spatiotemporal_contrast(
        frames,
        settings.window,
        settings.frames_window,
        step=settings.frames_between_maps,
        ddof=settings.ddof,
        edges=settings.edges,
    )


def _noise_corrected_contrast(
    frames: npt.NDArray[Any], settings: ProcessingSettings, corrections: Corrections
) -> npt.NDArray[np.float32]:
    assert corrections.camera is not None
    assert settings.mode != "spatiotemporal"
    temporal = settings.mode == "temporal"
    k2, _ = fundamental_k2(
        frames,
        corrections.camera,
        dark=corrections.dark,
        mode=settings.mode,
        window=settings.frames_window if temporal else settings.window,
        ddof=settings.ddof,
        edges=settings.edges,
    )
    # Negative corrected K² means the noise exceeds the measured variance: no visible speckle.
    return np.sqrt(np.maximum(k2, 0, out=k2), out=k2)


def perfusion_from_contrast(
    k: npt.NDArray[np.float32], settings: ProcessingSettings
) -> npt.NDArray[np.float32] | None:
    """Apply the settings' perfusion model to contrast maps (None for model 'none')."""
    if settings.model == "1/K2":
        return speckle_flow_index(k)
    if settings.model == "tau":
        assert settings.exposure_s is not None  # checked in ProcessingSettings
        beta = 1.0 if settings.beta is None else settings.beta
        return inverse_correlation_time(k, settings.exposure_s, beta=beta)
    return None


@dataclass(frozen=True)
class ProcessingResult:
    """What :func:`process_recording` did."""

    path: Path
    maps: int
    frames_read: int
    bytes_read: int
    seconds: float
    products: tuple[str, ...]
    reused: bool

    @property
    def frames_per_s(self) -> float:
        return self.frames_read / self.seconds if self.seconds > 0 else math.inf

    @property
    def megabytes_per_s(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else math.inf


def _prefetched(
    chunks: list[Chunk], read: Callable[[int, int], npt.NDArray[Any]]
) -> Iterator[tuple[Chunk, npt.NDArray[Any]]]:
    """Yield each chunk with its frames, reading the next chunk in a thread meanwhile."""
    loaded: dict[str, Any] = {}

    def load(chunk: Chunk) -> None:
        try:
            loaded["frames"] = read(chunk.frame_start, chunk.frame_stop)
        except BaseException as exc:  # re-raised in the consuming thread below
            loaded["error"] = exc

    reader: threading.Thread | None = None
    for position, chunk in enumerate(chunks):
        if reader is None:
            load(chunk)
        else:
            reader.join()
        if "error" in loaded:
            raise loaded.pop("error")
        frames = loaded.pop("frames")
        reader = None
        if position + 1 < len(chunks):
            reader = threading.Thread(target=load, args=(chunks[position + 1],), daemon=True)
            reader.start()
        try:
            yield chunk, frames
        except BaseException:
            if reader is not None:
                reader.join()
            raise


@dataclass(frozen=True)
class RecordingPlan:
    """Everything both runners need to know before computing a recording."""

    path: Path
    settings: ProcessingSettings
    chunks: list[Chunk]
    shapes: dict[str, tuple[int, int, int]]
    bytes_per_frame: int
    corrections: Corrections

    @property
    def n_maps(self) -> int:
        return self.chunks[-1].stop_map

    def sink(self, *, overwrite: bool) -> DerivedSink:
        """The derived-product sink these maps are written into, with their provenance."""
        return DerivedSink(
            self.path,
            self.shapes,
            algorithm=f"lsci.processing.process {self.settings.mode}",
            parameters=self.settings.parameters() | self.corrections.parameters(),
            overwrite=overwrite,
        )

    def result(self, frames_read: int, seconds: float, *, reused: bool) -> ProcessingResult:
        return ProcessingResult(
            self.path,
            self.n_maps,
            frames_read,
            frames_read * self.bytes_per_frame,
            seconds,
            tuple(self.shapes),
            reused=reused,
        )


def plan_recording(
    path: str | Path, settings: ProcessingSettings, *, memory_bytes: int, calibrated: bool = True
) -> RecordingPlan:
    """Plan the chunks and products of one recording.

    With ``calibrated``, the recording's stored calibrations apply: its dark frame and camera
    noise (:meth:`Corrections.from_recording`) and, when ``settings.beta`` is None, its β.

    Raises
    ------
    lsci.recording.RecordingError
        When the file cannot be read as a recording.
    lsci.calibration.CalibrationMismatchError
        When the stored β was measured with other contrast settings.
    ValueError
        When the recording is too short for one map or a correction does not fit.
    """
    path = Path(path)
    with open_recording(path) as recording:
        n_frames = len(recording.frames)
        frame_shape = recording.frame_shape
        bytes_per_frame = recording.dtype.itemsize * frame_shape[0] * frame_shape[1]
        corrections = Corrections.from_recording(recording) if calibrated else Corrections()
        beta = settings.beta
        if beta is None and calibrated and settings.model == "tau":
            beta = beta_from_recording(recording, settings)
    settings = dataclasses.replace(settings, beta=1.0 if beta is None else beta)
    corrections.check(settings, frame_shape)
    n_maps = settings.n_maps(n_frames)
    if n_maps == 0:
        raise ValueError(
            f"{path}: {n_frames} frames are too few for one map "
            f"({settings.frames_per_map} frames per map)"
        )
    per_chunk = maps_per_chunk_for(frame_shape, settings, memory_bytes=memory_bytes)
    names = [CONTRAST_PRODUCT] + ([PERFUSION_PRODUCT] if settings.model != "none" else [])
    shape = (n_maps, *settings.map_shape(frame_shape))
    return RecordingPlan(
        path,
        settings,
        plan_chunks(n_frames, settings, maps_per_chunk=per_chunk),
        dict.fromkeys(names, shape),
        bytes_per_frame,
        corrections,
    )


def store_chunk(sink: DerivedSink, result: ChunkResult) -> None:
    """Write one chunk's maps into the recording's derived products."""
    sink.write(CONTRAST_PRODUCT, result.chunk.first_map, result.contrast)
    if result.perfusion is not None:
        sink.write(PERFUSION_PRODUCT, result.chunk.first_map, result.perfusion)


def process_recording(
    path: str | Path,
    settings: ProcessingSettings,
    *,
    memory_bytes: int = 512 << 20,
    overwrite: bool = False,
    calibrated: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ProcessingResult:
    """Compute contrast (and perfusion) for a whole recording and store them in the file.

    Frames are read in chunks that fit ``memory_bytes``; the next chunk is read while the
    current one is computed. The maps are stored as the derived products ``contrast`` and
    ``perfusion`` with the settings as provenance (see :class:`lsci.recording.sink.DerivedSink`).

    Parameters
    ----------
    path : str or Path
        A closed lsci recording.
    settings : ProcessingSettings
        What to compute.
    memory_bytes : int
        Rough budget for one chunk's frames and results.
    overwrite : bool
        Replace products of the same names computed with different settings.
    calibrated : bool
        Apply the recording's stored calibrations (see :func:`plan_recording`).
    progress : callable, optional
        Called as ``progress(maps_done, maps_total)`` after each chunk.

    Returns
    -------
    ProcessingResult

    Raises
    ------
    lsci.recording.DerivedProductExistsError
        When products of these names exist with other settings and ``overwrite`` is false.
    lsci.recording.RecordingError
        When the file cannot be read or written.
    ValueError
        When the recording is too short for one map.

    Examples
    --------
    >>> process_recording("run.h5", ProcessingSettings(mode="spatial", window=7))  # doctest: +SKIP
    """
    plan = plan_recording(path, settings, memory_bytes=memory_bytes, calibrated=calibrated)
    start = time.perf_counter()
    frames_read = 0
    with plan.sink(overwrite=overwrite) as sink:
        if sink.complete:
            return plan.result(0, 0.0, reused=True)
        for chunk, frames in _prefetched(plan.chunks, sink.read_frames):
            store_chunk(sink, process_chunk(frames, chunk, plan.settings, plan.corrections))
            frames_read += frames.shape[0]
            if progress is not None:
                progress(chunk.stop_map, plan.n_maps)
    return plan.result(frames_read, time.perf_counter() - start, reused=False)
