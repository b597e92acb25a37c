"""Processing whole recordings into their derived products ``contrast`` and ``perfusion``.

:func:`process_recording` plans the chunks of a recording (:func:`plan_recording`), computes
them on this machine while the next chunk is read, and stores the maps in the recording with
their provenance; :mod:`lsci.processing.distributed` runs the same plan on a Dask cluster. The
recording's stored calibrations are applied as for any stack
(:meth:`lsci.processing.calibrations.Calibrations.from_recording`,
:func:`lsci.processing.calibrations.resolve`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt

from lsci.processing.calibrations import Calibrations, resolve
from lsci.processing.chunks import (
    Chunk,
    ChunkResult,
    maps_per_chunk_for,
    plan_chunks,
    process_chunk,
)
from lsci.processing.settings import ProcessingSettings
from lsci.recording import open_recording
from lsci.recording.sink import DerivedSink

__all__ = [
    "CONTRAST_PRODUCT",
    "PERFUSION_PRODUCT",
    "ProcessingResult",
    "RecordingPlan",
    "plan_recording",
    "process_recording",
    "store_chunk",
]

# Product names in the recording's /derived group.
CONTRAST_PRODUCT = "contrast"
PERFUSION_PRODUCT = "perfusion"


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
    calibrations: Calibrations

    @property
    def n_maps(self) -> int:
        return self.chunks[-1].stop_map

    def sink(self, *, overwrite: bool) -> DerivedSink:
        """The derived-product sink these maps are written into, with their provenance."""
        return DerivedSink(
            self.path,
            self.shapes,
            algorithm=self.settings.algorithm,
            parameters=self.settings.parameters() | self.calibrations.parameters(),
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
    noise and, when ``settings.beta`` is None, its β (:meth:`Calibrations.from_recording`).

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
        stored = Calibrations.from_recording(recording, settings) if calibrated else None
    settings, calibrations = resolve(settings, stored, frame_shape)
    n_maps = settings.n_maps(n_frames)
    if n_maps == 0:
        raise ValueError(
            f"{path}: {n_frames} frames are too few for one map "
            f"({settings.frames_per_map} frames per map)"
        )
    per_chunk = maps_per_chunk_for(frame_shape, settings, memory_bytes=memory_bytes)
    names = [CONTRAST_PRODUCT] + ([PERFUSION_PRODUCT] if settings.perfusion_model.derived else [])
    shape = (n_maps, *settings.map_shape(frame_shape))
    return RecordingPlan(
        path,
        settings,
        plan_chunks(n_frames, settings, maps_per_chunk=per_chunk),
        dict.fromkeys(names, shape),
        bytes_per_frame,
        calibrations,
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
            store_chunk(sink, process_chunk(frames, chunk, plan.settings, plan.calibrations))
            frames_read += frames.shape[0]
            if progress is not None:
                progress(chunk.stop_map, plan.n_maps)
    return plan.result(frames_read, time.perf_counter() - start, reused=False)
