"""The main job end to end: a short simulated needling session recovers the true factor."""

from __future__ import annotations

import csv

import pytest

from lsci.demo import HEALTHY, ISCHEMIC, DemoResult, DemoSettings, run_demo
from lsci.recording import open_recording

# The demo's timeline, compressed: the same steps on a smaller sensor in a third of the time.
SHORT = DemoSettings(
    shape=(128, 128),
    needling_start_s=3.0,
    needling_end_s=4.5,
    recovery_s=3.75,
    duration_s=7.5,
    window_s=2.5,
    calibration_s=1.0,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, list[str]]:
    out = tmp_path_factory.mktemp("demo")
    messages: list[str] = []
    return run_demo(out, settings=SHORT, report=messages.append), messages


@pytest.mark.slow
def test_recovers_the_simulated_factor(demo: tuple[DemoResult, list[str]]) -> None:
    result, _ = demo
    assert result.true_factor == SHORT.recovery_factor
    assert result.measured_factor == pytest.approx(result.true_factor, rel=0.10)
    # 1/K² is not proportional to flow at T ≈ τc: it underestimates the recovery.
    assert result.measured_factor_sfi < result.measured_factor
    healthy = result.comparison.roi(HEALTHY)
    assert healthy.ratio == pytest.approx(1.0, abs=0.05)
    registration = result.comparison.registration
    assert registration is not None
    assert max(abs(v) for v in registration.shift_px) < 0.5


@pytest.mark.slow
def test_writes_every_output(demo: tuple[DemoResult, list[str]]) -> None:
    result, messages = demo
    names = {path.name for path in result.files}
    assert {
        "dark.h5", "static_target.h5", "needling_session.h5", "comparison.png",
        "timecourse.png", "perfusion_models.png", "raw_frame.png", "contrast.png",
        "roi_table.csv", "summary.txt",
    } <= names  # fmt: skip
    for path in result.files:
        assert path.stat().st_size > 0, path
    for png in (p for p in result.files if p.suffix == ".png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (result.out_dir / "roi_table.csv").open() as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {ISCHEMIC, HEALTHY}
    summary = (result.out_dir / "summary.txt").read_text()
    assert f"simulated truth {SHORT.recovery_factor:.3f}" in summary
    assert any(m.startswith("5/5") for m in messages)


@pytest.mark.slow
def test_recording_holds_events_calibrations_and_products(
    demo: tuple[DemoResult, list[str]],
) -> None:
    result, _ = demo
    with open_recording(result.recording) as rec:
        assert [e.label for e in rec.events] == ["needling start", "needling end"]
        assert {"beta", "dark_frame"} <= set(rec.calibrations)
        assert {"contrast", "perfusion"} <= set(rec.derived)
        assert rec.dropped_frames == 0
        assert rec.derived["perfusion"].info.parameters["model"] == "inverse_tau"
