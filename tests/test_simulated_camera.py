"""The simulated speckle camera: pacing, physics, formats, scripted truth and injected faults."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from lsci.core.contrast import spatial_contrast
from lsci.drivers.base import CameraDisconnectedError, CameraState, Roi
from lsci.drivers.simulated import (
    FlowChange,
    SimulatedCamera,
    SimulatedFaults,
    SpeckleScene,
    decode_frame_id,
)

pytestmark = pytest.mark.serial


def small_scene(needling_time_s: float | None = None) -> SpeckleScene:
    return SpeckleScene.skin((64, 64), needling_time_s=needling_time_s, recovery_factor=4.0)


def median_k(frame: np.ndarray, rows: slice = slice(None), cols: slice = slice(None)) -> float:
    return float(np.median(spatial_contrast(frame, 7)[rows, cols]))


def test_frames_carry_ids_camera_clock_and_stamps() -> None:
    with SimulatedCamera(small_scene(), mode="replay", stamp_frame_id=True) as cam:
        cam.set("frame_rate_hz", 200.0)
        cam.set("exposure_s", 0.001)
        cam.start()
        frames = [cam.read(timeout_s=2.0) for _ in range(12)]
        frames += cam.stop()
    ids = [f.frame_id for f in frames]
    assert ids == list(range(len(frames)))
    assert [decode_frame_id(f.data) for f in frames] == ids
    stamps = np.array([f.camera_timestamp_ns for f in frames], dtype=np.int64)
    # In replay mode the camera clock starts an exposure every frame interval (5 ms) exactly.
    np.testing.assert_array_equal(np.diff(stamps), 5_000_000)
    hosts = [f.host_timestamp_ns for f in frames]
    assert all(b >= a for a, b in itertools.pairwise(hosts))
    assert all(f.pixel_format == "Mono8" and f.bit_depth == 8 for f in frames)


def test_longer_exposure_lowers_contrast() -> None:
    scene = SpeckleScene(np.full((64, 64), 1e-3))
    contrasts = []
    with SimulatedCamera(scene) as cam:
        for exposure_s in (2e-4, 2e-2):
            cam.set("exposure_s", exposure_s)
            cam.start()
            frame = cam.read(timeout_s=5.0)
            cam.stop()
            contrasts.append(median_k(frame.data))
    # Visibility equation at x = T/τc = 0.2 and 20: K ≈ 0.94 and 0.22 (β = 1, plus noise).
    assert contrasts[0] > 0.75
    assert contrasts[1] < 0.35


@pytest.mark.parametrize(("pixel_format", "bits"), [("Mono12", 12), ("Mono16", 16)])
def test_deeper_pixel_formats(pixel_format: str, bits: int) -> None:
    with SimulatedCamera(small_scene(), mode="replay") as cam:
        cam.set("pixel_format", pixel_format)
        cam.start()
        frame = cam.read(timeout_s=5.0)
        cam.stop()
    assert frame.data.dtype == np.uint16
    assert frame.bit_depth == bits
    assert int(frame.data.max()) < 2**bits
    # Far more grey levels than 8 bits would give.
    assert np.unique(frame.data).size > 256


def test_roi_crops_frames_and_truth() -> None:
    with SimulatedCamera(small_scene(), mode="replay") as cam:
        cam.set("roi", Roi(8, 16, 32, 24))
        assert cam.tau_c_at(0.0).shape == (24, 32)
        np.testing.assert_array_equal(cam.tau_c_at(0.0), cam.scene.tau_c_at(0.0)[16:40, 8:40])
        cam.start()
        assert cam.read(timeout_s=5.0).data.shape == (24, 32)
        cam.stop()


def test_needling_recovers_flow_in_the_truth_and_in_the_frames() -> None:
    scene = small_scene(needling_time_s=0.25)
    (change,) = scene.changes
    assert change.label == "needling"
    assert change.where is not None
    # The needled part recovers by the factor, graded over its soft edge; the rest is unchanged.
    weight = change.where
    before, after = scene.tau_c_at(0.0), scene.tau_c_at(0.3)
    assert (weight == 1).any()
    np.testing.assert_allclose(after[weight == 1], before[weight == 1] / 4.0)
    np.testing.assert_allclose(after, before / 4.0**weight)
    np.testing.assert_array_equal(after[weight == 0], before[weight == 0])

    with SimulatedCamera(scene, mode="replay", replay_frames=2) as cam:
        cam.set("frame_rate_hz", 20.0)
        cam.set("exposure_s", 0.005)
        cam.start()
        frames = [cam.read(timeout_s=5.0) for _ in range(10)]
        cam.stop()
    patch = (slice(26, 38), slice(26, 38))
    # At 20 frames/s frames 0-2 start before 0.25 s; the last three after it.
    early = [median_k(f.data, *patch) for f in frames[:3]]
    late = [median_k(f.data, *patch) for f in frames[-3:]]
    # More flow, shorter τc: lower contrast in the patch after needling.
    assert max(late) < min(early)


def test_a_late_device_changes_the_scene_when_its_time_stamps_say() -> None:
    # Physical simulation of 384² takes several times the 5 ms frame interval asked for, so the
    # device runs late; the scripted change must still land at its time on the camera clock.
    change_s, interval_s = 0.4, 0.005
    scene = SpeckleScene(np.full((384, 384), 5e-3), changes=[FlowChange(change_s, 10.0)])
    frames = []
    with SimulatedCamera(scene) as cam:
        cam.set("frame_rate_hz", 1 / interval_s)
        cam.set("exposure_s", interval_s)
        cam.start()
        while len(frames) < 400:
            frames.append(cam.read(timeout_s=5.0))
            elapsed_ns = frames[-1].camera_timestamp_ns - frames[0].camera_timestamp_ns
            if elapsed_ns > 2 * change_s * 1e9:
                break
        cam.stop()
    stamps = np.array([f.camera_timestamp_ns for f in frames], dtype=np.float64)
    times_s = (stamps - stamps[0]) / 1e9
    assert times_s[-1] > 2 * change_s  # the frames span the change,
    assert len(frames) < 0.7 * times_s[-1] / interval_s  # and the device ran late
    k = np.array([median_k(f.data) for f in frames])
    # τc 5 ms → 0.5 ms at T = 5 ms: K drops from ≈0.75 to ≈0.3.
    assert (k[times_s < change_s - 0.02] > 0.55).all()
    assert (k[times_s > change_s + 0.02] < 0.45).all()


def test_injected_drops_are_id_gaps() -> None:
    faults = SimulatedFaults(drop_frame_ids={3, 4, 9})
    with SimulatedCamera(small_scene(), mode="replay", faults=faults) as cam:
        cam.set("frame_rate_hz", 500.0)
        cam.set("exposure_s", 0.001)
        cam.start()
        ids = [cam.read(timeout_s=2.0).frame_id for _ in range(10)]
        cam.stop()
        stats = cam.stats()
    assert ids == [0, 1, 2, 5, 6, 7, 8, 10, 11, 12]
    assert stats.frames_dropped == 3


def test_a_slow_reader_overflows_the_transport_buffers() -> None:
    with SimulatedCamera(small_scene(), mode="replay", buffer_frames=4) as cam:
        cam.set("frame_rate_hz", 500.0)
        cam.set("exposure_s", 0.001)
        cam.start()
        time.sleep(0.1)  # about 50 frames while only 4 buffers wait for the reader
        frames = [cam.read(timeout_s=2.0) for _ in range(5)]
        frames += cam.stop()
    ids = [f.frame_id for f in frames]
    assert ids[:4] == [0, 1, 2, 3]
    assert ids[4] > 4
    assert cam.stats().frames_dropped == ids[-1] + 1 - len(ids)


def test_disconnect_after_n_frames_closes_the_camera() -> None:
    faults = SimulatedFaults(disconnect_after_frames=3)
    cam = SimulatedCamera(small_scene(), mode="replay", faults=faults)
    with cam:
        cam.start()
        for _ in range(3):
            cam.read(timeout_s=2.0)
        with pytest.raises(CameraDisconnectedError, match="disconnected after 3 frames"):
            cam.read(timeout_s=2.0)
        assert cam.state is CameraState.CLOSED
        cam.open()
        cam.start()
        assert cam.read(timeout_s=2.0).frame_id == 0
        cam.stop()


def test_invalid_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="mode='fast'"):
        SimulatedCamera(mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer_frames=0"):
        SimulatedCamera(buffer_frames=0)
    with pytest.raises(ValueError, match="drop_probability"):
        SimulatedFaults(drop_probability=1.0)
    with pytest.raises(ValueError, match="flow_factor"):
        FlowChange(1.0, 0.0)
    with pytest.raises(ValueError, match="mask"):
        SpeckleScene(np.ones((32, 32)), changes=[FlowChange(1.0, 2.0, np.ones((4, 4), bool))])
    with pytest.raises(ValueError, match=r"weights of change 'x' must lie in \[0, 1\]"):
        SpeckleScene(np.ones((16, 16)), changes=[FlowChange(1.0, 2.0, np.full((16, 16), 1.5), "x")])
