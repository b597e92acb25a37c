"""Calibrations: β from a static target, dark frames, camera noise; HDF5 round trips."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lsci.calibration import (
    BETA_TOLERANCE,
    BetaCalibration,
    CalibrationError,
    CalibrationMismatchError,
    CalibrationWarning,
    CameraNoise,
    DarkFrame,
    calibrate_beta,
)
from lsci.errors import LsciError
from lsci.recording import (
    AcquisitionMetadata,
    RecordingWriter,
    load_calibration,
    open_recording,
    store_calibration,
)
from lsci.sim.speckle import SpeckleSimulator, speckle_pattern


def box_k2_reference(frames: np.ndarray, w: int, ddof: int = 0) -> np.ndarray:
    """Spatial K² over 'valid' w × w windows, plain float64 loops over window positions."""
    t, rows, cols = frames.shape
    out = np.empty((t, rows - w + 1, cols - w + 1))
    for i in range(rows - w + 1):
        for j in range(cols - w + 1):
            block = frames[:, i : i + w, j : j + w].reshape(t, -1).astype(np.float64)
            out[:, i, j] = block.var(axis=1, ddof=ddof) / block.mean(axis=1) ** 2
    return out


def static_frames(n: int = 3, shape: tuple[int, int] = (48, 48), grain: float = 3.0) -> np.ndarray:
    camera = SpeckleSimulator(
        shape, tau_c_s=np.inf, exposure_s=1e-3, grain_px=grain, mean_signal_e=800.0, seed=7
    )
    return camera.frames(n)


def test_beta_is_mean_k2_of_static_target() -> None:
    frames = static_frames()
    cal = calibrate_beta(frames, window=7, exposure_s=1e-3)
    dark_free = frames.astype(np.float64)
    k2 = box_k2_reference(dark_free, 7)
    assert cal.beta == pytest.approx(k2.mean(), rel=1e-5)
    assert cal.beta_map is not None
    np.testing.assert_allclose(cal.beta_map, k2.mean(axis=0), rtol=1e-5)
    assert cal.beta_median == pytest.approx(np.median(k2.mean(axis=0)), rel=1e-5)
    assert cal.k2_spread == pytest.approx(k2.mean(axis=0).std(), rel=1e-4)
    assert (cal.mode, cal.window, cal.ddof, cal.n_frames, cal.exposure_s) == (
        "spatial",
        7,
        0,
        3,
        1e-3,
    )
    # The static target carries the simulator's offset; β is still below 1 and physical.
    assert 0.3 < cal.beta < 1.0


def test_beta_with_dark_and_ddof() -> None:
    frames = static_frames()
    dark = DarkFrame(
        mean=np.full(frames.shape[1:], 100.0, np.float32),
        variance=np.full(frames.shape[1:], 2.0, np.float32),
        n_frames=10,
    )
    cal = calibrate_beta(frames, window=5, ddof=1, dark=dark, keep_map=False)
    k2 = box_k2_reference(frames.astype(np.float64) - 100.0, 5, ddof=1)
    assert cal.beta == pytest.approx(k2.mean(), rel=1e-5)
    assert cal.beta_map is None


def test_beta_point_sampled_speckle_near_one_for_large_grain() -> None:
    # Large grains, big windows: K² of fully developed, point-sampled speckle tends to 1
    # (minus the finite-window bias), the physical upper end of β.
    frames = np.stack([speckle_pattern((96, 96), 2.0, rng=s) for s in range(4)])
    cal = calibrate_beta(frames, window=15)
    assert 0.85 < cal.beta <= 1.0


def test_temporal_beta_from_decorrelating_target() -> None:
    # Frozen during the exposure (x = 1e-4) and independent between frames (interval ≫ τc).
    camera = SpeckleSimulator(
        (32, 32), tau_c_s=10.0, exposure_s=1e-3, frame_interval_s=1e3, grain_px=3.0,
        mean_signal_e=800.0, dark_offset_adu=100.0, seed=3,
    )  # fmt: skip
    frames = camera.frames(60)
    dark = DarkFrame(mean=np.full((32, 32), 100.0), variance=np.full((32, 32), 1.0), n_frames=100)
    cal = calibrate_beta(frames, mode="temporal", window=30, dark=dark)
    data = frames.astype(np.float64) - 100.0
    blocks = data.reshape(2, 30, 32, 32)
    k2 = blocks.var(axis=1) / blocks.mean(axis=1) ** 2
    assert cal.beta == pytest.approx(k2.mean(), rel=1e-5)
    # Point-sampled speckle has β = 1, but K² estimated from 30 samples (ddof = 0, divided by
    # the sample mean²) reads less: its expectation for independent exponential intensities.
    rng = np.random.default_rng(0)
    samples = rng.exponential(1.0, (100_000, 30))
    expected = np.mean(samples.var(axis=1) / samples.mean(axis=1) ** 2)
    assert expected < 29 / 30
    assert cal.beta == pytest.approx(expected, abs=0.02)


def test_static_target_cannot_calibrate_temporal_contrast() -> None:
    frames = np.repeat(static_frames(1), 10, axis=0)
    with pytest.raises(CalibrationError, match="truly static target"):
        calibrate_beta(frames, mode="temporal", window=10)


def test_beta_above_one_policy() -> None:
    rng = np.random.default_rng(0)
    # Gamma-distributed intensities with K² = 1/shape: a contrast above 1.
    slightly = rng.gamma(1 / 1.02, 100.0, (20, 64, 64))
    with pytest.warns(CalibrationWarning, match="clipped to 1"):
        cal = calibrate_beta(slightly, window=63, edges="valid")
    assert cal.beta == 1.0
    far = rng.gamma(1 / 1.5, 100.0, (4, 64, 64))
    with pytest.raises(CalibrationError, match=r"> 1 \+ 0.05"):
        calibrate_beta(far, window=63)
    assert BETA_TOLERANCE == 0.05


def test_calibrate_beta_bad_input() -> None:
    frames = static_frames(1)
    with pytest.raises(ValueError, match="mode"):
        calibrate_beta(frames, mode="spatiotemporal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stack"):
        calibrate_beta(frames[0])
    with pytest.raises(ValueError, match="odd"):
        calibrate_beta(frames, window=6)
    with pytest.raises(TypeError, match="window"):
        calibrate_beta(frames, window=7.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temporal window"):
        calibrate_beta(frames, mode="temporal", window=1)
    with pytest.raises(ValueError, match="at least window=5 frames"):
        calibrate_beta(frames, mode="temporal", window=5)
    with pytest.raises(ValueError, match="exposure_s"):
        calibrate_beta(frames, exposure_s=0.0)
    with pytest.raises(CalibrationError, match="no valid pixel"):
        calibrate_beta(frames, mask=np.zeros(frames.shape[1:], bool))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": 1.01}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"mode": "valid"}, "mode"),
        ({"window": 4}, "odd"),
        ({"ddof": 2}, "ddof"),
        ({"n_frames": 0}, "n_frames"),
        ({"exposure_s": -1.0}, "exposure_s"),
        ({"beta_map": np.ones(3)}, "beta_map"),
    ],
)
def test_beta_calibration_validation(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "beta": 0.5, "mode": "spatial", "window": 7, "ddof": 0, "beta_median": 0.5,
        "k2_spread": 0.1, "n_frames": 3,
    }  # fmt: skip
    with pytest.raises(ValueError, match=message):
        BetaCalibration(**{**base, **kwargs})  # type: ignore[arg-type]


def test_settings_mismatch_raises() -> None:
    cal = BetaCalibration(
        beta=0.6, mode="spatial", window=7, ddof=0, beta_median=0.6, k2_spread=0.1, n_frames=5
    )
    assert cal.beta_for(mode="spatial", window=7) == 0.6
    with pytest.raises(CalibrationMismatchError, match=r"window=5 \(calibrated: 7\)") as info:
        cal.check_settings(mode="spatial", window=5)
    assert isinstance(info.value, LsciError)
    with pytest.raises(CalibrationMismatchError, match=r"mode='temporal'.*ddof=1"):
        cal.beta_for(mode="temporal", window=7, ddof=1)


def test_dark_frame_from_frames_against_numpy() -> None:
    rng = np.random.default_rng(2)
    frames = rng.normal(100.0, 2.0, (30, 8, 9)).round().astype(np.uint16)
    dark = DarkFrame.from_frames(frames, exposure_s=5e-3)
    np.testing.assert_allclose(dark.mean, frames.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(
        dark.variance, frames.astype(np.float64).var(axis=0, ddof=1), rtol=1e-5
    )
    assert dark.mean.dtype == np.float32
    assert (dark.n_frames, dark.exposure_s, dark.shape) == (30, 5e-3, (8, 9))


def test_dark_frame_validation() -> None:
    with pytest.raises(ValueError, match="T >= 2"):
        DarkFrame.from_frames(np.zeros((1, 4, 4)))
    with pytest.raises(TypeError, match="real-valued"):
        DarkFrame.from_frames(np.zeros((3, 4, 4), complex))
    with pytest.raises(ValueError, match="one shape"):
        DarkFrame(mean=np.zeros((4, 4)), variance=np.zeros((4, 5)), n_frames=2)
    with pytest.raises(ValueError, match="finite"):
        DarkFrame(mean=np.full((4, 4), np.nan), variance=np.zeros((4, 4)), n_frames=2)
    with pytest.raises(ValueError, match=">= 0"):
        DarkFrame(mean=np.zeros((4, 4)), variance=-np.ones((4, 4)), n_frames=2)
    with pytest.raises(ValueError, match="n_frames"):
        DarkFrame(mean=np.zeros((4, 4)), variance=np.zeros((4, 4)), n_frames=1)
    with pytest.raises(ValueError, match="exposure_s"):
        DarkFrame(mean=np.zeros((4, 4)), variance=np.zeros((4, 4)), n_frames=2, exposure_s=0)


def test_camera_noise() -> None:
    camera = CameraNoise(gain_adu_per_e=0.25, read_noise_e=6.0)
    assert camera.read_noise_adu == 1.5
    with pytest.raises(ValueError, match="gain_adu_per_e"):
        CameraNoise(gain_adu_per_e=0.0, read_noise_e=1.0)
    with pytest.raises(ValueError, match="read_noise_e"):
        CameraNoise(gain_adu_per_e=1.0, read_noise_e=-1.0)


def sample_calibrations() -> list[BetaCalibration | DarkFrame | CameraNoise]:
    rng = np.random.default_rng(4)
    return [
        BetaCalibration(
            beta=0.61, mode="temporal", window=25, ddof=1, beta_median=0.6, k2_spread=0.02,
            n_frames=100, beta_map=rng.random((5, 6)).astype(np.float32), exposure_s=2e-3,
        ),
        BetaCalibration(
            beta=0.5, mode="spatial", window=7, ddof=0, beta_median=0.5, k2_spread=0.1, n_frames=1
        ),
        DarkFrame(mean=rng.random((5, 6)), variance=rng.random((5, 6)), n_frames=20),
        DarkFrame(mean=rng.random((2, 3)), variance=rng.random((2, 3)), n_frames=4,
                  exposure_s=1e-3),
        CameraNoise(gain_adu_per_e=0.5, read_noise_e=2.5),
    ]  # fmt: skip


def assert_same(a: object, b: object) -> None:
    assert type(a) is type(b)
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
            np.testing.assert_array_equal(np.asarray(other), np.asarray(value, dtype=np.float32))
        else:
            assert other == value, name


def test_byte_string_attributes_are_decoded() -> None:
    arrays, attrs = sample_calibrations()[0].to_arrays_attrs()
    encoded = {k: v.encode() if isinstance(v, str) else v for k, v in attrs.items()}
    assert_same(sample_calibrations()[0], BetaCalibration.from_arrays_attrs(arrays, encoded))


def test_wrong_kind_and_missing_field() -> None:
    arrays, attrs = CameraNoise(0.5, 1.0).to_arrays_attrs()
    with pytest.raises(CalibrationError, match=r"CameraNoise.*not a DarkFrame"):
        DarkFrame.from_arrays_attrs(arrays, attrs)
    with pytest.raises(CalibrationError, match="no lsci calibration"):
        BetaCalibration.from_arrays_attrs({}, {})
    with pytest.raises(CalibrationError, match="not a valid DarkFrame"):
        DarkFrame.from_arrays_attrs({"mean": np.zeros((2, 2))}, {"lsci_calibration": "DarkFrame"})


def write_recording(path: Path) -> None:
    metadata = AcquisitionMetadata(exposure_s=1e-3, frame_rate_hz=100.0, bit_depth=12)
    with RecordingWriter(path, metadata, frame_shape=(4, 5), dtype=np.uint16) as writer:
        writer.append_many(np.zeros((3, 4, 5), np.uint16), frame_ids=np.arange(3))


@pytest.mark.parametrize("index", range(5))
def test_recording_round_trip_every_calibration(tmp_path: Path, index: int) -> None:
    cal = sample_calibrations()[index]
    path = tmp_path / "run.h5"
    write_recording(path)
    store_calibration(path, cal)
    with open_recording(path) as rec:
        assert_same(cal, load_calibration(rec, type(cal)))


def test_recording_calibration_store_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write_recording(path)
    beta, _, dark, _, camera = sample_calibrations()
    store_calibration(path, beta)
    store_calibration(path, dark)
    store_calibration(path, camera, "sensor")
    with pytest.raises(LsciError):
        store_calibration(path, camera, "sensor")
    store_calibration(path, camera, "sensor", overwrite=True)
    with open_recording(path) as rec:
        assert_same(beta, load_calibration(rec, BetaCalibration))
        assert_same(dark, load_calibration(rec, DarkFrame))
        assert_same(camera, load_calibration(rec, CameraNoise, "sensor"))
        with pytest.raises(CalibrationError, match="no calibration named 'camera_noise'"):
            load_calibration(rec, CameraNoise)
        with pytest.raises(CalibrationError, match="not a CameraNoise"):
            load_calibration(rec, CameraNoise, "beta")


def test_no_warning_for_ordinary_beta() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate_beta(static_frames(1), window=7)
