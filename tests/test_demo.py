"""The main job end to end: a short simulated needling session recovers the true factor."""

from __future__ import annotations

import csv
import dataclasses
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from lsci.demo import HEALTHY, ISCHEMIC, DemoResult, DemoSettings, run_demo
from lsci.drivers.simulated import SpeckleScene
from lsci.recording import open_recording
from lsci.sim.needling import NeedlingScene
from tests.helpers.children import LSCI, read_until

pytestmark = pytest.mark.serial

# The demo's timeline, compressed: the same steps on a smaller sensor in under a third of the
# time (a before window, one second of needling, an after window).
SHORT = DemoSettings(
    scene=dataclasses.replace(
        DemoSettings().scene, shape=(128, 128), needling_start_s=2.5, needling_end_s=3.5
    ),
    duration_s=6.0,
    window_s=2.5,
    calibration_s=1.0,
)
# Measured against true recovery: 10 % (spatial K over a 7 × 7 window, shot noise, a few
# maps per window); healthy skin, which does not change, within 5 % of 1.
RECOVERY_TOLERANCE = 0.10
HEALTHY_TOLERANCE = 0.05
# The hypoperfused area at the default settings (half of healthy skin's median): 10 %.
AREA_TOLERANCE = 0.10


def _true_recovery(scene: NeedlingScene, region: str) -> float:
    """Mean 1/τc of a region after over before, from the τc maps the camera simulated."""
    mask = scene.regions()[region]
    camera_scene = SpeckleScene.needling(scene)
    before, after = camera_scene.tau_c_at(0.0), camera_scene.tau_c_at(scene.needling_end_s)
    return float(np.mean(1.0 / after[mask]) / np.mean(1.0 / before[mask]))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, list[str]]:
    out = tmp_path_factory.mktemp("demo")
    messages: list[str] = []
    return run_demo(out, settings=SHORT, report=messages.append), messages


@pytest.mark.slow
def test_recovers_the_simulated_factor(demo: tuple[DemoResult, list[str]]) -> None:
    result, _ = demo
    truth = _true_recovery(SHORT.scene, ISCHEMIC)
    # The ischemic region lies where the needled part of the disk recovered by the factor.
    assert truth == pytest.approx(SHORT.scene.recovery_factor, rel=1e-12)
    assert result.true_factor == pytest.approx(truth, rel=1e-12)
    assert result.measured_factor == pytest.approx(truth, rel=RECOVERY_TOLERANCE)
    # 1/K² is not proportional to flow at T ≈ τc: it underestimates the recovery.
    assert result.measured_factor_sfi < result.measured_factor
    healthy = result.comparison.roi(HEALTHY)
    assert _true_recovery(SHORT.scene, HEALTHY) == 1.0
    assert healthy.ratio == pytest.approx(1.0, abs=HEALTHY_TOLERANCE)
    registration = result.comparison.registration
    assert registration is not None
    assert max(abs(v) for v in registration.shift_px) < 0.5


@pytest.mark.slow
def test_hypoperfused_area_matches_the_scene(demo: tuple[DemoResult, list[str]]) -> None:
    result, _ = demo
    scene = SHORT.scene
    areas = result.areas
    # Before: the scene's disk, π r² (r = 25.6 px), measured from the recorded frames.
    assert areas.true_before_px == pytest.approx(np.pi * 25.6**2, rel=1e-12)
    assert areas.measured_before_px == pytest.approx(areas.true_before_px, rel=AREA_TOLERANCE)
    # After: the needled part's flow is 4/5 of healthy skin's, the crescent the needling did
    # not reach stays at 1/5: the crescent is what is still below half, within 10 %.
    truth_after = np.count_nonzero(scene.true_hypoperfused(scene.needling_end_s))
    assert areas.true_after_px == truth_after == np.count_nonzero(scene.persistent_mask())
    assert 0.2 * areas.true_before_px < truth_after < 0.5 * areas.true_before_px
    assert areas.measured_after_px == pytest.approx(truth_after, rel=AREA_TOLERANCE)
    # The region that recovered, of the pixels measured before and after.
    assert 0 < areas.true_recovered_px <= np.count_nonzero(scene.recovered_mask())
    assert areas.measured_recovered_px == pytest.approx(areas.true_recovered_px, rel=AREA_TOLERANCE)
    assert areas.pixel_area_mm2 == pytest.approx(SHORT.pixel_size_mm**2)
    compared = result.comparison.areas
    assert compared is not None
    assert compared.before.extent_px == areas.measured_before_px
    assert compared.before.extent_mm2 == pytest.approx(
        areas.measured_before_px * SHORT.pixel_size_mm**2, rel=1e-12
    )
    assert compared.before.area_px == areas.measured_before_px - areas.unmeasured_before_px
    assert compared.before.centroid_px is not None
    assert np.hypot(*np.subtract(compared.before.centroid_px, scene.center_px)) < 0.1 * 25.6
    summary = (result.out_dir / "summary.txt").read_text()
    assert f"simulated truth {areas.true_before_px * areas.pixel_area_mm2:7.1f} mm²" in summary
    with (result.out_dir / "area_timecourse.csv").open() as handle:
        course = list(csv.DictReader(handle))
    # The area drops from the disk to the crescent at the recovery.
    early = [float(r["area_px"]) for r in course if float(r["time_s"]) < scene.needling_start_s]
    late = [float(r["area_px"]) for r in course if float(r["time_s"]) > scene.needling_end_s]
    assert np.median(early) == pytest.approx(areas.true_before_px, rel=AREA_TOLERANCE)
    assert np.median(late) == pytest.approx(truth_after, rel=AREA_TOLERANCE)


@pytest.mark.slow
def test_writes_every_output(demo: tuple[DemoResult, list[str]]) -> None:
    result, messages = demo
    names = {path.name for path in result.files}
    assert {
        "dark.h5", "static_target.h5", "needling_session.h5", "comparison.png",
        "timecourse.png", "perfusion_models.png", "raw_frame.png", "contrast.png",
        "roi_table.csv", "summary.txt", "report.pdf", "area_timecourse.csv",
    } <= names  # fmt: skip
    assert (result.out_dir / "report.pdf").read_bytes()[:5] == b"%PDF-"
    for path in result.files:
        assert path.stat().st_size > 0, path
    for png in (p for p in result.files if p.suffix == ".png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (result.out_dir / "roi_table.csv").open() as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {ISCHEMIC, HEALTHY}
    summary = (result.out_dir / "summary.txt").read_text()
    assert f"simulated truth {SHORT.scene.recovery_factor:.3f}" in summary
    assert any(m.startswith("5/5") for m in messages)


@pytest.mark.slow
def test_recording_holds_events_calibrations_and_products(
    demo: tuple[DemoResult, list[str]],
) -> None:
    result, _ = demo
    with open_recording(result.recording) as rec:
        assert [e.label for e in rec.events] == ["needling start", "needling end"]
        assert {"beta", "dark_frame"} <= set(rec.calibrations)
        assert {"contrast", "perfusion"} <= {name.rsplit("/", 1)[-1] for name in rec.derived}
        assert rec.dropped_frames == 0
        assert rec.product("perfusion").info.parameters["model"] == "inverse_tau"


@pytest.mark.slow
def test_a_stopped_demo_closes_its_recording_and_exits(tmp_path: Path) -> None:
    """Ctrl-C while it films the needling session: one line, the conventional status, the
    recording closed complete, no helper file left, and the process ends (it used to hang,
    its pipeline threads still writing while the interpreter exited). SIGTERM and SIGHUP take
    the same handler (tests/test_stop_signals.py)."""
    sig = signal.SIGINT
    out = tmp_path / "demo"
    with subprocess.Popen(
        [*LSCI, "demo", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        read_until(process.stderr, "2/5", "the demo never started filming")
        time.sleep(1.0)
        process.send_signal(sig)
        try:
            rest = process.stderr.read()
            process.wait(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 128 + sig, rest
    assert f"stopped by {sig.name}: the demo did not finish" in rest
    assert "Traceback" not in rest
    with open_recording(out / "needling_session.h5") as rec:
        assert rec.closed_cleanly
        assert len(rec) > 10
    assert sorted(p.name for p in out.iterdir()) == [
        "dark.h5", "needling_session.h5", "static_target.h5"
    ]  # fmt: skip
