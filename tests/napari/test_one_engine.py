"""One engine: ``lsci compare``, the Python API and the napari Compare widget give identical
numbers, ROI table and hypoperfused areas, on the same calibrated recording (stored dark frame
and β)."""

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
from napari_lsci._compare_widget import AREA_LAYER, EVENTS, CompareWidget
from napari_lsci._rois import REFERENCE_NAME, ROI_LAYER
from tests.calibrated_recording import (
    HEALTHY,
    PATCH,
    RADIUS_PX,
    RECOVERY_FACTOR,
    write_calibrated_needling,
)

pytestmark = pytest.mark.napari

WINDOW_S = 4.0
NUMBERS = ("pixel_count", "before_mean", "after_mean", "ratio", "relative_ratio")
AREA_NUMBERS = ("reduction_px", "recovered_px", "persistent_px", "new_px", "unmeasured_after_px")


def test_cli_api_and_napari_agree_on_a_calibrated_recording(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    path = write_calibrated_needling(tmp_path / "needling.h5")

    api = compare_events(
        path,
        "needling start",
        "needling end",
        window_s=WINDOW_S,
        rois={"lesion": PATCH, REFERENCE_NAME: HEALTHY},
        reference=REFERENCE_NAME,
    )
    assert api.comparison.roi("lesion").ratio == pytest.approx(RECOVERY_FACTOR, rel=0.05)

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
            "lesion=38,38,58,58",
            "--roi",
            f"{REFERENCE_NAME}=74,4,92,24",
            "--reference",
            REFERENCE_NAME,
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
    # Drawn in the named-ROI layer: the first region is named "lesion", the second
    # "healthy skin", the reference.
    viewer.layers[ROI_LAYER].add_polygons([PATCH])
    viewer.layers[ROI_LAYER].add_polygons([HEALTHY])
    napari = widget.comparison

    # The same maps, the same shift, the same table, to the last bit.
    np.testing.assert_array_equal(napari.before, api.comparison.before)
    np.testing.assert_array_equal(napari.after, api.comparison.after)
    assert napari.registration == api.comparison.registration
    assert api.comparison.registration is not None
    assert report["registration"]["shift_px"] == list(api.comparison.registration.shift_px)
    assert report["registration"]["rotation_deg"] == api.comparison.registration.rotation_deg
    assert report["registration"]["scale"] == api.comparison.registration.scale
    assert [row.name for row in napari.rois] == ["lesion", REFERENCE_NAME]
    for napari_row, api_row, cli_row in zip(
        napari.rois, api.comparison.rois, report["rois"], strict=True
    ):
        assert napari_row.name == api_row.name == cli_row["name"]
        for name in NUMBERS:
            assert getattr(napari_row, name) == getattr(api_row, name) == cli_row[name], name
    assert widget.inputs is not None
    assert widget.inputs.unit == "1/τc (1/s)"

    # The same hypoperfused areas: the disc before, nearly nothing after its recovery.
    areas = api.comparison.areas
    assert areas is not None
    assert areas.before.area_px == pytest.approx(np.pi * RADIUS_PX**2, rel=0.10)
    assert napari.areas is not None
    for when in ("before", "after"):
        mine, theirs = getattr(napari.areas, when), getattr(areas, when)
        cli_area = report["areas"][when]
        assert mine.area_px == theirs.area_px == cli_area["area_px"]
        assert mine.threshold.value == theirs.threshold.value == cli_area["threshold"]["value"]
        assert mine.centroid_px == theirs.centroid_px
        np.testing.assert_array_equal(mine.mask, theirs.mask)
    for name in AREA_NUMBERS:
        assert getattr(napari.areas, name) == getattr(areas, name) == report["areas"][name], name
    # The widget shows the engine's numbers and outlines, nothing of its own.
    assert f"{areas.before.area_px} px" in widget.areas.value
    outlines = viewer.layers[AREA_LAYER].data
    expected = 2 * len(areas.before.outlines) + len(areas.after.outlines)
    assert len(outlines) == expected
    np.testing.assert_allclose(outlines[0], areas.before.outlines[0][:-1])
