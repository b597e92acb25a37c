"""Live analysis on the simulated camera: rate, no recorded frame lost, area against the truth,
colour limits that stay fixed, traces with event marks."""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lsci.acquisition import AcquisitionPipeline, LiveSettings, recording_metadata
from lsci.analysis.live import AREA_TRACE, LiveAnalysis, LiveUpdate
from lsci.drivers.base import FrameInfo
from lsci.drivers.simulated import SimulatedCamera, SpeckleScene
from lsci.recording import RecordingWriter, open_recording
from lsci.sim.needling import HEALTHY, ISCHEMIC, NeedlingScene
from lsci.viz.display import display_limits

pytestmark = pytest.mark.serial

EXPOSURE_S = 0.005
PIXEL_MM = 0.05
perfusion_limits = functools.partial(display_limits, "perfusion")


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


def info(frame_id: int, time_s: float) -> FrameInfo:
    return FrameInfo(
        frame_id=frame_id,
        camera_timestamp_ns=None,
        host_timestamp_ns=round(time_s * 1e9),
        pixel_format="Mono8",
        bit_depth=8,
    )


@pytest.mark.slow
def test_live_analysis_at_512_keeps_every_frame_and_finds_the_true_area(tmp_path: Path) -> None:
    shape = (512, 512)
    scene = NeedlingScene(shape)
    regions = scene.regions()
    # 64 transport buffers, as lsci opens GenICam cameras: rides out pauses of the reader.
    camera = SimulatedCamera(
        SpeckleScene.skin(shape, needling_time_s=None), mode="replay", buffer_frames=64
    )
    camera.open()
    camera.set("exposure_s", EXPOSURE_S)
    camera.set("frame_rate_hz", 100.0)
    path = tmp_path / "bedside.h5"
    updates: list[LiveUpdate] = []
    try:
        writer = RecordingWriter(
            path, recording_metadata(camera), frame_shape=shape, dtype=camera.frame_dtype
        )
        settings = LiveSettings(model="inverse_tau", exposure_s=EXPOSURE_S, max_rate_hz=10.0)
        pipeline = AcquisitionPipeline(camera, writer, live=settings)
        analysis = LiveAnalysis(
            settings,
            fit_limits=perfusion_limits,
            pixel_scale=PIXEL_MM,
            rois={"lesion": regions[ISCHEMIC], "healthy skin": regions[HEALTHY]},
            reference="healthy skin",
        )
        analysis.events.updated.connect(updates.append)
        analysis.attach(pipeline)
        pipeline.start()
        time.sleep(1.0)
        pipeline.mark_event("needling start")
        time.sleep(3.0)
        summary = pipeline.stop()
        analysis.close()
    finally:
        camera.close()
    stats = summary.stats
    # No recorded frame is lost to the live analysis.
    assert stats.frames_recorded == stats.frames_received > 300
    assert stats.frames_dropped_pipeline == 0
    with open_recording(path) as recording:
        assert len(recording) == stats.frames_received
    # At least 5 analysed maps per second, each with its outline and area.
    span_s = updates[-1].time_s - updates[0].time_s
    assert (len(updates) - 1) / span_s >= 5.0
    # The hypoperfused disk of the scene: its true area, in mm² on the skin.
    true_mm2 = math.pi * (scene.radius_px * PIXEL_MM) ** 2
    for update in updates[3:]:
        assert update.unit == "1/τc (1/s)"
        assert update.delineation is not None
        assert update.delineation.area_mm2 == pytest.approx(true_mm2, rel=0.15)
        assert update.percent_of_reference(update.roi_means["lesion"]) < 50.0
    # Traces over time, with the event mark inside their time span.
    traces = analysis.traces()
    assert set(traces) == {"lesion", "healthy skin", AREA_TRACE}
    assert traces[AREA_TRACE].unit == "mm²"
    assert np.all(np.diff(traces["lesion"].times_s) > 0)
    np.testing.assert_allclose(traces["healthy skin"].percent_of_reference, 100.0, rtol=0.1)
    (mark,) = analysis.marks
    assert mark.label == "needling start"
    assert traces["lesion"].times_s[0] < mark.time_s < traces["lesion"].times_s[-1]


def test_colour_limits_are_fitted_once_and_never_behind_the_users_back() -> None:
    analysis = LiveAnalysis(LiveSettings(model="inverse_k2"), fit_limits=perfusion_limits)
    rng = np.random.default_rng(0)
    maps = [rng.uniform(0.0, 10.0, (32, 32)).astype(np.float32) for _ in range(6)]
    seen = [analysis.analyse(m, info(i, 0.5 * i)).limits for i, m in enumerate(maps)]
    # Settling during the first 2 s, then fixed to the maps of those seconds.
    assert [limits.source for limits in seen] == ["settling"] * 4 + ["first seconds"] * 2
    first = perfusion_limits(np.stack([m[::4, ::4] for m in maps[:5]]))
    assert (seen[4].lower, seen[4].upper) == first
    # A real rise of perfusion later shows as a brighter map: the scale does not follow it.
    risen = analysis.analyse(maps[0] * 3.0, info(7, 10.0))
    assert (risen.limits.lower, risen.limits.upper) == first
    # The user's limits stay until the user changes them.
    analysis.set_limits(0.0, 25.0)
    later = analysis.analyse(maps[1] * 10.0, info(8, 20.0))
    assert (later.limits.lower, later.limits.upper, later.limits.source) == (0.0, 25.0, "user")
    with pytest.raises(ValueError, match="lower < upper"):
        analysis.set_limits(5.0, 5.0)
    analysis.refit_limits()
    assert analysis.analyse(maps[2], info(9, 21.0)).limits.source == "settling"


def test_regions_and_reference_are_checked() -> None:
    mask = np.zeros((16, 16), bool)
    mask[:4, :4] = True
    with pytest.raises(ValueError, match="not one of the ROIs"):
        LiveAnalysis(
            LiveSettings(), fit_limits=perfusion_limits, rois={"a": mask}, reference="healthy"
        )
    analysis = LiveAnalysis(LiveSettings(), fit_limits=perfusion_limits, reference=mask)
    perfusion = np.full((16, 16), 4.0, np.float32)
    perfusion[8:, 8:] = 1.0
    update = analysis.analyse(perfusion, info(0, 0.0))
    assert update.reference_level == 4.0
    assert update.delineation is not None
    assert update.delineation.area_px == 64  # below half of the reference, 8 × 8 pixels
    assert update.roi_means == {"reference": 4.0}
    rows = analysis.trace_rows()
    assert {row["name"] for row in rows} == {"reference", AREA_TRACE}
    assert next(r for r in rows if r["name"] == AREA_TRACE)["unit"] == "px"
