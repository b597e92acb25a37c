"""lsci.core.contrast against plain NumPy float64 references written here, plus properties and
errors.

The references use ``np.pad`` + ``sliding_window_view`` (spatial) or explicit loops over blocks of
frames (temporal): they share no code with the kernels. Edge modes map to ``np.pad`` modes as
the module docstring states: reflect → 'symmetric', mirror → 'reflect', nearest → 'edge',
wrap → 'wrap'.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from lsci.core.contrast import (
    EDGE_MODES,
    RollingTemporalContrast,
    spatial_contrast,
    spatiotemporal_contrast,
    temporal_contrast,
)

PAD_MODE = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}
INT_RTOL = 1e-6  # integer input: exact sums, K rounded once to float32
FLOAT_RTOL = 1e-6  # float input: float64 sums with an offset (documented tolerance)


# --------------------------------------------------------------------------------------------
# Inputs and references
# --------------------------------------------------------------------------------------------


def speckle_like(
    shape: tuple[int, ...], dtype: type, seed: int = 0, *, full_range: bool = False
) -> np.ndarray:
    """Exponential intensities (fully developed speckle statistics) scaled to the dtype range."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.exponential(1000.0, size=shape).astype(dtype)
    top = np.iinfo(dtype).max
    # full_range: the mean at a fifth of the range, so many pixels saturate at the maximum.
    scale = top / 5 if full_range else top / 12
    return np.clip(np.round(rng.exponential(scale, size=shape)), 0, top).astype(dtype)


def masked_k(s1: np.ndarray, s2: np.ndarray, n: np.ndarray, ddof: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        var = np.maximum(s2 - s1 * mean, 0) / (n - ddof)
        return np.sqrt(var) / mean


def ref_spatial(
    frame: np.ndarray,
    w: int,
    ddof: int = 0,
    edges: str = "reflect",
    mask: np.ndarray | None = None,
    min_valid: int = 2,
) -> np.ndarray:
    """Float64 spatial K of one frame, from explicit windows of the padded frame."""
    f = frame.astype(np.float64)
    m = np.ones(f.shape, bool) if mask is None else mask
    if edges != "valid":
        r = w // 2
        f = np.pad(f, r, mode=PAD_MODE[edges])
        m = np.pad(m, r, mode=PAD_MODE[edges])
    fv = sliding_window_view(f * m, (w, w))
    mv = sliding_window_view(m, (w, w))
    s1 = fv.sum(axis=(-2, -1))
    s2 = (fv * fv).sum(axis=(-2, -1))
    n = mv.sum(axis=(-2, -1)).astype(np.float64)
    k = masked_k(s1, s2, n, ddof)
    if mask is not None:
        centre = mv[:, :, w // 2, w // 2]
        k[(n < max(min_valid, ddof + 1)) | ~centre] = np.nan
    return k


def ref_temporal(stack: np.ndarray, n: int, step: int, ddof: int = 0) -> np.ndarray:
    f = stack.astype(np.float64)
    maps = []
    for start in range(0, f.shape[0] - n + 1, step):
        block = f[start : start + n]
        with np.errstate(divide="ignore", invalid="ignore"):
            maps.append(block.std(axis=0, ddof=ddof) / block.mean(axis=0))
    return np.array(maps)


def ref_spatiotemporal(
    stack: np.ndarray, w: int, n: int, step: int, ddof: int = 0, edges: str = "reflect"
) -> np.ndarray:
    f = stack.astype(np.float64)
    maps = []
    for start in range(0, f.shape[0] - n + 1, step):
        block = f[start : start + n]
        if edges != "valid":
            r = w // 2
            block = np.pad(block, ((0, 0), (r, r), (r, r)), mode=PAD_MODE[edges])
        v = sliding_window_view(block, (n, w, w))[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            maps.append(v.std(axis=(-3, -2, -1), ddof=ddof) / v.mean(axis=(-3, -2, -1)))
    return np.array(maps)


def assert_k_close(k: np.ndarray, ref: np.ndarray, rtol: float) -> None:
    assert k.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(k), np.isnan(ref))
    np.testing.assert_allclose(k, ref, rtol=rtol, atol=0, equal_nan=True)


# --------------------------------------------------------------------------------------------
# Spatial contrast
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("edges", EDGE_MODES)
@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize(("dtype", "w"), [(np.uint8, 3), (np.uint8, 7), (np.uint16, 5)])
def test_spatial_matches_reference(edges: str, ddof: int, dtype: type, w: int) -> None:
    frame = speckle_like((29, 41), dtype, seed=w)
    k = spatial_contrast(frame, w, ddof=ddof, edges=edges)
    assert k.dtype == np.float32
    assert_k_close(k, ref_spatial(frame, w, ddof, edges), INT_RTOL)


@pytest.mark.parametrize("w", [15, 31])
@pytest.mark.parametrize("edges", ["reflect", "valid"])
def test_spatial_full_range_uint16_large_windows_exact(w: int, edges: str) -> None:
    frame = speckle_like((47, 64), np.uint16, seed=3, full_range=True)
    frame[5:9, 5:40] = 65535  # saturated blob: the largest possible sums
    k = spatial_contrast(frame, w, edges=edges)
    assert_k_close(k, ref_spatial(frame, w, 0, edges), INT_RTOL)


def test_spatial_every_odd_window_up_to_41() -> None:
    # The horizontal sums use a different signed decomposition of w for each window.
    frame = speckle_like((44, 47), np.uint16, seed=30, full_range=True)
    frame8 = (frame >> 8).astype(np.uint8)
    for w in range(3, 42, 2):
        assert_k_close(spatial_contrast(frame, w), ref_spatial(frame, w), INT_RTOL)
        assert_k_close(
            spatial_contrast(frame8, w, edges="valid"), ref_spatial(frame8, w, 0, "valid"), INT_RTOL
        )


@given(st.integers(1, 2000))
def test_window_terms_cover_the_window_exactly(w: int) -> None:
    from lsci.core._kernels.contrast import _window_terms

    top, nterm, levels, offsets, signs, reach = _window_terms(w)
    cover = np.zeros(reach + 1, np.int64)
    for lev, off, sgn in zip(levels[:nterm], offsets[:nterm], signs[:nterm], strict=True):
        assert 0 <= lev <= top
        assert off >= 0
        assert off + 4**lev <= reach
        cover[off : off + 4**lev] += sgn
    assert (cover[:w] == 1).all()
    assert (cover[w:] == 0).all()
    assert levels[0] == top
    assert offsets[0] == 0
    assert signs[0] == 1


@pytest.mark.parametrize("w", [15, 17, 61])
def test_spatial_uint8_accumulator_limits_exact(w: int) -> None:
    # uint8 sums use float32 up to 15×15 (all sums < 2²⁴), int32 beyond: both exact.
    frame = speckle_like((64, 70), np.uint8, seed=4, full_range=True)
    frame[20:40, 20:40] = 255
    frame[30, 30] = 254  # nearly constant saturated window: the hardest cancellation
    assert_k_close(spatial_contrast(frame, w), ref_spatial(frame, w), INT_RTOL)


@pytest.mark.parametrize("n", [362, 363, 364])
def test_uint8_maximum_variance_near_int32_limit(n: int) -> None:
    # n·ΣI² − (ΣI)² = n²σ² is formed in wrapping int32 for uint8 up to n = 363: check it at the
    # largest possible variance (half 0, half 255).
    stack = np.zeros((n + 1, 2, 3), np.uint8)
    stack[::2] = 255
    stack[:, 1, 2] = 7
    k = temporal_contrast(stack, n, step=1)
    assert_k_close(k, ref_temporal(stack, n, 1), INT_RTOL)
    side = 19 if n < 364 else 21  # 361 and 441 samples
    board = np.where(np.indices((side + 4, side + 6)).sum(axis=0) % 2 == 0, 255, 0)
    board = board.astype(np.uint8)
    assert_k_close(spatial_contrast(board, side), ref_spatial(board, side), INT_RTOL)


@pytest.mark.parametrize("n", [258, 259])
def test_temporal_uint8_accumulator_limits_exact(n: int) -> None:
    stack = np.full((n + 2, 3, 4), 255, np.uint8)
    stack[::7, 0, 0] = 254
    stack[:, 1] = speckle_like((n + 2, 4), np.uint8, seed=n, full_range=True)
    k = temporal_contrast(stack, n, step=1)
    assert_k_close(k, ref_temporal(stack, n, 1), INT_RTOL)
    roll = RollingTemporalContrast((3, 4), n, dtype=np.uint8)
    for frame in stack:
        kr = roll.update(frame)
    np.testing.assert_allclose(kr, k[-1], rtol=INT_RTOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("edges", ["reflect", "valid"])
def test_spatial_float_input_within_stated_tolerance(dtype: type, edges: str) -> None:
    # Low contrast on a large offset: the case where E[I²] − E[I]² cancels badly.
    rng = np.random.default_rng(5)
    frame = (5e4 + rng.normal(0, 50, (33, 35))).astype(dtype)
    k = spatial_contrast(frame, 7, edges=edges)
    assert_k_close(k, ref_spatial(frame, 7, 0, edges), FLOAT_RTOL)
    assert 5e-4 < np.median(k) < 2e-3


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_spatial_stack_is_frame_by_frame(dtype: type) -> None:
    stack = speckle_like((4, 20, 26), dtype, seed=6)
    k = spatial_contrast(stack, 5)
    assert k.shape == stack.shape
    for t in range(stack.shape[0]):
        assert_k_close(k[t], ref_spatial(stack[t], 5), INT_RTOL)


def test_spatial_nan_where_mean_is_zero() -> None:
    frame = speckle_like((20, 20), np.uint8, seed=7)
    frame[:10, :10] = 0
    for dtype in (np.uint8, np.uint16, np.float32):
        k = spatial_contrast(frame.astype(dtype), 3)
        assert np.isnan(k[:8, :8]).all()
        assert not np.isnan(k[12:, :]).any()
        assert_k_close(k, ref_spatial(frame, 3), INT_RTOL)


def test_spatial_k_above_one_is_not_clamped() -> None:
    frame = np.zeros((9, 9), np.uint8)
    frame[4, 4] = 255  # one bright pixel in a 3×3 window of zeros: K = sqrt(8) ≈ 2.83
    k = spatial_contrast(frame, 3)
    assert k[4, 4] == pytest.approx(np.sqrt(8), rel=1e-6)


@pytest.mark.parametrize("edges", ["reflect", "mirror", "valid"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
@pytest.mark.parametrize("ddof", [0, 1])
def test_spatial_mask(edges: str, dtype: type, ddof: int) -> None:
    frame = speckle_like((24, 31), dtype, seed=8)
    rng = np.random.default_rng(9)
    mask = rng.random(frame.shape) > 0.3
    mask[10:20, 10:20] = False  # a hole larger than the window: windows with few valid pixels
    k = spatial_contrast(frame, 5, ddof=ddof, edges=edges, mask=mask, min_valid=4)
    ref = ref_spatial(frame, 5, ddof, edges, mask, min_valid=4)
    assert_k_close(k, ref, INT_RTOL)
    assert np.isnan(k).any()
    if edges != "valid":
        assert np.isnan(k[~mask]).all()


def test_spatial_mask_ignores_values_under_it() -> None:
    frame = speckle_like((16, 16), np.float32, seed=10)
    mask = np.ones(frame.shape, bool)
    mask[3, 4] = False
    spoiled = frame.copy()
    spoiled[3, 4] = np.nan
    np.testing.assert_array_equal(
        spatial_contrast(spoiled, 5, mask=mask), spatial_contrast(frame, 5, mask=mask)
    )


def test_spatial_mask_per_frame() -> None:
    stack = speckle_like((3, 15, 17), np.uint16, seed=11)
    mask = np.random.default_rng(12).random(stack.shape) > 0.2
    k = spatial_contrast(stack, 3, mask=mask)
    for t in range(3):
        assert_k_close(k[t], ref_spatial(stack[t], 3, mask=mask[t]), INT_RTOL)


def test_spatial_all_true_mask_equals_unmasked() -> None:
    frame = speckle_like((20, 22), np.uint8, seed=13)
    k = spatial_contrast(frame, 5, mask=np.ones(frame.shape, bool))
    np.testing.assert_allclose(k, spatial_contrast(frame, 5), rtol=1e-6)


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[:, ::2],
        lambda a: a.T,
        lambda a: a[1:-1, 2:-3],
    ],
    ids=["strided", "transposed", "cropped"],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_spatial_non_contiguous_input(view, dtype: type) -> None:  # type: ignore[no-untyped-def]
    big = speckle_like((40, 48), dtype, seed=14)
    v = view(big)
    assert not v.flags.c_contiguous
    assert_k_close(spatial_contrast(v, 5), ref_spatial(np.ascontiguousarray(v), 5), INT_RTOL)


def test_spatial_non_contiguous_stack() -> None:
    stack = speckle_like((3, 20, 30), np.uint8, seed=15)
    v = stack[:, :, ::3]
    k = spatial_contrast(v, 3)
    for t in range(3):
        assert_k_close(k[t], ref_spatial(np.ascontiguousarray(v[t]), 3), INT_RTOL)
    vt = stack.transpose(0, 2, 1)
    np.testing.assert_array_equal(spatial_contrast(vt, 3), spatial_contrast(vt.copy(), 3))


def _mean_in_order(k: np.ndarray, group: int) -> np.ndarray:
    """Mean of every ``group`` consecutive maps: summed in order, then divided (float32)."""
    total = k[::group].copy()
    for index in range(1, group):
        total += k[index::group]
    return total / k.dtype.type(group)


@pytest.mark.parametrize("edges", ["reflect", "valid"])
@pytest.mark.parametrize(("dtype", "w"), [(np.uint8, 7), (np.uint16, 5), (np.float32, 15)])
def test_spatial_average_is_the_mean_of_the_frames_k(edges: str, dtype: type, w: int) -> None:
    stack = speckle_like((12, 37, 44), dtype, seed=w)
    k = spatial_contrast(stack, w, edges=edges)
    np.testing.assert_array_equal(spatial_contrast(stack, w, edges=edges, average=1), k)
    for group in (3, 4):
        mean = spatial_contrast(stack, w, edges=edges, average=group)
        # Fast-math may round a frame's K differently inside the averaging loop: ≤ 2 ulp.
        np.testing.assert_allclose(mean, _mean_in_order(k, group), rtol=2.5e-7, atol=0)
    # Against the float64 reference too, not only against this module's own per-frame K.
    per_frame = np.array([ref_spatial(frame, w, 0, edges) for frame in stack])
    reference = per_frame.reshape(3, 4, *k.shape[1:]).mean(axis=1)
    tolerance = INT_RTOL if np.dtype(dtype).kind == "u" else 1e-5
    assert_k_close(spatial_contrast(stack, w, edges=edges, average=4), reference, tolerance)


def test_spatial_average_with_a_mask_and_a_strided_stack() -> None:
    stack = speckle_like((6, 30, 32), np.uint8, seed=21)
    mask = np.ones((30, 32), bool)
    mask[10:14, 3:9] = False
    per_frame = spatial_contrast(stack, 5, mask=mask)
    np.testing.assert_array_equal(
        spatial_contrast(stack, 5, mask=mask, average=3), _mean_in_order(per_frame, 3)
    )
    strided = stack[:, :, ::2]
    np.testing.assert_allclose(
        spatial_contrast(strided, 5, average=2),
        _mean_in_order(spatial_contrast(strided.copy(), 5), 2),
        rtol=2.5e-7,
        atol=0,
    )


@pytest.mark.parametrize("average", [0, 4, 2.0, True])
def test_spatial_average_refuses_what_does_not_divide_the_stack(average: object) -> None:
    with pytest.raises(ValueError, match=r"average|groups"):
        spatial_contrast(np.zeros((6, 9, 9), np.uint8), 3, average=average)  # type: ignore[arg-type]


def test_spatial_out_argument() -> None:
    frame = speckle_like((18, 19), np.uint16, seed=16)
    out = np.full(frame.shape, -1.0, np.float64)
    res = spatial_contrast(frame, 5, out=out)
    assert res is out
    np.testing.assert_allclose(out, ref_spatial(frame, 5), rtol=INT_RTOL)
    out_valid = np.empty((14, 15), np.float32)
    assert spatial_contrast(frame, 5, edges="valid", out=out_valid) is out_valid


def test_real_rat_cortex_frame(shared_data) -> None:  # type: ignore[no-untyped-def]
    tifffile = pytest.importorskip("tifffile")
    path = shared_data / "rat_cortex_speckle.tif"
    if not path.exists():
        pytest.skip(f"{path} not found")
    frame = tifffile.imread(path)
    assert frame.dtype == np.uint8
    assert frame.shape == (1024, 1280)
    k = spatial_contrast(frame, 7)
    # Reference from an exact int64 integral image of the 'symmetric'-padded frame (sliding
    # windows over 1.3 Mpx would be slow here).
    p = np.pad(frame.astype(np.int64), 3, mode="symmetric")
    s1 = np.zeros((p.shape[0] + 1, p.shape[1] + 1), np.int64)
    s2 = np.zeros_like(s1)
    s1[1:, 1:] = p.cumsum(0).cumsum(1)
    s2[1:, 1:] = (p * p).cumsum(0).cumsum(1)

    def box(s: np.ndarray) -> np.ndarray:
        return s[7:, 7:] - s[:-7, 7:] - s[7:, :-7] + s[:-7, :-7]

    b1, b2 = box(s1), box(s2)
    ref = np.sqrt((49 * b2 - b1 * b1).astype(np.float64)) / b1
    assert_k_close(k, ref, INT_RTOL)
    assert np.median(k) == pytest.approx(0.09, abs=0.01)


# --------------------------------------------------------------------------------------------
# Temporal contrast
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize(("n", "step"), [(5, None), (5, 1), (7, 3), (4, 9), (25, 1), (30, None)])
def test_temporal_matches_reference(dtype: type, ddof: int, n: int, step: int | None) -> None:
    stack = speckle_like((30, 9, 13), dtype, seed=n, full_range=dtype == np.uint16)
    k = temporal_contrast(stack, n, step=step, ddof=ddof)
    ref = ref_temporal(stack, n, step or n, ddof)
    assert k.dtype == np.float32
    assert k.shape == ((30 - n) // (step or n) + 1, 9, 13)
    assert_k_close(k, ref, INT_RTOL)


def test_temporal_whole_stack() -> None:
    stack = speckle_like((17, 6, 7), np.uint8, seed=17)
    k = temporal_contrast(stack, None)
    assert k.shape == (1, 6, 7)
    assert_k_close(k, ref_temporal(stack, 17, 17), INT_RTOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("step", [None, 1, 2])
def test_temporal_float_input(dtype: type, step: int | None) -> None:
    rng = np.random.default_rng(18)
    stack = (1e4 + rng.normal(0, 20, (20, 8, 9))).astype(dtype)
    k = temporal_contrast(stack, 6, step=step)
    assert_k_close(k, ref_temporal(stack, 6, step or 6), FLOAT_RTOL)


def test_temporal_nan_where_mean_is_zero() -> None:
    stack = speckle_like((10, 5, 5), np.uint16, seed=19)
    stack[:, 2, 3] = 0
    for dtype in (np.uint8, np.uint16, np.float32):
        k = temporal_contrast((stack // 300).astype(dtype), 5, step=1)
        assert np.isnan(k[:, 2, 3]).all()


def test_temporal_non_contiguous_input() -> None:
    stack = speckle_like((12, 10, 16), np.uint16, seed=20)
    for v in (stack[:, :, ::2], stack.transpose(0, 2, 1), stack[::2]):
        assert not v.flags.c_contiguous
        k = temporal_contrast(v, 3, step=1)
        assert_k_close(k, ref_temporal(v, 3, 1), INT_RTOL)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_temporal_mask_per_pixel_and_per_sample(dtype: type) -> None:
    stack = speckle_like((12, 7, 8), dtype, seed=21)
    rng = np.random.default_rng(22)
    mask2 = rng.random((7, 8)) > 0.3
    k = temporal_contrast(stack, 4, step=2, mask=mask2)
    ref = ref_temporal(stack, 4, 2)
    ref[:, ~mask2] = np.nan
    assert_k_close(k, ref, INT_RTOL)

    mask3 = rng.random(stack.shape) > 0.4
    k3 = temporal_contrast(stack, 4, step=2, mask=mask3, min_valid=3, ddof=1)
    f = stack.astype(np.float64)
    for b, start in enumerate(range(0, 9, 2)):
        m = mask3[start : start + 4]
        n = m.sum(axis=0).astype(np.float64)
        s1 = (f[start : start + 4] * m).sum(axis=0)
        s2 = (f[start : start + 4] ** 2 * m).sum(axis=0)
        expect = masked_k(s1, s2, n, 1)
        expect[n < 3] = np.nan
        assert_k_close(k3[b], expect, INT_RTOL)


# --------------------------------------------------------------------------------------------
# Spatio-temporal contrast
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("edges", ["reflect", "valid"])
@pytest.mark.parametrize("step", [None, 1])
@pytest.mark.parametrize("ddof", [0, 1])
def test_spatiotemporal_matches_reference(
    dtype: type, edges: str, step: int | None, ddof: int
) -> None:
    stack = speckle_like((9, 14, 17), dtype, seed=23)
    k = spatiotemporal_contrast(stack, 5, 4, step=step, ddof=ddof, edges=edges)
    ref = ref_spatiotemporal(stack, 5, 4, step or 4, ddof, edges)
    assert k.dtype == np.float32
    assert_k_close(k, ref, INT_RTOL)


def test_spatiotemporal_one_frame_window_equals_spatial_on_summed_stats() -> None:
    # With a mask that keeps only one frame of each block, the voxel reduces to spatial K.
    stack = speckle_like((4, 12, 13), np.uint16, seed=24)
    mask = np.zeros(stack.shape, bool)
    mask[0] = True
    mask[2] = True
    k = spatiotemporal_contrast(stack, 3, 2, mask=mask)
    np.testing.assert_allclose(k[0], spatial_contrast(stack[0], 3), rtol=1e-6)
    np.testing.assert_allclose(k[1], spatial_contrast(stack[2], 3), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Rolling temporal contrast
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("ddof", [0, 1])
def test_rolling_equals_sliding_temporal(dtype: type, ddof: int) -> None:
    n = 5
    stack = speckle_like((23, 11, 12), dtype, seed=25)
    sliding = temporal_contrast(stack, n, step=1, ddof=ddof)
    roll = RollingTemporalContrast((11, 12), n, dtype=dtype, ddof=ddof)
    rtol = INT_RTOL if np.dtype(dtype).kind == "u" else FLOAT_RTOL
    for i, frame in enumerate(stack):
        k = roll.update(frame)
        assert k.dtype == np.float32
        assert roll.count == min(i + 1, n)
        assert roll.ready == (i + 1 >= n)
        if i + 1 < n:
            assert np.isnan(k).all()
        else:
            np.testing.assert_allclose(k, sliding[i - n + 1], rtol=rtol)
    # After reset: the same as a fresh start on the new frames.
    roll.reset()
    assert roll.count == 0
    assert not roll.ready
    restart = stack[7:19][::-1].copy()
    sliding2 = temporal_contrast(restart, n, step=1, ddof=ddof)
    for i, frame in enumerate(restart):
        k = roll.update(frame)
        if i + 1 < n:
            assert np.isnan(k).all()
        else:
            np.testing.assert_allclose(k, sliding2[i - n + 1], rtol=rtol)


def test_rolling_accepts_safe_casts_and_out() -> None:
    roll = RollingTemporalContrast((4, 6), 3, dtype=np.uint16)
    out = np.empty((4, 6), np.float64)
    frames = speckle_like((4, 4, 6), np.uint8, seed=26)
    for f in frames:
        res = roll.update(f, out=out)  # uint8 frames into a uint16 window
    assert res is out
    np.testing.assert_allclose(out, temporal_contrast(frames, 3, step=1)[-1], rtol=INT_RTOL)
    assert roll.shape == (4, 6)
    assert roll.window == 3
    assert roll.dtype == np.uint16


def test_rolling_never_overwrites_a_map_the_caller_keeps() -> None:
    roll = RollingTemporalContrast((5, 6), 2, dtype=np.uint8)
    stack = speckle_like((12, 5, 6), np.uint8, seed=31)
    kept = [roll.update(f) for f in stack]  # every map kept: all distinct
    assert len({id(k) for k in kept}) == len(kept)
    sliding = temporal_contrast(stack, 2, step=1)
    for i in range(1, len(stack)):
        np.testing.assert_allclose(kept[i], sliding[i - 1], rtol=INT_RTOL)
    view = roll.update(stack[0])[1:3]  # a view keeps its base alive, too
    before = view.copy()
    for f in stack[1:4]:
        roll.update(f)
    np.testing.assert_array_equal(view, before)


def test_rolling_float_resum_keeps_equality() -> None:
    roll = RollingTemporalContrast((3, 4), 2, dtype=np.float64)
    stack = speckle_like((300, 3, 4), np.float64, seed=27)
    for f in stack:
        k = roll.update(f)
    np.testing.assert_allclose(k, ref_temporal(stack[-2:], 2, 1)[0], rtol=FLOAT_RTOL)


def test_rolling_non_contiguous_frame() -> None:
    big = speckle_like((6, 8, 10), np.uint8, seed=28)
    roll = RollingTemporalContrast((10, 8), 3, dtype=np.uint8)
    for f in big:
        k = roll.update(f.T)
    np.testing.assert_allclose(k, ref_temporal(big[-3:].transpose(0, 2, 1), 3, 1)[0], rtol=1e-6)


@pytest.mark.parametrize("n", [2, 25, 256, 257, 258])
def test_rolling_uint8_sums_exact_at_their_bounds_over_many_turns(n: int) -> None:
    # uint8 windows up to 257 frames keep ΣI in uint16 and ΣI² in uint32, updated with
    # wrapping arithmetic: at 257 frames of 255, ΣI = 65535 exactly; 258 takes the wider sums.
    # Three turns of the ring, so every slot is evicted (and the sums wrap) many times.
    t = 3 * n + 7
    stack = speckle_like((t, 3, 4), np.uint8, seed=n, full_range=True)
    stack[:, 0, 0] = 255  # the largest ΣI: K = 0
    stack[:, 0, 1] = np.where(np.arange(t) % 2 == 0, 255, 0)  # the largest variance
    stack[:, 0, 2] = 0  # ⟨I⟩ = 0: NaN
    stack[: t // 2, 0, 3] = 255  # a step from the largest values to zero and back
    stack[t // 2 : t - n // 2, 0, 3] = 0
    sliding = temporal_contrast(stack, n, step=1)
    reference = ref_temporal(stack, n, 1)
    roll = RollingTemporalContrast((3, 4), n, dtype=np.uint8)
    for i, frame in enumerate(stack):
        k = roll.update(frame)
        if i + 1 >= n:
            np.testing.assert_array_equal(k, sliding[i - n + 1])  # bit for bit
            assert_k_close(k, reference[i - n + 1], INT_RTOL)
    assert k[0, 0] == 0
    assert np.isnan(k[0, 2])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rolling_large_frames_run_the_threaded_kernel(dtype: type) -> None:
    # 150 000 pixels: above the size where the kernels switch from one thread to all.
    stack = speckle_like((12, 300, 500), dtype, seed=29)
    sliding = temporal_contrast(stack, 5, step=1, ddof=1)
    roll = RollingTemporalContrast((300, 500), 5, dtype=dtype, ddof=1)
    out = np.empty((300, 500), np.float32)
    for i, frame in enumerate(stack):
        roll.update(frame, out=out)
        if i >= 4:
            np.testing.assert_array_equal(out, sliding[i - 4])


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

DTYPES = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64])


@st.composite
def frames_and_window(draw):  # type: ignore[no-untyped-def]
    dtype = draw(DTYPES)
    h = draw(st.integers(3, 24))
    w = draw(st.integers(3, 24))
    t = draw(st.sampled_from([None, 1, 2]))
    shape = (h, w) if t is None else (t, h, w)
    win = draw(st.sampled_from([k for k in (3, 5, 7, 9, 11) if k <= min(h, w)]))
    seed = draw(st.integers(0, 2**16))
    frames = speckle_like(shape, dtype, seed)
    return frames, win


@given(frames_and_window(), st.sampled_from(EDGE_MODES), st.sampled_from([0, 1]))
def test_property_shape_dtype_and_reference(case, edges: str, ddof: int) -> None:  # type: ignore[no-untyped-def]
    frames, w = case
    k = spatial_contrast(frames, w, edges=edges, ddof=ddof)
    assert k.dtype == np.float32
    *lead, h, wd = frames.shape
    expect = (h - w + 1, wd - w + 1) if edges == "valid" else (h, wd)
    assert k.shape == (*lead, *expect)
    stack = frames.reshape(-1, h, wd)
    for t, kt in enumerate(k.reshape(-1, *expect)):
        assert_k_close(kt, ref_spatial(stack[t], w, ddof, edges), 2e-6)


@given(frames_and_window(), st.floats(1e-3, 1e3), st.sampled_from(["reflect", "valid"]))
def test_property_scale_invariance(case, scale: float, edges: str) -> None:  # type: ignore[no-untyped-def]
    frames, w = case
    k = spatial_contrast(frames, w, edges=edges)
    ks = spatial_contrast(frames.astype(np.float64) * scale, w, edges=edges)
    np.testing.assert_allclose(ks, k, rtol=1e-5, atol=1e-7, equal_nan=True)


@given(
    DTYPES,
    st.integers(1, 250),
    st.integers(3, 20),
    st.integers(3, 20),
    st.sampled_from(EDGE_MODES),
)
def test_property_constant_image_has_zero_contrast(
    dtype: type, value: int, h: int, wd: int, edges: str
) -> None:
    frame = np.full((h, wd), value, dtype)
    if np.dtype(dtype).kind == "f":
        frame *= dtype(0.37)
    w = 3 if min(h, wd) < 5 else 5
    assert np.all(spatial_contrast(frame, w, edges=edges) == 0)
    stack = np.broadcast_to(frame, (4, h, wd))
    assert np.all(temporal_contrast(stack, 3, step=1) == 0)
    assert np.all(spatiotemporal_contrast(stack, w, 2) == 0)


@given(
    st.sampled_from([np.uint8, np.uint16, np.float32]),
    st.integers(2, 12),
    st.integers(1, 5),
    st.integers(0, 2**16),
)
def test_property_temporal_shapes_and_reference(dtype: type, n: int, step: int, seed: int) -> None:
    t = n + 7
    stack = speckle_like((t, 4, 5), dtype, seed)
    k = temporal_contrast(stack, n, step=step)
    assert k.shape == ((t - n) // step + 1, 4, 5)
    assert k.dtype == np.float32
    assert_k_close(k, ref_temporal(stack, n, step), 2e-6)


def speckle_pattern(size: int, grain: float, seed: int) -> np.ndarray:
    """Fully developed speckle: |low-passed complex Gaussian field|² (circular pupil).

    The pupil radius is size / (2·grain) frequency samples, which makes the speckle grain
    (the intensity correlation width) about ``grain`` pixels.
    """
    rng = np.random.default_rng(seed)
    field = rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
    fy = np.fft.fftfreq(size)[:, None] * size
    fx = np.fft.fftfreq(size)[None, :] * size
    pupil = np.hypot(fy, fx) <= size / (2 * grain)
    speckle_field = np.fft.ifft2(np.fft.fft2(field) * pupil)
    return np.abs(speckle_field) ** 2


@pytest.mark.parametrize("grain", [3.0, 4.0])
def test_fully_developed_speckle_contrast_tends_to_one(grain: float) -> None:
    intensity = speckle_pattern(256, grain, seed=29)
    k = spatial_contrast(intensity, 63, edges="valid")
    assert np.median(k) == pytest.approx(1.0, abs=0.05)
    counts = np.round(intensity / intensity.max() * 4000).astype(np.uint16)
    k16 = spatial_contrast(counts, 63, edges="valid")
    assert np.median(k16) == pytest.approx(1.0, abs=0.05)
    # A small window underestimates K (finite number of grains per window).
    assert np.median(spatial_contrast(intensity, 5, edges="valid")) < np.median(k)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

GOOD = np.ones((10, 12), np.uint8)
STACK = np.ones((6, 10, 12), np.uint8)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: spatial_contrast(np.ones(10, np.uint8)), ValueError, "ndim=1"),
        (lambda: spatial_contrast(np.ones((2, 2, 10, 12), np.uint8)), ValueError, "ndim=4"),
        (lambda: spatial_contrast(GOOD, 6), ValueError, "odd"),
        (lambda: spatial_contrast(GOOD, 1), ValueError, "≥ 3"),
        (lambda: spatial_contrast(GOOD, 11), ValueError, "too large"),
        (lambda: spatial_contrast(GOOD, 11, edges="valid"), ValueError, "too large"),
        (lambda: spatial_contrast(GOOD, 7.0), TypeError, "window must be an integer"),
        (lambda: spatial_contrast(GOOD, True), TypeError, "window must be an integer"),
        (lambda: spatial_contrast(np.ones((0, 12), np.uint8)), ValueError, "empty"),
        (lambda: spatial_contrast(GOOD.astype(complex)), TypeError, "complex"),
        (lambda: spatial_contrast(GOOD.astype(bool)), TypeError, "bool"),
        (lambda: spatial_contrast(GOOD.astype(np.int32)), TypeError, "int32 is not supported"),
        (lambda: spatial_contrast(GOOD, 3, edges="constant"), ValueError, "edges must be one"),
        (lambda: spatial_contrast(GOOD, 3, ddof=2), ValueError, "ddof"),
        (lambda: spatial_contrast(GOOD, 3, mask=np.ones((10, 11), bool)), ValueError, "mask"),
        (lambda: spatial_contrast(GOOD, 3, mask=np.ones((10, 12))), TypeError, "boolean"),
        (
            lambda: spatial_contrast(GOOD, 3, mask=GOOD > 0, min_valid=0),
            ValueError,
            "min_valid",
        ),
        (
            lambda: spatial_contrast(GOOD, 3, out=np.empty((10, 12), np.int32)),
            TypeError,
            "out must have dtype",
        ),
        (
            lambda: spatial_contrast(GOOD, 3, out=np.empty((10, 11), np.float32)),
            ValueError,
            "out has shape",
        ),
        (
            lambda: spatial_contrast(GOOD, 3, out=np.empty((12, 10), np.float32).T),
            ValueError,
            "C-contiguous",
        ),
        (lambda: spatial_contrast(GOOD, 3, out=[0.0]), TypeError, "NumPy array"),
        (lambda: temporal_contrast(GOOD), ValueError, "stack of frames"),
        (lambda: temporal_contrast(STACK, 7), ValueError, "larger than the number of frames"),
        (lambda: temporal_contrast(STACK, 1), ValueError, "≥ 2"),
        (lambda: temporal_contrast(STACK, 3, step=0), ValueError, "step"),
        (lambda: temporal_contrast(STACK.astype(bool), 3), TypeError, "bool"),
        (lambda: temporal_contrast(STACK, 3, mask=np.ones((6, 10), bool)), ValueError, "mask"),
        (
            lambda: temporal_contrast(STACK, 3, out=np.empty((1, 10, 12), np.float32)),
            ValueError,
            r"expected \(2, 10, 12\)",
        ),
        (lambda: spatiotemporal_contrast(STACK, 3, 7), ValueError, "frames_window"),
        (lambda: spatiotemporal_contrast(STACK, 4, 2), ValueError, "odd"),
        (lambda: spatiotemporal_contrast(GOOD, 3, 2), ValueError, "stack of frames"),
        (lambda: RollingTemporalContrast((4, 5), 1), ValueError, "window must be ≥ 2"),
        (lambda: RollingTemporalContrast((4,), 3), ValueError, "shape must be"),
        (lambda: RollingTemporalContrast((4, 5), 3, dtype=np.int16), TypeError, "int16"),
        (
            lambda: RollingTemporalContrast((4, 5), 3, dtype=np.uint8).update(
                np.ones((4, 5), np.uint16)
            ),
            TypeError,
            "does not fit",
        ),
        (
            lambda: RollingTemporalContrast((4, 5), 3).update(np.ones((5, 4), np.uint16)),
            ValueError,
            "does not match",
        ),
    ],
)
def test_errors(call, exc: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        call()
