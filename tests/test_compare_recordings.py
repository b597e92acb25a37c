"""The comparison engine on a calibrated simulated recording: API and ``lsci compare``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lsci._version import __version__
from lsci.analysis.compare_recordings import FIELD_ROI, compare_events, compare_recordings
from lsci.analysis.roi import polygon_mask
from lsci.analysis.time_windows import event_window_maps, window_maps
from lsci.calibration import BetaCalibration, DarkFrame
from lsci.cli import main
from lsci.core.contrast import spatial_contrast
from lsci.core.perfusion import inverse_correlation_time
from lsci.processing import ProcessingSettings
from lsci.recording import (
    AcquisitionMetadata,
    RecordingWriter,
    load_calibration,
    open_recording,
    store_calibration,
)
from lsci.sim.speckle import skin_flow_map
from tests.calibrated_recording import (
    BASELINE_TAU_C_S,
    BEFORE_FACTOR,
    CENTER,
    EXPOSURE_S,
    HEALTHY,
    PATCH,
    RADIUS_PX,
    RECOVERY_FACTOR,
    SHAPE,
    WINDOW,
    write_calibrated_needling,
)

WINDOW_S = 4.0
ROIS = ["--roi", "patch=38,38,58,58", "--roi", "healthy=74,4,92,24", "--reference", "healthy"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_calibrated_needling(tmp_path_factory.mktemp("calibrated") / "needling.h5")


def _api(path: Path, **options: object) -> object:
    return compare_events(
        path,
        "needling start",
        "needling end",
        window_s=WINDOW_S,
        rois={"patch": PATCH, "healthy": HEALTHY},
        reference="healthy",
        **options,  # type: ignore[arg-type]
    )


def test_window_maps_apply_the_stored_calibrations(recording: Path) -> None:
    settings = ProcessingSettings(window=WINDOW, exposure_s=EXPOSURE_S)
    with open_recording(recording) as rec:
        dark = load_calibration(rec, DarkFrame)
        beta = load_calibration(rec, BetaCalibration).beta
        before, after = event_window_maps(
            rec, settings, "needling start", "needling end", window_s=WINDOW_S
        )
        frames = rec.frames[before.frames[0] : before.frames[1]]
        whole = window_maps(rec, None, settings, calibrated=False)
    # An independent float64 reference from the core functions.
    k = spatial_contrast(frames.astype(np.float64) - dark.mean, WINDOW, out=None)
    expected = inverse_correlation_time(k, EXPOSURE_S, beta=beta).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(before.perfusion, expected, rtol=2e-5)
    assert before.settings.beta == beta
    assert before.calibrations.parameters()["dark_frame_frames"] == 16
    np.testing.assert_allclose(
        before.intensity, frames.astype(np.float64).mean(axis=0) - dark.mean, rtol=1e-5
    )
    assert before.window_s == (pytest.approx(-0.125), pytest.approx(3.875))
    assert before.n_maps == 16
    assert after.frames == (16, 32)
    assert whole.frames == (0, 32)
    assert whole.settings.beta == 1.0
    assert whole.calibrations.parameters() == {}


def test_calibrated_comparison_recovers_the_simulated_truth(recording: Path) -> None:
    calibrated = _api(recording).comparison  # type: ignore[attr-defined]
    plain = _api(recording, calibrated=False).comparison  # type: ignore[attr-defined]
    patch = calibrated.roi("patch")
    assert patch.ratio == pytest.approx(RECOVERY_FACTOR, rel=0.05)
    assert calibrated.roi("healthy").ratio == pytest.approx(1.0, rel=0.03)
    # Absolute 1/τc: the dark frame and β make it right; without them it is far off.
    tau = skin_flow_map(
        SHAPE,
        baseline_tau_c_s=BASELINE_TAU_C_S,
        ischemic_center=CENTER,
        ischemic_radius_px=RADIUS_PX,
        ischemic_factor=BEFORE_FACTOR,
        rng=3,
    )
    truth = float(np.mean(1 / tau[polygon_mask(HEALTHY, SHAPE)]))
    assert calibrated.roi("healthy").before_mean == pytest.approx(truth, rel=0.15)
    assert plain.roi("healthy").before_mean > 1.5 * truth
    assert abs(plain.roi("patch").ratio - RECOVERY_FACTOR) > abs(patch.ratio - RECOVERY_FACTOR)


def test_cli_writes_the_numbers_of_the_api(recording: Path, tmp_path: Path) -> None:
    api = _api(recording)
    args = [
        "compare",
        str(recording),
        "--before",
        "needling start",
        "--after",
        "needling end",
        "--window-s",
        str(WINDOW_S),
        *ROIS,
        "--out",
        str(tmp_path / "out"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "patch:" in result.output
    report = json.loads((tmp_path / "out" / "comparison.json").read_text(encoding="utf-8"))
    assert report == json.loads(api.to_json())  # type: ignore[attr-defined]
    assert report["lsci_version"] == __version__
    assert report["model"] == "inverse_tau"
    assert report["unit"] == "1/s"
    assert report["settings"]["beta"] == pytest.approx(0.95, abs=0.05)
    assert report["windows"]["before"]["calibrations"]["dark_frame_frames"] == 16
    assert report["registration"] is not None
    with (tmp_path / "out" / "comparison.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["kind"], r["roi"], r["window"]) for r in rows] == [
        ("roi", "patch", "before"),
        ("roi", "patch", "after"),
        ("roi", "healthy", "before"),
        ("roi", "healthy", "after"),
        ("hypoperfused", "", "before"),
        ("hypoperfused", "", "after"),
        ("recovered", "", "change"),
        ("persistent", "", "change"),
        ("new", "", "change"),
    ]
    assert float(rows[1]["mean"]) == api.comparison.roi("patch").after_mean  # type: ignore[attr-defined]
    areas = api.comparison.areas  # type: ignore[attr-defined]
    assert int(rows[4]["pixels"]) == areas.before.area_px == report["areas"]["before"]["area_px"]
    assert int(rows[5]["pixels"]) == areas.after.area_px
    assert float(rows[4]["threshold"]) == areas.before.threshold.value
    # The simulated disc (radius 20 px) was hypoperfused before and recovered above half of
    # healthy skin after.
    assert areas.before.area_px == pytest.approx(np.pi * RADIUS_PX**2, rel=0.10)
    assert areas.after.area_px < 0.05 * np.pi * RADIUS_PX**2
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "comparison.csv",
        "comparison.json",
        "comparison.png",
        "report.pdf",
        "rois.geojson",
    ]
    # The regions used are saved, and applied again from the file they give the same numbers.
    again = CliRunner().invoke(
        main,
        [*args[:8], "--roi", str(tmp_path / "out" / "rois.geojson"), "--out", str(tmp_path / "b")],
    )
    assert again.exit_code == 0, again.output
    second = json.loads((tmp_path / "b" / "comparison.json").read_text(encoding="utf-8"))
    assert second["rois"] == report["rois"]
    assert second["areas"] == report["areas"]


def test_two_recordings_are_compared_with_their_own_calibrations(
    recording: Path, tmp_path: Path
) -> None:
    halves = []
    with open_recording(recording) as rec:
        dark = load_calibration(rec, DarkFrame)
        beta = load_calibration(rec, BetaCalibration)
        for name, part in (("before", slice(0, 16)), ("after", slice(16, 32))):
            target = tmp_path / f"{name}.h5"
            with RecordingWriter(
                target, rec.metadata, frame_shape=SHAPE, dtype=np.uint16
            ) as writer:
                writer.append_many(rec.frames[part], frame_ids=np.arange(16))
            store_calibration(target, dark)
            store_calibration(target, beta)
            halves.append(target)
    result = compare_recordings(*halves, rois={"patch": PATCH})
    assert result.before.settings.beta == beta.beta
    assert result.comparison.roi("patch").ratio == pytest.approx(RECOVERY_FACTOR, rel=0.05)
    out = CliRunner().invoke(main, ["compare", *map(str, halves), "--out", str(tmp_path / "o")])
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "o" / "comparison.json").read_text(encoding="utf-8"))
    assert [row["name"] for row in report["rois"]] == [FIELD_ROI]
    whole = compare_recordings(*halves)
    assert report["rois"][0]["ratio"] == whole.comparison.roi(FIELD_ROI).ratio


def test_cli_failures_are_one_line(recording: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    cases = [
        (["--before", "lunch"], "no event labelled 'lunch'"),
        ([], "needs --before"),
        (["--before", "needling start", "--roi", "bad=1,2"], "NAME=ROW0,COL0,ROW1,COL1"),
        (["--before", "needling start", "--roi", "missing.geojson"], "cannot read the ROI file"),
        (["--before", "needling start", "--reference", "skin"], "not the name of a region"),
        (["--before", "needling start", "--threshold", "1.5"], "--threshold"),
    ]
    for extra, message in cases:
        result = CliRunner().invoke(main, ["compare", str(recording), *extra, "--out", out])
        assert result.exit_code != 0
        assert message in result.output
        assert "Traceback" not in result.output
    bogus = tmp_path / "notes.h5"
    bogus.write_bytes(b"not a recording")
    result = CliRunner().invoke(main, ["compare", str(bogus), "--before", "x", "--out", out])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_metadata_without_exposure_falls_back_to_inverse_k2(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    frames = np.random.default_rng(0).exponential(200, (6, 32, 32)).astype(np.uint16)
    meta = AcquisitionMetadata(frame_rate_hz=10.0, bit_depth=12)
    with RecordingWriter(path, meta, frame_shape=(32, 32), dtype=np.uint16) as writer:
        writer.append_many(frames, frame_ids=np.arange(6))
    result = compare_recordings(path, path, register=False)
    assert result.before.settings.model == "inverse_k2"
    assert result.label == "1/K² (a.u.)"
    assert result.comparison.roi(FIELD_ROI).ratio == 1.0
