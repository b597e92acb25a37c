"""The acquisition pipeline with the simulated camera: recording, drops, failures, events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lsci.acquisition import (
    AcquisitionPipeline,
    FrameDrop,
    FrameRing,
    LiveSettings,
    PipelineState,
    PipelineStateError,
    PipelineStats,
    PipelineSummary,
    recording_metadata,
)
from lsci.drivers.base import (
    CameraDisconnectedError,
    CameraState,
    FrameInfo,
    IncompatibleStateError,
)
from lsci.drivers.simulated import (
    SimulatedCamera,
    SimulatedFaults,
    SpeckleScene,
    decode_frame_id,
)
from lsci.recording import Event, RecordingWriteError, RecordingWriter, open_recording

pytestmark = pytest.mark.serial


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


def open_camera(faults: SimulatedFaults | None = None, fps: float = 200.0) -> SimulatedCamera:
    cam = SimulatedCamera(
        SpeckleScene.skin((48, 64), needling_time_s=None),
        mode="replay",
        replay_frames=4,
        faults=faults,
        stamp_frame_id=True,
    )
    cam.open()
    cam.set("frame_rate_hz", fps)
    cam.set("exposure_s", 0.001)
    return cam


def make_writer(
    cam: SimulatedCamera, path: Path, cls: type[RecordingWriter] = RecordingWriter
) -> RecordingWriter:
    return cls(
        path,
        recording_metadata(cam),
        frame_shape=cam.frame_shape,
        dtype=cam.frame_dtype,
        flush_interval_s=0.1,
    )


def run_for(pipeline: AcquisitionPipeline, seconds: float) -> PipelineSummary:
    pipeline.start()
    time.sleep(seconds)
    return pipeline.stop()


def check_file_matches(path: Path, summary: PipelineSummary) -> np.ndarray:
    """Every frame in the file is the one its id names; returns the stored ids."""
    with open_recording(path) as rec:
        assert rec.closed_cleanly
        ids = rec.frame_ids.astype(np.int64)
        frames = rec.frames[:]
        assert len(rec) == summary.stats.frames_recorded
        assert [decode_frame_id(f) for f in frames] == ids.tolist()
        assert np.all(np.diff(ids) > 0)
        assert np.all(np.diff(rec.camera_timestamps_ns) > 0)
        assert np.all(np.diff(rec.host_timestamps_ns) >= 0)
    return ids


def test_every_frame_is_recorded_in_order(tmp_path: Path) -> None:
    cam = open_camera()
    path = tmp_path / "run.h5"
    try:
        summary = run_for(AcquisitionPipeline(cam, make_writer(cam, path)), 1.0)
        camera_stats = cam.stats()
    finally:
        cam.close()
    stats = summary.stats
    assert stats.frames_received > 100
    # The frames the camera returned at its stop are received and recorded too.
    assert stats.frames_received == camera_stats.frames_read
    assert stats.frames_recorded == stats.frames_received
    assert stats.frames_dropped_camera == stats.frames_dropped_pipeline == 0
    assert stats.bytes_recorded == stats.frames_recorded * 48 * 64
    assert summary.error is None
    assert summary.drops == ()
    ids = check_file_matches(path, summary)
    assert ids.tolist() == list(range(camera_stats.frames_read))
    with open_recording(path) as rec:
        assert rec.metadata.frame_rate_hz == 200.0
        assert rec.metadata.exposure_s == 0.001
        assert rec.dropped_frames == 0


def test_camera_drops_are_counted_and_left_as_id_gaps(tmp_path: Path) -> None:
    cam = open_camera(SimulatedFaults(drop_frame_ids={5, 6, 40}))
    path = tmp_path / "gaps.h5"
    try:
        summary = run_for(AcquisitionPipeline(cam, make_writer(cam, path)), 0.6)
    finally:
        cam.close()
    assert summary.stats.frames_dropped_camera == 3
    assert summary.stats.frames_dropped_pipeline == 0
    ids = check_file_matches(path, summary)
    assert not {5, 6, 40} & set(ids.tolist())
    assert ids.tolist() == [i for i in range(int(ids[-1]) + 1) if i not in {5, 6, 40}]
    with open_recording(path) as rec:
        assert rec.dropped_frames == 3
        assert rec.events == ()


class SlowWriter(RecordingWriter):
    """A recorder that cannot keep up: every append takes 40 ms."""

    def append_many(self, frames: np.ndarray, **kwargs: Any) -> None:
        time.sleep(0.04)
        super().append_many(frames, **kwargs)


def test_a_slow_recorder_drops_frames_counted_reported_and_stored(tmp_path: Path) -> None:
    cam = open_camera(fps=400.0)
    path = tmp_path / "slow.h5"
    reported: list[FrameDrop] = []
    try:
        pipeline = AcquisitionPipeline(cam, make_writer(cam, path, SlowWriter), ring_frames=4)
        pipeline.events.frames_dropped.connect(reported.append)
        summary = run_for(pipeline, 0.8)
    finally:
        cam.close()
    stats = summary.stats
    assert stats.frames_dropped_pipeline > 0
    assert stats.frames_dropped_camera == 0
    assert stats.frames_received == stats.frames_recorded + stats.frames_dropped_pipeline
    assert sum(d.count for d in summary.drops) == stats.frames_dropped_pipeline
    assert reported == list(summary.drops)
    ids = check_file_matches(path, summary).tolist()
    with open_recording(path) as rec:
        events = rec.events
        # The writer counts every id gap between stored frames: here the pipeline's drops.
        gaps = sum(d.count for d in summary.drops if d.last_frame_id < ids[-1])
        assert rec.dropped_frames == gaps
    assert [e.label for e in events] == [d.label for d in summary.drops]
    for event, drop in zip(events, summary.drops, strict=True):
        assert event.label.startswith("pipeline drop: ")
        # The event sits exactly at the gap the drop left in the stored ids.
        assert ids[event.frame_index - 1] == drop.first_frame_id - 1
        if event.frame_index < len(ids):
            assert ids[event.frame_index] == drop.last_frame_id + 1


def test_a_disconnect_leaves_a_valid_file_and_a_clear_error(tmp_path: Path) -> None:
    cam = open_camera(SimulatedFaults(disconnect_after_frames=30))
    path = tmp_path / "lost.h5"
    errors: list[BaseException] = []
    try:
        pipeline = AcquisitionPipeline(cam, make_writer(cam, path))
        pipeline.events.error.connect(errors.append)
        pipeline.start()
        assert pipeline.wait(10.0), "the pipeline must end on its own after a disconnect"
        with pytest.raises(CameraDisconnectedError, match="disconnected after 30 frames"):
            pipeline.stop()
        summary = pipeline.stop(raise_on_error=False)
    finally:
        cam.close()
    assert isinstance(summary.error, CameraDisconnectedError)
    assert errors == [summary.error]
    assert cam.state is CameraState.CLOSED
    assert summary.stats.frames_recorded == 30
    assert check_file_matches(path, summary).tolist() == list(range(30))


class FullDiskWriter(RecordingWriter):
    """A recorder whose disk fills after 20 frames (no real part fails on cue)."""

    def append_many(self, frames: np.ndarray, **kwargs: Any) -> None:
        if self.frames_written + len(frames) > 20:
            raise RecordingWriteError(self.path, "writing frames failed: no space left on device")
        super().append_many(frames, **kwargs)


def test_a_full_disk_stops_the_camera_and_keeps_the_file(tmp_path: Path) -> None:
    cam = open_camera()
    path = tmp_path / "full.h5"
    try:
        pipeline = AcquisitionPipeline(cam, make_writer(cam, path, FullDiskWriter))
        pipeline.start()
        assert pipeline.wait(10.0)
        with pytest.raises(PipelineStateError):
            pipeline.mark_event("too late")
        summary = pipeline.stop(raise_on_error=False)
    finally:
        cam.close()
    assert isinstance(summary.error, RecordingWriteError)
    assert "no space left" in str(summary.error)
    stats = summary.stats
    assert 0 < stats.frames_recorded <= 20
    assert stats.frames_received == stats.frames_recorded + stats.frames_dropped_pipeline
    with open_recording(path) as rec:
        assert len(rec) == stats.frames_recorded
        assert rec.frame_ids.tolist() == list(range(stats.frames_recorded))


def test_marked_events_land_between_the_right_frames(tmp_path: Path) -> None:
    cam = open_camera()
    path = tmp_path / "events.h5"
    marked: list[Event] = []
    try:
        pipeline = AcquisitionPipeline(cam, make_writer(cam, path))
        pipeline.events.event_marked.connect(marked.append)
        pipeline.start()
        time.sleep(0.3)
        pipeline.mark_event("needling start")
        time.sleep(0.3)
        pipeline.mark_event("needling end")
        summary = pipeline.stop()
    finally:
        cam.close()
    assert [e.label for e in summary.events] == ["needling start", "needling end"]
    assert marked == list(summary.events)
    with open_recording(path) as rec:
        stored = rec.events
        host = rec.host_timestamps_ns
    assert stored == summary.events
    for event in stored:
        assert 0 < event.frame_index < len(host)
        assert host[event.frame_index - 1] < event.host_time_ns <= host[event.frame_index]


def test_signals_fire_and_live_maps_show_contrast(tmp_path: Path) -> None:
    cam = open_camera()
    seen: dict[str, list[Any]] = {"started": [], "frames": [], "maps": [], "stats": [], "end": []}
    order: list[str] = []
    try:
        pipeline = AcquisitionPipeline(
            cam,
            make_writer(cam, tmp_path / "s.h5"),
            live=LiveSettings(window=5),
            stats_interval_s=0.1,
        )
        events = pipeline.events
        events.started.connect(lambda: seen["started"].append(True))
        events.frame_acquired.connect(seen["frames"].append)
        events.live_map_ready.connect(lambda image, info: seen["maps"].append((image, info)))
        events.stats_updated.connect(seen["stats"].append)
        events.finished.connect(seen["end"].append)
        for name in ("frame_acquired", "stats_updated", "finished"):
            getattr(events, name).connect(lambda *_, n=name: order.append(n))
        summary = run_for(pipeline, 0.6)
    finally:
        cam.close()
    assert seen["started"] == [True]
    infos: list[FrameInfo] = seen["frames"]
    assert [i.frame_id for i in infos] == list(range(summary.stats.frames_received))
    assert 0 < len(seen["maps"]) == summary.stats.live_maps
    image, info = seen["maps"][-1]
    assert image.shape == (48, 64)
    assert image.dtype == np.float32
    assert 0.05 < float(np.median(image)) < 1.0  # speckle contrast at T/τc ≈ 1
    assert info.frame_id in {i.frame_id for i in infos}
    assert all(isinstance(s, PipelineStats) for s in seen["stats"])
    assert len(seen["stats"]) >= 2
    assert seen["end"] == [summary]
    assert order[-1] == "finished"
    assert pipeline.state is PipelineState.FINISHED


def test_slow_listeners_never_hold_up_acquisition(tmp_path: Path) -> None:
    cam = open_camera()
    path = tmp_path / "listeners.h5"

    def slow(*_: object) -> None:
        time.sleep(0.05)

    try:
        pipeline = AcquisitionPipeline(
            cam, make_writer(cam, path), live=LiveSettings(model="inverse_k2"), signal_backlog=8
        )
        for signal in (pipeline.events.frame_acquired, pipeline.events.live_map_ready):
            signal.connect(slow)
        summary = run_for(pipeline, 0.8)
    finally:
        cam.close()
    stats = summary.stats
    assert stats.frames_dropped_pipeline == stats.frames_dropped_camera == 0
    assert stats.frames_recorded == stats.frames_received > 100
    assert stats.signals_dropped > 0


def test_live_view_without_recording() -> None:
    cam = open_camera()
    try:
        pipeline = AcquisitionPipeline(cam, None, live=LiveSettings(max_rate_hz=None))
        pipeline.start()
        time.sleep(0.3)
        pipeline.mark_event("look")
        time.sleep(0.2)
        summary = pipeline.stop()
    finally:
        cam.close()
    assert summary.path is None
    assert summary.stats.frames_recorded == summary.stats.frames_received
    assert summary.stats.live_maps > 0
    (event,) = summary.events
    assert 0 < event.frame_index < summary.stats.frames_received


def test_life_cycle_errors(tmp_path: Path) -> None:
    cam = open_camera()
    try:
        pipeline = AcquisitionPipeline(cam, None)
        with pytest.raises(PipelineStateError, match="not started"):
            pipeline.stop()
        with pytest.raises(PipelineStateError, match="idle"):
            pipeline.mark_event("early")
        with pipeline:
            with pytest.raises(PipelineStateError, match="only once"):
                pipeline.start()
            with pytest.raises(ValueError, match="label"):
                pipeline.mark_event("")
            with pytest.raises(PipelineStateError, match="acquiring"):
                AcquisitionPipeline(cam, None)
        assert pipeline.stop() is pipeline.stop()
        other = RecordingWriter(
            tmp_path / "x.h5", recording_metadata(cam), frame_shape=(4, 4), dtype="uint8"
        )
        with pytest.raises(ValueError, match="writer frames"):
            AcquisitionPipeline(cam, other)
        other.close()
        with pytest.raises(ValueError, match="window=4"):
            LiveSettings(window=4)
        with pytest.raises(ValueError, match="threads=0"):
            LiveSettings(threads=0)
        assert LiveSettings().thread_count(8) == 7
        assert LiveSettings().thread_count(1) == 1
        assert LiveSettings(threads=16).thread_count(8) == 8
    finally:
        cam.close()


def test_a_camera_that_cannot_start_leaves_an_empty_closed_recording(tmp_path: Path) -> None:
    cam = open_camera()
    path = tmp_path / "empty.h5"
    pipeline = AcquisitionPipeline(cam, make_writer(cam, path))
    cam.close()
    with pytest.raises(IncompatibleStateError, match="closed"):
        pipeline.start()
    with pytest.raises(PipelineStateError, match="not started"):
        pipeline.stop()
    with open_recording(path) as rec:
        assert rec.closed_cleanly
        assert len(rec) == 0


def test_ring_reuses_no_slot_before_release() -> None:
    ring = FrameRing(2, (2, 2), np.uint8)
    info = FrameInfo(
        frame_id=0, camera_timestamp_ns=None, host_timestamp_ns=1, pixel_format="Mono8", bit_depth=8
    )
    assert [ring.reserve(), ring.commit(info), ring.reserve(), ring.commit(info)] == [0, 0, 1, 1]
    assert ring.reserve() is None  # full: the camera must use the spare slot
    assert ring.still_valid(0)
    ring.release(1)
    assert ring.reserve() == 2
    assert not ring.still_valid(0)  # slot 0 is being refilled with frame 2
    assert ring.camera_timestamp_ns[0] == -1
    assert ring.wait_unreleased(0.0) == (1, 2, False)
    with pytest.raises(ValueError, match="end=5"):
        ring.release(5)
