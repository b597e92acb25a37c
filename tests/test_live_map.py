"""Live maps: no window-sized dark squares on healthy skin, and the same numbers as offline.

The live view used to show the spatial contrast of the newest frame alone. One bright speckle
lifts K evenly over the w × w windows that contain it, so every such pixel became a dark square
the size of the contrast window on the perfusion map, in new places in every frame (flicker),
reading like small ischemic spots. Live maps now average K over the newest frames, as offline
processing's ``average`` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lsci.acquisition import AcquisitionPipeline, FrameRing, LiveSettings, recording_metadata
from lsci.drivers.base import FrameInfo
from lsci.drivers.simulated import SimulatedCamera, SpeckleScene
from lsci.processing import ProcessingSettings, process_frames
from lsci.recording import RecordingWriter, open_recording

pytestmark = pytest.mark.serial

SHAPE = (192, 192)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


def live_maps(
    scene: SpeckleScene, settings: LiveSettings, seconds: float, path: Path | None = None
) -> tuple[list[tuple[np.ndarray, FrameInfo]], int, int]:
    """Live maps of a run of the simulated camera, and the frames received and recorded."""
    camera = SimulatedCamera(scene, mode="replay", replay_frames=16)
    camera.open()
    maps: list[tuple[np.ndarray, FrameInfo]] = []
    try:
        writer = None
        if path is not None:
            writer = RecordingWriter(
                path,
                recording_metadata(camera),
                frame_shape=camera.frame_shape,
                dtype=camera.frame_dtype,
            )
        pipeline = AcquisitionPipeline(camera, writer, live=settings)
        pipeline.events.live_map_ready.connect(lambda image, info: maps.append((image, info)))
        pipeline.start()
        time.sleep(seconds)
        stats = pipeline.stop().stats
    finally:
        camera.close()
    return maps, stats.frames_received, stats.frames_recorded


def dark_square_share(perfusion: np.ndarray, healthy: np.ndarray) -> float:
    """Share of healthy-skin pixels whose live perfusion is below half the healthy median."""
    level = float(np.median(perfusion[healthy]))
    return float(np.count_nonzero((perfusion < 0.5 * level) & healthy) / healthy.sum())


def test_live_perfusion_has_no_dark_squares_on_healthy_skin() -> None:
    scene = SpeckleScene.skin(SHAPE, needling_time_s=None)
    tau = scene.tau_c_at(0.0)
    # Healthy skin by the scene's truth: τc near the baseline, away from the ischemic region
    # and the vessel by more than a contrast window.
    healthy = ndimage.binary_erosion(tau < 1.3 * np.median(tau), iterations=8)
    shares = {}
    for average in (1, LiveSettings().average):
        settings = LiveSettings(model="inverse_k2", average=average, max_rate_hz=10.0)
        maps, _, _ = live_maps(scene, settings, 1.5)
        assert len(maps) >= 5
        shares[average] = max(dark_square_share(image, healthy) for image, _ in maps[2:])
    # One frame: about 1 % of healthy skin reads as hypoperfused, in window-sized squares.
    assert shares[1] > 0.003
    # The mean of the newest frames: none.
    assert shares[LiveSettings().average] < 0.0005


def test_live_map_is_the_offline_mean_of_the_newest_recorded_frames(tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    settings = LiveSettings(model="inverse_k2", average=4, max_rate_hz=20.0)
    scene = SpeckleScene.skin(SHAPE, needling_time_s=None)
    maps, received, recorded = live_maps(scene, settings, 1.0, path)
    assert recorded == received
    offline = ProcessingSettings(mode="spatial", window=7, average=4, model="inverse_k2")
    checked = 0
    with open_recording(path) as recording:
        index = {int(frame_id): i for i, frame_id in enumerate(recording.frame_ids)}
        for image, info in maps:
            last = index[info.frame_id]
            if last < 3:
                continue
            frames = recording.frames[last - 3 : last + 1]
            expected = process_frames(frames, offline).perfusion
            assert expected is not None
            np.testing.assert_array_equal(image, expected[0])
            checked += 1
    assert checked >= 5


def test_copy_newest_counts_only_frames_the_camera_has_not_overwritten() -> None:
    ring = FrameRing(4, (2, 3), np.uint8)

    def produce(value: int) -> None:
        seq = ring.reserve()
        assert seq is not None
        ring.frames[seq % ring.capacity] = value
        ring.commit(
            FrameInfo(
                frame_id=value,
                camera_timestamp_ns=None,
                host_timestamp_ns=0,
                pixel_format="Mono8",
                bit_depth=8,
            )
        )

    out = np.zeros((3, 2, 3), np.uint8)
    produce(0)
    assert ring.copy_newest(0, out) == 1  # nothing before the first frame
    assert (out[-1] == 0).all()
    for value in (1, 2, 3):
        produce(value)
    assert ring.copy_newest(3, out) == 3
    assert [int(plane[0, 0]) for plane in out] == [1, 2, 3]
    ring.release(2)
    # The camera has started to fill frame 1's slot again (frame 5): frames 2 and 3 remain.
    produce(4)
    assert ring.reserve() == 5
    assert ring.copy_newest(3, out) == 2
    ring.cancel()
