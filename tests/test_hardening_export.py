"""Exports never destroy their input, never leave partial files, and fail with one line.

Real files, real links, a real full disk and a real read-only file system (a small tmpfs,
mounted when running as root).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner, Result

from lsci.cli import main
from lsci.recording import (
    AcquisitionMetadata,
    RecordingError,
    RecordingStateError,
    RecordingWriter,
    open_recording,
    save_derived,
)
from lsci.recording.atomic import atomic_write
from lsci.recording.convert import export
from tests.helpers.tmpfs import mounted_tmpfs, remount_read_only

SHAPE = (64, 64)
COUNT = 300  # 300 × 8 KiB = 2.4 MiB of uint16 frames: more than the 2 MiB disk


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.h5"
    frames = np.random.default_rng(5).integers(0, 4096, (COUNT, *SHAPE), dtype=np.uint16)
    meta = AcquisitionMetadata(exposure_s=0.002, frame_rate_hz=100.0)
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint16) as writer:
        writer.append_many(frames, frame_ids=np.arange(COUNT))
    return path


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_one_line_failure(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _intact(path: Path) -> None:
    with open_recording(path) as rec:
        assert len(rec) == COUNT
        assert rec.frames[COUNT - 1].shape == SHAPE


@pytest.mark.parametrize("what", ["raw", "timestamps"])
@pytest.mark.parametrize("alias", ["same", "relative", "symlink", "hardlink"])
def test_export_refuses_its_own_input_under_any_name(
    recording: Path, alias: str, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = recording.read_bytes()
    if alias == "same":
        out = recording
    elif alias == "relative":
        monkeypatch.chdir(recording.parent.parent)
        out = Path(recording.parent.name) / ".." / recording.parent.name / recording.name
    elif alias == "symlink":
        out = recording.with_name("link.h5")
        out.symlink_to(recording)
    else:
        out = recording.with_name("hard.h5")
        os.link(recording, out)
    fmt = "csv" if what == "timestamps" else "tiff"
    result = _run("export", recording, "--what", what, "--format", fmt, "--out", out, "--overwrite")
    _assert_one_line_failure(result, "is the input")
    assert recording.read_bytes() == before
    _intact(recording)


def test_export_refuses_a_dangling_symlink_and_replaces_a_live_one(
    recording: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "elsewhere" / "target.tif"
    link = tmp_path / "out.tif"
    link.symlink_to(missing)
    result = _run("export", recording, "--out", link, "--overwrite")
    _assert_one_line_failure(result, "symbolic link to a missing file")
    assert not missing.parent.exists()
    assert link.is_symlink()
    # A link to another file is replaced by the export, not written through.
    other = tmp_path / "other.txt"
    other.write_text("keep me")
    link.unlink()
    link.symlink_to(other)
    result = _run("export", recording, "--stop", "3", "--out", link, "--overwrite")
    assert result.exit_code == 0, result.output
    assert other.read_text() == "keep me"
    assert not link.is_symlink()
    assert tifffile.imread(link).shape == (3, *SHAPE)


def test_export_to_an_existing_file_names_the_flag(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.tif"
    out.write_bytes(b"old")
    result = _run("export", recording, "--out", out)
    _assert_one_line_failure(result, "exists")
    assert "overwrite=True" not in result.output
    assert out.read_bytes() == b"old"


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fmt", ["tiff", "csv", "png"])
def test_disk_full_export_leaves_nothing_and_a_rerun_works(
    recording: Path, tmp_path: Path, fmt: str
) -> None:
    with mounted_tmpfs(tmp_path / "disk", "2m") as disk:
        out = disk / f"frames.{fmt}"
        result = _run("export", recording, "--format", fmt, "--out", out)
        _assert_one_line_failure(result, "No space left on device", str(out.stem))
        assert _entries(disk) == []
        result = _run("export", recording, "--format", fmt, "--stop", "4", "--out", out)
        assert result.exit_code == 0, result.output
        with open_recording(recording) as rec:
            if fmt == "tiff":
                np.testing.assert_array_equal(tifffile.imread(out), rec.frames[:4])
            elif fmt == "csv":
                assert len(_entries(disk)) == 4
                first = np.loadtxt(disk / "frames_000000.csv", delimiter=",", dtype=np.int64)
                np.testing.assert_array_equal(first, rec.frames[0])
            else:
                assert _entries(disk) == [f"frames_{i:06d}.png" for i in range(4)]


def test_read_only_folder_export_is_one_line(recording: Path, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "disk", "2m") as disk:
        remount_read_only(disk)
        result = _run("export", recording, "--stop", "2", "--out", disk / "a.tif")
        _assert_one_line_failure(result, "Read-only file system")
        result = _run(
            "export", recording, "--what", "timestamps", "--format", "csv", "--out", disk / "t.csv"
        )
        _assert_one_line_failure(result, "Read-only file system")
        assert _entries(disk) == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def fail_half_way() -> None:
        with atomic_write(target, overwrite=True) as temporary:
            temporary.write_text("half")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_half_way()
    assert target.read_text() == "old\n"
    assert _entries(tmp_path) == ["table.csv"]
    with atomic_write(target, overwrite=True) as temporary:
        assert temporary.parent == tmp_path
        assert temporary.name.startswith(".")
        assert temporary.name.endswith(".partial")
        temporary.write_text("new\n")
    assert target.read_text() == "new\n"
    assert _entries(tmp_path) == ["table.csv"]


def test_export_vmin_nan_is_refused(recording: Path, tmp_path: Path) -> None:
    result = _run(
        "export", recording, "--format", "png", "--vmin", "nan", "--out", tmp_path / "a.png"
    )
    _assert_one_line_failure(result, "vmin=nan")
    result = _run(
        "export", recording, "--format", "png", "--vmax", "inf", "--out", tmp_path / "a.png"
    )
    _assert_one_line_failure(result, "vmax=inf")
    assert not list(tmp_path.glob("a*.png"))


@pytest.fixture
def incomplete(recording: Path) -> Path:
    maps = np.full((4, *SHAPE), np.nan, np.float32)
    maps[0] = 0.5
    save_derived(recording, "contrast", maps, algorithm="spatial_contrast", parameters={})
    with h5py.File(recording, "r+") as handle:
        handle["derived/contrast"].attrs["complete"] = np.uint8(0)
    return recording


def test_incomplete_products_need_the_flag(incomplete: Path, tmp_path: Path) -> None:
    out = tmp_path / "k.tif"
    with pytest.raises(RecordingStateError, match="incomplete"):
        export(incomplete, out, what="contrast")
    result = _run("export", incomplete, "--what", "contrast", "--out", out)
    _assert_one_line_failure(result, "'contrast' is incomplete")
    assert not out.exists()
    result = _run("export", incomplete, "--what", "contrast", "--incomplete", "--out", out)
    assert result.exit_code == 0, result.output
    stored = tifffile.imread(out)
    assert stored.shape == (4, *SHAPE)
    assert np.isnan(stored[1:]).all()
    assert (stored[0] == 0.5).all()


def test_the_library_refuses_the_input_too(recording: Path) -> None:
    with pytest.raises(RecordingError, match="is the input"):
        export(recording, recording, what="timestamps", fmt="csv", overwrite=True)
    _intact(recording)
