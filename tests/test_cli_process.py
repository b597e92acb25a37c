"""``lsci process`` on real recording files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from lsci.cli import main
from lsci.core.contrast import temporal_contrast
from lsci.core.perfusion import inverse_correlation_time
from lsci.recording import open_recording
from tests.test_process import write_recording


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
            np.testing.assert_allclose(rec.derived["perfusion"][...], expected, rtol=1e-6)
    again = CliRunner().invoke(main, args)
    assert again.output.count("already processed with these settings") == 2


def test_errors_are_one_clear_message(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.h5"
    bogus.write_bytes(b"not a recording at all")
    result = CliRunner().invoke(main, ["process", str(bogus)])
    assert result.exit_code == 1
    assert "not an HDF5 file" in result.output
    assert "Traceback" not in result.output

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["process", str(empty)])
    assert result.exit_code == 2
    assert "holds no .h5 recordings" in result.output

    write_recording(tmp_path / "rec.h5", n_frames=4)
    CliRunner().invoke(main, ["process", str(tmp_path / "rec.h5"), "--window", "5"])
    result = CliRunner().invoke(main, ["process", str(tmp_path / "rec.h5"), "--window", "7"])
    assert result.exit_code == 1
    assert "different provenance" in result.output
