"""The GenICam driver against a real GenTL producer: viky.cti, shipped with the genicam wheel.

Nothing here is mocked: every call goes through harvesters into the producer. Faults the
producer cannot produce by itself (a device vanishing) are caused for real, by destroying the
harvesters acquirer under the driver.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lsci.drivers.base import (
    CameraDisconnectedError,
    CameraError,
    CameraState,
    Roi,
    UnsupportedFeatureError,
)
from tests.helpers.children import python_child

genicam = pytest.importorskip("genicam", reason="the camera extra (genicam) is not installed")
pytest.importorskip("harvesters.core", reason="the camera extra (harvesters) is not installed")

from lsci.cli.cameras import cameras  # noqa: E402  (after the skips above)
from lsci.drivers import genicam as driver  # noqa: E402
from lsci.drivers.genicam import GenICamCamera  # noqa: E402

pytestmark = [pytest.mark.camera, pytest.mark.serial]

VIKY = Path(genicam.__file__).resolve().parent / "viky.cti"
SMALL = Roi(0, 0, 100, 100)


@pytest.fixture
def camera() -> Iterator[GenICamCamera]:
    cam = GenICamCamera("1", producer=VIKY)
    with cam:
        cam.set("roi", SMALL)
        cam.set("frame_rate_hz", 200.0)
        yield cam


# -- producers and devices --------------------------------------------------------------------


def test_find_producers_from_files_folders_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert driver.find_producers([VIKY]) == [VIKY]
    assert driver.find_producers([VIKY.parent, VIKY]) == [VIKY]
    monkeypatch.setenv(
        driver.ENV_VAR, os.pathsep.join([str(tmp_path / "absent"), str(tmp_path), str(VIKY.parent)])
    )
    assert driver.find_producers() == [VIKY]
    monkeypatch.setenv(driver.ENV_VAR, "")
    assert driver.find_producers() == []
    with pytest.raises(ValueError, match=r"absent.cti"):
        driver.find_producers([tmp_path / "absent.cti"])


def test_list_devices_reports_all_fields_and_unknown_for_absent_ones() -> None:
    devices = driver.list_devices([VIKY])
    assert [d.serial_number for d in devices] == ["0", "1", "2"]
    assert [d.device_id for d in devices] == [
        "VikyTL_DEV_red",
        "VikyTL_DEV_green",
        "VikyTL_DEV_blue",
    ]
    assert [d.index for d in devices] == [0, 1, 2]
    for device in devices:
        assert device.producer == VIKY
        assert device.vendor == "Machine Vision Games Ltd."
        assert device.model == "Viky"
        assert device.interface == "VikyTL_ITF_UnivIF"
        assert device.transport == "Custom"
        assert device.user_defined_name == driver.UNKNOWN  # viky stores none


def test_a_broken_producer_is_reported_not_fatal(tmp_path: Path) -> None:
    broken = tmp_path / "broken.cti"
    broken.write_bytes(b"not a shared library")
    reports = driver.discover([broken, VIKY])
    assert reports[0].path == broken.resolve()
    assert reports[0].devices == ()
    assert reports[0].error is not None
    assert "broken.cti" in reports[0].error
    assert len(reports[1].devices) == 3
    assert reports[1].error is None


def test_open_without_any_producer_explains_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(driver.ENV_VAR, raising=False)
    with pytest.raises(CameraError, match=driver.ENV_VAR):
        GenICamCamera(0).open()


# -- choosing and opening devices ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "device_id"),
    [(2, "VikyTL_DEV_blue"), ("1", "VikyTL_DEV_green"), ("VikyTL_DEV_red", "VikyTL_DEV_red")],
)
def test_device_chosen_by_index_serial_or_id(selector: int | str, device_id: str) -> None:
    with GenICamCamera(selector, producer=VIKY) as cam:
        assert cam.description is not None
        assert cam.description.device_id == device_id
        assert device_id in cam.name
    assert cam.description is None


def test_unknown_devices_raise_listing_what_exists() -> None:
    with pytest.raises(CameraError, match=r"serial number or id 'nope'.*VikyTL_DEV_blue"):
        GenICamCamera("nope", producer=VIKY).open()
    with pytest.raises(CameraError, match="index 7: 3 found"):
        GenICamCamera(7, producer=VIKY).open()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"device": -1}, ValueError),
        ({"device": ""}, ValueError),
        ({"device": 1.5}, TypeError),
        ({"num_buffers": 0}, ValueError),
    ],
)
def test_invalid_constructor_arguments(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        GenICamCamera(**kwargs)  # type: ignore[arg-type]


def test_second_open_of_the_same_device_names_it(camera: GenICamCamera) -> None:
    with pytest.raises(CameraError, match=r"VikyTL_DEV_green.*already open"):
        GenICamCamera("VikyTL_DEV_green", producer=VIKY).open()
    # Other devices of the same producer still open while this one is in use.
    with GenICamCamera(2, producer=VIKY) as other:
        assert other.state is CameraState.OPEN


def test_open_keeps_the_processs_ctrl_c_handler() -> None:
    before = signal.getsignal(signal.SIGINT)
    with GenICamCamera(0, producer=VIKY):
        assert signal.getsignal(signal.SIGINT) is before


# -- settings -----------------------------------------------------------------------------------


def test_absent_sfnc_features_are_unavailable_with_reasons(camera: GenICamCamera) -> None:
    caps = camera.capabilities()
    assert caps["exposure_s"].reason == "the device has no ExposureTime feature"
    assert caps["gain"].reason == "the device has no Gain feature"
    assert caps["trigger_mode"].reason == "the device has no TriggerMode feature"
    rate = caps["frame_rate_hz"]
    assert rate.writable
    assert rate.unit == "Hz"
    assert (rate.range.minimum, rate.range.maximum) == (1.0, 200.0)  # type: ignore[union-attr]
    limits = caps["roi"].roi_limits
    assert limits is not None
    assert (limits.sensor_width, limits.sensor_height) == (800, 800)
    assert (limits.offset_x.maximum, limits.offset_y.maximum) == (0, 0)  # no OffsetX/Y
    with pytest.raises(UnsupportedFeatureError, match=r"exposure_s.*Viky.*ExposureTime"):
        camera.set("exposure_s", 0.001)


def test_opens_in_a_monochrome_format_even_after_rgb(camera: GenICamCamera) -> None:
    # viky starts in RGBa8; the driver must choose Mono8, also after someone set RGBa8.
    assert camera.get("pixel_format") == "Mono8"
    assert camera.capabilities()["pixel_format"].choices == ("Mono8",)
    camera._write("PixelFormat", "RGBa8")
    camera.close()
    camera.open()
    assert camera.get("pixel_format") == "Mono8"


def test_starting_in_an_unsupported_format_raises_a_clear_error(camera: GenICamCamera) -> None:
    camera._write("PixelFormat", "RGBa8")
    with pytest.raises(CameraError, match=r"RGBa8.*Mono8"):
        camera.start()
    assert camera.state is CameraState.OPEN


# -- streaming ----------------------------------------------------------------------------------


def test_frames_are_copied_out_of_reused_buffers() -> None:
    with GenICamCamera(0, producer=VIKY, num_buffers=2) as cam:
        cam.set("roi", Roi(0, 0, 800, 800))
        cam.set("frame_rate_hz", 200.0)
        cam.start()
        frames, copies = [], []
        for _ in range(8):
            frames.append(cam.read(timeout_s=2.0))
            copies.append(frames[-1].data.copy())
        cam.stop()
    # With two driver buffers, frames 3 to 8 reused the memory of frames 1 and 2: had a
    # frame been a view of a driver buffer, it would have changed since it was read.
    for frame, copy in zip(frames, copies, strict=True):
        np.testing.assert_array_equal(frame.data, copy)
    assert any(f.data.any() for f in frames)  # the bouncing ball shows up


def test_stop_drains_delivered_frames(camera: GenICamCamera) -> None:
    camera.start()
    last = camera.read(timeout_s=2.0)
    time.sleep(0.3)  # the producer keeps filling the 16 buffers meanwhile
    rest = camera.stop()
    assert rest, "frames delivered before the stop must be returned, not discarded"
    ids = [f.frame_id for f in rest]
    assert ids[0] > last.frame_id
    assert all(b > a for a, b in itertools.pairwise(ids))
    assert camera.stats().frames_read == 1 + len(rest)


def test_slow_reader_drops_are_counted_from_frame_id_gaps() -> None:
    with GenICamCamera(0, producer=VIKY, num_buffers=1) as cam:
        cam.set("roi", SMALL)
        cam.set("frame_rate_hz", 200.0)
        cam.start()
        ids = []
        for _ in range(10):
            ids.append(cam.read(timeout_s=2.0).frame_id)
            time.sleep(0.03)  # about six frame periods: the producer has nowhere to put them
        stats = cam.stats()
        cam.stop()
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(ids))
    assert gaps > 0
    assert stats.frames_dropped == gaps


def test_read_into_unpacks_into_a_ring_slot(camera: GenICamCamera) -> None:
    camera.start()
    ring = np.zeros((4, *camera.frame_shape), dtype=camera.frame_dtype)
    infos = [camera.read_into(ring[i % 4], timeout_s=2.0) for i in range(8)]
    camera.stop()
    assert [i.frame_id for i in infos] == list(range(infos[0].frame_id, infos[0].frame_id + 8))
    assert all(i.pixel_format == "Mono8" and i.bit_depth == 8 for i in infos)
    assert all(i.camera_timestamp_ns is None for i in infos)  # viky has no timestamps


def test_device_disappearing_mid_stream_closes_the_camera(camera: GenICamCamera) -> None:
    camera.start()
    camera.read(timeout_s=2.0)
    # Pull the device from under the driver as a reset producer would: harvesters tears
    # down the acquirer, its stream and its buffers.
    camera._acquirer.destroy()
    with pytest.raises(CameraDisconnectedError, match=r"disappeared.*open it again"):
        camera.read(timeout_s=2.0)
    assert camera.state is CameraState.CLOSED
    camera.close()  # harmless
    camera.open()  # the device is back: it opens and streams again
    camera.start()
    assert camera.read(timeout_s=2.0).frame_id >= 1
    camera.stop()


def test_disappearing_while_open_is_reported_on_the_next_call(camera: GenICamCamera) -> None:
    camera._acquirer.destroy()
    with pytest.raises(CameraDisconnectedError):
        camera.capabilities()
    assert camera.state is CameraState.CLOSED


CTRL_C_CHILD = textwrap.dedent(
    """
    import faulthandler
    import time
    from lsci.drivers.base import Roi
    from lsci.drivers.genicam import GenICamCamera

    faulthandler.dump_traceback_later(20, exit=True)  # a hang then shows every thread's stack
    cam = GenICamCamera(0, producer={producer!r}, num_buffers=8)
    cam.open()
    cam.set("roi", Roi(0, 0, 100, 100))
    cam.set("frame_rate_hz", 200.0)
    cam.start()
    ids = []
    try:
        print("streaming", flush=True)
        while True:
            ids.append(cam.read(timeout_s=2.0).frame_id)
            time.sleep(0.02)  # a slow consumer: delivered frames wait in the buffers
    except KeyboardInterrupt:
        rest = cam.stop()
        later = all(f.frame_id > ids[-1] for f in rest)
        print("interrupted", len(ids), len(rest), later, cam.state.value, flush=True)
        cam.close()
    """
)


def test_ctrl_c_reaches_the_main_thread_and_the_camera_stops_cleanly() -> None:
    # The with block closes the pipes whatever happens (left open, they fail a later test).
    with subprocess.Popen(
        python_child(CTRL_C_CHILD.format(producer=str(VIKY))),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "streaming"
            time.sleep(0.3)
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=30)
        finally:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    word, read, drained, later, state = out.split()
    assert word == "interrupted"
    assert int(read) > 0
    assert int(drained) > 0  # the last frames came out of the buffers instead of being lost
    assert later == "True"
    assert state == "open"


# -- lsci cameras -------------------------------------------------------------------------------


def assert_lists_viky(output: str) -> None:
    assert f"GenTL producer {VIKY}" in output
    lines = output.splitlines()
    header = next(line for line in lines if "vendor" in line)
    assert header.split() == ["index", "vendor", "model", "serial", "id", "interface"]
    for index, device_id in enumerate(["VikyTL_DEV_red", "VikyTL_DEV_green", "VikyTL_DEV_blue"]):
        row = next(line for line in lines if device_id in line)
        assert row.split()[0] == str(index)
        assert "Machine Vision Games Ltd." in row
        assert f" {index} " in row  # the serial number
        assert row.rstrip().endswith("VikyTL_ITF_UnivIF")


def test_cameras_lists_an_explicit_producer() -> None:
    result = CliRunner().invoke(cameras, ["--cti", str(VIKY)])
    assert result.exit_code == 0, result.output
    assert_lists_viky(result.output)


def test_cameras_finds_producers_on_the_gentl_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(driver.ENV_VAR, str(VIKY.parent))
    result = CliRunner().invoke(cameras, [])
    assert result.exit_code == 0, result.output
    assert_lists_viky(result.output)


def test_cameras_reports_a_broken_producer_and_goes_on(tmp_path: Path) -> None:
    broken = tmp_path / "broken.cti"
    broken.write_bytes(b"not a shared library")
    result = CliRunner().invoke(cameras, ["--cti", str(broken), "--cti", str(VIKY)])
    assert result.exit_code == 0, result.output
    assert "cannot use it" in result.output
    assert_lists_viky(result.output)


def test_cameras_without_producers_explains_the_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(driver.ENV_VAR, str(tmp_path))
    result = CliRunner().invoke(cameras, ["--camera", "genicam"])
    assert result.exit_code == 1
    assert "No GenTL producer found" in result.output
    assert f"export {driver.ENV_VAR}=" in result.output
    assert "--cti" in result.output


def test_cameras_rejects_a_missing_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(cameras, ["--cti", str(tmp_path / "absent.cti")])
    assert result.exit_code == 2
    assert "absent.cti" in result.output


def test_cameras_without_the_camera_extra_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "harvesters.core", None)  # makes the import fail
    result = CliRunner().invoke(cameras, ["--cti", str(VIKY)])
    assert result.exit_code == 1
    assert 'pip install "lsci[camera]"' in result.output


def test_close_after_the_device_vanished_while_acquiring_is_clean(camera: GenICamCamera) -> None:
    camera.start()
    camera._acquirer.destroy()
    camera.close()
    assert camera.state is CameraState.CLOSED


def test_a_broken_producer_beside_a_good_one_does_not_block_opening(tmp_path: Path) -> None:
    (tmp_path / "broken.cti").write_bytes(b"not a shared library")
    with pytest.raises(CameraError, match=r"broken\.cti"):
        GenICamCamera(0, producer=tmp_path).open()
    (tmp_path / "viky.cti").symlink_to(VIKY)
    with GenICamCamera("VikyTL_DEV_blue", producer=tmp_path) as cam:
        assert cam.state is CameraState.OPEN
