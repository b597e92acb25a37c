"""Tests of lsci.core.perfusion against independent float64 references."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal, localcontext
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import brentq

from lsci.core.perfusion import (
    PerfusionScale,
    correlation_time,
    correlation_time_approx,
    inverse_correlation_time,
    relative_perfusion,
    speckle_flow_index,
    visibility_k2,
)

# ------------------------------------------------------------- references (plain NumPy, float64)


def ref_k2(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """β(e^(−2x) − 1 + 2x)/(2x²): closed form with expm1, 5-term Taylor series below x = 1e-3."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        direct = ((np.expm1(-2.0 * x) + 2.0 * x) / x) / (2.0 * x)
        series = 1.0 - 2.0 * x / 3.0 + x**2 / 3.0 - 2.0 * x**3 / 15.0 + 2.0 * x**4 / 45.0
    out = np.where(x < 1e-3, series, direct)
    out = np.where(x == np.inf, 0.0, out)
    out = np.where((x >= 0) & ~np.isnan(x), out, np.nan)
    return beta * out


def decimal_k2(x: float) -> float:
    """The same formula in 60-digit decimal arithmetic, for single points."""
    with localcontext() as ctx:
        ctx.prec = 60
        d = Decimal(x)
        return float(((-2 * d).exp() - 1 + 2 * d) / (2 * d * d))


def ref_x(k: float, beta: float) -> float:
    """x = T/τc solving ref_k2(x) = K² by bracketing in ln x, with the documented edge values."""
    if math.isnan(k):
        return math.nan
    if k <= 0.0:
        return math.inf
    s = k * k / beta
    if s >= 1.0:
        return 0.0
    root = brentq(
        lambda y: math.log(ref_k2(np.exp(y))[()]) - math.log(s), -40.0, 80.0, xtol=1e-15, rtol=1e-15
    )
    return math.exp(root)


# ----------------------------------------------------------------------------- forward model


def test_visibility_k2_matches_numpy_reference_with_edges() -> None:
    x = np.concatenate([np.logspace(-9, 9, 721), [0.0, np.inf, np.nan, -1.0, 1e-300, 1e300]])
    got = visibility_k2(x, beta=0.7)
    want = ref_k2(x, 0.7)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=2e-13, atol=0)
    assert got[-6] == 0.7
    assert got[-5] == 0.0
    assert np.isnan(got[-4])
    assert np.isnan(got[-3])


@pytest.mark.parametrize("x", [1e-12, 1e-7, 3e-4, 0.01, 0.2, 0.5, 0.7, 1.0, 3.0, 40.0, 1e5])
def test_visibility_k2_is_exact_against_decimal(x: float) -> None:
    assert visibility_k2(x)[()] == pytest.approx(decimal_k2(x), rel=1e-15)


def test_visibility_k2_dtypes_and_shapes() -> None:
    x32 = np.array([[0.1, 1.0], [10.0, 100.0]], dtype=np.float32)
    got = visibility_k2(x32, beta=0.5)
    assert got.dtype == np.float32
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got, ref_k2(x32, 0.5), rtol=1e-6)
    assert visibility_k2([1, 2]).dtype == np.float64
    assert visibility_k2(2.0).shape == ()
    # Non-contiguous input
    wide = np.tile(np.logspace(-2, 2, 8), (3, 1)).T
    np.testing.assert_allclose(visibility_k2(wide[:, ::2]), ref_k2(wide[:, ::2]), rtol=1e-13)


# ------------------------------------------------------------------------------ exact inverse


@pytest.mark.parametrize("beta", [1.0, 0.6, 0.05])
@pytest.mark.parametrize("exposure_s", [50e-6, 5e-3, 0.08])
def test_round_trip_recovers_x_over_1e_minus3_to_1e3(beta: float, exposure_s: float) -> None:
    x = np.logspace(-3, 3, 1201)
    k = np.sqrt(visibility_k2(x, beta))
    rate = inverse_correlation_time(k, exposure_s, beta=beta)
    assert rate.dtype == np.float32
    np.testing.assert_allclose(rate * exposure_s, x, rtol=1e-6)
    rate64 = inverse_correlation_time(k, exposure_s, beta=beta, out=np.empty_like(x))
    np.testing.assert_allclose(rate64 * exposure_s, x, rtol=1e-10)
    tau = correlation_time(k, exposure_s, beta=beta, out=np.empty_like(x))
    np.testing.assert_allclose(exposure_s / tau, x, rtol=1e-10)


def test_float32_contrast_precision_matches_documented_bound() -> None:
    # A float32 K carries ε ≈ 1.2e-7 relative in K²; near x → 0 the inverse amplifies it by
    # 1.5/x (documented), at large x by 1, plus float32 rounding of the result.
    x = np.logspace(-3, 3, 2001)
    k32 = np.sqrt(ref_k2(x)).astype(np.float32)
    x_true = np.array([ref_x(float(v), 1.0) for v in k32[::50]])
    got = inverse_correlation_time(k32[::50], 1.0)
    rel = np.abs(got / x_true - 1.0)
    assert np.all(rel <= 1e-7)  # against the exact inverse of the float32 input
    err = np.abs(inverse_correlation_time(k32, 1.0) / x - 1.0)
    bound = 1.2e-7 * (1.0 + 1.5 / x) + 1.2e-7
    assert np.all(err <= bound)


def test_inverse_matches_bracketed_reference_with_edges() -> None:
    rng = np.random.default_rng(7)
    beta = 0.25  # sqrt(beta)**2 == beta exactly, so K = sqrt(beta) is exactly K²/β = 1
    k = np.concatenate(
        [
            rng.uniform(0.0, 0.49, 200),
            [0.0, -0.1, -np.inf, np.nan, np.inf, math.sqrt(beta), 0.95, 1.0, 2.0, 1e-3, 1e-9],
        ]
    )
    exposure_s = 2e-3
    x_ref = np.array([ref_x(float(v), beta) for v in k])
    with np.errstate(divide="ignore"):
        tau_ref = exposure_s / x_ref
    rate = inverse_correlation_time(k, exposure_s, beta=beta, out=np.empty_like(k))
    tau = correlation_time(k, exposure_s, beta=beta, out=np.empty_like(k))
    np.testing.assert_allclose(rate, x_ref / exposure_s, rtol=1e-12)
    np.testing.assert_allclose(tau, tau_ref, rtol=1e-12)
    # Edges, spelled out: K <= 0 → τc = 0; K²/β >= 1 (and +inf) → τc = inf; NaN → NaN.
    edges = dict(zip(k[200:].tolist(), zip(tau[200:], rate[200:], strict=True), strict=True))
    for kk in (0.0, -0.1, -np.inf):
        assert edges[kk] == (0.0, np.inf)
    for kk in (np.inf, math.sqrt(beta), 1.0, 2.0):
        assert edges[kk] == (np.inf, 0.0)
    assert np.isnan(tau[203])
    assert np.isnan(rate[203])


def decimal_root(s: float, x0: float) -> float:
    """The x solving (e^(−2x) − 1 + 2x)/(2x²) = s for the float64 s: Newton in 60 digits."""
    with localcontext() as ctx:
        ctx.prec = 60
        target = Decimal(s)
        x = Decimal(x0)
        for _ in range(6):
            e = (-2 * x).exp()
            f = (e - 1 + 2 * x) / (2 * x * x)
            df = (1 - e) / (x * x) - 2 * f / x
            x -= (f - target) / df
        return float(x)


def test_inverse_is_at_rounding_level_for_every_ratio() -> None:
    # Documented: x to about 3e-15 relative for exact input, at any s = K²/β. The reference is
    # the 60-digit root for the very float64 s the inversion sees (β = 1, so s = fl(K·K)),
    # across the table's whole range, both singular ends and every segment.
    s_wanted = np.concatenate(
        [
            np.geomspace(1e-9, 0.5, 200),
            1.0 - np.geomspace(1e-9, 0.5, 200),
            np.random.default_rng(3).uniform(0.0, 1.0, 200),
        ]
    )
    k = np.sqrt(s_wanted)
    s = k * k
    x = inverse_correlation_time(k, 1.0, out=np.empty_like(k))
    exact = np.array([decimal_root(float(v), ref_x(math.sqrt(v), 1.0)) for v in s])
    assert np.max(np.abs(x / exact - 1.0)) <= 1e-14
    tau = correlation_time(k, 1.0, out=np.empty_like(k))
    assert np.max(np.abs(tau * exact - 1.0)) <= 1e-14


def test_inverse_is_strictly_monotone_across_table_segments() -> None:
    # The table joins 256 polynomials at s = j/256; x must fall strictly with s across every
    # join, in steps of s far finer than any physical contrast resolves.
    joins = np.arange(1, 256) / 256.0
    s = (joins[:, None] + 1e-12 * np.arange(-20, 21)[None, :]).ravel()
    x = inverse_correlation_time(np.sqrt(s), 1.0, out=np.empty_like(s))
    assert np.all(np.diff(x) < 0.0)


def test_tiny_contrast_follows_large_x_asymptote() -> None:
    beta = 0.5
    k = np.array([1e-2, 1e-4, 1e-8, 1e-150, 1e-170])
    x = inverse_correlation_time(k, 1.0, beta=beta, out=np.empty_like(k))
    exact = [ref_x(float(v), beta) for v in k[:2]]
    np.testing.assert_allclose(x[:2], exact, rtol=1e-12)
    asym = beta / k[:3] ** 2 - 0.5
    assert np.all(np.abs(x[:3] / asym - 1.0) <= k[:3] ** 2 / beta + 1e-15)
    assert x[3] == pytest.approx(beta / 1e-300, rel=1e-12)
    assert x[4] == np.inf  # K² underflows: treated as K = 0
    # float32 output overflows to inf rather than wrapping or raising.
    assert inverse_correlation_time(np.array([1e-30]), 1.0)[0] == np.inf


def test_inverse_is_monotone_and_float32_default() -> None:
    k = np.linspace(0.01, 0.99, 999, dtype=np.float32).reshape(27, 37)
    tau = correlation_time(k, 1e-3)
    assert tau.dtype == np.float32
    assert tau.shape == k.shape
    assert np.all(np.diff(tau.ravel()) > 0)


@given(st.floats(min_value=-3.0, max_value=3.0), st.floats(min_value=0.05, max_value=1.0))
def test_round_trip_property(log10_x: float, beta: float) -> None:
    x = 10.0**log10_x
    k = math.sqrt(visibility_k2(x, beta)[()])
    got = inverse_correlation_time(np.array([k]), 1.0, beta=beta, out=np.empty(1))[0]
    assert got == pytest.approx(x, rel=1e-9)


def test_out_argument_and_layouts() -> None:
    k = np.full((4, 6), 0.3, dtype=np.float32)
    out = np.zeros((4, 6), dtype=np.float64)
    assert correlation_time(k, 1e-3, out=out) is out
    assert np.all(out > 0)
    wide = np.zeros((4, 12), dtype=np.float32)
    view = wide[:, ::2]
    result = inverse_correlation_time(k, 1e-3, out=view)
    assert result is view
    np.testing.assert_allclose(wide[:, ::2], inverse_correlation_time(k, 1e-3))
    assert np.all(wide[:, 1::2] == 0)
    assert correlation_time(0.5, 1e-3).shape == ()
    np.testing.assert_allclose(
        correlation_time(k.T, 1e-3), correlation_time(np.ascontiguousarray(k.T), 1e-3)
    )


@pytest.mark.parametrize("exposure_s", [0.0, -1e-3, math.nan, math.inf])
def test_invalid_exposure_raises(exposure_s: float) -> None:
    with pytest.raises(ValueError, match="exposure_s"):
        correlation_time([0.5], exposure_s)
    with pytest.raises(ValueError, match="exposure_s"):
        correlation_time_approx([0.5], exposure_s)


@pytest.mark.parametrize("beta", [0.0, -0.5, 1.0001, math.nan])
def test_invalid_beta_raises(beta: float) -> None:
    with pytest.raises(ValueError, match="beta"):
        inverse_correlation_time([0.5], 1e-3, beta=beta)
    with pytest.raises(ValueError, match="beta"):
        visibility_k2([1.0], beta)


def test_invalid_arrays_raise() -> None:
    with pytest.raises(TypeError, match="k must be a real"):
        correlation_time(np.array([0.5 + 1j]), 1e-3)
    with pytest.raises(ValueError, match="shape"):
        correlation_time(np.zeros(3), 1e-3, out=np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        correlation_time(np.zeros(3), 1e-3, out=np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="NumPy array"):
        speckle_flow_index(np.zeros(3), out=[0.0, 0.0, 0.0])  # type: ignore[arg-type]
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        speckle_flow_index(np.zeros(3), out=frozen)


# --------------------------------------------------------------------------- simplified indices


def test_speckle_flow_index_matches_reference() -> None:
    k = np.array([0.5, 0.1, 0.0, np.nan, 1.0, -0.5], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sfi = speckle_flow_index(k)
    assert sfi.dtype == np.float32
    with np.errstate(divide="ignore"):
        want = 1.0 / k.astype(np.float64) ** 2
    np.testing.assert_allclose(sfi, want, rtol=1e-7)
    wide = np.tile(k.astype(np.float64), (3, 1)).T  # non-contiguous rows, float64 out
    sfi64 = speckle_flow_index(wide[:, ::2], out=np.empty((6, 2)))
    np.testing.assert_array_equal(sfi64, np.tile(want, (2, 1)).T)


def test_correlation_time_approx_agrees_only_for_long_exposures() -> None:
    beta, exposure_s = 0.6, 5e-3
    x = np.logspace(-2, 4, 601)
    k = np.sqrt(ref_k2(x, beta))
    exact = correlation_time(k, exposure_s, beta=beta, out=np.empty_like(x))
    approx = correlation_time_approx(k, exposure_s, beta=beta, out=np.empty_like(x))
    ratio = approx / exact
    long_exposure = x >= 100
    # Documented: too small by the factor ≈ 1 − 1/(2x) for T ≫ τc.
    np.testing.assert_allclose(ratio[long_exposure], 1.0 - 0.5 / x[long_exposure], rtol=1e-4)
    assert np.all(np.abs(ratio[long_exposure] - 1.0) <= 0.005 + 1e-12)
    # Documented disagreement for T ≲ τc: too small by more than 40% (ratio x·f(x) → x), and
    # it saturates at T where the exact τc diverges.
    assert np.all(ratio[x <= 1.0] < 0.6)
    assert np.all(approx <= exposure_s * (1 + 1e-12))
    np.testing.assert_allclose(approx[x < 0.02], exposure_s, rtol=0.02)


def test_speckle_flow_index_is_proportional_to_rate_only_for_long_exposures() -> None:
    beta, exposure_s = 1.0, 1e-3
    x = np.logspace(-2, 4, 601)
    k = np.sqrt(ref_k2(x, beta))
    sfi = speckle_flow_index(k, out=np.empty_like(x))
    rate = inverse_correlation_time(k, exposure_s, out=np.empty_like(x))
    # 1/K² ≈ x − 1/2 for large x, i.e. rate·T − 1/2.
    ratio = sfi / (rate * exposure_s)
    assert np.all(np.abs(ratio[x >= 100] - 1.0) <= 0.006)
    # Documented local sensitivity d ln(1/K²)/d ln(1/τc): 0.95 at x = 10, 0.48 at x = 1.
    log_sfi = np.log(sfi)
    slope = np.gradient(log_sfi, np.log(x))
    assert slope[np.argmin(np.abs(x - 10))] == pytest.approx(0.947, abs=0.005)
    assert slope[np.argmin(np.abs(x - 1))] == pytest.approx(0.477, abs=0.005)


# ------------------------------------------------------------------ relative perfusion and PU


def test_relative_perfusion_map_and_scalar_baselines() -> None:
    index = np.array([[2.0, 3.0, np.nan], [4.0, 5.0, 6.0]], dtype=np.float32)
    baseline = np.array([[2.0, 0.0, 1.0], [np.nan, -1.0, np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ratio = relative_perfusion(index, baseline)
    assert ratio.dtype == np.float32
    np.testing.assert_array_equal(ratio, [[1.0, np.nan, np.nan], [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(relative_perfusion(index, 2.0), index / 2.0)
    np.testing.assert_allclose(
        relative_perfusion(index, np.array([1.0, 2.0, 4.0])), index / [1, 2, 4]
    )


@pytest.mark.parametrize("baseline", [0.0, -1.0, math.nan, math.inf])
def test_relative_perfusion_rejects_invalid_scalar_baseline(baseline: float) -> None:
    with pytest.raises(ValueError, match="baseline"):
        relative_perfusion(np.ones(3), baseline)


def test_relative_perfusion_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="broadcast"):
        relative_perfusion(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="broadcast"):
        relative_perfusion(np.ones(3), np.ones((2, 3)))


def test_perfusion_scale_from_reference_and_apply() -> None:
    reference = np.array([[900.0, 1100.0], [np.nan, 1000.0]])
    scale = PerfusionScale.from_reference(reference, 250.0, note="calibration box")
    assert scale.scale == pytest.approx(0.25)
    pu = scale.apply(np.array([1000.0, 4000.0], dtype=np.float32))
    assert pu.dtype == np.float32
    np.testing.assert_allclose(pu, [250.0, 1000.0])
    assert PerfusionScale.from_reference(2.0, 300.0, index="speckle_flow_index").scale == 150.0


def test_perfusion_scale_dict_and_hdf5_round_trip(tmp_path: Path) -> None:
    scale = PerfusionScale(0.125, index="speckle_flow_index", unit="LSPU", note="teflon, 5 ms")
    data = scale.to_dict()
    assert all(isinstance(v, str | float) for v in data.values())
    assert PerfusionScale.from_dict(data) == scale
    path = tmp_path / "cal.h5"
    with h5py.File(path, "w") as f:
        f.create_group("calibration/perfusion_scale").attrs.update(data)
    with h5py.File(path, "r") as f:
        back = PerfusionScale.from_dict(dict(f["calibration/perfusion_scale"].attrs))
    assert back == scale
    as_bytes = {k: v.encode() if isinstance(v, str) else v for k, v in data.items()}
    assert PerfusionScale.from_dict(as_bytes) == scale


def test_perfusion_scale_validation() -> None:
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="scale"):
            PerfusionScale(bad)
    with pytest.raises(TypeError, match="scale"):
        PerfusionScale(True)
    with pytest.raises(ValueError, match="non-empty"):
        PerfusionScale(1.0, index="")
    with pytest.raises(ValueError, match="index_value"):
        PerfusionScale.from_reference([np.nan], 100.0)
    with pytest.raises(ValueError, match="index_value"):
        PerfusionScale.from_reference([-1.0], 100.0)
    with pytest.raises(ValueError, match="reference_pu"):
        PerfusionScale.from_reference([1.0], 0.0)
    with pytest.raises(ValueError, match="model"):
        PerfusionScale.from_dict({"model": "quadratic", "scale": 1.0})
    with pytest.raises(ValueError, match="scale"):
        PerfusionScale.from_dict({"unit": "PU"})


def test_float32_results_match_the_exact_table_inversion() -> None:
    # float32 output goes through the rational approximation of G, float64 through the table:
    # the two agree to float32 rounding over the whole range of K, at both ends too.
    k = np.concatenate(
        [
            np.geomspace(1e-4, 0.999999, 200_001),
            1.0 - np.geomspace(1e-7, 1e-2, 1001),  # K²/β → 1: x → 0
        ]
    ).astype(np.float32)
    for beta in (1.0, 0.37):
        for function in (inverse_correlation_time, correlation_time):
            exact = function(k, 5e-3, beta=beta, out=np.empty(k.shape))
            fast = function(k, 5e-3, beta=beta)
            assert fast.dtype == np.float32
            finite = np.isfinite(exact) & (exact > 0)
            np.testing.assert_array_equal(fast[~finite], exact[~finite].astype(np.float32))
            rel = np.abs(fast[finite] / exact[finite] - 1.0)
            assert rel.max() <= 6.0e-8 + 4e-10  # float32 rounding plus the approximation


def test_rational_approximation_of_g_is_within_its_stated_bound() -> None:
    from lsci.core._kernels import perfusion as kernels

    s = np.linspace(1e-7, 1.0 - 1e-9, 20_001)
    exact = np.array([kernels._solve_ratio(v) * v / (1.0 - v) for v in s])
    t = 2.0 * s - 1.0
    polyval = np.polynomial.polynomial.polyval
    stored = polyval(t, kernels.INVERSE_RATIONAL_P) / polyval(t, kernels.INVERSE_RATIONAL_Q)
    assert np.abs(stored / exact - 1.0).max() <= 4e-10
    # The stored coefficients are what the documented fit gives.
    p, q = kernels.fit_inverse_rational()
    refitted = polyval(t, p) / polyval(t, q)
    np.testing.assert_allclose(refitted, stored, rtol=1e-11)
