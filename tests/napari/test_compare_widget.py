"""The Compare widget on the simulated before/after pair and on a needling recording."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install 'lsci[napari]')")
pytest.importorskip("qtpy", reason="no Qt binding installed (pip install 'lsci[napari]')")

from matplotlib.image import imread

from napari_lsci._compare import stack_mean
from napari_lsci._compare_widget import EVENTS, CompareWidget
from napari_lsci._rois import REFERENCE_NAME, ROI_LAYER, ensure_roi_layer
from napari_lsci._sample_data import RECOVERY_FACTOR, before_after_pair, write_needling_recording

pytestmark = pytest.mark.napari

# `make screenshots` sets this to docs/images to refresh the README's screenshot; otherwise
# the screenshot goes to the test's temporary folder.
SCREENSHOT_DIR_VARIABLE = "LSCI_SCREENSHOT_DIR"
# Inside the needled part of the ischemic disc (centre 63.5, 57.1; flat out to 18.6 px), which
# recovers by the sample's factor, and in healthy skin away from the vessel, as (row, col)
# polygons: napari's Shapes convention.
DISC = np.array([[54.0, 47.0], [54.0, 67.0], [74.0, 67.0], [74.0, 47.0]])
HEALTHY = np.array([[100.0, 6.0], [100.0, 26.0], [120.0, 26.0], [120.0, 6.0]])


def _compare(qtbot, widget: CompareWidget) -> None:
    worker = widget.compute()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert widget.comparison is not None, widget.status.value


def _draw_rois(viewer) -> None:
    """The lesion, then healthy skin (the reference): the names new regions get in turn."""
    viewer.layers[ROI_LAYER].add_polygons([DISC])
    viewer.layers[ROI_LAYER].add_polygons([HEALTHY])


def test_compare_sample_pair_recovers_the_known_factor(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    # Shown: a hidden canvas renders black screenshots.
    viewer = make_napari_viewer(show=True)
    for data, kwargs, _ in before_after_pair():
        viewer.add_image(data, **kwargs)
    widget = CompareWidget(viewer)
    # The sample's layers are found and paired without touching a setting.
    assert widget.before_layer.value.name.startswith("before perfusion")
    assert widget.after_intensity.value.name.startswith("after intensity")
    assert widget.register.value is True
    _compare(qtbot, widget)
    # The two halves of the pair are one field of view: registered with no shift.
    registration = widget.comparison.registration
    assert registration is not None
    assert np.hypot(*registration.shift_px) < 0.5
    assert [row.name for row in widget.comparison.rois] == ["field of view"]
    change = viewer.layers["compare: change [%]"]
    low, high = change.contrast_limits
    assert low == -high
    # The convention of lsci.viz.display: a gain is red, as in the figures.
    assert change.colormap.name == "RdBu_r"
    # The panels sit side by side.
    after = viewer.layers["compare: after perfusion [1/τc (1/s)]"]
    assert after.translate[1] > 128
    assert change.translate[1] > after.translate[1]

    _draw_rois(viewer)
    rows = {row.name: row for row in widget.comparison.rois}
    assert set(rows) == {"lesion", REFERENCE_NAME}
    assert widget.comparison.reference == REFERENCE_NAME
    assert rows["lesion"].ratio == pytest.approx(RECOVERY_FACTOR, rel=0.10)
    assert rows[REFERENCE_NAME].ratio == pytest.approx(1.0, rel=0.10)
    assert rows["lesion"].percent_change == pytest.approx(100 * (RECOVERY_FACTOR - 1), rel=0.15)
    table = widget.table.value
    assert [row[0] for row in table["data"]] == ["lesion", REFERENCE_NAME]
    # Editing a shape updates the table: the lesion's region is moved onto healthy skin.
    viewer.layers[ROI_LAYER].data = [HEALTHY + np.array([0.0, 30.0]), HEALTHY]
    assert widget.comparison.roi("lesion").ratio == pytest.approx(1.0, rel=0.10)
    viewer.layers[ROI_LAYER].data = [DISC, HEALTHY]

    csv_path = widget.export_csv(tmp_path / "table.csv")
    with csv_path.open(encoding="utf-8") as handle:
        table_rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert float(table_rows["lesion"]["ratio"]) == pytest.approx(RECOVERY_FACTOR, rel=0.10)
    figure = imread(widget.export_figure(tmp_path / "figure.png"))
    assert figure.shape[1] > figure.shape[0] > 200
    assert figure[..., :3].std() > 0.05

    folder = Path(os.environ.get(SCREENSHOT_DIR_VARIABLE, tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(str(folder / "compare_view.png"), canvas_only=True)
    assert shot.ndim == 3
    assert shot.shape[0] > 100
    # Not blank: the maps put many distinct colours on the canvas.
    assert shot[..., :3].std() > 10
    assert len(np.unique(shot[..., :3].reshape(-1, 3), axis=0)) > 100


def test_compare_windows_around_needling_events_of_a_recording(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    path = write_needling_recording(tmp_path / "needling.h5")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="lsci")
    widget = CompareWidget(viewer)
    widget.source.value = EVENTS
    assert widget.recording_layer.value.name == "needling raw [ADU]"
    assert widget.start_label.value == "needling start"
    assert widget.end_label.value == "needling end"
    assert widget.seconds.value == 10.0
    widget.register.value = False
    # Regions drawn before (as in the bedside workspace) are in map pixels, scaled as the maps
    # there (here 25 µm a pixel): the panels take that scale, so the regions lie on the before
    # map.
    rois = ensure_roi_layer(viewer)
    rois.scale = (25.0, 25.0)
    _compare(qtbot, widget)
    assert "10 s before 'needling start'" in widget.status.value
    panels = [layer for layer in viewer.layers if layer.name.startswith("compare: ")]
    assert {tuple(layer.scale) for layer in panels} == {tuple(rois.scale)}
    _draw_rois(viewer)
    assert widget.comparison.roi("lesion").ratio == pytest.approx(RECOVERY_FACTOR, rel=0.10)


def test_compare_reports_missing_choices(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    widget = CompareWidget(viewer)
    assert widget.compute() is None
    with pytest.raises(ValueError, match="compare first"):
        widget.export_csv("unused.csv")


def test_compare_refuses_raw_frames_and_a_layer_against_itself(
    make_napari_viewer, tmp_path: Path
) -> None:
    path = write_needling_recording(tmp_path / "needling.h5")
    viewer = make_napari_viewer()
    [raw] = viewer.open(str(path), plugin="lsci")
    widget = CompareWidget(viewer)
    widget.before_layer.value = raw
    widget.after_layer.value = raw
    with pytest.raises(ValueError, match="same layer"):
        widget.selected_inputs()
    viewer.add_image(np.ones((8, 8)), name="a map")
    widget.reset_choices()
    widget.before_layer.value = raw
    widget.after_layer.value = viewer.layers["a map"]
    with pytest.raises(ValueError, match="raw camera frames, not a perfusion map"):
        widget.selected_inputs()


def test_stack_mean_reads_in_batches_and_ignores_nan() -> None:
    rng = np.random.default_rng(3)
    stack = rng.random((5, 4, 6))
    stack[1, 0, 0] = np.nan
    stack[:, 1, 1] = np.nan
    mean = stack_mean(stack, batch=2)
    np.testing.assert_allclose(mean[0, 0], np.nanmean(stack[:, 0, 0]))
    assert np.isnan(mean[1, 1])
    np.testing.assert_allclose(mean[2:], stack[:, 2:].mean(axis=0))
    np.testing.assert_array_equal(stack_mean(stack[0]), stack[0])
    assert stack_mean(None) is None
