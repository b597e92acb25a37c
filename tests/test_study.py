"""The study catalog: subjects, visits, recordings checked by SHA-256, ROIs, schema versions."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the study catalog needs the 'study' extra")

import sqlalchemy as sa
from click.testing import CliRunner

from lsci.analysis.delineation import delineate_hypoperfusion
from lsci.analysis.roi import polygon_mask
from lsci.analysis.scale import save_scale
from lsci.cli import main
from lsci.recording import add_event
from lsci.study import (
    CatalogError,
    RecordingChangedError,
    Roi,
    Study,
    StudyError,
    read_roi_file,
    schema,
)
from lsci.study.analysis import recording_perfusion_map
from lsci.study.database import connect
from lsci.study.migrations import migrate
from tests.study.simulate import LESION, REFERENCE, SHAPE, Visit, write_rois, write_visit

START = "2026-03-02T09:15:00Z"


def record(path: Path, seed: int = 0) -> Path:
    return write_visit(path, Visit(6.0, 15.0), seed=seed, serial="SN-1", start_time_utc=START)


@pytest.fixture
def study(tmp_path: Path) -> Study:
    return Study.init(tmp_path / "study")


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["study", *map(str, args)])
    return result.exit_code, result.output


# ---------------------------------------------------------------- subjects and visits
@pytest.mark.parametrize("code", ["Smith", "John Smith", "", "S" * 17, "S01/2", "Müller1"])
def test_names_and_malformed_codes_are_refused(study: Study, tmp_path: Path, code: str) -> None:
    rec = record(tmp_path / "r.h5")
    with pytest.raises(StudyError, match="never a name"):
        study.add_recording(rec, subject=code, site="nose", visit="V1")
    assert study.subjects() == []


def test_subject_is_refused_on_the_command_line_in_one_line(tmp_path: Path) -> None:
    rec = record(tmp_path / "r.h5")
    assert invoke("init", tmp_path / "s")[0] == 0
    code, output = invoke("add", tmp_path / "s", rec, "--subject", "Jones", "--site", "nose",
                          "--visit", "V1")  # fmt: skip
    assert code == 1
    assert output.count("\n") == 1
    assert "never a name" in output


def test_recording_inside_the_study_is_stored_relative_and_the_folder_can_move(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "study"
    with Study.init(folder) as study:
        (folder / "raw").mkdir()
        inside = record(folder / "raw" / "a.h5")
        outside = record(tmp_path / "b.h5", seed=1)
        first = study.add_recording(inside, subject="S01", site="nose", visit="V1")
        second = study.add_recording(outside, subject="S01", site="nose", visit="V2")
    assert first.stored_path == "raw/a.h5"
    assert second.stored_path == str(outside.absolute())
    shutil.move(folder, tmp_path / "moved")
    with Study.open(tmp_path / "moved") as study:
        assert [e.status for e in study.recordings()] == ["ok", "ok"]


def test_visit_day_follows_from_dates_and_a_conflicting_date_is_refused(
    study: Study, tmp_path: Path
) -> None:
    recs = [record(tmp_path / f"r{i}.h5", seed=i) for i in range(3)]
    study.add_recording(recs[0], subject="S01", site="nose", visit="V1",
                        visit_date=date(2026, 3, 2), day=2)  # fmt: skip
    later = study.add_recording(recs[1], subject="S01", site="nose", visit="V2",
                                visit_date=date(2026, 3, 9))  # fmt: skip
    assert later.day == 9
    with pytest.raises(StudyError, match="has date 2026-03-02"):
        study.add_recording(recs[2], subject="S01", site="cheek", visit="V1",
                            visit_date=date(2026, 3, 3))  # fmt: skip


def test_the_same_recording_twice_in_a_visit_is_refused(study: Study, tmp_path: Path) -> None:
    rec = record(tmp_path / "r.h5")
    study.add_recording(rec, subject="S01", site="nose", visit="V1")
    with pytest.raises(StudyError, match="in the catalog already"):
        study.add_recording(rec, subject="S01", site="nose", visit="V1")
    assert len(study.recordings()) == 1


def test_a_file_that_is_not_a_recording_is_refused_in_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.h5"
    bogus.write_text("not HDF5")
    invoke("init", tmp_path / "s")
    code, output = invoke("add", tmp_path / "s", bogus, "--subject", "S01", "--site", "nose",
                          "--visit", "V1")  # fmt: skip
    assert code == 1
    assert output.count("\n") == 1
    assert "notes.h5" in output


# ---------------------------------------------------------------- changed and moved recordings
def _study_with_one(tmp_path: Path) -> tuple[Path, Path]:
    folder, rec = tmp_path / "s", tmp_path / "r.h5"
    record(rec)
    rois = write_rois(tmp_path / "rois.geojson")
    assert invoke("init", folder)[0] == 0
    code, output = invoke("add", folder, rec, "--subject", "S01", "--site", "nose", "--visit",
                          "V1", "--roi", rois)  # fmt: skip
    assert code == 0, output
    return folder, rec


def test_changed_bytes_are_reported_by_list_and_refused_by_trend(tmp_path: Path) -> None:
    folder, rec = _study_with_one(tmp_path)
    assert invoke("list", folder)[0] == 0
    data = bytearray(rec.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern, same size
    rec.write_bytes(bytes(data))
    code, output = invoke("list", folder)
    assert code == 1
    assert "changed" in output
    assert "bytes differ" in output
    # Sizes alone cannot see it: --quick says so by reporting ok.
    assert invoke("list", folder, "--quick")[0] == 0
    code, output = invoke("trend", folder, "--subject", "S01", "--out", tmp_path / "t")
    assert code == 1
    assert output.count("\n") == 1
    assert "not used" in output
    assert not (tmp_path / "t" / "trend_S01.csv").exists()


def test_moved_recording_is_reported_missing_and_refused(tmp_path: Path) -> None:
    folder, rec = _study_with_one(tmp_path)
    rec.rename(tmp_path / "elsewhere.h5")
    code, output = invoke("list", folder)
    assert code == 1
    assert "missing" in output
    with Study.open(folder) as study, pytest.raises(RecordingChangedError, match="moved"):
        study.trend("S01")


def test_annotations_added_later_count_as_a_change(tmp_path: Path) -> None:
    folder, rec = _study_with_one(tmp_path)
    add_event(
        rec, "needling start", time_s=0.1
    )  # beside the sealed file; the recording's bytes are kept
    with Study.open(folder) as study:
        (entry,) = study.recordings()
    assert entry.status == "changed"
    assert "annotations" in entry.reason


# ---------------------------------------------------------------- ROIs and the area measure
def test_roi_file_corners_are_x_y_and_give_the_polygon_mask(tmp_path: Path) -> None:
    rois = {roi.name: roi for roi in read_roi_file(write_rois(tmp_path / "r.geojson"))}
    assert rois["lesion"].role == "lesion"
    assert rois["healthy skin"].role == "reference"
    mask = rois["lesion"].mask(SHAPE)
    # Rows and columns 20..107: an 88 × 88 square (the polygon's area, by the inside rule).
    assert mask.sum() == 88 * 88
    assert mask[20, 20]
    assert not mask[108, 108]
    np.testing.assert_array_equal(mask, polygon_mask(LESION, SHAPE))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not a GeoJSON file"),
        ('{"type": "Feature"}', "FeatureCollection"),
        ('{"type": "FeatureCollection", "features": []}', "no ROI"),
        (
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
            '{"name": "a", "role": "boss"}, "geometry": {"type": "Polygon", "coordinates": '
            "[[[0, 0], [1, 0], [1, 1]]]}}]}",
            "role 'boss'",
        ),
    ],
)
def test_malformed_roi_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.geojson"
    path.write_text(content)
    with pytest.raises(StudyError, match=message):
        read_roi_file(path)


def test_the_area_uses_the_measured_scale_beside_the_recording_over_the_metadata(
    study: Study, tmp_path: Path
) -> None:
    """Same frames, one with a ruler measurement of 0.1 mm/px beside it (metadata: 0.05)."""
    rois = read_roi_file(write_rois(tmp_path / "r.geojson"))
    plain, ruled = record(tmp_path / "a.h5"), record(tmp_path / "b.h5")
    save_scale(ruled, (20, 10), (20, 110), 10.0)
    study.add_recording(plain, subject="S01", site="nose", visit="V1", rois=rois)
    study.add_recording(ruled, subject="S02", site="nose", visit="V1", rois=rois)
    (a,) = [r for r in study.trend("S01").rows if r.role == "lesion"]
    (b,) = [r for r in study.trend("S02").rows if r.role == "lesion"]
    assert a.hypoperfused_area_mm2 > 0
    assert b.hypoperfused_area_mm2 == pytest.approx(4 * a.hypoperfused_area_mm2, rel=1e-9)
    # The area is the delineation engine's, restricted to the lesion ROI.
    result = recording_perfusion_map(plain, study.settings)
    found = delineate_hypoperfusion(result.perfusion, reference=polygon_mask(REFERENCE, SHAPE),
                                    scale=0.05)  # fmt: skip
    inside = np.count_nonzero(found.mask & polygon_mask(LESION, SHAPE))
    assert a.hypoperfused_area_mm2 == pytest.approx(inside * 0.05**2, rel=1e-9)


def test_trend_needs_a_reference_roi(study: Study, tmp_path: Path) -> None:
    rec = record(tmp_path / "r.h5")
    study.add_recording(rec, subject="S01", site="nose", visit="V1",
                        rois=[Roi("lesion", "lesion", LESION)])  # fmt: skip
    with pytest.raises(StudyError, match="no 'reference' ROI"):
        study.trend("S01")
    with pytest.raises(StudyError, match="more than one ROI"):
        study.set_rois("S01", "nose", [Roi("a", "reference", REFERENCE),
                                        Roi("b", "reference", LESION)])  # fmt: skip


def test_results_are_stored_with_their_settings_and_reused(study: Study, tmp_path: Path) -> None:
    rec = record(tmp_path / "r.h5")
    rois = read_roi_file(write_rois(tmp_path / "r.geojson"))
    study.add_recording(rec, subject="S01", site="nose", visit="V1", rois=rois)
    first = study.trend("S01").rows
    second = study.trend("S01").rows
    assert repr(first) == repr(second)  # NaN areas of the reference compare by repr
    engine = connect(study.database)
    with engine.connect() as connection:
        stored = connection.execute(sa.select(schema.results)).all()
    engine.dispose()
    assert len(stored) == 1
    (result,) = stored
    assert result.settings["study"]["window"] == 7
    assert result.numbers["unit"] == "1/s"
    assert "visibility equation" in result.numbers["expression"]
    assert result.numbers["processing"]["beta"] == pytest.approx(0.69, abs=0.05)


# ---------------------------------------------------------------- catalog and schema
def test_init_refuses_an_existing_study_and_open_a_plain_folder(tmp_path: Path) -> None:
    Study.init(tmp_path / "s").close()
    with pytest.raises(StudyError, match="is a study already"):
        Study.init(tmp_path / "s")
    code, output = invoke("list", tmp_path)
    assert code == 1
    assert "not a study folder" in output


def test_a_catalog_newer_than_lsci_is_refused(tmp_path: Path) -> None:
    Study.init(tmp_path / "s").close()
    engine = connect(f"sqlite:///{tmp_path / 's' / 'catalog.sqlite'}")
    with engine.begin() as connection:
        connection.execute(
            sa.insert(schema.schema_versions).values(
                version=schema.SCHEMA_VERSION + 1, applied_utc="x", lsci_version="99"
            )
        )
    engine.dispose()
    with pytest.raises(CatalogError, match="newer than this lsci"):
        Study.open(tmp_path / "s")


def test_upgrade_steps_run_in_order_and_are_recorded(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with engine.begin() as connection:
        schema.metadata.create_all(connection)
        connection.execute(
            sa.insert(schema.schema_versions).values(version=1, applied_utc="x", lsci_version="0")
        )

    def add_column(connection: sa.Connection) -> None:
        connection.exec_driver_sql("ALTER TABLE sites ADD COLUMN laterality VARCHAR(8)")

    with engine.begin() as connection:
        assert migrate(connection, target=2, upgrades={1: add_column}) == 1
    with engine.begin() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("sites")}
        versions = connection.execute(sa.select(schema.schema_versions.c.version)).scalars()
        assert "laterality" in columns
        assert sorted(versions) == [1, 2]
        with pytest.raises(CatalogError, match=r"no upgrade .* from version 2 to 3"):
            migrate(connection, target=3, upgrades={})
    engine.dispose()


def test_the_folder_and_the_database_must_belong_together(tmp_path: Path) -> None:
    Study.init(tmp_path / "a").close()
    Study.init(tmp_path / "b").close()
    shutil.copy(tmp_path / "b" / "catalog.sqlite", tmp_path / "a" / "catalog.sqlite")
    with pytest.raises(StudyError, match="another study"):
        Study.open(tmp_path / "a")


def test_study_json_never_holds_a_database_password(tmp_path: Path) -> None:
    with pytest.raises(CatalogError):
        # No server there: the URL is checked, then the connection fails in one message.
        Study.init(tmp_path / "s", database="postgresql://u:secret@127.0.0.1:1/none")
    assert not (tmp_path / "s" / "study.json").exists()
    text = json.dumps(os.listdir(tmp_path / "s"))
    assert "secret" not in text
