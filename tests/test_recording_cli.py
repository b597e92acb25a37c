"""``lsci info`` and ``lsci export`` on real files: closed, growing, crashed and broken."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from lsci.cli.export import export_command
from lsci.cli.info import info
from lsci.recording import (
    AcquisitionMetadata,
    RecordingWriter,
    open_recording,
    save_calibration,
    save_derived,
)

SHAPE = (10, 14)
HELPER = Path(__file__).parent / "helpers" / "write_recording.py"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "run.h5"
    meta = AcquisitionMetadata(
        exposure_s=0.005,
        gain=2.0,
        frame_rate_hz=50.0,
        pixel_format="Mono8",
        bit_depth=8,
        roi=(0, 0, 14, 10),
        camera_vendor="Acme",
        camera_model="S1",
        camera_serial="7",
        producer="acme.cti",
        laser_wavelength_nm=785.0,
        pixel_size_um=5.5,
        magnification=1.0,
        notes="test run",
    )
    frames = np.random.default_rng(2).integers(0, 256, (20, *SHAPE), dtype=np.uint8)
    start = 1_772_359_200_000_000_000
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint8) as w:
        w.append_many(
            frames[:10],
            frame_ids=np.arange(10),
            host_timestamps_ns=start + np.arange(10) * 20_000_000,
        )
        w.add_event("needling start", host_time_ns=start + 190_000_000)
        w.append_many(
            frames[10:],
            frame_ids=np.arange(12, 22),
            host_timestamps_ns=start + np.arange(10, 20) * 20_000_000,
        )
    save_calibration(path, "dark_frame", {"mean": np.zeros(SHAPE)})
    save_derived(
        path,
        "contrast",
        frames.astype(np.float32) / 255,
        algorithm="spatial_contrast",
        parameters={"window": 7},
    )
    save_derived(
        path,
        "perfusion",
        np.linspace(0, 1, 140).reshape(SHAPE),
        algorithm="inv_k2",
        parameters={},
        source="/derived/contrast",
    )
    return path


def test_info_summarises_a_closed_recording(recording: Path) -> None:
    result = CliRunner().invoke(info, [str(recording)])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        "closed cleanly",
        "20 × 10×14 uint8",
        "uncompressed, checksums",
        "Duration:        0.380 s",
        "50.00 fps achieved (50 requested)",
        "Dropped frames:  2",
        "Exposure:        5 ms",
        "Acme S1 (serial 7)",
        "785 nm",
        "needling start",
        "frame 10",
        "dark_frame: mean 10×14",
        'contrast: spatial_contrast {"window": 7}',
        "perfusion: inv_k2",
        "test run",
    ):
        assert expected in out, expected


def test_info_marks_incomplete_derived_products(recording: Path) -> None:
    with h5py.File(recording, "r+") as f:
        f["derived/contrast"].attrs["complete"] = np.int8(0)
    result = CliRunner().invoke(info, [str(recording)])
    assert "float32 (incomplete)" in result.output
    assert "float64 (incomplete)" not in result.output


def test_info_on_a_growing_and_then_crashed_file(tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    process = subprocess.Popen(
        [sys.executable, str(HELPER), str(path), "stream"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        while not process.stdout.readline().startswith("committed"):
            pass
        growing = CliRunner().invoke(info, [str(path)])
        assert growing.exit_code == 0, growing.output
        assert "not closed" in growing.output
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    crashed = CliRunner().invoke(info, [str(path)])
    assert crashed.exit_code == 0, crashed.output
    assert "writer stopped (crash)" in crashed.output


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all" * 100])
def test_info_on_a_broken_file_fails_cleanly(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.h5"
    path.write_bytes(content)
    result = CliRunner().invoke(info, [str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert str(path) in result.output
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(info, [str(tmp_path / "none.h5")])
    assert missing.exit_code == 1
    assert "no such file" in missing.output


def test_export_raw_range_to_tiff_keeps_counts(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.tif"
    args = [
        str(recording),
        "--what",
        "raw",
        "--format",
        "tiff",
        "--out",
        str(out),
        "--start",
        "5",
        "--stop",
        "9",
    ]
    result = CliRunner().invoke(export_command, args)
    assert result.exit_code == 0, result.output
    with open_recording(recording) as rec:
        np.testing.assert_array_equal(tifffile.imread(out), rec.frames[5:9])
    again = CliRunner().invoke(export_command, args)
    assert again.exit_code == 1
    assert "exists" in again.output
    assert CliRunner().invoke(export_command, [*args, "--overwrite"]).exit_code == 0


def test_export_derived_map_to_png_and_csv(recording: Path, tmp_path: Path) -> None:
    png = tmp_path / "perfusion.png"
    result = CliRunner().invoke(
        export_command,
        [str(recording), "--what", "perfusion", "--format", "png", "--out", str(png)],
    )
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = tmp_path / "contrast.csv"
    result = CliRunner().invoke(
        export_command,
        [
            str(recording),
            "--what",
            "contrast",
            "--format",
            "csv",
            "--out",
            str(csv),
            "--start",
            "18",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 files" in result.output
    with open_recording(recording) as rec:
        expected = rec.derived["contrast"][19]
    np.testing.assert_allclose(
        np.loadtxt(tmp_path / "contrast_000019.csv", delimiter=","), expected, rtol=1e-6
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--what", "nothing"], "there are raw, timestamps, contrast, perfusion"),
        (["--what", "perfusion", "--start", "1"], "start/stop apply to stacks"),
        (["--what", "raw", "--start", "30"], "select no frames"),
        (["--what", "timestamps", "--format", "png"], "CSV only"),
        (["--what", "raw", "--format", "png", "--vmin", "5", "--vmax", "1"], "vmin"),
    ],
)
def test_export_errors_are_clear(
    recording: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        export_command, [str(recording), "--out", str(tmp_path / "x.out"), *args]
    )
    assert result.exit_code == 1
    assert message in result.output
