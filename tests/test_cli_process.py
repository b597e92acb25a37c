"""``lsci process`` on real recording files: results, reruns, bad input, damaged files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from lsci.calibration import CameraNoise, DarkFrame
from lsci.cli import main
from lsci.core.contrast import spatial_contrast, temporal_contrast
from lsci.core.perfusion import inverse_correlation_time
from lsci.recording import open_recording, store_calibration
from lsci.recording.products import find_product_sets, product_folder
from tests.test_process import FRAME_SHAPE, write_recording


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_processes_every_recording_of_a_folder(tmp_path: Path) -> None:
    frames = {
        name: write_recording(tmp_path / name, n_frames=20, seed=i)
        for i, name in enumerate(("a.h5", "b.h5"))
    }
    args = [
        "process",
        str(tmp_path),
        "--mode",
        "temporal",
        "--frames-window",
        "10",
        "--model",
        "inverse_tau",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("2 maps from 20 frames") == 2
    for name, raw in frames.items():
        with open_recording(tmp_path / name) as rec:
            # The exposure time (5 ms) comes from the recording's metadata.
            expected = inverse_correlation_time(temporal_contrast(raw, 10), 0.005)
            np.testing.assert_allclose(rec.product("perfusion")[...], expected, rtol=1e-6)
    again = CliRunner().invoke(main, args)
    assert again.output.count("already processed with these settings") == 2


def test_defaults_average_eight_frames_store_perfusion_and_print_the_cost(tmp_path: Path) -> None:
    path = tmp_path / "rec.h5"
    frames = write_recording(path, n_frames=40)
    before = _sha256(path)
    result = CliRunner().invoke(main, ["process", str(path)])
    assert result.exit_code == 0, result.output
    # 5 float32 maps of 24×20 against 40 uint8 frames: half the raw bytes.
    assert "40 frames -> 5 maps (8 frames per map) of perfusion in float32" in result.output
    assert "writes 9.60 kB, 0.50× the 19.20 kB of raw frames" in result.output
    k = spatial_contrast(frames, 7).reshape(5, 8, *FRAME_SHAPE).mean(axis=1)
    with open_recording(path) as rec:
        assert [name.rsplit("/", 1)[1] for name in rec.derived] == ["perfusion"]
        np.testing.assert_allclose(
            rec.product("perfusion").read(), inverse_correlation_time(k, 0.005), rtol=1e-6
        )
    per_frame = CliRunner().invoke(
        main, ["process", str(path), "--average", "1", "--products", "contrast,perfusion"]
    )
    assert "of contrast, perfusion in float32" in per_frame.output
    assert "8.00× the" in per_frame.output
    assert len(find_product_sets(path)) == 2
    assert _sha256(path) == before


def test_a_folder_goes_on_past_a_file_it_cannot_process(tmp_path: Path) -> None:
    write_recording(tmp_path / "a.h5", n_frames=16)
    (tmp_path / "b.h5").write_bytes(b"not a recording at all")
    write_recording(tmp_path / "c.h5", n_frames=16)
    result = CliRunner().invoke(main, ["process", str(tmp_path)])
    assert result.exit_code == 1
    assert "2 of 3 recordings processed; failed:" in result.output
    assert "b.h5: not an HDF5 file" in result.output
    assert "Traceback" not in result.output
    for name in ("a.h5", "c.h5"):
        assert len(find_product_sets(tmp_path / name)) == 1


def _short_recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.h5"
    write_recording(path, n_frames=16)
    return path


def _other_dark_frame(tmp_path: Path) -> Path:
    path = _short_recording(tmp_path)
    store_calibration(path, DarkFrame.from_frames(np.full((4, 10, 10), 3.0)))
    return path


def _damaged(tmp_path: Path) -> Path:
    path = _short_recording(tmp_path)
    with h5py.File(path, "r") as handle:
        offset = handle["raw/frames"].id.get_chunk_info(3).byte_offset
    with open(path, "r+b") as raw:
        raw.seek(offset + 17)
        byte = raw.read(1)
        raw.seek(offset + 17)
        raw.write(bytes([byte[0] ^ 0xFF]))
    return path


@pytest.mark.parametrize(
    ("make", "args", "problem"),
    [
        (_short_recording, ["--window", "0"], "window"),
        (_short_recording, ["--window", "1"], "window=1 must be odd and ≥ 3"),
        (_short_recording, ["--window", "2"], "window=2 must be odd and ≥ 3"),
        (_short_recording, ["--window", "4"], "window=4 must be odd and ≥ 3"),
        (_short_recording, ["--window", "999"], "window=999 is larger than the 24×20 frames"),
        (_short_recording, ["--average", "0"], "average=0 must be a positive whole number"),
        (_short_recording, ["--beta", "2"], "Invalid value for --beta: 2.0 must be in (0, 1]"),
        (_short_recording, ["--exposure-ms", "0"], "--exposure-ms: 0.0 must be > 0"),
        (_short_recording, ["--average", "20"], "16 frames are too few for one map"),
        (_short_recording, ["--edges", "valid", "--window", "21"], "larger than the 24×20"),
        (_short_recording, ["--products", "pressure"], "'--products': 'pressure'"),
        (_short_recording, ["--dtype", "int8"], "'--dtype'"),
        (_short_recording, ["--scheduler", "bogus://nowhere"], "--scheduler: no Dask scheduler"),
        (_other_dark_frame, [], "the dark frame is (10, 10), the frames (24, 20)"),
        (_damaged, [], "frame 3 fails its checksum"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, make: object, args: list[str], problem: str
) -> None:
    if "--scheduler" in args:
        pytest.importorskip("distributed", reason="the dask extra is not installed")
    path = make(tmp_path)  # type: ignore[operator]
    before = _sha256(path)
    result = CliRunner().invoke(main, ["process", str(path), *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert problem in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    assert find_product_sets(path) == []
    folder = product_folder(path)
    written = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    # At most the dark frame added beside the recording, and its lock.
    assert set(written) <= {"annotations.h5", ".annotations.h5.lock"}
    assert _sha256(path) == before


def test_absurd_calibrations_are_warned_about(tmp_path: Path) -> None:
    path = _short_recording(tmp_path)
    store_calibration(path, CameraNoise(gain_adu_per_e=1e30, read_noise_e=2.0))
    result = CliRunner().invoke(main, ["process", str(path), "--average", "4"])
    assert result.exit_code == 0, result.output
    assert "100 % of the perfusion values are not finite" in result.output
