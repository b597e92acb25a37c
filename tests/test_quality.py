"""Quality masks and the speckle grain estimate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special

from lsci.analysis.quality import (
    NYQUIST_GRAIN_PX,
    UnderSampledSpeckleWarning,
    _airy_table,
    _invert_airy,
    low_signal_pixels,
    saturated_pixels,
    speckle_grain_px,
    valid_pixels,
)
from lsci.calibration import CameraNoise, DarkFrame
from lsci.sim.speckle import SpeckleSimulator, speckle_pattern


def test_saturated_pixels() -> None:
    frames = np.array([[[4095, 10], [4094, 0]], [[0, 4095], [1, 2]]], np.uint16)
    np.testing.assert_array_equal(saturated_pixels(frames, 12), [[True, True], [False, False]])
    np.testing.assert_array_equal(saturated_pixels(frames, 12, any_frame=False), frames == 4095)
    assert not saturated_pixels(frames, 16).any()
    assert saturated_pixels(np.array([[255]], np.uint8), 8).all()
    with pytest.raises(ValueError, match="bit_depth"):
        saturated_pixels(frames, 17)
    with pytest.raises(TypeError, match="bit_depth"):
        saturated_pixels(frames, 12.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frames"):
        saturated_pixels(np.zeros(3), 8)
    with pytest.raises(TypeError, match="real numbers"):
        saturated_pixels(np.zeros((2, 2), complex), 8)


def test_saturation_in_simulated_frames() -> None:
    # Mean 1000 e × 1 ADU/e on a 10-bit camera: the bright speckles clip at 1023.
    camera = SpeckleSimulator(
        (32, 32), tau_c_s=np.inf, exposure_s=1e-3, mean_signal_e=600.0, gain_adu_per_e=1.0,
        bit_depth=10, seed=1,
    )  # fmt: skip
    frames = camera.frames(2)
    mask = saturated_pixels(frames, 10)
    np.testing.assert_array_equal(mask, (frames == 1023).any(axis=0))
    assert 0 < mask.mean() < 0.5


def test_low_signal_pixels_against_numpy() -> None:
    rng = np.random.default_rng(0)
    frames = rng.normal(110.0, 5.0, (10, 6, 7))
    frames[:, 0, :] += 100.0
    dark = DarkFrame(mean=np.full((6, 7), 100.0), variance=np.ones((6, 7)), n_frames=3)
    camera = CameraNoise(gain_adu_per_e=2.0, read_noise_e=2.0)  # 4 ADU read noise
    low = low_signal_pixels(frames, camera=camera, read_noise_factor=5.0, dark=dark)
    expected = frames.mean(axis=0) - 100.0 < 20.0
    np.testing.assert_array_equal(low, expected)
    assert low[1:].all()
    assert not low[0].any()
    # The larger of two thresholds applies.
    both = low_signal_pixels(frames, min_adu=250.0, camera=camera)
    np.testing.assert_array_equal(both, frames.mean(axis=0) < 250.0)
    image = np.array([[np.nan, 50.0]])
    np.testing.assert_array_equal(low_signal_pixels(image, min_adu=10), [[True, False]])


def test_low_signal_errors() -> None:
    frames = np.ones((2, 3, 3))
    with pytest.raises(ValueError, match="min_adu"):
        low_signal_pixels(frames)
    with pytest.raises(ValueError, match="min_adu"):
        low_signal_pixels(frames, min_adu=-1)
    with pytest.raises(ValueError, match="read_noise_factor"):
        low_signal_pixels(frames, camera=CameraNoise(1.0, 1.0), read_noise_factor=-1)
    dark = DarkFrame(mean=np.zeros((2, 2)), variance=np.zeros((2, 2)), n_frames=2)
    with pytest.raises(ValueError, match="dark frame shape"):
        low_signal_pixels(frames, min_adu=1, dark=dark)


def test_valid_pixels_combines_masks() -> None:
    frames = np.array([[[4095, 5, 500]], [[100, 6, 600]]], np.uint16)
    np.testing.assert_array_equal(valid_pixels(frames, 12), [[False, True, True]])
    np.testing.assert_array_equal(valid_pixels(frames, 12, min_adu=10), [[False, False, True]])


def test_airy_table_against_scipy() -> None:
    u, airy = _airy_table()
    expected = np.ones_like(u)
    expected[1:] = (2 * special.j1(u[1:]) / u[1:]) ** 2
    np.testing.assert_allclose(airy, expected, atol=1e-12)
    for target in (0.9, 0.5, 0.1, 0.01):
        root = _invert_airy(target)
        assert (2 * special.j1(root) / root) ** 2 == pytest.approx(target, abs=1e-5)
    # Out-of-range correlations: the table's ends.
    assert _invert_airy(1.2) == u[1]
    assert _invert_airy(-0.1) == pytest.approx(3.8317, abs=1e-4)


@pytest.mark.parametrize("grain", [2.5, 3.0, 4.0, 6.0, 10.0])
def test_grain_size_of_simulated_speckle(grain: float) -> None:
    frames = np.stack([speckle_pattern((128, 128), grain, rng=seed) for seed in range(4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate = speckle_grain_px(frames)
    assert estimate == pytest.approx(grain, rel=0.05)


def test_grain_size_of_raw_camera_frames() -> None:
    camera = SpeckleSimulator(
        (128, 128), tau_c_s=np.inf, exposure_s=1e-3, grain_px=3.5, mean_signal_e=1000.0, seed=2
    )
    assert speckle_grain_px(camera.frames(3)) == pytest.approx(3.5, rel=0.05)


@pytest.mark.parametrize("grain", [1.0, 1.5, 1.9])
def test_undersampled_speckle_warns(grain: float) -> None:
    frames = np.stack([speckle_pattern((128, 128), grain, rng=seed) for seed in range(4)])
    with pytest.warns(UnderSampledSpeckleWarning, match="under-sampled") as record:
        estimate = speckle_grain_px(frames)
    assert issubclass(record[0].category, UserWarning)
    # Whole-pixel sampling cannot resolve it: the estimate is at most about 2.3 px.
    assert estimate < NYQUIST_GRAIN_PX + 0.35
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        speckle_grain_px(frames, warn=False)


def test_grain_errors() -> None:
    with pytest.raises(ValueError, match="8 × 8"):
        speckle_grain_px(np.ones((4, 40)))
    with pytest.raises(ValueError, match="uniform"):
        speckle_grain_px(np.ones((16, 16)))
    with pytest.raises(ValueError, match="max_lag_px"):
        speckle_grain_px(np.random.default_rng(0).random((16, 16)), max_lag_px=0)
    with pytest.raises(TypeError, match="max_lag_px"):
        speckle_grain_px(np.random.default_rng(0).random((16, 16)), max_lag_px=2.5)  # type: ignore[arg-type]
