"""Camera-noise correction of K²: formula, local means, and the simulator's ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lsci.calibration import CameraNoise, DarkFrame
from lsci.calibration.noise import (
    QUANTISATION_VARIANCE_ADU2,
    correct_k2,
    fundamental_k2,
    local_mean,
    noise_k2,
    subtract_dark,
)
from lsci.core.contrast import spatial_contrast, temporal_contrast
from lsci.sim.speckle import SpeckleSimulator

CAMERA = CameraNoise(gain_adu_per_e=0.5, read_noise_e=3.0)


def test_noise_k2_formula_against_numpy() -> None:
    mean = np.array([[10.0, 50.0], [400.0, 0.0]])
    bias = noise_k2(mean, CAMERA)
    sigma2 = (0.5 * 3.0) ** 2
    with np.errstate(divide="ignore"):
        expected = 0.5 / mean + sigma2 / mean**2 + (1 / 12) / mean**2
    expected[1, 1] = np.nan
    np.testing.assert_allclose(bias, expected, rtol=1e-14)
    # A dark variance replaces read noise and quantisation; n_samples applies (n-1)/(n-ddof).
    dark_var = np.array([[2.0, 3.0], [4.0, 5.0]])
    bias = noise_k2(mean[:1], CAMERA, read_variance_adu2=dark_var[:1], n_samples=49)
    expected = (48 / 49) * (0.5 / mean[:1] + dark_var[:1] / mean[:1] ** 2)
    np.testing.assert_allclose(bias, expected, rtol=1e-14)
    assert noise_k2(np.array([10.0]), CAMERA, n_samples=49, ddof=1)[0] == pytest.approx(
        0.5 / 10 + (2.25 + 1 / 12) / 100
    )
    assert QUANTISATION_VARIANCE_ADU2 == 1 / 12


def test_noise_k2_errors() -> None:
    with pytest.raises(ValueError, match="read_variance_adu2"):
        noise_k2(np.ones(2), CAMERA, read_variance_adu2=-1.0)
    with pytest.raises(ValueError, match="n_samples"):
        noise_k2(np.ones(2), CAMERA, n_samples=1)
    with pytest.raises(ValueError, match="ddof"):
        noise_k2(np.ones(2), CAMERA, n_samples=9, ddof=2)


def test_correct_k2_against_numpy_and_dtypes() -> None:
    k2 = np.array([[0.3, 0.1], [0.2, 0.05]], np.float32)
    mean = np.array([[50.0, 20.0], [100.0, -1.0]])
    corrected = correct_k2(k2, mean, CAMERA, k2_spatial=0.001)
    assert corrected.dtype == np.float32
    sigma2 = 2.25 + 1 / 12
    with np.errstate(invalid="ignore"):
        expected = k2.astype(np.float64) - 0.5 / mean - sigma2 / mean**2 - 0.001
    expected[1, 1] = np.nan
    np.testing.assert_allclose(corrected, expected, rtol=1e-6)
    assert correct_k2(k2.astype(np.float64), mean, CAMERA).dtype == np.float64
    out = np.empty((2, 2), np.float32)
    assert correct_k2(k2, mean, CAMERA, out=out) is out
    # A scalar mean broadcasts.
    assert correct_k2(k2, 50.0, CAMERA).shape == (2, 2)


def test_correct_k2_errors() -> None:
    k2 = np.ones((2, 2))
    with pytest.raises(ValueError, match="broadcast"):
        correct_k2(k2, np.ones(3), CAMERA)
    with pytest.raises(ValueError, match="broadcast to the shape of k2"):
        correct_k2(k2, np.ones((3, 2, 2)), CAMERA)
    with pytest.raises(TypeError, match="out"):
        correct_k2(k2, np.ones((2, 2)), CAMERA, out=np.empty((2, 2), np.float32))
    with pytest.raises(TypeError, match="real-valued"):
        correct_k2(k2.astype(complex), np.ones((2, 2)), CAMERA)


def test_subtract_dark() -> None:
    dark = DarkFrame(mean=np.full((3, 4), 100.0), variance=np.ones((3, 4)), n_frames=5)
    frames = np.full((2, 3, 4), 150, np.uint16)
    result = subtract_dark(frames, dark)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, 50.0)
    out = np.empty((3, 4), np.float32)
    assert subtract_dark(frames[0], dark, out=out) is out
    with pytest.raises(ValueError, match="do not match"):
        subtract_dark(np.zeros((3, 5)), dark)
    with pytest.raises(ValueError, match="out"):
        subtract_dark(frames, dark, out=out)


_PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}


def _reference_box_sum(values: np.ndarray, window: int, edges: str) -> np.ndarray:
    """Float64 window sums by padding and summed-area tables (independent of the kernels)."""
    half = window // 2
    if edges != "valid":
        pad = [(0, 0)] * (values.ndim - 2) + [(half, half), (half, half)]
        values = np.pad(values, pad, mode=_PAD[edges])  # type: ignore[call-overload]
    cum = np.cumsum(np.cumsum(values, axis=-2), axis=-1)
    cum = np.pad(cum, [(0, 0)] * (values.ndim - 2) + [(1, 0), (1, 0)])
    w = window
    return cum[..., w:, w:] - cum[..., :-w, w:] - cum[..., w:, :-w] + cum[..., :-w, :-w]  # type: ignore[no-any-return]


@pytest.mark.parametrize("edges", ["reflect", "mirror", "nearest", "wrap", "valid"])
def test_local_mean_spatial_matches_scipy(edges: str) -> None:
    rng = np.random.default_rng(1)
    frames = rng.random((2, 12, 15))
    if edges == "valid":
        expected = ndimage.uniform_filter(frames, (1, 5, 5), mode="constant")[:, 2:-2, 2:-2]
    else:
        expected = ndimage.uniform_filter(frames, (1, 5, 5), mode=edges)
    result = local_mean(frames, 5, edges=edges)  # type: ignore[arg-type]
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    out = np.empty(expected.shape)
    assert local_mean(frames, 5, edges=edges, out=out) is out  # type: ignore[arg-type]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # Same shape as the contrast for the same settings.
    assert result.shape == spatial_contrast(frames, 5, edges=edges).shape  # type: ignore[arg-type]


@pytest.mark.parametrize("edges", ["reflect", "mirror", "nearest", "wrap", "valid"])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
def test_local_mean_masked_matches_float64_reference(edges: str, dtype: type) -> None:
    """Kernel means against float64 sums of the masked values over the masked counts."""
    rng = np.random.default_rng(3)
    frames = (rng.random((3, 17, 20)) * 4000 + 100).astype(dtype)
    mask = rng.random((17, 20)) > 0.3
    weights = mask.astype(np.float64)
    total = _reference_box_sum(frames.astype(np.float64) * weights, 7, edges)
    count = _reference_box_sum(weights, 7, edges)
    expected = np.full(total.shape, np.nan)
    np.divide(total, count, out=expected, where=count > 0.5)
    centre = mask if edges != "valid" else mask[3:-3, 3:-3]
    expected[:, ~centre] = np.nan
    out = np.empty(expected.shape)
    local_mean(frames, 7, edges=edges, mask=mask, out=out)  # type: ignore[arg-type]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    plain = np.empty(expected.shape)
    local_mean(frames, 7, edges=edges, out=plain)  # type: ignore[arg-type]
    reference = _reference_box_sum(frames.astype(np.float64), 7, edges) / 49
    if dtype == np.uint16:  # integer sums are exact, so the means are correctly rounded
        np.testing.assert_array_equal(plain, reference)
    np.testing.assert_allclose(plain, reference, rtol=1e-12)


def test_local_mean_masked_and_temporal() -> None:
    rng = np.random.default_rng(2)
    frames = rng.random((7, 6, 6))
    mask = np.ones((6, 6), bool)
    mask[2, 2] = False
    result = local_mean(frames[0], 3, mask=mask, out=np.empty((6, 6)))
    block = frames[0][1:4, 2:5]
    valid = mask[1:4, 2:5]
    assert result[2, 3] == pytest.approx(block[valid].mean(), rel=1e-12)
    assert np.isnan(result[2, 2])
    temporal = local_mean(frames, 3, mode="temporal", step=2, out=np.empty((3, 6, 6)))
    assert temporal.shape == temporal_contrast(frames, 3, step=2).shape
    np.testing.assert_allclose(temporal[1], frames[2:5].mean(axis=0), rtol=1e-12)
    masked = local_mean(frames, 3, mode="temporal", mask=mask)
    assert np.isnan(masked[:, 2, 2]).all()


def test_local_mean_errors() -> None:
    frames = np.ones((3, 6, 6))
    with pytest.raises(ValueError, match="mask"):
        local_mean(frames, 3, mask=np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="edges"):
        local_mean(frames, 3, edges="constant")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        local_mean(frames, 4)
    with pytest.raises(ValueError, match="too large"):
        local_mean(frames, 7)
    with pytest.raises(ValueError, match="mode"):
        local_mean(frames, 3, mode="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stack of frames"):
        local_mean(frames[0], 3, mode="temporal")
    with pytest.raises(ValueError, match="window"):
        local_mean(frames, 4, mode="temporal")
    with pytest.raises(ValueError, match="ndim=1"):
        local_mean(np.ones(5), 3)
    with pytest.raises(TypeError, match="boolean"):
        local_mean(frames, 3, mask=np.ones((6, 6)))


def simulate(mean_signal_e: float, *, noise: bool, seed: int) -> SpeckleSimulator:
    return SpeckleSimulator(
        (64, 64), tau_c_s=1e-3, exposure_s=5e-3, grain_px=3.0, mean_signal_e=mean_signal_e,
        gain_adu_per_e=0.5, read_noise_e=3.0, dark_offset_adu=100.0, bit_depth=12,
        noise=noise, seed=seed,
    )  # fmt: skip


@pytest.mark.parametrize("use_dark", [True, False])
def test_correction_recovers_noise_free_contrast_at_low_light(use_dark: bool) -> None:
    # 30 photoelectrons per pixel: shot and read noise add about 25 % to K² here.
    frames = simulate(30.0, noise=True, seed=1).frames(8)
    truth = spatial_contrast(simulate(30.0, noise=False, seed=2).intensities(8), 7)
    k2_truth = float(np.mean(truth.astype(np.float64) ** 2))
    dark = DarkFrame.from_frames(simulate(0.0, noise=True, seed=3).frames(60))
    # Independent check of the dark frame: read variance (G σ_e)² plus quantisation.
    assert float(dark.variance.mean()) == pytest.approx((0.5 * 3.0) ** 2 + 1 / 12, rel=0.05)
    signal = frames.astype(np.float64) - 100.0
    k2_raw = float(np.mean(spatial_contrast(signal, 7).astype(np.float64) ** 2))
    if use_dark:
        k2, mean = fundamental_k2(frames, CAMERA, dark=dark)
    else:
        k2, mean = fundamental_k2(signal, CAMERA)
    k2_corrected = float(np.mean(k2))
    assert float(np.mean(mean)) == pytest.approx(15.0, rel=0.05)
    assert k2_raw > 1.15 * k2_truth  # the bias is real
    assert abs(k2_corrected - k2_truth) < 0.2 * abs(k2_raw - k2_truth)
    assert k2_corrected == pytest.approx(k2_truth, rel=0.03)


def test_correction_negligible_at_high_light() -> None:
    frames = simulate(1500.0, noise=True, seed=4).frames(4)
    k2, _ = fundamental_k2(frames.astype(np.float64) - 100.0, CAMERA)
    raw = spatial_contrast(frames.astype(np.float64) - 100.0, 7).astype(np.float64) ** 2
    assert float(np.mean(raw) - np.mean(k2)) == pytest.approx(0.5 / 750, rel=0.1)


def test_fundamental_k2_temporal_against_numpy() -> None:
    rng = np.random.default_rng(5)
    frames = rng.gamma(2.0, 50.0, (20, 5, 6)) + 100.0
    dark = DarkFrame(mean=np.full((5, 6), 100.0), variance=np.full((5, 6), 2.0), n_frames=9)
    k2, mean = fundamental_k2(frames, CAMERA, dark=dark, mode="temporal", window=10, ddof=1)
    signal = frames.reshape(2, 10, 5, 6) - 100.0
    mu = signal.mean(axis=1)
    expected = signal.var(axis=1, ddof=1) / mu**2 - (0.5 / mu + 2.0 / mu**2)
    np.testing.assert_allclose(mean, mu, rtol=1e-6)
    np.testing.assert_allclose(k2, expected, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="mode"):
        fundamental_k2(frames, CAMERA, mode="other")  # type: ignore[arg-type]
