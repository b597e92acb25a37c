"""Record a simulated needling session (:class:`lsci.sim.needling.NeedlingScene`) to a file.

Two ways, one scene:

- :func:`record_needling_session` films it in real time with the simulated camera through the
  live acquisition pipeline, events marked as the pipeline marks them: what a user at a rig
  does, and what ``lsci demo`` shows.
- :func:`write_needling_recording` writes the frames of :func:`lsci.sim.needling.simulate_needling`
  with the recording writer, with evenly spaced time stamps, as fast as the simulator runs: the
  napari sample data and the tests.

:func:`record_simulated` records any :class:`~lsci.drivers.simulated.SpeckleScene` the first way
(the demo's dark and static-target calibrations).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lsci.acquisition import (
    AcquisitionPipeline,
    LiveSettings,
    PipelineStateError,
    PipelineStats,
    recording_metadata,
)
from lsci.drivers.simulated import SimulatedCamera, SpeckleScene
from lsci.recording import AcquisitionMetadata, RecordingWriter
from lsci.sim.needling import NeedlingScene, simulate_needling

__all__ = ["Report", "record_needling_session", "record_simulated", "write_needling_recording"]

Report = Callable[[str], None]
"""Receives progress text: lines end with a newline; status updates start with ``\\r``."""


def _quiet(text: str) -> None:
    """A report that shows nothing."""


def _status(path: Path, report: Report) -> Callable[[PipelineStats], None]:
    """A pipeline listener that reports the recording's progress on one status line."""

    def status(stats: PipelineStats) -> None:
        dropped = stats.frames_dropped_camera + stats.frames_dropped_pipeline
        report(
            f"\r  {path.name}: {stats.frames_recorded} frames recorded, "
            f"{stats.frame_rate_hz:5.1f} fps, {dropped} dropped, {stats.live_maps} live maps"
        )

    return status


def _run_for(
    pipeline: AcquisitionPipeline, duration_s: float, marks: Sequence[tuple[float, str]]
) -> None:
    """Let a started pipeline run ``duration_s``, marking each event when its time comes."""
    start = time.monotonic()
    pending = sorted(marks)
    done = threading.Event()
    while not done.wait(0.02):
        elapsed = time.monotonic() - start
        while pending and elapsed >= pending[0][0]:
            pipeline.mark_event(pending.pop(0)[1])
        if elapsed >= duration_s:
            done.set()


def record_simulated(
    path: str | Path,
    scene: SpeckleScene,
    duration_s: float,
    *,
    exposure_s: float,
    frame_rate_hz: float,
    window: int = 7,
    marks: Sequence[tuple[float, str]] = (),
    seed: int = 0,
    report: Report = _quiet,
) -> Path:
    """Record ``duration_s`` of the simulated camera (Mono12) through the live pipeline.

    Parameters
    ----------
    path : str or Path
        Recording to write (replaced if it exists).
    scene : SpeckleScene
        What the camera sees; its scripted changes count from the start of the acquisition.
    duration_s : float
        How long to record, in seconds of wall-clock time.
    exposure_s, frame_rate_hz : float
        Camera settings.
    window : int
        Spatial contrast window of the live flow-index map, in pixels.
    marks : sequence of (time_s, label)
        Events to mark, seconds after the start.
    seed : int
        Seed of the camera's speckle and noise.
    report : callable
        Receives progress text.

    Returns
    -------
    Path
        The recording.
    """
    path = Path(path)
    with SimulatedCamera(scene, seed=seed) as camera:
        camera.set("pixel_format", "Mono12")
        camera.set("exposure_s", exposure_s)
        camera.set("frame_rate_hz", frame_rate_hz)
        writer = RecordingWriter(
            path,
            recording_metadata(camera, notes=f"lsci demo: {path.stem}"),
            frame_shape=camera.frame_shape,
            dtype=camera.frame_dtype,
            overwrite=True,
        )
        live = LiveSettings(window=window, model="inverse_k2", max_rate_hz=5.0)
        pipeline = AcquisitionPipeline(camera, writer, live=live)
        pipeline.events.stats_updated.connect(_status(path, report))
        try:
            pipeline.start()
            _run_for(pipeline, duration_s, marks)
        except BaseException:
            # Interrupted (Ctrl-C): the recording is still closed complete, and no thread is
            # left writing it while the interpreter exits.
            try:
                pipeline.stop(raise_on_error=False)
            except PipelineStateError:  # stopped before the pipeline started
                writer.close()
            raise
        summary = pipeline.stop()
    stats = summary.stats
    dropped = stats.frames_dropped_camera + stats.frames_dropped_pipeline
    report(
        f"\r  {path.name}: {stats.frames_recorded} frames in {summary.duration_s:.1f} s "
        f"({summary.mean_frame_rate_hz:.1f} fps), {dropped} dropped\n"
    )
    return path


def record_needling_session(
    path: str | Path,
    scene: NeedlingScene,
    duration_s: float,
    *,
    exposure_s: float,
    frame_rate_hz: float,
    window: int = 7,
    seed: int = 0,
    report: Report = _quiet,
) -> Path:
    """Film a needling session in real time: simulated camera, live pipeline, events marked.

    Parameters
    ----------
    path : str or Path
        Recording to write (replaced if it exists).
    scene : NeedlingScene
        The session; its times count from the start of the acquisition, and its events are
        marked through the pipeline when they come.
    duration_s : float
        How long to record, in seconds.
    exposure_s, frame_rate_hz : float
        Camera settings.
    window : int
        Spatial contrast window of the live map, in pixels.
    seed : int
        Seed of the camera's speckle and noise.
    report : callable
        Receives progress text.

    Returns
    -------
    Path
        The recording: raw Mono12 frames (with the camera's black level), time stamps and the
        ``"needling start"`` and ``"needling end"`` events; no calibrations.
    """
    return record_simulated(
        path,
        SpeckleScene.needling(scene),
        duration_s,
        exposure_s=exposure_s,
        frame_rate_hz=frame_rate_hz,
        window=window,
        marks=scene.events,
        seed=seed,
        report=report,
    )


def write_needling_recording(
    path: str | Path,
    scene: NeedlingScene,
    n_frames: int,
    *,
    frame_interval_s: float,
    exposure_s: float,
    seed: int = 0,
    pixel_size_um: float | None = None,
    magnification: float | None = None,
) -> Path:
    """Write a needling session frame by frame, with evenly spaced time stamps.

    The frames come from :func:`lsci.sim.needling.simulate_needling`; frame ``i`` is stamped
    ``i * frame_interval_s`` after the start, and the scene's events at their times, so the
    recording reads as if it had been filmed at that rate.

    Parameters
    ----------
    path : str or Path
        Recording to write (must not exist).
    scene : NeedlingScene
        The session.
    n_frames : int
        Number of frames.
    frame_interval_s, exposure_s : float
        Time between frames and exposure time, in seconds.
    seed : int
        Seed of the speckle and the camera noise.
    pixel_size_um, magnification : float, optional
        Optics to store in the metadata (unknown by default).

    Returns
    -------
    Path
        The recording: 12-bit frames without a black level, the ``"needling start"`` and
        ``"needling end"`` events, no calibrations.
    """
    session = simulate_needling(
        scene, n_frames, frame_interval_s=frame_interval_s, exposure_s=exposure_s, seed=seed
    )
    meta = AcquisitionMetadata(
        exposure_s=exposure_s,
        frame_rate_hz=1.0 / frame_interval_s,
        bit_depth=session.bit_depth,
        pixel_format=f"Mono{session.bit_depth}",
        camera_model="lsci simulator",
        pixel_size_um=pixel_size_um,
        magnification=magnification,
        notes="simulated needling session",
    )
    with RecordingWriter(path, meta, frame_shape=scene.shape, dtype=np.uint16) as writer:
        start = writer.start_host_time_ns
        writer.append_many(
            session.frames,
            frame_ids=np.arange(n_frames),
            host_timestamps_ns=start + np.round(session.times_s * 1e9).astype(np.int64),
        )
        for time_s, label in scene.events:
            writer.add_event(label, host_time_ns=start + round(time_s * 1e9))
    return Path(path)
