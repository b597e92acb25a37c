"""ROIs that follow the subject: drawn once, mapped onto later visits by registration or points.

A later visit is the first one's skin texture turned 5°, enlarged 5 % and shifted (a known
similarity transform T, applied to the image here, independently of the registration): the ROI
corners mapped by the study must land within 1 px of T applied to the drawn corners. An
unrelated image is refused in one line naming the visit and why, the trend is refused with it,
and control points (landmarks placed by the same known transform) rescue it.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("sqlalchemy", reason="the study catalog needs the 'study' extra")

import sqlalchemy as sa
from click.testing import CliRunner
from skimage.transform import warp

from lsci.cli import main
from lsci.recording import AcquisitionMetadata, RecordingWriter
from lsci.sim.speckle import skin_reflectance_map
from lsci.study import Roi, Study, StudyError, control_point_transform, parse_points, schema
from lsci.study.database import connect

SHAPE = (160, 160)
ROIS = [
    Roi("healthy", "reference", ((10.0, 20.0), (10.0, 140.0), (30.0, 140.0), (30.0, 20.0))),
    Roi("lesion", "lesion", ((60.0, 50.0), (55.0, 110.0), (115.0, 115.0), (110.0, 45.0))),
]


def similarity(rotation_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """T on (row, col, 1): turn and scale about the image centre, then shift."""
    theta = math.radians(rotation_deg)
    linear = scale * np.array([[math.cos(theta), -math.sin(theta)],
                               [math.sin(theta), math.cos(theta)]])  # fmt: skip
    centre = (np.array(SHAPE, dtype=float) - 1) / 2
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = centre - linear @ centre + np.asarray(shift)
    return matrix


def skin(seed: int, transform: np.ndarray | None = None) -> npt.NDArray[np.float64]:
    """A skin texture; with ``transform``, as a visit sees it where T moved the skin."""
    texture = skin_reflectance_map(SHAPE, texture=0.15, texture_px=3.0, vessel=False, rng=seed)
    if transform is None:
        return texture
    inverse = np.linalg.inv(transform)

    def drawn_coords(xy: np.ndarray) -> np.ndarray:  # visit (col, row) -> drawn (col, row)
        rows = inverse[0, 0] * xy[:, 1] + inverse[0, 1] * xy[:, 0] + inverse[0, 2]
        cols = inverse[1, 0] * xy[:, 1] + inverse[1, 1] * xy[:, 0] + inverse[1, 2]
        return np.stack([cols, rows], axis=1)

    return warp(texture, drawn_coords, order=3, mode="reflect")


def write(path: Path, image: npt.NDArray[np.float64], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    frames = rng.poisson(2000.0 * image, size=(4, *SHAPE)).astype(np.uint16)
    meta = AcquisitionMetadata(exposure_s=5e-3, pixel_size_um=5.0, magnification=0.1)
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint16) as writer:
        writer.append_many(frames, frame_ids=np.arange(4))
    return path


def moved(transform: np.ndarray, roi: Roi) -> np.ndarray:
    corners = np.asarray(roi.vertices)
    return corners @ transform[:2, :2].T + transform[:2, 2]


def lsci_study(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["study", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_rois_drawn_once_follow_a_turned_scaled_shifted_visit_within_a_pixel(
    tmp_path: Path,
) -> None:
    truth = similarity(5.0, 1.05, (4.0, -6.0))
    first = write(tmp_path / "v1.h5", skin(1), seed=1)
    later = write(tmp_path / "v2.h5", skin(1, truth), seed=2)
    with Study.init(tmp_path / "study") as study:
        study.add_recording(first, subject="S01", site="cheek", visit="V1", day=2, rois=ROIS)
        entry = study.add_recording(later, subject="S01", site="cheek", visit="V2", day=9)
        follows = study.follow_rois("S01", "cheek")
        assert [f.transform is None for f in follows] == [True, False]
        transform = follows[1].transform
        assert transform is not None
        assert transform.accepted
        assert transform.method == "registration"
        assert transform.confidence["correlation"] > 0.9
        placed = {roi.name: roi for roi in study.mapped_rois(entry)}
        for roi in ROIS:
            error = np.hypot(*(np.asarray(placed[roi.name].vertices) - moved(truth, roi)).T)
            assert error.max() < 1.0, (roi.name, error)
            assert placed[roi.name].role == roi.role
        # Stored with its confidence, and reused rather than registered again.
        study.follow_rois("S01", "cheek")
        engine = connect(study.database)
        with engine.connect() as connection:
            stored = connection.execute(sa.select(schema.roi_transforms)).all()
        engine.dispose()
        assert len(stored) == 1
        assert stored[0].accepted
        assert stored[0].confidence["scale"] == pytest.approx(1.05, abs=0.01)


def test_an_unrelated_visit_is_refused_and_control_points_rescue_it(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    rois = tmp_path / "rois.geojson"
    features = [roi.to_feature() for roi in ROIS]
    rois.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    first = write(tmp_path / "v1.h5", skin(1), seed=1)
    unrelated = write(tmp_path / "v3.h5", skin(7), seed=3)
    assert lsci_study("init", folder)[0] == 0
    assert lsci_study("add", folder, first, "--subject", "S01", "--site", "cheek",
                      "--visit", "V1", "--roi", rois)[0] == 0  # fmt: skip
    code, out, err = lsci_study("add", folder, unrelated, "--subject", "S01", "--site", "cheek",
                                "--visit", "V3")  # fmt: skip
    assert code == 0  # catalogued; its ROIs are not placed
    assert "Added" in out
    (line,) = err.splitlines()
    assert line.startswith("visit V3 of S01 at cheek: ROIs not mapped from visit V1")
    assert "registration refused" in line
    assert "correlate only" in line
    assert f"lsci study align {folder}" in line

    code, out, err = lsci_study("trend", folder, "--subject", "S01", "--out", tmp_path / "t")
    assert code == 1
    assert "visit V3 of S01 at cheek" in out + err
    assert "refused" in out + err

    # Landmarks placed by a known transform: the ROIs must move exactly by it.
    known = similarity(-3.0, 0.97, (2.0, 5.0))
    drawn = np.array([[20.0, 30.0], [140.0, 40.0], [80.0, 130.0]])
    visit = drawn @ known[:2, :2].T + known[:2, 2]
    points = " ".join(
        f"{a:.6f},{b:.6f} {c:.6f},{d:.6f}" for (a, b), (c, d) in zip(drawn, visit, strict=True)
    )
    code, out, err = lsci_study("align", folder, "--subject", "S01", "--site", "cheek",
                                "--visit", "V3", "--points", points)  # fmt: skip
    assert code == 0, out + err
    assert "3 control points" in out
    with Study.open(folder) as study:
        entry = study.recordings(subject="S01")[1]
        placed = {roi.name: roi for roi in study.mapped_rois(entry)}
    for roi in ROIS:
        assert np.allclose(placed[roi.name].vertices, moved(known, roi), atol=1e-6)
    code, out, err = lsci_study("trend", folder, "--subject", "S01", "--out", tmp_path / "t")
    assert code == 0, out + err
    with (tmp_path / "t" / "trend_S01.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["roi_mapping"] for r in rows if r["roi"] == "lesion"] == ["drawn", "control_points"]


def test_control_points_from_a_file_when_adding(tmp_path: Path) -> None:
    first = write(tmp_path / "v1.h5", skin(1), seed=1)
    unrelated = write(tmp_path / "v2.h5", skin(8), seed=2)
    points = tmp_path / "points.csv"
    points.write_text("drawn_row,drawn_col,row,col\n10,10,12,13\n10,150,12,153\n150,80,152,83\n")
    folder = tmp_path / "study"
    assert lsci_study("init", folder)[0] == 0
    with Study.open(folder) as study:
        study.add_recording(first, subject="S02", site="nose", visit="V1", rois=ROIS)
    code, out, err = lsci_study("add", folder, unrelated, "--subject", "S02", "--site", "nose",
                                "--visit", "V2", "--control-points", points)  # fmt: skip
    assert code == 0, out + err
    assert "mapped from visit V1 by 3 control points" in out
    with Study.open(folder) as study:
        entry = study.recordings(subject="S02")[1]
        placed = {roi.name: roi for roi in study.mapped_rois(entry)}
    for roi in ROIS:
        assert np.allclose(placed[roi.name].vertices, np.asarray(roi.vertices) + np.array([2, 3]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2 3,4", "at least 2 pairs"),
        ("1,2 3,4 5,6", "at least 2 pairs"),
        ("1,2 3,4 5;6 7,8", "is not 'row,col'"),
        ("1,2 3,4 1,2 5,6", "coincide"),
    ],
)
def test_unusable_control_points_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(StudyError, match=message):
        control_point_transform(*parse_points(text))


def test_control_points_fit_a_similarity_by_least_squares() -> None:
    known = similarity(7.0, 1.1, (-3.0, 2.0))
    rng = np.random.default_rng(0)
    drawn = rng.uniform(0, 160, (12, 2))
    visit = drawn @ known[:2, :2].T + known[:2, 2]
    noisy = visit + rng.normal(0, 0.5, visit.shape)
    found = control_point_transform(drawn, noisy)
    assert found.rotation_deg == pytest.approx(7.0, abs=0.3)
    assert found.scale == pytest.approx(1.1, abs=0.005)
    # The least-squares residual is the noise, less the 4 fitted degrees of freedom.
    assert found.confidence["rms_residual_px"] == pytest.approx(0.5 * math.sqrt(2), rel=0.35)


def test_a_version_1_catalog_is_upgraded_and_its_rois_stay_on_the_first_recording(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "study"
    first = write(tmp_path / "v1.h5", skin(1), seed=1)
    with Study.init(folder) as study:
        study.add_recording(first, subject="S01", site="cheek", visit="V1", rois=ROIS)
    # Back to version 1: no ROI transforms, no mapped ROIs, ROIs without their recording.
    engine = connect(f"sqlite:///{folder / 'catalog.sqlite'}")
    with engine.begin() as connection:
        for statement in (
            "DROP TABLE mapped_rois",
            "DROP TABLE roi_transforms",
            "CREATE TABLE rois_v1 (id INTEGER PRIMARY KEY, subject_id INTEGER NOT NULL "
            "REFERENCES subjects (id), site_id INTEGER NOT NULL REFERENCES sites (id), "
            "name VARCHAR(64) NOT NULL, role VARCHAR(16) NOT NULL, geometry JSON NOT NULL, "
            "created_utc VARCHAR(32) NOT NULL, UNIQUE (subject_id, site_id, name))",
            "INSERT INTO rois_v1 SELECT id, subject_id, site_id, name, role, geometry, "
            "created_utc FROM rois",
            "DROP TABLE rois",
            "ALTER TABLE rois_v1 RENAME TO rois",
            "UPDATE schema_versions SET version = 1 WHERE version = 2",
        ):
            connection.exec_driver_sql(statement)
    engine.dispose()
    with Study.open(folder) as study:
        (follow,) = study.follow_rois("S01", "cheek")
        assert follow.transform is None
        assert follow.mapped
        placed = study.mapped_rois(follow.recording)
        assert [(r.name, r.vertices) for r in placed] == [(r.name, r.vertices) for r in ROIS]
    engine = connect(f"sqlite:///{folder / 'catalog.sqlite'}")
    with engine.connect() as connection:
        versions = connection.execute(sa.select(schema.schema_versions.c.version)).scalars()
        assert sorted(versions) == [1, 2]
    engine.dispose()
