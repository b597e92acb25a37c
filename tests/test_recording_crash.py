"""Crash safety for real: a writer process is killed with SIGKILL and the file is checked.

Also reads a file while another process is still writing it (SWMR).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from lsci.recording import RecordingError, add_event, open_recording, repair_copy
from tests.helpers.write_recording import expected_frame

pytestmark = pytest.mark.serial

HELPER = Path(__file__).parent / "helpers" / "write_recording.py"
ROOT = Path(__file__).resolve().parents[1]


class _Writer:
    """A writer subprocess and the committed frame counts it reported."""

    def __init__(self, path: Path, mode: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HELPER), str(path), mode],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.committed = 0

    def wait_for(self, line_start: str, at_least: int = 0) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                pytest.fail(f"writer exited early with code {self.process.wait()}")
            if line.startswith("committed"):
                self.committed = int(line.split()[1])
            if line.startswith(line_start) and self.committed >= at_least:
                return
        pytest.fail(f"writer did not report {line_start!r} in time")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


def _check_recovered(path: Path, at_least: int) -> int:
    with open_recording(path) as rec:
        count = len(rec)
        assert count >= at_least
        assert not rec.closed_cleanly
        ids = rec.frame_ids
        np.testing.assert_array_equal(ids, np.arange(count))
        assert rec.camera_timestamps_ns.tolist() == ids.tolist()
        assert rec.host_timestamps_ns.shape == (count,)
        assert np.all(np.diff(rec.host_timestamps_ns) >= 0)
        frames = rec.frames[:]
        for frame_id in range(count):
            np.testing.assert_array_equal(frames[frame_id], expected_frame(frame_id))
        if count > 40:
            assert [e.label for e in rec.events] == ["needling start"]
            assert rec.events[0].frame_index == 41
    return count


@pytest.mark.parametrize(("commits", "extra_s"), [(1, 0.0), (4, 0.013), (12, 0.031)])
def test_sigkill_while_streaming_keeps_every_flushed_frame(
    tmp_path: Path, commits: int, extra_s: float
) -> None:
    path = tmp_path / "crash.h5"
    writer = _Writer(path, "stream")
    for _ in range(commits):
        writer.wait_for("committed")
    time.sleep(extra_s)
    writer.kill()
    count = _check_recovered(path, writer.committed)
    # The crashed file refuses a plain open, which is why the reader uses SWMR-read.
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r")
    assert count >= writer.committed


def test_sigkill_before_the_first_frame_leaves_an_empty_readable_recording(
    tmp_path: Path,
) -> None:
    path = tmp_path / "idle.h5"
    writer = _Writer(path, "idle")
    writer.wait_for("created")
    writer.kill()
    with open_recording(path) as rec:
        assert len(rec) == 0
        assert rec.frames[:].shape == (0, 48, 64)
        assert rec.metadata.exposure_s == 0.001


def test_growing_file_is_readable_and_refresh_shows_new_frames(tmp_path: Path) -> None:
    path = tmp_path / "growing.h5"
    writer = _Writer(path, "stream")
    try:
        writer.wait_for("committed")
        with open_recording(path) as rec:
            first = len(rec)
            assert first >= writer.committed
            # The reader may see more frames than the writer has reported yet: wait past them.
            writer.wait_for("committed", at_least=first + 20)
            grown = rec.refresh()
            assert grown >= writer.committed > first
            np.testing.assert_array_equal(rec.frames[grown - 1], expected_frame(grown - 1))
            np.testing.assert_array_equal(rec.frame_ids, np.arange(grown))
    finally:
        writer.kill()


def test_repair_copy_of_a_crashed_file_is_clean_and_leaves_the_source_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crash.h5"
    writer = _Writer(path, "stream")
    writer.wait_for("committed", at_least=50)
    writer.kill()
    before = path.read_bytes()
    repaired = repair_copy(path, tmp_path / "repaired.h5")
    assert path.read_bytes() == before
    count = _check_recovered(path, writer.committed)
    with h5py.File(repaired, "r") as f:  # a plain open works again
        assert f["raw/frames"].shape[0] == count
    with open_recording(repaired) as rec:
        assert rec.closed_cleanly
        assert len(rec) == count
        np.testing.assert_array_equal(rec.frames[count - 1], expected_frame(count - 1))
        assert [(e.label, e.frame_index) for e in rec.events] == [("needling start", 41)]
    add_event(repaired, "note", frame_index=0)
    with pytest.raises(RecordingError, match="is the input"):
        repair_copy(path, path)
