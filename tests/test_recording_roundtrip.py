"""Writing a recording and reading it back: every dataset, attribute and API round trip."""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import lsci
from lsci.recording import (
    AcquisitionMetadata,
    DerivedProductExistsError,
    RecordingError,
    RecordingExistsError,
    RecordingStateError,
    RecordingWriter,
    add_event,
    find_derived,
    open_recording,
    repair_copy,
    save_calibration,
    save_derived,
)

SHAPE = (12, 20)
META = AcquisitionMetadata(
    exposure_s=0.005,
    gain=1.5,
    frame_rate_hz=100.0,
    pixel_format="Mono8",
    bit_depth=8,
    roi=(8, 4, 20, 12),
    camera_vendor="Acme",
    camera_model="Speckle-1",
    camera_serial="SN42",
    producer="acme.cti",
    laser_wavelength_nm=785.0,
    pixel_size_um=5.5,
    magnification=2.0,
    start_time_utc="2026-03-01T10:00:00Z",
    notes="forearm, baseline then needling",
)


def _frames(count: int, dtype: type, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 4096 if dtype is np.uint16 else 256
    return rng.integers(0, top, size=(count, *SHAPE), dtype=dtype)


def _write(path: Path, frames: np.ndarray, **options: object) -> None:
    start_ns = 1_772_359_200_000_000_000  # 2026-03-01T10:00:00Z
    with RecordingWriter(path, META, frame_shape=SHAPE, dtype=frames.dtype, **options) as w:
        for i, frame in enumerate(frames):
            w.append(
                frame,
                frame_id=i,
                camera_timestamp_ns=1000 * i,
                host_timestamp_ns=start_ns + 10_000_000 * i,
            )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("compression", [None, "blosc-lz4"])
def test_frames_and_stamps_round_trip_exactly(
    tmp_path: Path, dtype: type, compression: str | None
) -> None:
    path = tmp_path / "run.h5"
    frames = _frames(150, dtype)  # more than two growth blocks
    _write(path, frames, compression=compression)
    with open_recording(path) as rec:
        assert len(rec) == 150
        assert rec.frames.shape == (150, *SHAPE)
        assert rec.frames.dtype == dtype
        np.testing.assert_array_equal(rec.frames[:], frames)
        np.testing.assert_array_equal(rec.frame_ids, np.arange(150, dtype=np.uint64))
        np.testing.assert_array_equal(rec.camera_timestamps_ns, 1000 * np.arange(150))
        assert rec.metadata == META
        assert rec.closed_cleanly
        assert rec.dropped_frames == 0
        assert rec.duration_s == pytest.approx(1.49)
        assert rec.achieved_fps == pytest.approx(100.0)
        assert rec.compression == compression
        assert rec.checksum
        assert rec.lsci_version == lsci.__version__


def test_lazy_slicing_matches_numpy(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    frames = _frames(30, np.uint8)
    _write(path, frames)
    with open_recording(path) as rec:
        for key in (5, -1, slice(10, 20), slice(None, None, 7), slice(25, 3, -4), slice(40, 50)):
            np.testing.assert_array_equal(rec.frames[key], frames[key])
        np.testing.assert_array_equal(rec.frames[3:9, 2:5, ::3], frames[3:9, 2:5, ::3])
        np.testing.assert_array_equal(rec.frames[7, 1], frames[7, 1])
        np.testing.assert_array_equal(np.asarray(rec.frames), frames)
        assert sum(1 for _ in rec.frames) == 30
        with pytest.raises(IndexError, match="30 frames"):
            rec.frames[30]
        with pytest.raises(TypeError):
            rec.frames[[1, 2]]  # type: ignore[index]


def test_read_into_a_reused_buffer_matches_slicing(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    frames = _frames(30, np.uint16)
    _write(path, frames)
    with open_recording(path) as rec:
        buffer = np.empty(rec.frames.buffer_bytes(10), np.uint8)
        for start, stop in ((0, 10), (20, 30), (5, 6)):
            got = rec.frames.read(start, stop, buffer=buffer)
            np.testing.assert_array_equal(got, frames[start:stop])
            assert np.shares_memory(got, buffer)  # no fresh memory per read
        np.testing.assert_array_equal(rec.frames.read(0, 30), frames)
        with pytest.raises(ValueError, match="at least"):
            rec.frames.read(0, 20, buffer=buffer)  # too small for 20 frames
        for start, stop in ((-1, 3), (4, 4), (25, 31)):
            with pytest.raises(IndexError, match="not in"):
                rec.frames.read(start, stop)


def test_file_follows_the_documented_layout(tmp_path: Path) -> None:
    """What docs/format.md promises, read with plain h5py as another program would."""
    path = tmp_path / "run.h5"
    _write(path, _frames(3, np.uint16))
    with h5py.File(path, "r", swmr=True) as f:
        assert f.attrs["lsci_format"] == "lsci-recording"
        assert f.attrs["format_version"] == 1
        raw = f["raw"]
        assert raw["frames"].dtype == np.uint16
        assert raw["frames"].chunks == (1, *SHAPE)
        assert raw["frames"].fletcher32
        assert raw["frame_id"].dtype == np.uint64
        assert raw["camera_timestamp_ns"].dtype == np.int64
        assert raw["camera_timestamp_ns"].attrs["missing_value"] == -1
        assert raw["host_timestamp_ns"].dtype == np.int64
        assert raw.attrs["closed_cleanly"] == 1
        assert raw.attrs["dropped_frames"] == 0
        acquisition = f["acquisition"].attrs
        assert acquisition["exposure_s"] == 0.005
        assert list(acquisition["roi"]) == [8, 4, 20, 12]
        assert acquisition["start_time_utc"] == "2026-03-01T10:00:00.000000Z"
        assert acquisition["start_host_time_ns"] == 1_772_359_200_000_000_000
        for name in ("events", "calibrations", "derived"):
            assert isinstance(f[name], h5py.Group)


def test_unknown_metadata_is_absent_and_start_time_is_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with RecordingWriter(path, AcquisitionMetadata(), frame_shape=SHAPE, dtype="uint8") as w:
        w.append(np.zeros(SHAPE, np.uint8), frame_id=7)
    with h5py.File(path, "r") as f:
        assert "exposure_s" not in f["acquisition"].attrs
    with open_recording(path) as rec:
        assert rec.metadata.exposure_s is None
        assert rec.metadata.start_time_utc is not None
        assert rec.camera_timestamps_ns.tolist() == [-1]
        assert rec.frame_ids.tolist() == [7]


def test_dropped_frames_are_counted_from_id_gaps(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    ids = [0, 1, 2, 5, 6, 10, 3]  # gaps of 2 and 3; a restart (10 -> 3) is not a drop
    with RecordingWriter(path, META, frame_shape=SHAPE, dtype="uint8") as w:
        w.append_many(_frames(len(ids), np.uint8), frame_ids=ids)
        assert w.dropped_frames == 5
    with open_recording(path) as rec:
        assert rec.dropped_frames == 5
        np.testing.assert_array_equal(rec.frame_ids, ids)
    with h5py.File(path, "r") as f:
        assert f["raw"].attrs["dropped_frames"] == 5


def test_batch_and_single_appends_mix(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    frames = _frames(10, np.uint16)
    with RecordingWriter(path, META, frame_shape=SHAPE, dtype=np.uint16, block_frames=3) as w:
        w.append_many(frames[:4], frame_ids=range(4), camera_timestamps_ns=np.arange(4) * 5)
        w.append(frames[4], frame_id=4)
        w.append_many(frames[5:], frame_ids=np.arange(5, 10), host_timestamps_ns=np.arange(5))
        w.append_many(frames[:0], frame_ids=[])
        assert w.frames_written == 10
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.frames[:], frames)
        assert rec.camera_timestamps_ns.tolist() == [0, 5, 10, 15, -1, -1, -1, -1, -1, -1]
        assert rec.host_timestamps_ns[5:].tolist() == [0, 1, 2, 3, 4]


def test_existing_file_is_not_overwritten_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path, _frames(2, np.uint8))
    with pytest.raises(RecordingExistsError, match="exists"):
        RecordingWriter(path, META, frame_shape=SHAPE, dtype="uint8")
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]
    _write(path, _frames(1, np.uint8), overwrite=True)
    with open_recording(path) as rec:
        assert len(rec) == 1


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"dtype": "float32"}, ValueError, "dtype"),
        ({"frame_shape": (0, 5)}, ValueError, "frame_shape"),
        ({"frame_shape": 5}, TypeError, "frame_shape"),
        ({"compression": "gzip"}, ValueError, "compression"),
        ({"flush_interval_s": 0}, ValueError, "flush_interval_s"),
        ({"fsync_interval_s": -1.0}, ValueError, "fsync_interval_s"),
        ({"block_frames": 0}, ValueError, "block_frames"),
        ({"metadata": {"exposure_s": 1.0}}, TypeError, "metadata"),
        ({"metadata": AcquisitionMetadata(bit_depth=12), "dtype": "uint8"}, ValueError, "bit"),
    ],
)
def test_invalid_writer_parameters_are_named(
    tmp_path: Path, options: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"metadata": META, "frame_shape": SHAPE, "dtype": "uint16"}
    arguments.update(options)
    with pytest.raises(error, match=match):
        RecordingWriter(tmp_path / "x.h5", **arguments)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_frames_are_never_converted(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path / "x.h5", META, frame_shape=SHAPE, dtype="uint16") as w:
        with pytest.raises(ValueError, match="never converted"):
            w.append(np.zeros(SHAPE, np.uint8), frame_id=0)
        with pytest.raises(ValueError, match="shape"):
            w.append(np.zeros((3, 3), np.uint16), frame_id=0)
        with pytest.raises(TypeError):
            w.append([[0]], frame_id=0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="frame_id"):
            w.append(np.zeros(SHAPE, np.uint16), frame_id=-1)
        with pytest.raises(ValueError, match="frame_id"):
            w.append(np.zeros(SHAPE, np.uint16), frame_id=2**64)
        with pytest.raises(ValueError, match="host_timestamp_ns"):
            w.append(np.zeros(SHAPE, np.uint16), frame_id=0, host_timestamp_ns=2**63)
        with pytest.raises(ValueError, match="camera_timestamps_ns"):
            w.append_many(
                np.zeros((1, *SHAPE), np.uint16), frame_ids=[0], camera_timestamps_ns=[-2]
            )
        with pytest.raises(ValueError, match="frame_ids"):
            w.append_many(np.zeros((2, *SHAPE), np.uint16), frame_ids=[1])
    with pytest.raises(RecordingStateError, match="closed"):
        w.append(np.zeros(SHAPE, np.uint16), frame_id=0)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("exposure_s", 0.0, ValueError),
        ("exposure_s", float("nan"), ValueError),
        ("exposure_s", "5 ms", TypeError),
        ("gain", True, TypeError),
        ("bit_depth", 17, ValueError),
        ("roi", (0, 0, 0, 5), ValueError),
        ("roi", (0, 0, 5), TypeError),
        ("camera_serial", 42, TypeError),
        ("start_time_utc", "2026-03-01T10:00:00+01:00", ValueError),
        ("start_time_utc", "yesterday", ValueError),
        ("notes", None, TypeError),
    ],
)
def test_metadata_is_validated(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=field):
        AcquisitionMetadata(**{field: value})  # type: ignore[arg-type]


def test_events_during_and_after_acquisition(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    start_ns = 1_772_359_200_000_000_000
    with RecordingWriter(path, META, frame_shape=SHAPE, dtype="uint8") as w:
        w.add_event("baseline", host_time_ns=start_ns)
        for i in range(10):
            w.append(np.zeros(SHAPE, np.uint8), frame_id=i, host_timestamp_ns=start_ns + i * 10**8)
        live = w.add_event("needling start", host_time_ns=start_ns + 450_000_000)
        assert live.frame_index == 5
        assert live.time_s == pytest.approx(0.45)
        now = w.add_event("needling end")
        assert now.frame_index == 10
    late = add_event(path, "reaction", time_s=0.25)
    by_frame = add_event(path, "frame seven", frame_index=7)
    by_host = add_event(path, "end", host_time_ns=start_ns + 2 * 10**9)
    assert (late.frame_index, late.host_time_ns) == (3, start_ns + 250_000_000)
    assert (by_frame.frame_index, by_frame.time_s) == (7, pytest.approx(0.7))
    assert by_host.frame_index == 10
    with open_recording(path) as rec:
        events = rec.events
    assert [e.label for e in events] == [
        "baseline",
        "needling start",
        "needling end",
        "reaction",
        "frame seven",
        "end",
    ]
    assert events[0].frame_index == 0
    assert events[1] == live
    assert events[3] == late


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"label": "x"}, ValueError),
        ({"label": "x", "time_s": 1.0, "frame_index": 0}, ValueError),
        ({"label": "x", "frame_index": 99}, ValueError),
        ({"label": "x", "time_s": float("inf")}, ValueError),
        ({"label": "", "time_s": 1.0}, ValueError),
        ({"label": "é" * 65, "time_s": 1.0}, ValueError),
        ({"label": 3, "time_s": 1.0}, TypeError),
    ],
)
def test_invalid_events_are_refused(
    tmp_path: Path, arguments: dict[str, object], error: type[Exception]
) -> None:
    path = tmp_path / "run.h5"
    _write(path, _frames(3, np.uint8))
    with pytest.raises(error):
        add_event(path, **arguments)  # type: ignore[arg-type]
    with open_recording(path) as rec:
        assert rec.events == ()


def test_calibrations_are_saved_beside_the_data(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    dark = np.random.default_rng(3).normal(100, 2, SHAPE)
    with RecordingWriter(path, META, frame_shape=SHAPE, dtype="uint8") as w:
        w.save_calibration("dark_frame", {"mean": dark * 0}, {"kind": "dark"})
        w.append(np.zeros(SHAPE, np.uint8), frame_id=0)
        w.save_calibration(
            "dark_frame",
            {"mean": dark, "count": np.array(64)},
            {"exposure_s": 0.005, "kind": "dark"},
            overwrite=True,
        )
        with pytest.raises(RecordingError, match="already saved"):
            w.save_calibration("dark_frame", {"mean": dark})
    save_calibration(path, "beta", {"beta": np.array([0.61])}, {"wavelengths_nm": [785.0]})
    with pytest.raises(Exception, match="exists"):
        save_calibration(path, "beta", {"beta": np.array([0.5])})
    save_calibration(path, "beta", {"beta": np.array([0.5])}, overwrite=True)
    with open_recording(path) as rec:
        calibrations = rec.calibrations
    assert set(calibrations) == {"dark_frame", "beta"}
    np.testing.assert_array_equal(calibrations["dark_frame"].arrays["mean"], dark)
    assert calibrations["dark_frame"].arrays["count"] == 64
    assert calibrations["dark_frame"].attrs == {"exposure_s": 0.005, "kind": "dark"}
    assert calibrations["dark_frame"].lsci_version == lsci.__version__
    assert calibrations["beta"].arrays["beta"].tolist() == [0.5]


@pytest.mark.parametrize(
    ("name", "arrays", "attrs", "error"),
    [
        ("a/b", {"x": np.ones(2)}, None, ValueError),
        ("ok", {}, None, TypeError),
        ("ok", {"x": np.array(["a"])}, None, TypeError),
        ("ok", {"x": np.ones(2)}, {"obj": object()}, TypeError),
        ("ok", {"x": np.ones(2)}, {"lsci_version": "1"}, ValueError),
    ],
)
def test_invalid_calibrations_are_refused(
    tmp_path: Path,
    name: str,
    arrays: dict[str, np.ndarray],
    attrs: object,
    error: type[Exception],
) -> None:
    path = tmp_path / "run.h5"
    _write(path, _frames(1, np.uint8))
    with pytest.raises(error):
        save_calibration(path, name, arrays, attrs)  # type: ignore[arg-type]


def test_derived_products_keep_provenance_and_never_overwrite_silently(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path, _frames(4, np.uint8))
    contrast = np.random.default_rng(5).random((4, *SHAPE)).astype(np.float32)
    parameters = {"window": 7, "ddof": 0, "model": "lorentzian", "beta": 0.61}
    first = save_derived(
        path, "contrast", contrast, algorithm="spatial_contrast", parameters=parameters
    )
    assert first.written
    again = save_derived(
        path,
        "contrast",
        contrast,
        algorithm="spatial_contrast",
        parameters=dict(reversed(parameters.items())),
    )
    assert not again.written
    assert again.info == first.info
    with pytest.raises(DerivedProductExistsError, match="different provenance"):
        save_derived(
            path,
            "contrast",
            contrast,
            algorithm="spatial_contrast",
            parameters={**parameters, "window": 5},
        )
    found = find_derived(path, algorithm="spatial_contrast", parameters=parameters)
    assert found is not None
    assert found.name == "contrast"
    assert find_derived(path, algorithm="spatial_contrast", parameters={"window": 5}) is None
    replaced = save_derived(
        path,
        "contrast",
        contrast[:, :, :5],
        algorithm="spatial_contrast",
        parameters={**parameters, "window": 5},
        overwrite=True,
    )
    assert replaced.written
    perfusion = contrast.mean(axis=0)
    save_derived(
        path,
        "perfusion",
        perfusion,
        algorithm="inverse_k2",
        parameters={"source_window": 5},
        source="/derived/contrast",
    )
    with open_recording(path) as rec:
        products = rec.derived
        assert set(products) == {"contrast", "perfusion"}
        assert products["contrast"].shape == (4, SHAPE[0], 5)
        assert products["contrast"].info.parameters["window"] == 5
        np.testing.assert_array_equal(products["perfusion"].read(), perfusion)
        np.testing.assert_array_equal(products["contrast"][1], contrast[1, :, :5])
        assert products["perfusion"].info.source == "/derived/contrast"
    with h5py.File(path, "r") as f:
        attrs = f["derived/contrast"].attrs
        assert json.loads(attrs["parameters"]) == {**parameters, "window": 5}
        assert attrs["window"] == 5
        assert attrs["model"] == "lorentzian"
        assert attrs["algorithm"] == "spatial_contrast"
        assert attrs["source"] == "/raw/frames"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"parameters": {"beta": float("nan")}}, ValueError),
        ({"parameters": {"source": 1}}, ValueError),
        ({"parameters": {"f": object()}}, ValueError),
        ({"parameters": [1]}, TypeError),
        ({"parameters": {}, "source": "/raw/nothing"}, ValueError),
        ({"parameters": {}, "algorithm": ""}, ValueError),
        ({"parameters": {}, "data": np.array(["a"])}, ValueError),
        ({"parameters": {}, "data": np.float32(1.0)}, ValueError),
    ],
)
def test_invalid_derived_products_are_refused(
    tmp_path: Path, arguments: dict[str, object], error: type[Exception]
) -> None:
    path = tmp_path / "run.h5"
    _write(path, _frames(1, np.uint8))
    full: dict[str, object] = {"data": np.ones(SHAPE), "algorithm": "a"}
    full.update(arguments)
    with pytest.raises(error):
        save_derived(path, "x", **full)  # type: ignore[arg-type]


def test_derived_products_can_be_saved_into_an_open_file(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path, _frames(2, np.uint8))
    with h5py.File(path, "r+") as f:
        saved = save_derived(
            f, "mean", np.ones(SHAPE), algorithm="mean", parameters={}, compression="blosc-lz4"
        )
        assert find_derived(f, algorithm="mean", parameters={}) == saved.info


def test_repair_copy_keeps_calibrations_and_derived_products(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    frames = _frames(5, np.uint16)
    _write(path, frames, compression="blosc-lz4")
    save_calibration(path, "dark_frame", {"mean": np.ones(SHAPE)}, {"exposure_s": 0.005})
    save_derived(path, "k", np.ones(SHAPE), algorithm="a", parameters={"window": 5})
    copy = repair_copy(path, tmp_path / "copy.h5")
    with open_recording(copy) as rec:
        np.testing.assert_array_equal(rec.frames[:], frames)
        assert rec.compression == "blosc-lz4"
        assert rec.metadata == META
        assert rec.calibrations["dark_frame"].attrs == {"exposure_s": 0.005}
        assert rec.derived["k"].info.parameters == {"window": 5}
        np.testing.assert_array_equal(rec.camera_timestamps_ns, 1000 * np.arange(5))


def test_frames_are_flushed_when_the_camera_stalls(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with RecordingWriter(
        path, META, frame_shape=SHAPE, dtype="uint8", flush_interval_s=0.05, fsync_interval_s=0.05
    ) as w:
        w.append_many(_frames(3, np.uint8), frame_ids=[0, 1, 2])
        deadline = time.monotonic() + 10
        while w.frames_committed < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.frames_committed == 3  # flushed by the writer itself, no append or flush call
