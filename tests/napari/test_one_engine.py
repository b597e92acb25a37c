"""One engine: ``lsci compare``, the Python API and the napari Compare widget give identical
numbers on the same calibrated recording (stored dark frame and β)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install 'lsci[napari]')")
pytest.importorskip("qtpy", reason="no Qt binding installed (pip install 'lsci[napari]')")

from click.testing import CliRunner

from lsci.analysis.compare_recordings import compare_events
from lsci.cli import main
from napari_lsci._compare_widget import EVENTS, REFERENCE_LAYER, ROI_LAYER, CompareWidget
from tests.calibrated_recording import HEALTHY, PATCH, RECOVERY_FACTOR, write_calibrated_needling

pytestmark = pytest.mark.napari

WINDOW_S = 4.0
NUMBERS = ("pixel_count", "before_mean", "after_mean", "ratio", "relative_ratio")


def test_cli_api_and_napari_agree_on_a_calibrated_recording(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    path = write_calibrated_needling(tmp_path / "needling.h5")

    api = compare_events(
        path,
        "needling start",
        "needling end",
        window_s=WINDOW_S,
        rois={"patch": PATCH},
        reference=HEALTHY,
    )
    assert api.comparison.roi("patch").ratio == pytest.approx(RECOVERY_FACTOR, rel=0.05)

    cli = CliRunner().invoke(
        main,
        [
            "compare",
            str(path),
            "--before",
            "needling start",
            "--after",
            "needling end",
            "--window-s",
            str(WINDOW_S),
            "--roi",
            "patch=38,38,58,58",
            "--roi",
            "healthy=74,4,92,24",
            "--reference",
            "healthy",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert cli.exit_code == 0, cli.output
    report = json.loads((tmp_path / "out" / "comparison.json").read_text(encoding="utf-8"))

    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="lsci")
    widget = CompareWidget(viewer)
    widget.source.value = EVENTS
    widget.seconds.value = WINDOW_S
    worker = widget.compute()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert widget.comparison is not None, widget.status.value
    viewer.layers[ROI_LAYER].add_polygons([PATCH])
    viewer.layers[REFERENCE_LAYER].add_polygons([HEALTHY])
    napari = widget.comparison

    # The same maps, the same shift, the same table, to the last bit.
    np.testing.assert_array_equal(napari.before, api.comparison.before)
    np.testing.assert_array_equal(napari.after, api.comparison.after)
    assert napari.registration == api.comparison.registration
    assert api.comparison.registration is not None
    assert report["registration"]["shift_px"] == list(api.comparison.registration.shift_px)
    assert report["registration"]["peak_ratio"] == api.comparison.registration.peak_ratio
    for napari_row, api_row, cli_row in zip(
        napari.rois, api.comparison.rois, report["rois"], strict=True
    ):
        for name in NUMBERS:
            assert getattr(napari_row, name) == getattr(api_row, name) == cli_row[name], name
    assert widget.inputs is not None
    assert widget.inputs.unit == "1/τc (1/s)"
