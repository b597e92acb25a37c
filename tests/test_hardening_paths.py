"""Output paths: planted symbolic links, dangling links and names up to the file-system limit.

The helper files of a recording being written (the partial file and the disk-space reserve)
once had predictable names beside the recording and were opened through symbolic links; an
attacker's link there made lsci overwrite another file. They are now created exclusively
under random names of fixed length.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from lsci.cli import main
from lsci.recording import (
    AcquisitionMetadata,
    RecordingError,
    RecordingExistsError,
    RecordingStateError,
    RecordingWriteError,
    RecordingWriter,
    open_recording,
)

SHAPE = (8, 12)


def _write(path: Path, count: int = 5, **options: object) -> np.ndarray:
    frames = np.random.default_rng(3).integers(0, 255, (count, *SHAPE), dtype=np.uint8)
    with RecordingWriter(
        path, AcquisitionMetadata(), frame_shape=SHAPE, dtype=np.uint8, **options
    ) as writer:
        writer.append_many(frames, frame_ids=np.arange(count))
    return frames


def test_planted_links_at_the_old_helper_names_are_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "x.h5"
    for name in (f".{path.name}.reserve", f".{path.name}.{os.getpid()}.partial"):
        (tmp_path / name).symlink_to(victim)
    frames = _write(path)
    assert victim.read_text() == "precious"
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.frames[:], frames)
    # Only the recording, the untouched links and the victim remain: no helper left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".x.h5.reserve", f".x.h5.{os.getpid()}.partial", "victim.txt", "x.h5"]
    )


def test_a_dangling_link_at_the_recording_name_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.h5"
    link = tmp_path / "run.h5"
    link.symlink_to(target)
    for overwrite in (False, True):
        with pytest.raises(RecordingError, match="symbolic link to a missing file"):
            _write(link, overwrite=overwrite)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def test_an_existing_recording_is_kept_unless_overwriting(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    first = _write(path)
    with pytest.raises(RecordingExistsError, match="overwriting was not requested"):
        _write(path, count=2)
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.frames[:], first)
    _write(path, count=2, overwrite=True)
    with open_recording(path) as rec:
        assert len(rec) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


@pytest.mark.parametrize("length", [245, 250, 255])
def test_names_up_to_the_file_system_limit_work(tmp_path: Path, length: int) -> None:
    stem = "r" * (length - 3)
    path = tmp_path / f"{stem}.h5"
    frames = _write(path)
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.frames[:], frames)
    out = tmp_path / ("t" * (length - 4) + ".tif")
    result = CliRunner().invoke(main, ["export", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(tifffile.imread(out), frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, out.name])


def test_overwrite_refuses_a_recording_still_being_written(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    helper = root / "tests" / "helpers" / "write_recording.py"
    path = tmp_path / "live.h5"
    process = subprocess.Popen(
        [sys.executable, str(helper), str(path), "stream"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    assert process.stdout is not None
    try:
        while not process.stdout.readline().startswith("committed"):
            pass
        with pytest.raises(RecordingStateError, match="is open in another program"):
            _write(path, overwrite=True)
        result = CliRunner().invoke(main, ["export", str(path), "--stop", "1", "--out", str(path)])
        assert result.exit_code == 1
        with open_recording(path) as rec:
            assert len(rec) > 0  # the first acquisition's file is still there, growing
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    _write(path, overwrite=True)  # a crashed recording (no writer left) may be replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.h5"]


def test_a_writer_whose_name_was_taken_over_says_so_at_close(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    writer = RecordingWriter(path, AcquisitionMetadata(), frame_shape=SHAPE, dtype=np.uint8)
    writer.append(np.zeros(SHAPE, np.uint8), frame_id=0)
    impostor = tmp_path / "other.h5"
    impostor.write_bytes(b"something else")
    os.replace(impostor, path)
    with pytest.raises(RecordingWriteError, match="no longer points at the recording"):
        writer.close()
    assert path.read_bytes() == b"something else"
