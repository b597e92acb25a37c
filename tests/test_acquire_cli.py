"""``lsci acquire`` run for real, as a separate process, with the simulated camera and viky."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lsci.cli.acquire import acquire
from lsci.recording import open_recording
from lsci.sim.needling import HEALTHY, NeedlingScene
from tests.helpers.children import LSCI, read_until

pytestmark = pytest.mark.serial


#: ``lsci acquire`` as started from a terminal.
ACQUIRE = [*LSCI, "acquire"]


def viky() -> str:
    genicam = pytest.importorskip("genicam", reason="the camera extra (genicam) is not installed")
    pytest.importorskip("harvesters.core", reason="the camera extra (harvesters) is not installed")
    return str(Path(genicam.__file__).resolve().parent / "viky.cti")


def stop_mid_run(
    args: list[str],
    signum: signal.Signals,
    *,
    lines: str = "",
    keys: bytes = b"",
    command: list[str] = ACQUIRE,
) -> tuple[int, str]:
    """Start ``lsci acquire``, let it record 1.5 s, send ``signum``; exit code and stderr.

    ``lines`` arrive on a pipe as standard input; ``keys``, when given, are typed on a
    terminal (a pseudo-terminal as standard input) once recording has started.
    """
    terminal, typist = pty.openpty() if keys else (None, None)
    process = subprocess.Popen(
        [*command, *args],
        stdin=subprocess.PIPE if terminal is None else terminal,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    if terminal is None:
        assert process.stdin is not None
        process.stdin.write(lines)
        process.stdin.close()
    else:
        os.close(terminal)
    try:
        seen = read_until(process.stderr, "recording to", "lsci acquire never started recording")
        if typist is not None:
            os.write(typist, keys)
        time.sleep(1.5)
        process.send_signal(signum)
        rest = process.stderr.read()
        process.wait(timeout=30)
    finally:
        process.kill()
        process.stderr.close()
        if typist is not None:
            os.close(typist)
    return process.returncode, "".join(seen) + rest


def test_sim_sigint_mid_run_leaves_a_complete_file_with_its_events_and_key_presses(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sim.h5"
    args = [
        "--camera", "sim", "--sim-shape", "64x64", "--fps", "100", "--exposure-ms", "2",
        "--out", str(out), "--mark-at", "0.5:needling start", "--event-key",
    ]  # fmt: skip
    code, stderr = stop_mid_run(args, signal.SIGINT, keys=b"n")
    assert code == 0, stderr
    assert "stopped by SIGINT" in stderr
    assert "Traceback" not in stderr
    assert "dropped: 0 by the camera, 0 by the pipeline" in stderr
    with open_recording(out) as rec:
        assert rec.closed_cleanly
        assert rec.frame_shape == (64, 64)
        assert len(rec) > 100
        np.testing.assert_array_equal(rec.frame_ids, np.arange(len(rec)))
        assert rec.metadata.exposure_s == pytest.approx(0.002)
        assert rec.metadata.frame_rate_hz == 100.0
        events = {e.label: e for e in rec.events}
    assert set(events) == {"needling start", "key 1"}
    # Half a second into a 100 frames/s run.
    assert 30 <= events["needling start"].frame_index <= 70


@pytest.mark.camera
def test_viky_sigterm_mid_run_leaves_a_complete_file(tmp_path: Path) -> None:
    out = tmp_path / "viky.h5"
    args = ["--camera", "genicam", "--cti", viky(), "--device", "VikyTL_DEV_green", "--fps", "100"]
    code, stderr = stop_mid_run(
        [*args, "--out", str(out), "--event-key"], signal.SIGTERM, lines="cuff on\n"
    )
    assert code == 0, stderr
    assert "stopped by SIGTERM" in stderr
    assert "by the pipeline" in stderr
    with open_recording(out) as rec:
        assert rec.closed_cleanly
        assert len(rec) > 50
        assert np.all(np.diff(rec.frame_ids.astype(np.int64)) >= 1)
        assert rec.metadata.producer == viky()
        assert rec.metadata.frame_rate_hz == 100.0
        assert rec.metadata.camera_model == "Viky"
        assert rec.metadata.camera_serial == "1"  # the green device
        assert [e.label for e in rec.events] == ["cuff on"]


def test_sim_records_for_its_duration(tmp_path: Path) -> None:
    out = tmp_path / "timed.h5"
    args = ["--camera", "sim", "--sim-shape", "32x48", "--fps", "50", "--duration", "1"]
    result = CliRunner().invoke(acquire, [*args, "--out", str(out), "--pixel-format", "Mono12"])
    assert result.exit_code == 0, result.output
    assert "stopped by the end of --duration" in result.output
    with open_recording(out) as rec:
        assert rec.closed_cleanly
        assert rec.frame_shape == (32, 48)
        assert rec.dtype == np.uint16
        assert rec.metadata.bit_depth == 12
        assert 35 <= len(rec) <= 60


@pytest.mark.camera
def test_viky_exposure_is_a_clear_error_before_recording(tmp_path: Path) -> None:
    out = tmp_path / "never.h5"
    args = ["--camera", "genicam", "--cti", viky(), "--exposure-ms", "5", "--out", str(out)]
    result = CliRunner().invoke(acquire, args)
    assert result.exit_code == 2
    assert "--exposure-ms cannot be applied" in result.output
    assert "ExposureTime" in result.output
    assert not out.exists()


def test_invalid_options_are_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "x.h5"
    result = runner.invoke(acquire, ["--camera", "sim", "--out", str(out), "--mark-at", "soon"])
    assert result.exit_code == 2
    assert "SECONDS:LABEL" in result.output
    out.write_bytes(b"")
    result = runner.invoke(acquire, ["--camera", "sim", "--out", str(out)])
    assert result.exit_code == 2
    assert "--overwrite" in result.output
    result = runner.invoke(
        acquire, ["--camera", "sim", "--sim-shape", "8x8", "--out", str(tmp_path / "y.h5")]
    )
    assert result.exit_code == 2
    assert "HEIGHTxWIDTH" in result.output
    result = runner.invoke(
        acquire, ["--camera", "sim", "--cti", str(out), "--out", str(tmp_path / "z.h5")]
    )
    assert result.exit_code == 2
    assert "--cti applies to --camera genicam only" in result.output
    assert os.listdir(tmp_path) == ["x.h5"]


def test_sim_status_line_shows_the_live_hypoperfused_area_in_mm2(tmp_path: Path) -> None:
    scene = NeedlingScene(shape=(256, 256))
    rows, cols = np.nonzero(scene.regions()[HEALTHY])
    reference = f"{rows.min()},{cols.min()},{rows.max()},{cols.max()}"
    out = tmp_path / "live.h5"
    args = ["--camera", "sim", "--sim-shape", "256x256", "--duration", "2", "--out", str(out)]
    # 10 µm sensor pixels at 0.1× magnification: 0.1 mm on the skin.
    optics = ["--pixel-size-um", "10", "--magnification", "0.1"]
    result = CliRunner().invoke(
        acquire, [*args, *optics, "--live", "inverse_k2", "--reference", reference]
    )
    assert result.exit_code == 0, result.output
    areas = [float(a) for a in re.findall(r"hypoperfused ([0-9.]+) mm²", result.output)]
    assert areas, result.output
    # The disk of the scene, before its needling: π r² at 0.01 mm² per pixel.
    assert areas[-1] == pytest.approx(scene.disk_area_px * 0.01, rel=0.25)
    with open_recording(out) as rec:
        assert (rec.metadata.pixel_size_um, rec.metadata.magnification) == (10.0, 0.1)


def test_reference_needs_a_perfusion_model_and_a_rectangle(tmp_path: Path) -> None:
    base = ["--camera", "sim", "--out", str(tmp_path / "x.h5")]
    result = CliRunner().invoke(acquire, [*base, "--reference", "1,2,3"])
    assert result.exit_code == 2
    assert "R0,C0,R1,C1" in result.output
    result = CliRunner().invoke(acquire, [*base, "--reference", "0,0,10,10"])
    assert result.exit_code == 2
    assert "--live" in result.output
    assert not (tmp_path / "x.h5").exists()
