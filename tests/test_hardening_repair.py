"""``lsci repair`` keeps every readable frame of a damaged or crashed recording.

Frames are damaged for real: one byte flipped inside a stored chunk, so its Fletcher-32
checksum fails. A crashed file comes from a writer killed with SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from lsci.cli import main
from lsci.recording import (
    AcquisitionMetadata,
    CorruptRecordingError,
    RecordingWriter,
    add_event,
    open_recording,
    repair_copy,
    salvage_copy,
    save_derived,
)
from tests.helpers.write_recording import expected_frame

SHAPE = (16, 20)
COUNT = 150
DAMAGED = (3, 70, 71, 149)
HELPER = Path(__file__).parent / "helpers" / "write_recording.py"
ROOT = Path(__file__).resolve().parents[1]


def _flip_byte_in_chunk(path: Path, chunk_index: int) -> None:
    with h5py.File(path, "r") as handle:
        info = handle["raw/frames"].id.get_chunk_info(chunk_index)
    offset = info.byte_offset + info.size // 2
    with path.open("r+b") as stream:
        stream.seek(offset)
        value = stream.read(1)[0]
        stream.seek(offset)
        stream.write(bytes([value ^ 0xFF]))


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "damaged.h5"
    frames = np.random.default_rng(6).integers(0, 4096, (COUNT, *SHAPE), dtype=np.uint16)
    with RecordingWriter(
        path, AcquisitionMetadata(exposure_s=0.002, notes="arm"), frame_shape=SHAPE, dtype="uint16"
    ) as writer:
        writer.append_many(
            frames,
            frame_ids=np.arange(100, 100 + COUNT),
            host_timestamps_ns=1_772_359_200_000_000_000 + np.arange(COUNT) * 10_000_000,
        )
    add_event(path, "needling start", frame_index=80)
    save_derived(path, "map", np.ones(SHAPE), algorithm="a", parameters={})
    for index in DAMAGED:
        _flip_byte_in_chunk(path, index)
    return path, frames


def test_salvage_keeps_every_readable_frame(
    damaged: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, frames = damaged
    before = path.read_bytes()
    with pytest.raises(CorruptRecordingError, match="frame 3 fails its checksum"):
        repair_copy(path, tmp_path / "strict.h5")
    assert not (tmp_path / "strict.h5").exists()
    report = salvage_copy(path, tmp_path / "copy.h5")
    assert report.frames_lost == DAMAGED
    assert report.frames_copied == COUNT - len(DAMAGED)
    assert path.read_bytes() == before
    kept = np.setdiff1d(np.arange(COUNT), DAMAGED)
    with open_recording(report.path) as rec:
        assert rec.closed_cleanly
        np.testing.assert_array_equal(rec.frames[:], frames[kept])
        np.testing.assert_array_equal(rec.frame_ids, 100 + kept)
        assert rec.dropped_frames == 3  # gaps at 3 and 70-71; the lost last frame leaves none
        assert "left out (source indices 3, 70-71, 149)" in rec.metadata.notes
        assert rec.metadata.notes.startswith("arm\n")
        assert [(e.label, e.frame_index) for e in rec.events] == [("needling start", 77)]
        np.testing.assert_array_equal(rec.derived["map"].read(), np.ones(SHAPE))


def test_repair_command_reports_lost_frames_and_fails(
    damaged: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, _ = damaged
    out = tmp_path / "copy.h5"
    result = CliRunner().invoke(main, ["repair", str(path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert f"Copied {COUNT - len(DAMAGED)} of {COUNT} frames into {out}" in result.output
    assert "4 frame(s)" in result.output
    assert "indices 3, 70-71, 149" in result.output
    assert "Traceback" not in result.output
    with open_recording(out) as rec:
        assert len(rec) == COUNT - len(DAMAGED)
    again = CliRunner().invoke(main, ["repair", str(path), "--out", str(out)])
    assert again.exit_code == 1
    assert "exists" in again.output
    onto_itself = CliRunner().invoke(main, ["repair", str(path), "--out", str(path), "--overwrite"])
    assert onto_itself.exit_code == 1
    assert "is the input" in onto_itself.output


def test_repair_command_on_a_crashed_recording(tmp_path: Path) -> None:
    path = tmp_path / "crash.h5"
    process = subprocess.Popen(
        [sys.executable, str(HELPER), str(path), "stream"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        committed = 0
        while committed < 30:
            line = process.stdout.readline()
            if line.startswith("committed"):
                committed = int(line.split()[1])
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    out = tmp_path / "fixed.h5"
    result = CliRunner().invoke(main, ["repair", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open_recording(out) as rec:
        assert rec.closed_cleanly
        assert len(rec) >= committed
        for index in (0, len(rec) - 1):
            np.testing.assert_array_equal(rec.frames[index], expected_frame(index))
    add_event(out, "note", frame_index=0)  # the copy can be modified
