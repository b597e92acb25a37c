"""Translation registration: recovery of known shifts, refusal of unrelated pairs, shifting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lsci.analysis.registration import (
    Registration,
    RegistrationError,
    apply_shift,
    register_translation,
)
from lsci.errors import LsciError


def textured_scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A random field with a 1/f amplitude spectrum, like natural (skin) images."""
    spectrum = np.fft.fft2(rng.standard_normal(shape))
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    spectrum /= np.maximum(np.hypot(ky, kx), 1.0 / max(shape))
    scene = np.fft.ifft2(spectrum).real
    return (scene - scene.mean()) / scene.std()


def shifted_pair(
    rng: np.random.Generator, shift: tuple[float, float], noise: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and a copy displaced by ``shift`` (cropped from a larger scene), with noise."""
    big = textured_scene(rng, (200, 220))
    # Independent reference: scipy's spline shift of the big scene, then a crop away from edges.
    moved = ndimage.shift(big, shift, order=3, mode="nearest")
    crop = (slice(40, 168), slice(40, 168))
    reference = big[crop] + noise * rng.standard_normal((128, 128))
    moving = moved[crop] + noise * rng.standard_normal((128, 128))
    return reference, moving


@pytest.mark.parametrize(
    "shift", [(0.0, 0.0), (3.0, -5.0), (-12.0, 7.0), (2.3, -1.7), (0.5, 0.5), (-6.75, 4.25)]
)
def test_known_shift_recovered(shift: tuple[float, float]) -> None:
    rng = np.random.default_rng(11)
    reference, moving = shifted_pair(rng, shift)
    result = register_translation(reference, moving)
    # moving is the reference displaced by +shift: the aligning shift is -shift.
    np.testing.assert_allclose(result.shift_px, [-shift[0], -shift[1]], atol=0.25)
    assert result.peak_ratio >= 3.0
    assert 0 < result.peak_height <= 1.0 + 1e-9


def test_integer_circular_shift_is_exact_without_refinement() -> None:
    rng = np.random.default_rng(1)
    reference = rng.random((64, 80))
    moving = np.roll(reference, (5, -9), axis=(0, 1))
    result = register_translation(reference, moving, upsample_factor=1, window=False)
    assert result.shift_px == (-5.0, 9.0)
    # A pure circular shift without window matches perfectly: normalised peak 1.
    assert result.peak_height == pytest.approx(1.0, abs=1e-9)


def test_registration_aligns_the_maps() -> None:
    rng = np.random.default_rng(2)
    reference, moving = shifted_pair(rng, (4.4, -2.6), noise=0.0)
    # Smooth content, so that bilinear interpolation itself adds little error.
    reference = ndimage.gaussian_filter(reference, 2.0)
    moving = ndimage.gaussian_filter(moving, 2.0)
    result = register_translation(reference, moving)
    aligned = apply_shift(moving, result.shift_px)
    inner = (slice(8, -8), slice(8, -8))
    residual = np.abs(aligned[inner] - reference[inner])
    before = np.abs(moving[inner] - reference[inner])
    assert np.nanmean(residual) < 0.1 * np.nanmean(before)


def test_nan_pixels_do_not_break_registration() -> None:
    rng = np.random.default_rng(3)
    reference, moving = shifted_pair(rng, (-3.0, 2.0))
    reference[10:20, 30:45] = np.nan
    moving[60:64, :] = np.inf
    result = register_translation(reference, moving)
    np.testing.assert_allclose(result.shift_px, [3.0, -2.0], atol=0.25)


@pytest.mark.parametrize("seed", range(6))
def test_unrelated_images_refused(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    noise = rng.standard_normal((128, 128))
    other = textured_scene(rng, (128, 128))
    with pytest.raises(RegistrationError, match="unreliable") as info:
        register_translation(noise, other)
    assert isinstance(info.value, LsciError)
    with pytest.raises(RegistrationError):
        register_translation(textured_scene(rng, (128, 128)), other)


def test_uniform_image_refused() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(RegistrationError, match="uniform"):
        register_translation(np.ones((32, 32)), np.ones((32, 32)))
    with pytest.raises(RegistrationError):
        register_translation(np.full((32, 32), 3.0), rng.random((32, 32)))


def test_max_shift_refused() -> None:
    rng = np.random.default_rng(5)
    reference, moving = shifted_pair(rng, (10.0, 0.0))
    with pytest.raises(RegistrationError, match="max_shift_px"):
        register_translation(reference, moving, max_shift_px=5.0)
    assert register_translation(reference, moving, max_shift_px=12.0).shift_px[0] == pytest.approx(
        -10.0, abs=0.25
    )


def test_registration_result_to_dict() -> None:
    result = Registration(shift_px=(1.5, -2.0), peak_height=0.5, peak_ratio=4.0)
    assert result.to_dict() == {"shift_px": [1.5, -2.0], "peak_height": 0.5, "peak_ratio": 4.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"upsample_factor": 0}, "upsample_factor"),
        ({"min_peak_ratio": 0.5}, "min_peak_ratio"),
        ({"min_peak_ratio": float("nan")}, "min_peak_ratio"),
        ({"max_shift_px": -1.0}, "max_shift_px"),
    ],
)
def test_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    image = np.random.default_rng(0).random((16, 16))
    with pytest.raises(ValueError, match=message):
        register_translation(image, image, **kwargs)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    image = np.random.default_rng(0).random((16, 16))
    with pytest.raises(ValueError, match="same shape"):
        register_translation(image, image[:, :15])
    with pytest.raises(ValueError, match="2-D"):
        register_translation(image[None], image[None])
    with pytest.raises(ValueError, match="at least 8"):
        register_translation(image[:4], image[:4])
    with pytest.raises(ValueError, match="no finite pixel"):
        register_translation(np.full((16, 16), np.nan), image)
    with pytest.raises(ValueError, match="real numbers"):
        register_translation(image.astype(complex), image)
    with pytest.raises(TypeError, match="upsample_factor"):
        register_translation(image, image, upsample_factor=2.5)  # type: ignore[arg-type]


def test_apply_shift_matches_numpy_bilinear_reference() -> None:
    rng = np.random.default_rng(6)
    image = rng.random((20, 30))
    dy, dx = 2.3, -4.6
    shifted = apply_shift(image, (dy, dx))
    # Independent float64 reference: direct bilinear interpolation at (r - dy, c - dx).
    expected = np.full(image.shape, np.nan)
    for r in range(image.shape[0]):
        for c in range(image.shape[1]):
            y, x = r - dy, c - dx
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            if 0 <= y0 < image.shape[0] - 1 and 0 <= x0 < image.shape[1] - 1:
                fy, fx = y - y0, x - x0
                expected[r, c] = (
                    (1 - fy) * (1 - fx) * image[y0, x0]
                    + (1 - fy) * fx * image[y0, x0 + 1]
                    + fy * (1 - fx) * image[y0 + 1, x0]
                    + fy * fx * image[y0 + 1, x0 + 1]
                )
    np.testing.assert_array_equal(np.isnan(shifted), np.isnan(expected))
    np.testing.assert_allclose(shifted, expected, rtol=1e-12, atol=1e-12)
    # scipy's linear interpolation agrees inside the valid region.
    scipy_ref = ndimage.shift(image, (dy, dx), order=1, mode="constant", cval=np.nan)
    valid = ~np.isnan(expected)
    np.testing.assert_allclose(shifted[valid], scipy_ref[valid], rtol=1e-12)


def test_apply_shift_integer_is_exact_and_nan_outside() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    shifted = apply_shift(image, (1, -1))
    assert shifted.dtype == np.float32
    np.testing.assert_array_equal(shifted[1:, :3], image[:2, 1:])
    assert np.isnan(shifted[0]).all()
    assert np.isnan(shifted[:, 3]).all()


def test_apply_shift_nan_propagates_only_with_weight() -> None:
    image = np.ones((5, 5))
    image[2, 2] = np.nan
    integer = apply_shift(image, (0, 1))
    assert np.isnan(integer).sum() == 5 + 1  # column 0 and the moved NaN
    half = apply_shift(image, (0, 0.5))
    assert np.isnan(half[2, 2])
    assert np.isnan(half[2, 3])
    assert half[2, 4] == 1.0


def test_apply_shift_round_trip_and_out() -> None:
    rng = np.random.default_rng(7)
    image = rng.random((16, 16))
    out = np.empty((16, 16))
    result = apply_shift(image, (3, 2), out=out)
    assert result is out
    back = apply_shift(result, (-3, -2))
    np.testing.assert_array_equal(back[:13, :14], image[:13, :14])


def test_apply_shift_dtypes_and_errors() -> None:
    assert apply_shift(np.zeros((4, 4), np.uint16), (0.5, 0)).dtype == np.float32
    assert apply_shift(np.zeros((4, 4)), (0.5, 0)).dtype == np.float64
    with pytest.raises(ValueError, match="2-D"):
        apply_shift(np.zeros(4), (0, 0))
    with pytest.raises(ValueError, match="shift_px"):
        apply_shift(np.zeros((4, 4)), (0, np.nan))
    with pytest.raises(ValueError, match="shift_px"):
        apply_shift(np.zeros((4, 4)), (1, 2, 3))
    with pytest.raises(ValueError, match="out"):
        apply_shift(np.zeros((4, 4)), (0, 0), out=np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="real numbers"):
        apply_shift(np.zeros((4, 4), complex), (0, 0))


@pytest.mark.parametrize("seed", range(4))
def test_smooth_images_are_accurate(seed: int) -> None:
    # Smooth content (Gaussian σ = 4 px) with noise: phase correlation alone places the peak
    # to within about a pixel; the cross-correlation refinement must bring it within 0.5 px.
    rng = np.random.default_rng(200 + seed)
    big = ndimage.gaussian_filter(rng.standard_normal((200, 200)), 4.0)
    shift = tuple(rng.uniform(-8, 8, 2))
    moved = ndimage.shift(big, shift, order=3, mode="nearest")
    crop = (slice(40, 168), slice(40, 168))
    scale = big[crop].std()
    reference = big[crop] / scale + 0.2 * rng.standard_normal((128, 128))
    moving = moved[crop] / scale + 0.2 * rng.standard_normal((128, 128))
    result = register_translation(reference, moving)
    np.testing.assert_allclose(result.shift_px, [-shift[0], -shift[1]], atol=0.25)
