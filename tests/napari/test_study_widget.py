"""The Study widget on a small simulated study: the numbers of ``lsci study trend``'s CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install 'lsci[napari]')")
pytest.importorskip("qtpy", reason="no Qt binding installed (pip install 'lsci[napari]')")
pytest.importorskip("sqlalchemy", reason="the study catalog needs the 'study' extra")

from click.testing import CliRunner

from lsci.cli import main
from lsci.study import Study, read_roi_file
from lsci.study.trends import TREND_COLUMNS
from napari_lsci._study_widget import ROI_LAYER, StudyWidget
from tests.study.simulate import Visit, write_rois, write_visit

pytestmark = pytest.mark.napari


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """One subject, two visits of the nose, ROIs drawn on the first."""
    folder = tmp_path / "study"
    rois = read_roi_file(write_rois(tmp_path / "rois.geojson"))
    with Study.init(folder) as created:
        for number, (day, factor, radius) in enumerate([(2, 7.0, 32.0), (9, 4.0, 22.0)]):
            path = write_visit(tmp_path / f"v{number}.h5", Visit(factor, radius), seed=number,
                               serial="SN-1", start_time_utc="2026-03-04T09:00:00Z")  # fmt: skip
            created.add_recording(path, subject="S07", site="nose", visit=f"V{number + 1}",
                                  day=day, rois=rois if number == 0 else None)  # fmt: skip
    return folder


def test_study_widget_browses_opens_a_visit_and_shows_the_trend_of_the_cli(
    make_napari_viewer, qtbot, study: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["study", "trend", str(study), "--subject", "S07",
                                       "--site", "nose", "--out", str(tmp_path / "t")])  # fmt: skip
    assert result.exit_code == 0, result.output
    with (tmp_path / "t" / "trend_S07.csv").open(newline="") as handle:
        expected = list(csv.reader(handle))

    viewer = make_napari_viewer()
    widget = StudyWidget(viewer)
    widget.folder.value = study
    widget.load()
    assert widget.subject.choices == ("S07",)
    assert widget.site.choices == ("nose",)
    assert [entry.visit for entry in widget.visit.choices] == ["V1", "V2"]

    widget.visit.value = widget.visit.choices[1]
    widget.open_visit()
    assert any(layer.name.startswith("v1") for layer in viewer.layers)
    shapes = viewer.layers[ROI_LAYER]
    assert len(shapes.data) == 2  # the reference and the lesion, placed on the second visit

    worker = widget.show_trend()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    table = widget.table.value
    assert list(table["columns"]) == list(TREND_COLUMNS) == expected[0]
    # Empty cells (missing numbers) come back from the Qt table as None.
    shown = [["" if value is None else value for value in row] for row in table["data"]]
    assert shown == expected[1:]
    assert len(widget.canvas.figure.axes) == 2
    lesion = [row for row in table["data"] if row[TREND_COLUMNS.index("roi")] == "lesion"]
    assert [row[TREND_COLUMNS.index("roi_mapping")] for row in lesion] == [
        "drawn",
        "registration",
    ]
