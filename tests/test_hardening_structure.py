"""Malformed files: one clear format error, bounded work, and what is readable stays readable.

Each file is a real recording altered with h5py: a group replaced by a dataset, sizes declared
far beyond the file, provenance nested too deeply to parse, invalid optional metadata, host
timestamps running backwards.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner, Result

from lsci.cli import main
from lsci.recording import (
    AcquisitionMetadata,
    RecordingFormatError,
    RecordingWarning,
    RecordingWriter,
    find_derived,
    open_recording,
    save_derived,
)

SHAPE = (16, 16)
COUNT = 6
START_NS = 1_772_359_200_000_000_000


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.h5"
    meta = AcquisitionMetadata(
        exposure_s=0.005, frame_rate_hz=10.0, bit_depth=12, roi=(0, 0, 16, 16)
    )
    frames = np.arange(COUNT * 256, dtype=np.uint16).reshape(COUNT, *SHAPE)
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint16) as writer:
        writer.append_many(
            frames,
            frame_ids=np.arange(COUNT),
            host_timestamps_ns=START_NS + np.arange(COUNT) * 10**8,
        )
    save_derived(path, "good", np.ones(SHAPE), algorithm="a", parameters={"window": 5})
    save_derived(path, "bad", np.zeros(SHAPE), algorithm="a", parameters={"window": 7})
    return path


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_failure(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert fragment in result.output


def test_events_stored_as_a_dataset_is_a_format_error(recording: Path, tmp_path: Path) -> None:
    with h5py.File(recording, "r+") as handle:
        del handle["events"]
        handle["events"] = np.zeros(3)
    with open_recording(recording) as rec, pytest.raises(RecordingFormatError, match="events"):
        _ = rec.events
    _one_line_failure(_run("info", recording), "malformed events")
    out = tmp_path / "raw.tif"
    assert _run("export", recording, "--out", out).exit_code == 0  # the rescue path still works
    assert tifffile.imread(out).shape == (COUNT, *SHAPE)


def test_absurd_declared_frame_count_is_refused_at_once(recording: Path, tmp_path: Path) -> None:
    with h5py.File(recording, "r+") as handle:
        for name in (
            "raw/frames",
            "raw/frame_id",
            "raw/camera_timestamp_ns",
            "raw/host_timestamp_ns",
        ):
            handle[name].resize(2**40, axis=0)
    began = time.monotonic()
    with pytest.raises(RecordingFormatError, match="declares 1099511627776 frames"):
        open_recording(recording)
    _one_line_failure(_run("info", recording), "declares 1099511627776 frames")
    _one_line_failure(_run("export", recording, "--out", tmp_path / "x.tif"), "declares")
    assert time.monotonic() - began < 10
    assert not (tmp_path / "x.tif").exists()


def test_absurd_declared_product_size_leaves_the_rest_usable(
    recording: Path, tmp_path: Path
) -> None:
    with h5py.File(recording, "r+") as handle:
        huge = handle["derived"].create_dataset(
            "huge", shape=(2**40, 64, 64), chunks=(1, 64, 64), dtype=np.float32
        )
        for key in ("algorithm", "source"):
            huge.attrs[key] = handle["derived/good"].attrs[key]
        huge.attrs["parameters"] = "{}"
    with open_recording(recording) as rec:
        with pytest.warns(RecordingWarning, match="huge"):
            assert sorted(rec.derived) == ["bad", "good"]
        assert "more than the file" in rec.unreadable_derived["huge"]
    _one_line_failure(
        _run("export", recording, "--what", "huge", "--out", tmp_path / "h.tif"), "huge"
    )
    assert _run("export", recording, "--what", "good", "--out", tmp_path / "g.tif").exit_code == 0


def test_one_product_with_bad_provenance_does_not_break_the_file(
    recording: Path, tmp_path: Path
) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    with h5py.File(recording, "r+") as handle:
        handle["derived/bad"].attrs["parameters"] = deep
    result = _run("info", recording)
    assert result.exit_code == 0, result.output
    assert 'good: a {"window": 5}' in result.output
    assert "bad: unreadable" in result.output
    assert "nested too deeply" in result.output
    assert "Derived:         2" in result.output
    assert find_derived(recording, algorithm="a", parameters={"window": 5}) is not None
    out = tmp_path / "good.tif"
    assert _run("export", recording, "--what", "good", "--out", out).exit_code == 0
    np.testing.assert_array_equal(tifffile.imread(out), np.ones(SHAPE))
    _one_line_failure(
        _run("export", recording, "--what", "bad", "--out", tmp_path / "b.tif"), "bad provenance"
    )
    with h5py.File(recording, "r+") as handle:
        del handle["derived/good"].attrs["algorithm"]
    with open_recording(recording) as rec, pytest.warns(RecordingWarning):
        assert rec.derived == {}
    assert json.loads('{"a": 1}')  # the parser itself is untouched


INVALID_METADATA = {
    "exposure_s": (0.0, "exposure_s"),
    "frame_rate_hz": (float("nan"), "frame_rate_hz"),
    "bit_depth": (np.int64(99), "bit_depth"),
    "roi": (np.array([1, 2, 3], dtype=np.int64), "roi"),
    "start_time_utc": ("yesterday", "start_time_utc"),
}


@pytest.mark.parametrize("field", sorted(INVALID_METADATA))
def test_one_invalid_metadata_attribute_is_a_warning(
    recording: Path, tmp_path: Path, field: str
) -> None:
    value, name = INVALID_METADATA[field]
    with h5py.File(recording, "r+") as handle:
        handle["acquisition"].attrs[field] = value
    with pytest.warns(RecordingWarning, match=f"{name} is invalid and treated as unknown"):
        rec = open_recording(recording)
    with rec:
        assert getattr(rec.metadata, field) is None
        assert len(rec) == COUNT
        others = {"exposure_s": 0.005, "frame_rate_hz": 10.0, "bit_depth": 12}
        for other, expected in others.items():
            if other != field:
                assert getattr(rec.metadata, other) == expected
    result = _run("info", recording)
    assert result.exit_code == 0, result.output
    assert f"Warning: acquisition metadata {name} is invalid" in result.output
    out = tmp_path / "raw.tif"
    assert _run("export", recording, "--out", out).exit_code == 0


def test_info_does_not_show_negative_durations(tmp_path: Path) -> None:
    path = tmp_path / "backwards.h5"
    with RecordingWriter(path, AcquisitionMetadata(), frame_shape=SHAPE, dtype=np.uint8) as writer:
        writer.append_many(
            np.zeros((3, *SHAPE), np.uint8),
            frame_ids=np.arange(3),
            host_timestamps_ns=START_NS - np.arange(3) * 10**9,
        )
    result = _run("info", path)
    assert result.exit_code == 0, result.output
    assert "-2.000 s" not in result.output
    assert "host clock ran backwards (last frame stamped 2.000 s before the first)" in result.output
    assert "n/a (host timestamps do not increase)" in result.output
