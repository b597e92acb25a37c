"""Follow-up across visits end to end, on SQLite and on a real PostgreSQL server.

Three simulated subjects, four visits each, whose ischemic lesion recovers by a known amount per
visit (tests/study/simulate.py): the catalog is built, trended and exported through the
``lsci study`` command, the trend must recover the simulated perfusion (% of reference) and
hypoperfused area of every visit within 10 %, and the export must carry none of the
identifiers put into the recordings and the catalog (dates, serial numbers, notes, file names).
Two processes adding to one catalog at the same moment must lose nothing.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the study catalog needs the 'study' extra")

from click.testing import CliRunner

from lsci.cli import main
from lsci.recording import AcquisitionMetadata, RecordingWriter
from lsci.study import Study
from tests.study.postgres import postgres_server, postgres_url  # noqa: F401
from tests.study.simulate import BASELINE_TAU_C_S, Visit, write_rois, write_visit

pytestmark = pytest.mark.serial

HELPER = Path(__file__).parent / "study" / "add_many.py"
# Set to docs/images to refresh the README's trend figure (made here by ``lsci study trend``).
SCREENSHOT_DIR_VARIABLE = "LSCI_SCREENSHOT_DIR"

#: Per subject: the day-0 event date, and per visit (day, ischemic factor, lesion radius px).
SCHEDULE = {
    "S01": (date(2026, 3, 2), [(2, 8.0, 36.0), (5, 6.0, 30.0), (9, 5.0, 24.0), (30, 4.0, 20.0)]),
    "S02": (date(2026, 4, 11), [(3, 7.0, 34.0), (6, 5.0, 28.0), (10, 4.0, 24.0), (28, 3.5, 20.0)]),
    "S03": (date(2025, 12, 20), [(2, 6.0, 32.0), (4, 5.0, 26.0), (8, 4.5, 24.0), (35, 4.0, 21.0)]),
}
NOTES = "seen with Dr Rivera, mother present"
NEEDLING = ("needling start", "needling end")


def serial(code: str) -> str:
    return f"SN-4711-{code}"


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Path, date, int]]]:
    """The 12 recordings (named by subject and date, as clinics often do), outside the study."""
    folder = tmp_path_factory.mktemp("recordings")
    made: dict[str, list[tuple[Path, date, int]]] = {}
    for s, (code, (event, plan)) in enumerate(SCHEDULE.items()):
        made[code] = []
        for v, (day, factor, radius) in enumerate(plan):
            when = event + timedelta(days=day)
            path = write_visit(
                folder / f"{code}_{when.isoformat()}.h5",
                Visit(factor, radius),
                seed=100 * s + v,
                serial=serial(code),
                start_time_utc=f"{when.isoformat()}T09:30:00Z",
                events=NEEDLING if v < 2 else (),
                skin=s,
            )
            made[code].append((path, when, day))
    return made


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> list[str]:
    """``lsci study init`` options of each catalog backend."""
    if request.param == "sqlite":
        return []
    return ["--database", request.getfixturevalue("postgres_url")]


def lsci_study(*args: str | Path) -> str:
    result = CliRunner().invoke(main, ["study", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_followup_trend_recovers_the_simulated_recovery_and_the_export_is_de_identified(
    visits: dict[str, list[tuple[Path, date, int]]], database: list[str], tmp_path: Path
) -> None:
    folder, rois = tmp_path / "study", write_rois(tmp_path / "rois.geojson")
    lsci_study("init", folder, *database)
    for code, recordings in visits.items():
        for number, (path, when, day) in enumerate(recordings, start=1):
            extra = ["--roi", rois] if number == 1 else []
            notes = ["--notes", NOTES] if number == 2 else []
            lsci_study("add", folder, path, "--subject", code, "--site", "nose", "--visit",
                       f"{when:%d.%m.}", "--date", when.isoformat(), "--day", day,
                       *extra, *notes)  # fmt: skip
    listing = lsci_study("list", folder)
    assert listing.count(" ok ") == 12

    for code, (_, plan) in SCHEDULE.items():
        out = tmp_path / "trend"
        lsci_study("trend", folder, "--subject", code, "--site", "nose", "--out", out)
        assert (out / f"trend_{code}_nose.png").read_bytes()[:4] == b"\x89PNG"
        if code == "S01" and os.environ.get(SCREENSHOT_DIR_VARIABLE) and not database:
            shutil.copy(out / "trend_S01_nose.png", Path(os.environ[SCREENSHOT_DIR_VARIABLE]) /
                        "study_trend.png")  # fmt: skip
        rows = read_csv(out / f"trend_{code}.csv")
        lesion = [r for r in rows if r["roi"] == "lesion"]
        reference = [r for r in rows if r["role"] == "reference"]
        assert [int(r["day"]) for r in lesion] == [day for day, _, _ in plan]
        for row, (_, factor, radius) in zip(lesion, plan, strict=True):
            percent, area = Visit(factor, radius).truth()
            assert float(row["perfusion_percent_of_reference"]) == pytest.approx(percent, rel=0.1)
            assert float(row["hypoperfused_area_mm2"]) == pytest.approx(area, rel=0.1)
        for row in reference:  # healthy skin: 1/τc of the simulation, β from the calibration
            assert float(row["perfusion_inv_s"]) == pytest.approx(1 / BASELINE_TAU_C_S, rel=0.1)
        first = float(lesion[0]["hypoperfused_area_mm2"])
        for row in lesion:
            change = float(row["hypoperfused_area_mm2"]) - first
            assert float(row["hypoperfused_area_change_mm2"]) == pytest.approx(change, abs=1e-6)
        # The ROIs drawn on the first visit follow the subject: registered onto every other.
        assert [r["roi_mapping"] for r in lesion] == ["drawn"] + ["registration"] * 3
        assert all(float(r["registration_correlation"]) > 0.5 for r in lesion[1:])
        assert lesion[0]["events"] == "needling start; needling end"
        assert lesion[3]["events"] == ""

    export = tmp_path / "export"
    lsci_study("export", folder, "--out", export)
    files = sorted(p for p in export.rglob("*") if p.is_file())
    names = {p.relative_to(export).as_posix() for p in files}
    assert {"study_long.csv", "export.json", "README.txt"} <= names
    assert {f"figures/trend_{code}_nose.png" for code in SCHEDULE} <= names
    assert not list(export.rglob(".*"))  # no temporary files left

    identifiers = ["Rivera", "mother", "SN-4711", "needling", "T09:30", ".h5"]
    for recordings in visits.values():
        for path, when, _ in recordings:
            identifiers += [when.isoformat(), f"{when:%Y%m%d}", f"{when:%d.%m.}", path.stem]
    for path in files:
        content = path.read_bytes()
        for identifier in identifiers:
            assert identifier.encode() not in content, f"{identifier!r} in {path.name}"

    long = read_csv(export / "study_long.csv")
    assert len(long) == 3 * 4 * 2
    for code, (_, plan) in SCHEDULE.items():
        own = [r for r in long if r["subject"] == code and r["roi"] == "lesion"]
        shifted = [date.fromisoformat(r["visit_date_shifted"]) for r in own]
        assert [(d - shifted[0]).days for d in shifted] == [day - plan[0][0] for day, _, _ in plan]
        assert [r["events"] for r in own] == ["procedure event"] * 2 + [""] * 2
    text = (export / "README.txt").read_text() + (export / "export.json").read_text()
    assert "Images of a face may still identify a person" in text

    with_notes = tmp_path / "export-notes"
    lsci_study("export", folder, "--out", with_notes, "--include-notes")
    assert NOTES in (with_notes / "study_long.csv").read_text()


def _tiny_recording(path: Path, value: int) -> Path:
    frames = np.full((2, 8, 8), value, np.uint8)
    with RecordingWriter(path, AcquisitionMetadata(exposure_s=0.005), frame_shape=(8, 8),
                         dtype=np.uint8) as writer:  # fmt: skip
        writer.append_many(frames, frame_ids=[0, 1])
    return path


def test_two_processes_adding_at_once_lose_nothing(database: list[str], tmp_path: Path) -> None:
    folder, start = tmp_path / "study", tmp_path / "go"
    lsci_study("init", folder, *database)
    per_writer = 12
    writers = []
    for index, name in enumerate("AB"):
        recordings = [
            _tiny_recording(tmp_path / f"{name}{i}.h5", 10 * index + i) for i in range(per_writer)
        ]
        writers.append(
            subprocess.Popen(
                [sys.executable, str(HELPER), str(folder), str(start), name, *map(str, recordings)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    start.touch()
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err[-2000:]
        assert out.strip() == "done"
    with Study.open(folder) as study:
        entries = study.recordings(quick=True)
        assert len(entries) == 2 * per_writer
        assert sorted(Path(e.stored_path).name for e in entries) == sorted(
            f"{name}{i}.h5" for name in "AB" for i in range(per_writer)
        )
        assert study.subjects() == ["S1", "S2"]
        visits = {(e.subject, e.visit) for e in entries}
        assert len(visits) == per_writer
        for code in ("S1", "S2"):
            for visit in study.visits(code):
                assert sorted(visit.notes.split("\n")) == ["writer A", "writer B"]
