"""The Acquire widget against the simulated camera (and viky.cti when the camera extra is there)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install 'lsci[napari]')")
pytest.importorskip("qtpy", reason="no Qt binding installed (pip install 'lsci[napari]')")

from lsci.recording import open_recording
from napari_lsci._acquire_widget import LIVE_LAYER, AcquireWidget, live_layer

pytestmark = pytest.mark.napari


@pytest.fixture
def widget(make_napari_viewer) -> Iterator[AcquireWidget]:
    acquire = AcquireWidget(make_napari_viewer())
    yield acquire
    # Whatever a test left running is stopped before the viewer closes.
    acquire.disconnect_camera()


def _pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lsci-pipeline")]


def _acquire(qtbot, widget: AcquireWidget, path: Path) -> None:
    widget.record.value = True
    widget.file.value = path
    widget.start()
    assert not widget.start_button.enabled
    assert widget.stop_button.enabled
    # Live maps reach the viewer through the GUI thread.
    qtbot.waitUntil(lambda: widget.live_maps >= 3, timeout=60_000)
    widget.mark("needling start")
    qtbot.waitUntil(lambda: len(widget.events) == 1, timeout=30_000)
    qtbot.waitUntil(lambda: "fps" in widget.stats.value, timeout=30_000)
    widget.mark_end_button.clicked()
    qtbot.waitUntil(lambda: len(widget.events) == 2, timeout=30_000)
    summary = widget.stop()
    assert summary.error is None
    assert _pipeline_threads() == []
    assert "stopped" in widget.status.value
    assert widget.start_button.enabled
    with open_recording(path) as recording:
        assert recording.closed_cleanly
        assert len(recording) == summary.stats.frames_recorded > 0
        labels = [e.label for e in recording.events]
        assert labels[:2] == ["needling start", "needling end"]
    # The recording is opened in the viewer when the run ends.
    assert f"{path.stem} raw [ADU]" in widget.viewer.layers


def test_acquire_from_the_simulated_camera(widget: AcquireWidget, qtbot, tmp_path: Path) -> None:
    assert not widget.start_button.enabled
    widget.connect_camera()
    states = widget.setting_states()
    assert all(state.enabled for state in states.values())
    widget.exposure_ms.value = 2.0
    widget.frame_rate.value = 50.0
    widget.roi.value = "0, 0, 128, 96"
    widget.apply_settings()
    assert widget.camera.get("exposure_s") == pytest.approx(0.002)
    assert widget.camera.frame_shape == (96, 128)
    _acquire(qtbot, widget, tmp_path / "sim.h5")
    live = live_layer(widget.viewer)
    assert live.name.startswith(LIVE_LAYER)
    assert live.data.shape == (96, 128)
    assert live.colormap.name == "inferno"
    widget.disconnect_camera()
    assert widget.camera is None


def test_acquire_settings_errors_are_reported(widget: AcquireWidget, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="connect a camera"):
        widget.start()
    widget.connect_camera()
    widget.roi.value = "1, 2, 3"
    with pytest.raises(ValueError, match="four whole numbers"):
        widget.apply_settings()
    widget.roi.value = ""
    widget.record.value = True
    widget.file.value = ""
    widget.folder.value = tmp_path / "missing"
    with pytest.raises(ValueError, match="does not exist"):
        widget.start()
    widget.disconnect_camera()


def test_acquire_from_a_genicam_producer(widget: AcquireWidget, qtbot, tmp_path: Path) -> None:
    genicam = pytest.importorskip("genicam", reason="the camera extra is not installed")
    pytest.importorskip("harvesters", reason="the camera extra is not installed")
    viky = Path(genicam.__file__).resolve().parent / "viky.cti"
    if not viky.is_file():
        pytest.skip(f"no viky.cti producer at {viky}")
    widget.camera_kind.value = "genicam"
    widget.producer.value = viky
    widget.device.reset_choices()
    assert len(widget.device.choices) >= 1
    widget.device.value = widget.device.choices[0]
    widget.connect_camera()
    for name, state in widget.setting_states().items():
        shown = widget.setting_widgets[name]
        assert shown.enabled == state.enabled
        if not state.enabled:
            assert shown.tooltip == state.reason
    widget.roi.value = "0, 0, 100, 100"
    widget.frame_rate.value = 50.0
    widget.apply_settings()
    _acquire(qtbot, widget, tmp_path / "viky.h5")
    widget.disconnect_camera()


def test_live_view_keeps_its_colour_scale_and_shows_its_unit(
    widget: AcquireWidget, qtbot, tmp_path: Path
) -> None:
    widget.connect_camera()
    widget.folder.value = tmp_path
    widget.file.value = ""
    widget.start()
    qtbot.waitUntil(
        lambda: widget.last_update is not None and widget.last_update.limits.fixed,
        timeout=60_000,
    )
    live = live_layer(widget.viewer)
    assert live.name.startswith(LIVE_LAYER)
    # Calibrated: 1/τc from the camera's exposure, shown with a colour bar.
    assert live.metadata["unit"] == "1/τc (1/s)"
    assert live.colorbar.visible
    assert "1/τc (1/s)" in widget.viewer.canvas.overlays.text.text
    fixed = tuple(live.contrast_limits)
    seen = widget.live_maps
    qtbot.waitUntil(lambda: widget.live_maps >= seen + 5, timeout=30_000)
    # Never refitted on its own...
    assert tuple(live.contrast_limits) == fixed
    # ...only by the user.
    widget.set_colour_max(123.0)
    seen = widget.live_maps
    qtbot.waitUntil(lambda: widget.live_maps >= seen + 3, timeout=30_000)
    assert tuple(live.contrast_limits) == (0.0, 123.0)
    summary = widget.stop()
    # Recorded without typing a name: a dated file in the folder.
    assert summary.path is not None
    assert summary.path.parent == tmp_path
    assert summary.path.name.startswith("lsci-")
    # The raw speckle does not cover the perfusion map after Stop.
    assert not widget.viewer.layers[f"{summary.path.stem} raw [ADU]"].visible
    assert live.visible
