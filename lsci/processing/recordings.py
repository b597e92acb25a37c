"""Processing whole recordings into a product set beside them.

:func:`plan_recording` checks everything (the file, the settings, the calibrations, what is to
be stored) before anything is written; :func:`process_recording` then computes the chunks on
this machine, one chunk per core, while the next chunk is read and finished ones are written,
and stores the maps as a product set (:mod:`lsci.recording.products`) in
``session.lsci/`` beside ``session.h5``. The recording is only ever opened read-only.
:mod:`lsci.processing.distributed` runs the same plan on a Dask cluster. The recording's
stored calibrations are applied as for any stack
(:meth:`lsci.processing.calibrations.Calibrations.from_recording`,
:func:`lsci.processing.calibrations.resolve`).
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numba
import numpy as np
import numpy.typing as npt

from lsci.core.models import get_model
from lsci.processing._kernels import count_not_finite
from lsci.processing.calibrations import Calibrations, resolve
from lsci.processing.chunks import (
    Chunk,
    ChunkResult,
    balance,
    maps_per_chunk_for,
    plan_chunks,
    process_chunk,
)
from lsci.processing.settings import ProcessingSettings
from lsci.recording import FrameStack, RecordingStateError, open_recording
from lsci.recording.atomic import in_use
from lsci.recording.products import ProductSetWriter

__all__ = [
    "CONTRAST_PRODUCT",
    "PERFUSION_PRODUCT",
    "STORAGE_DTYPES",
    "OutputWarning",
    "ProcessingResult",
    "RecordingPlan",
    "plan_recording",
    "process_recording",
]

Loaded = TypeVar("Loaded")

CONTRAST_PRODUCT = "contrast"
PERFUSION_PRODUCT = "perfusion"
#: Precisions products can be stored in. float16 keeps 11 significant bits (relative rounding
#: error ≤ 2⁻¹¹ ≈ 4.9e-4) up to 65504: enough for K, too little range for 1/τc or 1/K² maps
#: of fast flow, which then overflow to inf (counted and warned about).
STORAGE_DTYPES = ("float32", "float16")
#: Memory budget of one chunk by default. A run holds a few chunks' memory at once and touches
#: it fresh (a page fault per 4 kB, as costly as the computation on a virtual machine that
#: hands freed memory back to its host); 16 MiB is one 1280×1024 map of 8 frames, or several
#: of smaller frames, per chunk.
CHUNK_BYTES = 16 << 20


class OutputWarning(UserWarning):
    """The stored maps are mostly not finite, or values did not fit the storage precision."""


@dataclass
class OutputCheck:
    """Counts of values that are not finite in each stored product, and float16 overflows."""

    values: dict[str, int] = field(default_factory=dict)
    not_finite: dict[str, int] = field(default_factory=dict)
    overflowed: dict[str, int] = field(default_factory=dict)

    def add(self, other: OutputCheck) -> None:
        for name in other.values:
            for mine, theirs in (
                (self.values, other.values),
                (self.not_finite, other.not_finite),
                (self.overflowed, other.overflowed),
            ):
                mine[name] = mine.get(name, 0) + theirs.get(name, 0)

    def warnings(self, path: Path) -> list[str]:
        """What to tell the user: mostly non-finite products, and float16 overflow."""
        messages = []
        for name, total in self.values.items():
            bad = self.not_finite.get(name, 0)
            if total and bad > total / 2:
                messages.append(
                    f"{path}: {100 * bad / total:.0f} % of the {name} values are not finite "
                    "(NaN or inf): check the calibrations (gain, dark frame, β) and the exposure"
                )
            over = self.overflowed.get(name, 0)
            if over:
                messages.append(
                    f"{path}: {over} {name} values exceed float16's range (65504) and are "
                    "stored as inf; use float32"
                )
        return messages


def stored_maps(
    result: ChunkResult, products: Sequence[str], dtype: np.dtype[Any]
) -> tuple[dict[str, npt.NDArray[Any]], OutputCheck]:
    """The maps of one chunk as they are stored, and their check."""
    computed = {CONTRAST_PRODUCT: result.contrast, PERFUSION_PRODUCT: result.perfusion}
    maps: dict[str, npt.NDArray[Any]] = {}
    check = OutputCheck()
    for name in products:
        values = computed[name]
        assert values is not None
        with np.errstate(over="ignore"):  # overflow is counted below and reported once
            stored = values if values.dtype == dtype else values.astype(dtype)
        check.values[name] = values.size
        check.not_finite[name] = count_not_finite(values.reshape(-1))
        if stored is not values:
            check.overflowed[name] = int(np.count_nonzero(np.isinf(stored) & np.isfinite(values)))
        maps[name] = stored
    return maps, check


@dataclass(frozen=True)
class ProcessingResult:
    """What :func:`process_recording` did.

    Attributes
    ----------
    path : Path
        The recording.
    product_set : Path
        The product set's folder.
    maps : int
        Maps per product.
    frames_read : int
        Raw frames read (0 when an existing set was kept).
    bytes_read, bytes_written : int
        Raw frame bytes read, and product bytes stored (the maps' values).
    seconds : float
        Wall time of the computation.
    products : tuple of str
        The products' full names, ``"<set>/<product>"``, as
        :attr:`lsci.recording.Recording.derived` lists them.
    reused : bool
        An existing set with these settings was kept; nothing was computed.
    """

    path: Path
    product_set: Path
    maps: int
    frames_read: int
    bytes_read: int
    bytes_written: int
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
    chunks: list[Chunk], read: Callable[[int, int], Loaded]
) -> Generator[tuple[Chunk, Loaded], None, None]:
    """Yield each chunk with its frames, reading the next chunk in a thread meanwhile.

    Closing the generator (or an error) waits for the reading thread, so the file can be
    closed safely afterwards.
    """
    loaded: dict[str, Any] = {}

    def load(chunk: Chunk) -> None:
        try:
            loaded["frames"] = read(chunk.frame_start, chunk.frame_stop)
        except BaseException as exc:  # re-raised in the consuming thread below
            loaded["error"] = exc

    reader: threading.Thread | None = None
    try:
        for position, chunk in enumerate(chunks):
            if reader is None:
                load(chunk)
            else:
                reader.join()
            reader = None
            if "error" in loaded:
                raise loaded.pop("error")
            frames = loaded.pop("frames")
            if position + 1 < len(chunks):
                reader = threading.Thread(target=load, args=(chunks[position + 1],), daemon=True)
                reader.start()
            yield chunk, frames
    finally:
        if reader is not None:
            reader.join()


@dataclass(frozen=True)
class RecordingPlan:
    """Everything a runner needs before computing a recording, checked.

    Attributes
    ----------
    path : Path
        The recording.
    settings : ProcessingSettings
        The settings, β resolved.
    calibrations : Calibrations
        The calibrations applied.
    chunks : list of Chunk
        The work.
    products : tuple of str
        What is stored (``"contrast"``, ``"perfusion"``).
    dtype : numpy dtype
        The storage precision.
    map_shape : tuple of int
        ``(H', W')`` of one map.
    n_frames, bytes_per_frame : int
        The raw frames.
    """

    path: Path
    settings: ProcessingSettings
    calibrations: Calibrations
    chunks: list[Chunk]
    products: tuple[str, ...]
    dtype: np.dtype[Any]
    map_shape: tuple[int, int]
    n_frames: int
    bytes_per_frame: int

    @property
    def n_maps(self) -> int:
        return self.chunks[-1].stop_map

    @property
    def raw_bytes(self) -> int:
        """Bytes of the raw frames."""
        return self.n_frames * self.bytes_per_frame

    @property
    def bytes_to_write(self) -> int:
        """Bytes of the maps that will be stored (file overhead aside)."""
        per_map = self.map_shape[0] * self.map_shape[1] * self.dtype.itemsize
        return len(self.products) * self.n_maps * per_map

    def cost(self) -> str:
        """One line: what will be written, against the raw frames."""
        ratio = self.bytes_to_write / self.raw_bytes
        per_map = self.settings.frames_per_map
        return (
            f"{self.path}: {self.n_frames} frames -> {self.n_maps} maps "
            f"({per_map} frame{'s' if per_map > 1 else ''} per map) of "
            f"{', '.join(self.products)} in {self.dtype.name}: writes "
            f"{_size(self.bytes_to_write)}, {ratio:.2f}× the {_size(self.raw_bytes)} of raw frames"
        )

    def writer(self, *, overwrite: bool) -> ProductSetWriter:
        """The product set these maps go into, with their provenance."""
        shape = (self.n_maps, *self.map_shape)
        applied = json.dumps(self.calibrations.parameters(), sort_keys=True)
        models = {
            CONTRAST_PRODUCT: get_model("contrast"),
            PERFUSION_PRODUCT: self.settings.perfusion_model,
        }
        attributes = {
            name: {
                "quantity": models[name].symbol,
                "unit": models[name].unit,
                "model": models[name].name,
                "calibrations": applied,
            }
            for name in self.products
        }
        return ProductSetWriter(
            self.path,
            dict.fromkeys(self.products, shape),
            algorithm=self.settings.algorithm,
            parameters=self.settings.parameters() | self.calibrations.parameters(),
            attributes=attributes,
            dtype=self.dtype,
            overwrite=overwrite,
        )

    def result(
        self, out: ProductSetWriter, frames_read: int, seconds: float, *, reused: bool
    ) -> ProcessingResult:
        return ProcessingResult(
            self.path,
            out.path,
            self.n_maps,
            frames_read,
            frames_read * self.bytes_per_frame,
            0 if reused else self.bytes_to_write,
            seconds,
            tuple(f"{out.path.name}/{name}" for name in self.products),
            reused=reused,
        )


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes} B"


def plan_recording(
    path: str | Path,
    settings: ProcessingSettings,
    *,
    memory_bytes: int = CHUNK_BYTES,
    calibrated: bool = True,
    products: Sequence[str] | None = None,
    dtype: str = "float32",
) -> RecordingPlan:
    """Check and plan the processing of one recording; nothing is written.

    With ``calibrated``, the recording's stored calibrations apply: its dark frame and camera
    noise and, when ``settings.beta`` is None, its β (:meth:`Calibrations.from_recording`).

    Parameters
    ----------
    path : str or Path
        The recording.
    settings : ProcessingSettings
        What to compute.
    memory_bytes : int
        Rough budget for one chunk's frames and maps.
    calibrated : bool
        Apply the recording's stored calibrations.
    products : sequence of str, optional
        What to store: ``"contrast"`` and/or ``"perfusion"``. Default: every map the model
        gives (contrast, and perfusion unless the model is ``'contrast'``).
    dtype : {'float32', 'float16'}
        Storage precision (see :data:`STORAGE_DTYPES`).

    Raises
    ------
    lsci.recording.RecordingError
        When the file cannot be read as a recording, or is still being recorded
        (:class:`lsci.recording.RecordingStateError`).
    lsci.calibration.CalibrationMismatchError
        When the stored β was measured with other contrast settings.
    ValueError
        When the recording is too short for one map, the window does not fit the frames, a
        correction does not fit, or ``products`` or ``dtype`` is invalid.
    """
    path = Path(path)
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {', '.join(STORAGE_DTYPES)}")
    available = [CONTRAST_PRODUCT] + (
        [PERFUSION_PRODUCT] if settings.perfusion_model.derived else []
    )
    chosen = tuple(available if products is None else dict.fromkeys(products))
    unknown = [name for name in chosen if name not in available]
    if unknown or not chosen:
        raise ValueError(
            f"products {', '.join(unknown) or 'none'} cannot be stored: model "
            f"{settings.model!r} gives {', '.join(available)}"
        )
    if memory_bytes < 1:
        raise ValueError(f"memory_bytes={memory_bytes!r} must be positive")
    busy = in_use(path)
    with open_recording(path) as recording:
        if busy and not recording.closed_cleanly:
            raise RecordingStateError(
                path,
                "is still being recorded (or open in another program while not closed "
                "cleanly); process it once the recording is closed",
            )
        n_frames = len(recording.frames)
        frame_shape = recording.frame_shape
        bytes_per_frame = recording.dtype.itemsize * frame_shape[0] * frame_shape[1]
        stored = Calibrations.from_recording(recording, settings) if calibrated else None
    settings, calibrations = resolve(settings, stored, frame_shape)
    if settings.n_maps(n_frames) == 0:
        raise ValueError(
            f"{path}: {n_frames} frames are too few for one map "
            f"({settings.frames_per_map} frames per map)"
        )
    converted = calibrations.dark is not None or calibrations.camera is not None
    per_chunk = maps_per_chunk_for(
        frame_shape,
        settings,
        memory_bytes=memory_bytes,
        bytes_per_pixel=bytes_per_frame // (frame_shape[0] * frame_shape[1]) + 4 * converted,
    )
    return RecordingPlan(
        path,
        settings,
        calibrations,
        plan_chunks(n_frames, settings, maps_per_chunk=per_chunk),
        chosen,
        np.dtype(dtype),
        settings.map_shape(frame_shape),
        n_frames,
        bytes_per_frame,
    )


@dataclass(frozen=True)
class _ChunkMemory:
    """Buffers for one chunk: its raw frames (bytes, see ``FrameStack.read``) and its maps."""

    frames: npt.NDArray[np.uint8]
    contrast: npt.NDArray[np.float32]
    perfusion: npt.NDArray[np.float32] | None

    @classmethod
    def for_chunks(
        cls, plan: RecordingPlan, chunks: list[Chunk], frames: FrameStack
    ) -> _ChunkMemory:
        most = max(chunk.frame_stop - chunk.frame_start for chunk in chunks)
        maps = (max(chunk.stop_map - chunk.first_map for chunk in chunks), *plan.map_shape)
        derived = plan.settings.perfusion_model.derived
        return cls(
            np.empty(frames.buffer_bytes(most), np.uint8),
            np.empty(maps, np.float32),
            np.empty(maps, np.float32) if derived else None,
        )


def _one_thread(
    frames: npt.NDArray[Any],
    chunk: Chunk,
    settings: ProcessingSettings,
    calibrations: Calibrations,
    out: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None],
) -> ChunkResult:
    """:func:`process_chunk` with numba's kernels on this thread alone.

    Chunks are computed side by side, one per thread: on a busy machine, a kernel split over
    several threads waits for whichever thread was descheduled at each step, while whole
    chunks only share the cores.
    """
    numba.set_num_threads(1)  # per thread: the other threads keep their own setting
    return process_chunk(frames, chunk, settings, calibrations, out=out)


def warn_about(check: OutputCheck, path: Path) -> None:
    for message in check.warnings(path):
        warnings.warn(message, OutputWarning, stacklevel=3)


def process_recording(
    path: str | Path,
    settings: ProcessingSettings,
    *,
    products: Sequence[str] | None = None,
    dtype: str = "float32",
    memory_bytes: int = CHUNK_BYTES,
    overwrite: bool = False,
    calibrated: bool = True,
    progress: Callable[[int, int], None] | None = None,
    plan: RecordingPlan | None = None,
) -> ProcessingResult:
    """Compute contrast and perfusion for a whole recording and store them beside it.

    The maps are stored as a product set in ``session.lsci/`` beside ``session.h5``, named by
    the settings (:class:`lsci.recording.products.ProductSetWriter`), with the settings and
    calibrations as provenance and each product's model and unit. The recording is opened
    read-only. Frames are read in chunks that fit ``memory_bytes``; chunks are computed side by
    side, one per numba thread, while the next is read and finished ones are written. Nothing
    is published unless every map was computed: an error or interruption leaves no product
    set.

    Parameters
    ----------
    path : str or Path
        An lsci recording.
    settings : ProcessingSettings
        What to compute.
    products : sequence of str, optional
        What to store (:func:`plan_recording`); default every map the model gives.
    dtype : {'float32', 'float16'}
        Storage precision.
    memory_bytes : int
        Rough budget for one chunk's frames and results.
    overwrite : bool
        Recompute (and replace) a product set with the same settings; sets with other
        settings are never touched.
    calibrated : bool
        Apply the recording's stored calibrations (see :func:`plan_recording`).
    progress : callable, optional
        Called as ``progress(maps_done, maps_total)`` after each chunk.
    plan : RecordingPlan, optional
        A plan made by :func:`plan_recording` (then the arguments above that it covers are
        not used).

    Returns
    -------
    ProcessingResult

    Warns
    -----
    OutputWarning
        When most values of a product are not finite (absurd calibrations), or float16
        storage overflowed.

    Raises
    ------
    lsci.recording.RecordingError
        When the file cannot be read, its frames fail their checksum
        (:class:`lsci.recording.CorruptRecordingError`) or the product set cannot be written
        (:class:`lsci.recording.RecordingWriteError`, e.g. a full disk).
    ValueError
        As :func:`plan_recording`.

    Examples
    --------
    >>> process_recording("run.h5", ProcessingSettings(mode="spatial", average=8))  # doctest: +SKIP
    """
    if plan is None:
        plan = plan_recording(
            path,
            settings,
            memory_bytes=memory_bytes,
            calibrated=calibrated,
            products=products,
            dtype=dtype,
        )
    start = time.perf_counter()
    frames_read = 0
    check = OutputCheck()
    workers = max(1, int(numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    work = balance(plan.chunks, plan.settings, workers)
    with plan.writer(overwrite=overwrite) as out, contextlib.ExitStack() as stack:
        if out.complete:
            return plan.result(out, 0, 0.0, reused=True)

        # Memory for a chunk's frames and maps, reused from chunk to chunk: fresh memory costs
        # a page fault per 4 kB, as much as the computation. Enough for every chunk that can be
        # held at once (computing, read ahead, handed over, and two waiting to be written), so
        # that neither the computation nor the reading waits for memory while the disk keeps
        # up; when it does not, reading waits until a write returns its memory.
        pool: queue.SimpleQueue[_ChunkMemory] = queue.SimpleQueue()

        def read(first: int, stop: int) -> tuple[npt.NDArray[Any], _ChunkMemory]:
            memory = pool.get()
            return recording.frames.read(first, stop, buffer=memory.frames), memory

        def store(result: ChunkResult, memory: _ChunkMemory) -> OutputCheck:
            try:
                maps, chunk_check = stored_maps(result, plan.products, plan.dtype)
                for name, values in maps.items():
                    out.write(name, result.chunk.first_map, values)
            finally:
                # Even after a failed write: a reader waiting for memory must not wait forever
                # (the failure is raised when its result is collected).
                pool.put(memory)
            return chunk_check

        recording = stack.enter_context(open_recording(plan.path))
        for _ in range(workers + 4):
            pool.put(_ChunkMemory.for_chunks(plan, work, recording.frames))
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="lsci-compute") as computing,
            ThreadPoolExecutor(1, thread_name_prefix="lsci-write") as writing,
            contextlib.closing(_prefetched(work, read)) as chunks,
        ):
            computed: deque[tuple[Future[ChunkResult], _ChunkMemory]] = deque()
            # Writes go one after the other in their own thread; nothing waits for them but
            # the memory they return and the end of the run.
            stored: deque[Future[OutputCheck]] = deque()

            def collect_stored(*, wait: bool) -> None:
                while stored and (wait or stored[0].done()):
                    check.add(stored.popleft().result())

            def store_next() -> None:
                nonlocal frames_read
                future, memory = computed.popleft()
                result = future.result()
                stored.append(writing.submit(store, result, memory))
                collect_stored(wait=False)
                frames_read += result.chunk.frame_stop - result.chunk.frame_start
                if progress is not None:
                    progress(result.chunk.stop_map, plan.n_maps)

            try:
                for chunk, (frames, memory) in chunks:
                    computed.append(
                        (
                            computing.submit(
                                _one_thread,
                                frames,
                                chunk,
                                plan.settings,
                                plan.calibrations,
                                (memory.contrast, memory.perfusion),
                            ),
                            memory,
                        )
                    )
                    del frames
                    if len(computed) >= workers:
                        store_next()
                while computed:
                    store_next()
                collect_stored(wait=True)
            finally:
                # Nothing may still compute or write once the set is published or discarded.
                unfinished: list[Future[Any]] = [
                    *(future for future, _ in computed),
                    *stored,
                ]
                for future in unfinished:
                    future.cancel()
                for future in unfinished:
                    if not future.cancelled():
                        with contextlib.suppress(BaseException):
                            future.result()
    warn_about(check, plan.path)
    return plan.result(out, frames_read, time.perf_counter() - start, reused=False)
