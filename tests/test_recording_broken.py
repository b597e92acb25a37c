"""Broken input and failing storage: every case gets one clear lsci error naming the file.

Files are broken for real (truncated, random bytes, flipped bytes inside chunks...), and disk-full
and read-only conditions use a real small tmpfs (skipped where mounting is not permitted).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from lsci.errors import LsciError
from lsci.recording import (
    AcquisitionMetadata,
    CorruptRecordingError,
    RecordingError,
    RecordingFormatError,
    RecordingStateError,
    RecordingWarning,
    RecordingWriteError,
    RecordingWriter,
    add_event,
    open_recording,
    save_derived,
)
from tests.helpers.tmpfs import mounted_tmpfs
from tests.helpers.write_recording import expected_frame

SHAPE = (16, 24)
HELPER = Path(__file__).parent / "helpers" / "write_recording.py"
ROOT = Path(__file__).resolve().parents[1]


def _frames(count: int) -> np.ndarray:
    return np.random.default_rng(11).integers(0, 4096, (count, *SHAPE), dtype=np.uint16)


def _write(path: Path, count: int = 8, **options: object) -> np.ndarray:
    frames = _frames(count)
    meta = AcquisitionMetadata(exposure_s=0.002)
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint16, **options) as w:
        w.append_many(frames, frame_ids=np.arange(count))
    return frames


def _expect(path: Path, error: type[RecordingError], match: str) -> None:
    with pytest.raises(error, match=match) as caught:
        open_recording(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, LsciError)


def test_missing_path_and_directory(tmp_path: Path) -> None:
    _expect(tmp_path / "nothing.h5", RecordingError, "no such file")
    _expect(tmp_path, RecordingError, "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    path.touch()
    _expect(path, RecordingFormatError, "empty")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.h5"
    path.write_bytes(np.random.default_rng(0).bytes(10_000))
    _expect(path, RecordingFormatError, "not an HDF5 file")


def test_truncated_recording(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path, 40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect(path, RecordingFormatError, "truncated")


def test_hdf5_file_that_is_not_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(5)
    _expect(path, RecordingFormatError, "not an lsci recording")


def _edit(path: Path) -> h5py.File:
    return h5py.File(path, "r+")


def test_future_format_version(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path)
    with _edit(path) as f:
        f.attrs["format_version"] = 2
    _expect(path, RecordingFormatError, "newer than this lsci reads")
    with _edit(path) as f:
        f.attrs["format_version"] = "one"
    _expect(path, RecordingFormatError, "format_version")


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda f: f.__delitem__("raw/frame_id"), "missing dataset.*frame_id"),
        (lambda f: f.__delitem__("raw"), "missing dataset"),
        (lambda f: _replace(f, "raw/frames", np.zeros((4, 4), np.uint16)), "3-D"),
        (lambda f: _replace(f, "raw/frames", np.zeros((2, 4, 4), np.float32)), "dtype float32"),
        (lambda f: _replace(f, "raw/frame_id", np.zeros(8, np.int32)), "dtype int32"),
        (lambda f: _replace(f, "raw/host_timestamp_ns", np.zeros((8, 2), np.int64)), "1-D"),
    ],
)
def test_malformed_recordings(tmp_path: Path, damage: object, match: str) -> None:
    path = tmp_path / "run.h5"
    _write(path)
    with _edit(path) as f:
        damage(f)  # type: ignore[operator]
    _expect(path, RecordingFormatError, match)


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f[name] = data


def test_derived_product_with_bad_provenance(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path)
    with _edit(path) as f:
        f["derived/k"] = np.ones(3)
        f["derived/k"].attrs["algorithm"] = "x"
        f["derived/k"].attrs["source"] = "/raw/frames"
        f["derived/k"].attrs["parameters"] = "cos(1)"  # not JSON: never evaluated
    with open_recording(path) as rec:
        with pytest.warns(RecordingWarning, match="provenance"):
            assert dict(rec.derived) == {}
        assert "bad provenance" in rec.unreadable_derived["k"]


def _flip_byte_in_chunk(path: Path, dataset: str, chunk_index: int) -> None:
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk_index)
    offset = info.byte_offset + info.size // 2
    with path.open("r+b") as raw:
        raw.seek(offset)
        value = raw.read(1)[0]
        raw.seek(offset)
        raw.write(bytes([value ^ 0x10]))


@pytest.mark.parametrize("compression", [None, "blosc-lz4"])
def test_flipped_byte_in_a_frame_is_reported_with_its_index(
    tmp_path: Path, compression: str | None
) -> None:
    path = tmp_path / "run.h5"
    frames = _write(path, 12, compression=compression)
    _flip_byte_in_chunk(path, "raw/frames", 7)
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.frames[:7], frames[:7])
        np.testing.assert_array_equal(rec.frames[8], frames[8])
        for key in (7, slice(None), slice(5, 9)):
            with pytest.raises(CorruptRecordingError, match="frame 7 fails its checksum") as err:
                rec.frames[key]
            assert str(path) in str(err.value)


def test_flipped_byte_in_frame_ids_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path, 12)
    _flip_byte_in_chunk(path, "raw/frame_id", 0)
    with open_recording(path) as rec, pytest.raises(CorruptRecordingError, match="frame_id"):
        rec.frame_ids  # noqa: B018


def test_without_checksums_a_flipped_byte_goes_unnoticed(tmp_path: Path) -> None:
    """Why checksums are on by default: HDF5 alone returns the damaged values."""
    path = tmp_path / "run.h5"
    frames = _write(path, 4, checksum=False)
    _flip_byte_in_chunk(path, "raw/frames", 2)
    with open_recording(path) as rec:
        assert not rec.checksum
        assert not np.array_equal(rec.frames[2], frames[2])


def test_editing_a_crashed_or_open_recording_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    writer = RecordingWriter(path, AcquisitionMetadata(), frame_shape=SHAPE, dtype=np.uint16)
    writer.append(_frames(1)[0], frame_id=0)
    try:
        # An event added while the file is written goes beside it, never into it.
        add_event(path, "late", time_s=0.0)
    finally:
        writer.close()
    with open_recording(path) as rec:
        assert [event.label for event in rec.events] == ["late"]
    crashed = tmp_path / "crashed.h5"
    code = (
        "import os, numpy as np\n"
        "from lsci.recording import AcquisitionMetadata, RecordingWriter\n"
        f"w = RecordingWriter({str(crashed)!r}, AcquisitionMetadata(), frame_shape=(2, 2), "
        "dtype=np.uint8)\n"
        "w.append(np.ones((2, 2), np.uint8), frame_id=0)\n"
        "w.flush()\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    with open_recording(crashed) as rec:
        assert len(rec) == 1
    with pytest.raises(RecordingStateError, match="writer stopped without closing"):
        save_derived(crashed, "x", np.ones(3), algorithm="a", parameters={})


def test_creating_where_permission_is_denied(tmp_path: Path) -> None:
    # /sys refuses new files even to root (chmod would not stop root).
    target = Path("/sys") / f"lsci-{uuid.uuid4().hex}.h5"
    with pytest.raises(RecordingWriteError, match=r"cannot create the file: .*") as caught:
        RecordingWriter(target, AcquisitionMetadata(), frame_shape=SHAPE, dtype=np.uint16)
    assert str(target) in str(caught.value)
    with pytest.raises(RecordingWriteError, match="No such file or directory"):
        RecordingWriter(
            tmp_path / "missing" / "x.h5",
            AcquisitionMetadata(),
            frame_shape=SHAPE,
            dtype=np.uint16,
        )


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB tmpfs (needs root and mount permission; skipped otherwise)."""
    with mounted_tmpfs(tmp_path / "mnt", "8m") as mount_point:
        yield mount_point


def test_disk_full_is_a_clear_error_and_flushed_frames_stay_readable(small_tmpfs: Path) -> None:
    # The writer runs in its own process so that the file is read back from disk, not through
    # the writer's HDF5 handle.
    path = small_tmpfs / "full.h5"
    result = subprocess.run(
        [sys.executable, str(HELPER), str(path), "fill"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    committed = max(int(line.split()[1]) for line in lines if line.startswith("committed"))
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1
    assert str(path) in errors[0]
    assert "No space left on device" in errors[0]
    assert lines[-1] == "closed"
    assert committed >= 50
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["full.h5"]  # reserve released
    with open_recording(path) as rec:
        assert rec.closed_cleanly  # the released reserve let HDF5 finish the file
        assert len(rec) >= committed
        np.testing.assert_array_equal(rec.frame_ids, np.arange(len(rec)))
        for i in range(len(rec)):
            np.testing.assert_array_equal(rec.frames[i], expected_frame(i))
    with pytest.raises(RecordingWriteError, match="No space left on device"):
        RecordingWriter(
            small_tmpfs / "more.h5", AcquisitionMetadata(), frame_shape=(512, 512), dtype=np.uint16
        )


def test_read_only_file_system(small_tmpfs: Path) -> None:
    path = small_tmpfs / "run.h5"
    frames = _write(path, 4)
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(RecordingWriteError, match="Read-only file system"):
        save_derived(path, "x", np.ones(3), algorithm="a", parameters={})
    with pytest.raises(RecordingWriteError, match="Read-only file system"):
        RecordingWriter(
            small_tmpfs / "new.h5", AcquisitionMetadata(), frame_shape=SHAPE, dtype=np.uint16
        )
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.frames[:], frames)


def _subclasses(cls: type[RecordingError]) -> list[type[RecordingError]]:
    return [cls] + [sub for child in cls.__subclasses__() for sub in _subclasses(child)]


@pytest.mark.parametrize("error_class", _subclasses(RecordingError), ids=lambda c: c.__name__)
def test_recording_errors_cross_processes_whole(error_class: type[RecordingError]) -> None:
    """A Dask worker's error reaches the client by pickle: same class, file and problem."""
    error = error_class("/data/run.h5", "closing a product file failed: No space left on device")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is error_class
    assert (copy.path, copy.problem, str(copy)) == (error.path, error.problem, str(error))
