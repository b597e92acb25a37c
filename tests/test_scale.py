"""Spatial scale: from the optics metadata or measured between two points, stored beside the
recording and preferred over the metadata."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lsci.analysis.scale import (
    SPATIAL_SCALE,
    recording_scale,
    save_scale,
    scale_from_metadata,
    scale_from_points,
)
from lsci.cli import main
from lsci.recording import (
    AcquisitionMetadata,
    RecordingFormatError,
    RecordingWriter,
    open_recording,
    save_calibration,
)

SHAPE = (40, 60)


def _record(path: Path, meta: AcquisitionMetadata) -> Path:
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint8) as writer:
        for i in range(3):
            writer.append(
                np.full(SHAPE, i, np.uint8), frame_id=i, host_timestamp_ns=10**18 + i * 10**8
            )
    return path


@pytest.fixture
def with_optics(tmp_path: Path) -> Path:
    meta = AcquisitionMetadata(exposure_s=0.005, pixel_size_um=5.5, magnification=0.1)
    return _record(tmp_path / "optics.h5", meta)


@pytest.fixture
def without_optics(tmp_path: Path) -> Path:
    return _record(tmp_path / "plain.h5", AcquisitionMetadata(exposure_s=0.005))


def test_points_give_distance_over_pixel_separation() -> None:
    # A 3-4-5 triangle: 50 px apart, 12.5 mm -> 0.25 mm/px.
    assert scale_from_points((10.0, 20.0), (40.0, 60.0), 12.5) == pytest.approx(0.25, rel=1e-12)
    # Order of the points does not matter.
    assert scale_from_points((40, 60), (10, 20), 12.5) == scale_from_points(
        (10, 20), (40, 60), 12.5
    )


@pytest.mark.parametrize(
    ("p0", "p1", "distance", "error", "message"),
    [
        ((0, 0), (0, 5), 1.0, ValueError, "10 px"),
        ((0, 0), (0, 0), 1.0, ValueError, "apart"),
        ((0, 0), (0, 50), 0.0, ValueError, "distance_mm"),
        ((0, 0), (0, 50), -3.0, ValueError, "distance_mm"),
        ((0, 0), (0, 50), math.nan, ValueError, "distance_mm"),
        ((0, math.inf), (0, 50), 1.0, ValueError, "p0"),
        ((0, 0, 0), (0, 50), 1.0, ValueError, "p0"),
        ((0, 0), (0, 50), "5", TypeError, "distance_mm"),
    ],
)
def test_bad_points_or_distance_are_refused(
    p0: tuple[float, ...], p1: tuple[float, ...], distance: float, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        scale_from_points(p0, p1, distance)


def test_metadata_scale_is_sensor_pitch_over_magnification() -> None:
    scale = scale_from_metadata(AcquisitionMetadata(pixel_size_um=6.9, magnification=0.15))
    assert scale is not None
    assert scale.method == "metadata"
    assert scale.pixel_size_mm == pytest.approx(6.9e-3 / 0.15, rel=1e-12)
    assert scale.pixel_area_mm2 == pytest.approx((6.9e-3 / 0.15) ** 2, rel=1e-12)
    assert "magnification" in scale.source
    # The sensor pitch alone is no size on the skin.
    assert scale_from_metadata(AcquisitionMetadata(pixel_size_um=6.9)) is None
    assert scale_from_metadata(AcquisitionMetadata(magnification=0.15)) is None


def test_measured_scale_is_stored_beside_and_preferred(with_optics: Path) -> None:
    before = hashlib.sha256(with_optics.read_bytes()).hexdigest()
    with open_recording(with_optics) as rec:
        scale = recording_scale(rec)
    assert scale is not None
    assert scale.method == "metadata"
    assert scale.pixel_size_mm == pytest.approx(0.055)

    saved = save_scale(with_optics, (5, 5), (5, 45), 2.0)
    assert saved.pixel_size_mm == pytest.approx(0.05)
    with open_recording(with_optics) as rec:
        scale = recording_scale(rec)
        stored = rec.calibrations[SPATIAL_SCALE]
    assert scale is not None
    assert scale.method == "ruler"
    assert scale.pixel_size_mm == pytest.approx(0.05, rel=1e-12)
    assert scale.points_px == ((5.0, 5.0), (5.0, 45.0))
    assert scale.distance_mm == 2.0
    assert "2 mm" in scale.source
    assert float(stored.arrays["pixel_size_mm"]) == pytest.approx(0.05, rel=1e-12)
    # The sealed recording is untouched: the scale lives in the annotations beside it.
    assert hashlib.sha256(with_optics.read_bytes()).hexdigest() == before

    # A new measurement replaces the old one.
    save_scale(with_optics, (0, 0), (30, 40), 10.0)
    with open_recording(with_optics) as rec:
        scale = recording_scale(rec)
    assert scale is not None
    assert scale.pixel_size_mm == pytest.approx(0.2, rel=1e-12)


def test_no_scale_known(without_optics: Path) -> None:
    with open_recording(without_optics) as rec:
        assert recording_scale(rec) is None


def test_malformed_stored_scale_is_reported(without_optics: Path) -> None:
    save_calibration(without_optics, SPATIAL_SCALE, {"pixel_size_mm": np.float64(0.1)}, {})
    with open_recording(without_optics) as rec, pytest.raises(RecordingFormatError, match="scale"):
        recording_scale(rec)


def test_cli_shows_and_measures(with_optics: Path, without_optics: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["scale", str(with_optics)])
    assert shown.exit_code == 0, shown.output
    assert "0.055 mm/px" in shown.output
    assert "optics metadata" in shown.output

    unknown = runner.invoke(main, ["scale", str(without_optics)])
    assert unknown.exit_code == 0, unknown.output
    assert "unknown" in unknown.output

    measured = runner.invoke(
        main, ["scale", str(without_optics), "--points", "4,4,34,44", "--distance-mm", "5"]
    )
    assert measured.exit_code == 0, measured.output
    assert "0.1 mm/px" in measured.output
    assert "measured" in measured.output
    with open_recording(without_optics) as rec:
        scale = recording_scale(rec)
    assert scale is not None
    assert scale.pixel_size_mm == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--points", "1,2,3", "--distance-mm", "5"], "four numbers"),
        (["--points", "a,b,c,d", "--distance-mm", "5"], "four numbers"),
        (["--points", "0,0,0,50"], "together"),
        (["--points", "0,0,0,3", "--distance-mm", "5"], "10 px"),
        (["--points", "0,0,0,30", "--distance-mm", "-1"], "distance_mm"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(
    without_optics: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["scale", str(without_optics), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_missing_recording(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["scale", str(tmp_path / "absent.h5")])
    assert result.exit_code == 1
    assert "absent.h5" in result.output
