"""The Process and Events widgets driven through their public attributes and methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install 'lsci[napari]')")
pytest.importorskip("qtpy", reason="no Qt binding installed (pip install 'lsci[napari]')")

from napari.utils.notifications import notification_manager

from lsci.calibration import BetaCalibration
from lsci.recording import open_recording, save_calibration
from napari_lsci._events_widget import EventsWidget
from napari_lsci._process_widget import ProcessWidget

from .support import N_FRAMES, SHAPE, write_small_recording

pytestmark = pytest.mark.napari


def _wait(qtbot, worker) -> None:
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass


@pytest.fixture(autouse=True)
def _no_earlier_notifications() -> None:
    """napari keeps notifications for the whole session: start each test without them."""
    notification_manager.records.clear()


def _errors() -> list[str]:
    return [str(n.message) for n in notification_manager.records if n.severity == "error"]


def test_process_a_recording_file_stores_and_shows_its_maps(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    path = write_small_recording(tmp_path / "raw.h5", processed=False)
    viewer = make_napari_viewer()
    [raw] = viewer.open(str(path), plugin="lsci")
    widget = ProcessWidget(viewer)
    widget.reset_choices()
    widget.layer.value = raw
    assert widget.recording_path() == path
    # Defaults as `lsci process`: spatial 7 × 7, 1/τc as the exposure is recorded; temporal
    # settings are disabled.
    assert widget.settings().mode == "spatial"
    assert widget.settings().model == "inverse_tau"
    widget.model.value = "inverse_k2"
    assert not widget.frames_window.enabled
    assert not widget.beta.enabled
    widget.window.value = 5
    widget.average.value = 1
    _wait(qtbot, widget.run())
    perfusion = viewer.layers["raw perfusion [1/K² (a.u.)]"]
    with open_recording(path) as rec:
        stored = rec.product("perfusion")
        assert stored.info.parameters["window"] == 5
        np.testing.assert_array_equal(np.asarray(perfusion.data), stored.read())
    assert perfusion.data.shape == (N_FRAMES, *SHAPE)
    assert "added" in widget.status.value
    assert widget.progress.value == widget.progress.max == N_FRAMES

    # Other settings make a product set of their own beside the first.
    widget.window.value = 7
    _wait(qtbot, widget.run())
    assert not _errors()
    with open_recording(path) as rec:
        assert len(rec.product_sets) == 2
        assert rec.product("perfusion").info.parameters["window"] == 7


def test_tau_model_takes_beta_from_a_stored_calibration(make_napari_viewer, tmp_path: Path) -> None:
    path = write_small_recording(tmp_path / "raw.h5", processed=False)
    # As lsci's β calibration stores itself: β a dataset, beta_median an attribute.
    measured = BetaCalibration(
        beta=0.8, mode="spatial", window=7, ddof=0, beta_median=0.79, k2_spread=0.01, n_frames=4
    )
    save_calibration(path, "beta", *measured.to_arrays_attrs())
    # Another kind of calibration stored beside it is not offered as a β.
    save_calibration(path, "notes", {"values": np.zeros(2)}, {"beta": 0.5})
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="lsci")
    widget = ProcessWidget(viewer)
    widget.reset_choices()
    widget.model.value = "inverse_tau"
    assert widget.beta_source.choices == (
        "recording's calibration, else 1",
        "manual value",
        "calibration beta",
    )
    # The default leaves β to the engine, which applies the recording's β calibration.
    assert widget.settings().beta is None
    widget.beta_source.value = "calibration beta"
    assert not widget.beta.enabled
    settings = widget.settings()
    assert settings.beta == 0.8
    # The exposure comes from the recording's metadata.
    assert settings.exposure_s == 5e-3


def test_process_an_image_layer_in_memory(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    frames = rng.exponential(100.0, size=(8, 24, 24)).astype(np.float32)
    layer = viewer.add_image(frames, name="stack")
    widget = ProcessWidget(viewer)
    widget.reset_choices()
    widget.layer.value = layer
    widget.mode.value = "temporal"
    widget.frames_window.value = 4
    assert widget.frames_window.enabled
    assert not widget.average.enabled
    assert widget.recording_path() is None
    _wait(qtbot, widget.run())
    contrast = viewer.layers["stack contrast [K]"]
    perfusion = viewer.layers["stack perfusion [1/K² (a.u.)]"]
    assert contrast.data.shape == (2, 24, 24)
    # Exponential intensities have K = 1 in the mean; four samples per pixel scatter widely.
    assert 0.5 < float(np.mean(contrast.data)) < 1.1
    np.testing.assert_allclose(
        perfusion.data, 1.0 / contrast.data.astype(np.float64) ** 2, rtol=1e-4
    )
    assert contrast.scale[0] == 4.0


def test_invalid_settings_are_reported_not_run(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((4, 16, 16), np.float32), name="stack")
    widget = ProcessWidget(viewer)
    widget.reset_choices()
    widget.layer.value = layer
    widget.model.value = "inverse_tau"
    widget.beta_source.value = "manual value"
    assert widget.beta.enabled
    assert widget.exposure_ms.enabled
    # No exposure time typed in and no recording to take it from.
    assert widget.run() is None
    assert any("exposure" in message for message in _errors())


def test_events_widget_jumps_to_the_frame_of_an_event(make_napari_viewer, tmp_path: Path) -> None:
    path = write_small_recording(tmp_path / "run.h5", processed=False)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="lsci")
    widget = EventsWidget(viewer)
    widget.reset_choices()
    assert widget.summary.value == "2 events"
    assert [event["label"] for event in widget.events()] == ["needling start", "needling end"]
    widget.event.value = 1
    assert widget.go() == 8
    assert viewer.dims.point[0] == 8
