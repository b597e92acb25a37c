"""The contract every camera driver keeps, written once against :class:`Camera`.

Each entry of ``DRIVERS`` is a factory making an unopened camera; adding a driver is adding
one entry. Tests configure small frames and the highest frame rate the device allows so that
each runs in well under a second.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from lsci.drivers import pixel_formats
from lsci.drivers.base import (
    SETTING_NAMES,
    Camera,
    CameraError,
    CameraState,
    Capability,
    Frame,
    FrameInfo,
    IncompatibleStateError,
    Roi,
    TriggerMode,
    UnsupportedFeatureError,
)
from lsci.drivers.registry import CAMERA_KINDS, CameraKind, OpenOptions, camera_kind, kinds_taking

pytestmark = pytest.mark.serial


def viky_options() -> OpenOptions:
    """Device 0 of the simulated GenTL producer shipped with the genicam wheel."""
    genicam = pytest.importorskip("genicam", reason="the camera extra (genicam) is not installed")
    pytest.importorskip("harvesters.core", reason="the camera extra (harvesters) is not installed")
    return OpenOptions(producers=(Path(genicam.__file__).parent / "viky.cti",), device=0)


# How the suite opens a device of each registered camera kind (small, fast ones).
CONTRACT_OPTIONS: dict[str, Callable[[], OpenOptions]] = {
    "sim": lambda: OpenOptions(shape=(64, 64)),
    "genicam": viky_options,
}


def _factory(name: str) -> Callable[[], Camera]:
    return lambda: CAMERA_KINDS[name].create(CONTRACT_OPTIONS[name]())


DRIVERS = [
    pytest.param(
        _factory(name),
        id=name,
        marks=[pytest.mark.camera] if CAMERA_KINDS[name].requires else [],
    )
    for name in CAMERA_KINDS
]


def test_every_camera_kind_is_in_the_contract_suite() -> None:
    assert set(CONTRACT_OPTIONS) == set(CAMERA_KINDS)


@pytest.fixture(params=DRIVERS)
def camera(request: pytest.FixtureRequest) -> Iterator[Camera]:
    """An open camera with small frames at its highest frame rate; closed afterwards."""
    factory: Callable[[], Camera] = request.param
    cam = factory()
    cam.open()
    try:
        caps = cam.capabilities()
        roi = caps["roi"]
        if roi.writable and roi.roi_limits is not None:
            limits = roi.roi_limits
            cam.set("roi", Roi(0, 0, int(limits.width.minimum), int(limits.height.minimum)))
        rate = caps["frame_rate_hz"]
        if rate.writable and rate.range is not None:
            cam.set("frame_rate_hz", rate.range.maximum)
        yield cam
    finally:
        cam.close()


def writable(cam: Camera, name: str) -> Capability:
    capability = cam.capabilities()[name]
    if not (capability.available and capability.writable):
        pytest.skip(f"{name} is not writable on {cam.name}")
    return capability


# -- life cycle -------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", DRIVERS)
def test_open_close_and_context_manager(factory: Callable[[], Camera]) -> None:
    cam = factory()
    assert cam.state is CameraState.CLOSED
    cam.open()
    cam.open()  # opening an open camera changes nothing
    assert cam.state is CameraState.OPEN
    cam.close()
    cam.close()
    assert cam.state is CameraState.CLOSED
    with cam as same:
        assert same is cam
        assert cam.state is CameraState.OPEN
    assert cam.state is CameraState.CLOSED


@pytest.mark.parametrize("factory", DRIVERS)
def test_closed_camera_refuses_everything_but_open(factory: Callable[[], Camera]) -> None:
    cam = factory()
    for call in (
        cam.capabilities,
        cam.start,
        cam.stop,
        cam.read,
        lambda: cam.get("roi"),
        lambda: cam.set("frame_rate_hz", 10.0),
    ):
        with pytest.raises(IncompatibleStateError, match="closed"):
            call()


def test_close_while_acquiring_releases_the_device(camera: Camera) -> None:
    camera.start()
    camera.read()
    camera.close()
    assert camera.state is CameraState.CLOSED
    camera.open()
    camera.start()
    assert camera.read().data.size > 0
    camera.stop()


# -- capabilities and settings ----------------------------------------------------------------


def test_capabilities_describe_every_setting(camera: Camera) -> None:
    caps = camera.capabilities()
    assert tuple(caps) == SETTING_NAMES
    for name, capability in caps.items():
        assert capability.name == name
        if not capability.available:
            assert capability.reason
            assert not capability.writable
    assert caps["roi"].available
    assert caps["pixel_format"].available
    for name in ("exposure_s", "gain", "frame_rate_hz"):
        if caps[name].available:
            numeric = caps[name].range
            assert numeric is not None
            assert numeric.minimum <= numeric.maximum
    for name in ("pixel_format", "trigger_mode"):
        if caps[name].available:
            assert caps[name].choices
    assert camera.get("pixel_format") in (caps["pixel_format"].choices or ())


def test_unavailable_settings_raise_naming_feature_and_device(camera: Camera) -> None:
    unavailable = [c for c in camera.capabilities().values() if not c.available]
    for capability in unavailable:
        with pytest.raises(UnsupportedFeatureError) as raised:
            camera.get(capability.name)
        assert capability.name in str(raised.value)
        assert camera.name in str(raised.value)
        sample: object = {
            "roi": Roi(0, 0, 1, 1),
            "pixel_format": "Mono8",
            "trigger_mode": TriggerMode.OFF,
        }.get(capability.name, 1.0)
        with pytest.raises(UnsupportedFeatureError, match=capability.name):
            camera.set(capability.name, sample)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["exposure_s", "gain", "frame_rate_hz"])
def test_numeric_settings_round_trip_within_their_range(camera: Camera, name: str) -> None:
    numeric = writable(camera, name).range
    assert numeric is not None
    step = numeric.increment
    middle = (numeric.minimum + numeric.maximum) / 2
    if step:
        middle = numeric.minimum + round((middle - numeric.minimum) / step) * step
        with pytest.raises(ValueError, match="multiple"):
            camera.set(name, numeric.minimum + step / 2)
    for value in (numeric.minimum, numeric.maximum, middle):
        camera.set(name, value)
        assert camera.get(name) == pytest.approx(value, rel=1e-3, abs=1e-9)
    above = numeric.maximum + max(1.0, abs(numeric.maximum))
    with pytest.raises(ValueError, match=f"{name}=.*allowed range"):
        camera.set(name, above)
    with pytest.raises(ValueError, match=name):
        camera.set(name, math.nan)
    with pytest.raises(TypeError, match=name):
        camera.set(name, "fast")


def test_roi_round_trip_and_limits(camera: Camera) -> None:
    limits = writable(camera, "roi").roi_limits
    assert limits is not None
    full = Roi(0, 0, limits.sensor_width, limits.sensor_height)
    small = Roi(0, 0, int(limits.width.minimum), int(limits.height.minimum))
    for roi in (full, small):
        camera.set("roi", roi)
        assert camera.get("roi") == roi
        assert camera.frame_shape == (roi.height, roi.width)
    with pytest.raises(ValueError, match=r"roi\.width"):
        camera.set("roi", Roi(0, 0, limits.sensor_width + 1, small.height))
    with pytest.raises(ValueError, match="roi"):
        camera.set("roi", Roi(1, 0, limits.sensor_width, small.height))
    with pytest.raises(TypeError, match="roi"):
        camera.set("roi", (0, 0, 1.5, 2))  # type: ignore[arg-type]


def test_every_offered_pixel_format_sets_the_frame_dtype(camera: Camera) -> None:
    choices = writable(camera, "pixel_format").choices or ()
    for name in choices:
        camera.set("pixel_format", name)
        assert camera.get("pixel_format") == name
        assert camera.frame_dtype == pixel_formats.output_dtype(name)
    with pytest.raises(ValueError, match="pixel_format='Mono7'"):
        camera.set("pixel_format", "Mono7")


def test_trigger_mode_round_trip(camera: Camera) -> None:
    choices = writable(camera, "trigger_mode").choices or ()
    for value in choices:
        camera.set("trigger_mode", TriggerMode(value))
        assert camera.get("trigger_mode") is TriggerMode(value)
    camera.set("trigger_mode", TriggerMode.OFF)


def test_unknown_setting_name_is_a_value_error(camera: Camera) -> None:
    with pytest.raises(ValueError, match="'exposure_ms'"):
        camera.get("exposure_ms")
    with pytest.raises(ValueError, match="'exposure_ms'"):
        camera.set("exposure_ms", 1.0)


# -- states -----------------------------------------------------------------------------------


def test_states_are_enforced(camera: Camera) -> None:
    with pytest.raises(IncompatibleStateError, match="open"):
        camera.read()
    with pytest.raises(IncompatibleStateError):
        camera.stop()
    camera.start()
    assert camera.state is CameraState.ACQUIRING
    with pytest.raises(IncompatibleStateError, match="acquiring"):
        camera.start()
    with pytest.raises(IncompatibleStateError, match="roi"):
        camera.set("roi", camera.get("roi"))
    with pytest.raises(IncompatibleStateError, match="pixel_format"):
        camera.set("pixel_format", camera.get("pixel_format"))
    with pytest.raises(ValueError, match="timeout_s"):
        camera.read(timeout_s=0)
    camera.stop()
    assert camera.state is CameraState.OPEN


# -- frames -----------------------------------------------------------------------------------


def test_frames_have_promised_shape_dtype_and_increasing_ids(camera: Camera) -> None:
    pixel_format = camera.get("pixel_format")
    camera.start()
    frames = [camera.read(timeout_s=2.0) for _ in range(10)]
    snapshot = [f.data.copy() for f in frames]
    frames += camera.stop()
    for frame in frames:
        assert isinstance(frame, Frame)
        assert frame.data.shape == camera.frame_shape
        assert frame.data.dtype == camera.frame_dtype
        assert frame.pixel_format == pixel_format
        assert frame.bit_depth == pixel_formats.bit_depth(str(pixel_format))
        assert frame.camera_timestamp_ns is None or frame.camera_timestamp_ns >= 0
    ids = [f.frame_id for f in frames]
    assert all(b > a for a, b in itertools.pairwise(ids))
    host = [f.host_timestamp_ns for f in frames]
    assert all(b >= a for a, b in itertools.pairwise(host))
    # Later reads never write into frames already handed over.
    for frame, copy in zip(frames, snapshot, strict=False):
        np.testing.assert_array_equal(frame.data, copy)
    assert not np.shares_memory(frames[0].data, frames[1].data)
    stats = camera.stats()
    assert stats.frames_read == len(frames)
    assert stats.last_frame_id == ids[-1]
    assert stats.frames_dropped == ids[-1] - ids[0] + 1 - len(frames)


def test_read_into_fills_the_callers_buffer(camera: Camera) -> None:
    camera.start()
    ring = np.full((3, *camera.frame_shape), 7, dtype=camera.frame_dtype)
    infos = [camera.read_into(ring[i], timeout_s=2.0) for i in range(3)]
    assert all(isinstance(info, FrameInfo) and not isinstance(info, Frame) for info in infos)
    assert [i.frame_id for i in infos] == sorted({i.frame_id for i in infos})
    with pytest.raises(ValueError, match="shape"):
        camera.read_into(np.empty((1, 1), dtype=camera.frame_dtype))
    with pytest.raises(ValueError, match="C-contiguous"):
        camera.read_into(np.empty(camera.frame_shape, dtype=camera.frame_dtype, order="F"))
    camera.stop()


def test_start_stop_start_again(camera: Camera) -> None:
    for _ in range(2):
        camera.start()
        first = camera.read(timeout_s=2.0)
        rest = camera.stop()
        assert all(f.frame_id > first.frame_id for f in rest)
        assert camera.stats().frames_read == 1 + len(rest)
        assert camera.state is CameraState.OPEN


# -- the registry ----------------------------------------------------------------------------


def test_registry_names_kinds_and_refuses_unknown_ones() -> None:
    assert camera_kind("sim") is CAMERA_KINDS["sim"]
    with pytest.raises(ValueError, match=r"'sim', 'genicam'"):
        camera_kind("webcam")
    assert kinds_taking("producers") == ["genicam"]


def test_a_kind_without_its_packages_says_how_to_install_them() -> None:
    kind = CameraKind(
        name="absent",
        label="absent camera",
        summary="A kind whose packages are not installed.",
        options=frozenset(),
        _create=CAMERA_KINDS["sim"]._create,
        _discover=CAMERA_KINDS["sim"]._discover,
        requires=("lsci_no_such_module",),
        extra="absent",
    )
    assert kind.missing() == ["lsci_no_such_module"]
    with pytest.raises(CameraError, match=r'pip install "lsci\[absent\]"'):
        kind.create()
    with pytest.raises(CameraError, match="lsci_no_such_module"):
        kind.list_devices()


def test_the_simulated_kind_lists_and_opens_its_device() -> None:
    (device,) = CAMERA_KINDS["sim"].list_devices()
    assert device.index == 0
    with CAMERA_KINDS["sim"].open(OpenOptions(shape=(32, 48))) as cam:
        assert cam.state is CameraState.OPEN
        assert cam.frame_shape == (32, 48)
