"""Tests of lsci.core.mesi: the model against an independent float64 implementation, and the fit."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from scipy.optimize import least_squares

from lsci.core._kernels.mesi import model_and_jacobian
from lsci.core.mesi import MesiFit, fit_mesi, mesi_model
from lsci.core.perfusion import correlation_time, visibility_k2

EXPOSURES_S = np.geomspace(50e-6, 80e-3, 8)


def ref_model(t: np.ndarray, tau: float, rho: float, beta: float, nu: float) -> np.ndarray:
    """Parthasarathy et al. 2008, Eq. 6, in plain float64 NumPy (expm1 closed forms, Taylor
    series below x = 1e-3)."""
    x = np.asarray(t, dtype=np.float64) / tau
    with np.errstate(all="ignore"):
        dyn = ((np.expm1(-2 * x) + 2 * x) / x) / (2 * x)
        het = ((np.expm1(-x) + x) / x) / x
    dyn = np.where(x < 1e-3, 1 - 2 * x / 3 + x**2 / 3 - 2 * x**3 / 15, dyn)
    het = np.where(x < 1e-3, 0.5 - x / 6 + x**2 / 24 - x**3 / 120, het)
    dyn = np.where(np.isinf(x), 0.0, dyn)
    het = np.where(np.isinf(x), 0.0, het)
    v = beta * rho**2 * dyn + 4 * beta * rho * (1 - rho) * het + beta * (1 - rho) ** 2
    return np.sqrt(v) + nu


def decimal_model(t: float, tau: float, rho: float, beta: float) -> float:
    with localcontext() as ctx:
        ctx.prec = 50
        x = Decimal(t) / Decimal(tau)
        r, b = Decimal(rho), Decimal(beta)
        dyn = ((-2 * x).exp() - 1 + 2 * x) / (2 * x * x)
        het = ((-x).exp() - 1 + x) / (x * x)
        return float((b * r * r * dyn + 4 * b * r * (1 - r) * het + b * (1 - r) ** 2).sqrt())


# ------------------------------------------------------------------------------------- model


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.75, 1.0])
@pytest.mark.parametrize("nu", [0.0, 0.02])
def test_model_matches_float64_reference(rho: float, nu: float) -> None:
    t = np.geomspace(1e-7, 10.0, 41)
    for tau in (1e-6, 1e-4, 3e-3, 1.0):
        got = mesi_model(t, tau, rho=rho, beta=0.7, nu=nu)
        np.testing.assert_allclose(got, ref_model(t, tau, rho, 0.7, nu), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("x", [1e-9, 1e-4, 0.3, 0.6, 1.5, 7.0, 300.0])
def test_model_is_exact_against_decimal(x: float) -> None:
    got = mesi_model([x * 1e-3], 1e-3, rho=0.4, beta=0.8)[0]
    assert got == pytest.approx(decimal_model(x * 1e-3, 1e-3, 0.4, 0.8), rel=1e-14)


def test_model_limits_and_reduction_to_single_exposure() -> None:
    beta, rho, nu = 0.6, 0.7, 0.01
    short, long_ = mesi_model([1e-12, 1e6], 1e-3, rho=rho, beta=beta, nu=nu)
    assert short == pytest.approx(math.sqrt(beta) + nu, rel=1e-8)
    assert long_ == pytest.approx(math.sqrt(beta) * (1 - rho) + nu, rel=1e-6)
    assert mesi_model([1e-3], np.inf, rho=rho, beta=beta, nu=nu)[0] == math.sqrt(beta) + nu
    x = np.logspace(-4, 4, 81)
    single = mesi_model(x * 1e-3, 1e-3, rho=1.0, beta=beta)
    np.testing.assert_allclose(single**2, visibility_k2(x, beta), rtol=1e-13)


def test_model_broadcasts_parameter_maps() -> None:
    tau = np.array([[1e-4, 1e-3], [1e-2, 1e-1]])
    rho = np.array([0.5, 1.0])
    got = mesi_model(EXPOSURES_S, tau, rho=rho, beta=0.5)
    assert got.shape == (8, 2, 2)
    assert got.dtype == np.float64
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(
                got[:, i, j], ref_model(EXPOSURES_S, tau[i, j], rho[j], 0.5, 0.0), rtol=1e-12
            )


def test_model_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="tau_c_s"):
        mesi_model(EXPOSURES_S, 0.0)
    with pytest.raises(ValueError, match="rho"):
        mesi_model(EXPOSURES_S, 1e-3, rho=1.2)
    with pytest.raises(ValueError, match="beta"):
        mesi_model(EXPOSURES_S, 1e-3, beta=0.0)
    with pytest.raises(ValueError, match="nu"):
        mesi_model(EXPOSURES_S, 1e-3, nu=np.nan)
    with pytest.raises(ValueError, match="exposures_s"):
        mesi_model([1e-3, -1e-3], 1e-3)
    with pytest.raises(ValueError, match="broadcast"):
        mesi_model(EXPOSURES_S, np.ones(3), rho=np.full(2, 0.5))
    with pytest.raises(TypeError, match="rho"):
        mesi_model(EXPOSURES_S, 1e-3, rho=np.array([0.5j]))


@pytest.mark.parametrize(
    "params", [(1e-3, 0.6, 0.8, 0.01), (5e-5, 1.0, 0.5, 0.0), (2e-2, 0.0, 0.3, -0.02)]
)
def test_jacobian_matches_finite_differences(params: tuple[float, float, float, float]) -> None:
    tau, rho, beta, nu = params
    k = ref_model(EXPOSURES_S, tau, rho, beta, nu) + 0.01
    p = np.array([math.log(tau), rho, beta, nu])
    r = np.empty(8)
    jac = np.empty((8, 4))
    cost = model_and_jacobian(k, EXPOSURES_S, p, r, jac)
    np.testing.assert_allclose(r, ref_model(EXPOSURES_S, tau, rho, beta, nu) - k, atol=1e-14)
    assert cost == pytest.approx(0.5 * np.sum(r**2), rel=1e-12)

    def residual(q: np.ndarray) -> np.ndarray:
        return ref_model(EXPOSURES_S, math.exp(q[0]), q[1], q[2], q[3]) - k

    h = 1e-6
    for a in range(4):

        def shifted(d: float, a: int = a) -> np.ndarray:
            q = p.copy()
            q[a] += d
            return residual(q)

        if a == 1 and rho in (0.0, 1.0):
            # Second-order one-sided stencil, pointing into [0, 1] where the model is defined.
            s = 1.0 if rho == 0.0 else -1.0
            numeric = s * (-3 * shifted(0.0) + 4 * shifted(s * h) - shifted(2 * s * h)) / (2 * h)
        else:
            numeric = (shifted(h) - shifted(-h)) / (2 * h)
        np.testing.assert_allclose(jac[:, a], numeric, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------- the fit


def _parameter_maps(
    rng: np.random.Generator, shape: tuple[int, int], x_mid: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """τc so that x at the geometric-mean exposure spans ``x_mid``, ρ in [0.3, 1] (with some
    exactly 1), β in [0.3, 0.9]."""
    t_mid = math.sqrt(EXPOSURES_S[0] * EXPOSURES_S[-1])
    x = 10.0 ** rng.uniform(math.log10(x_mid[0]), math.log10(x_mid[1]), shape)
    rho = rng.uniform(0.3, 1.0, shape)
    rho[::5] = 1.0
    beta = rng.uniform(0.3, 0.9, shape)
    return t_mid / x, rho, beta


def test_fit_recovers_noise_free_parameters_with_beta_free() -> None:
    rng = np.random.default_rng(1)
    tau, rho, beta = _parameter_maps(rng, (24, 24), (0.1, 100.0))
    k = mesi_model(EXPOSURES_S, tau, rho=rho, beta=beta).astype(np.float32)
    fit = fit_mesi(k, EXPOSURES_S)
    assert isinstance(fit, MesiFit)
    for name in ("tau_c_s", "rho", "beta", "nu", "rms"):
        assert getattr(fit, name).dtype == np.float32
        assert getattr(fit, name).shape == (24, 24)
    assert fit.converged.dtype == np.bool_
    assert fit.iterations.dtype == np.int32
    assert fit.converged.all()
    # float32 K carries ≈ 6e-8 relative error; it limits the recovery.
    np.testing.assert_allclose(fit.tau_c_s, tau, rtol=2e-4)
    np.testing.assert_allclose(fit.rho, rho, atol=5e-5)
    np.testing.assert_allclose(fit.beta, beta, atol=5e-5)
    assert np.all(fit.nu == 0.0)
    assert np.all(fit.rms < 1e-6)


def test_fit_recovers_noise_free_parameters_float64_to_high_precision() -> None:
    rng = np.random.default_rng(2)
    tau, rho, beta = _parameter_maps(rng, (8, 8), (0.1, 100.0))
    k = mesi_model(EXPOSURES_S, tau, rho=rho, beta=beta)
    fit = fit_mesi(k, EXPOSURES_S)
    np.testing.assert_allclose(fit.tau_c_s, tau, rtol=1e-6)
    np.testing.assert_allclose(fit.rho, rho, atol=1e-6)
    np.testing.assert_allclose(fit.beta, beta, atol=1e-6)


def test_fit_with_fixed_beta_and_free_nu() -> None:
    rng = np.random.default_rng(3)
    tau, rho, beta = _parameter_maps(rng, (16, 16), (0.1, 100.0))
    nu = rng.uniform(-0.01, 0.03, (16, 16))
    k = mesi_model(EXPOSURES_S, tau, rho=rho, beta=beta, nu=nu)
    fit = fit_mesi(k, EXPOSURES_S, beta=beta, nu=None)
    assert fit.converged.all()
    np.testing.assert_allclose(fit.tau_c_s, tau, rtol=1e-5)
    np.testing.assert_allclose(fit.rho, rho, atol=1e-5)
    np.testing.assert_allclose(fit.nu, nu, atol=1e-6)
    np.testing.assert_array_equal(fit.beta, beta.astype(np.float32))


def test_fit_all_four_parameters_where_identifiable() -> None:
    # β and ν separate only if the exposures reach both plateaus (x ≪ 1 and x ≫ 1).
    t = np.geomspace(20e-6, 80e-3, 12)
    rng = np.random.default_rng(4)
    shape = (10, 10)
    tau = 10.0 ** rng.uniform(-4, math.log10(1e-3), shape)
    rho = rng.uniform(0.3, 0.9, shape)
    beta = rng.uniform(0.3, 0.9, shape)
    nu = rng.uniform(0.0, 0.02, shape)
    k = mesi_model(t, tau, rho=rho, beta=beta, nu=nu)
    fit = fit_mesi(k, t, beta=None, nu=None, max_iter=300)
    np.testing.assert_allclose(fit.tau_c_s, tau, rtol=1e-4)
    np.testing.assert_allclose(fit.rho, rho, atol=1e-4)
    np.testing.assert_allclose(fit.beta, beta, atol=1e-4)
    np.testing.assert_allclose(fit.nu, nu, atol=1e-4)


def test_fit_is_unbiased_under_noise() -> None:
    # σ_K = 0.002 per exposure; 1500 noisy pixels per parameter set. Stated tolerance: the mean
    # of τc within 2% of the truth, of ρ and β within 0.01.
    rng = np.random.default_rng(5)
    n = 1500
    for tau, rho, beta in ((2e-4, 0.5, 0.6), (1e-3, 0.8, 0.8), (3e-3, 1.0, 0.5)):
        clean = mesi_model(EXPOSURES_S, tau, rho=rho, beta=beta)
        k = clean[:, None] + rng.normal(0.0, 0.002, (8, n))
        fit = fit_mesi(k, EXPOSURES_S)
        assert fit.converged.mean() > 0.99
        assert np.mean(fit.tau_c_s) == pytest.approx(tau, rel=0.02)
        assert np.mean(fit.rho) == pytest.approx(rho, abs=0.01)
        assert np.mean(fit.beta) == pytest.approx(beta, abs=0.01)
        assert np.median(fit.rms) == pytest.approx(0.002 * math.sqrt(5 / 8), rel=0.15)


def test_two_starts_escape_the_free_nu_trap() -> None:
    # Mostly static light and τc below the shortest exposure: from the best grid point a free ν
    # absorbs the static plateau (a local minimum with τc far too short); the second start,
    # from ρ < 0.85 with ν = 0, finds the exact solution.
    tau, rho, beta, nu = 3.45e-5, 0.302, 0.584, 0.0067
    k = mesi_model(EXPOSURES_S, tau, rho=rho, beta=beta, nu=nu)
    one = fit_mesi(k, EXPOSURES_S, beta=beta, nu=None, n_starts=1)
    two = fit_mesi(k, EXPOSURES_S, beta=beta, nu=None)
    assert float(one.rms) > 1e-3
    assert float(one.tau_c_s) < 0.2 * tau
    assert float(two.rms) < 1e-9
    assert float(two.tau_c_s) == pytest.approx(tau, rel=1e-6)
    assert float(two.nu) == pytest.approx(nu, abs=1e-8)


def test_fit_agrees_with_scipy_least_squares() -> None:
    rng = np.random.default_rng(6)
    k = mesi_model(EXPOSURES_S, 7e-4, rho=0.7, beta=0.6) + rng.normal(0, 0.003, 8)
    fit = fit_mesi(k, EXPOSURES_S)

    def residual(q: np.ndarray) -> np.ndarray:
        return ref_model(EXPOSURES_S, math.exp(q[0]), q[1], q[2], 0.0) - k

    ref = least_squares(
        residual,
        [math.log(1e-3), 0.5, 0.5],
        bounds=([-20, 0, 1e-6], [5, 1, 1]),
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    assert float(fit.tau_c_s) == pytest.approx(math.exp(ref.x[0]), rel=1e-4)
    assert float(fit.rho) == pytest.approx(ref.x[1], abs=1e-5)
    assert float(fit.beta) == pytest.approx(ref.x[2], abs=1e-5)
    assert float(fit.rms) == pytest.approx(math.sqrt(np.mean(ref.fun**2)), rel=1e-4)


def test_static_scattering_biases_single_exposure_but_not_mesi() -> None:
    # Parthasarathy et al. 2008: with static scatterers the single-exposure estimate of τc is
    # off by more than 100%, MESI stays within 10%.
    rng = np.random.default_rng(7)
    tau, beta, n = 1e-3, 0.8, 400
    for rho in (0.3, 0.5):
        clean = mesi_model(EXPOSURES_S, tau, rho=rho, beta=beta)
        k = clean[:, None] + rng.normal(0.0, 0.002, (8, n))
        t_single = 5e-3
        e = int(np.argmin(np.abs(EXPOSURES_S - t_single)))
        single = correlation_time(k[e], EXPOSURES_S[e], beta=beta, out=np.empty(n))
        assert np.median(np.abs(single / tau - 1.0)) > 1.0
        fit = fit_mesi(k, EXPOSURES_S, beta=beta)
        assert np.median(np.abs(fit.tau_c_s / tau - 1.0)) < 0.10


def test_fit_single_point_nan_pixels_and_initial_values() -> None:
    k = mesi_model(EXPOSURES_S, 1e-3, rho=0.6, beta=0.7)
    point = fit_mesi(k, EXPOSURES_S)
    assert point.tau_c_s.shape == ()
    assert float(point.tau_c_s) == pytest.approx(1e-3, rel=1e-5)
    maps = np.repeat(k[:, None, None], 3, axis=2).repeat(2, axis=1)
    maps[4, 0, 1] = np.nan
    maps[2, 1, 2] = np.inf
    fit = fit_mesi(maps, EXPOSURES_S)
    for idx in ((0, 1), (1, 2)):
        assert np.isnan(fit.tau_c_s[idx])
        assert np.isnan(fit.rms[idx])
        assert not fit.converged[idx]
        assert fit.iterations[idx] == 0
    assert fit.converged.sum() == 4
    started = fit_mesi(k, EXPOSURES_S, initial={"tau_c_s": 1e-3, "rho": 0.6, "beta": 0.7})
    assert int(started.iterations) <= 2
    assert float(started.tau_c_s) == pytest.approx(1e-3, rel=1e-5)
    limited = fit_mesi(k, EXPOSURES_S, initial={"tau_c_s": 1.0, "rho": 0.1}, max_iter=1)
    assert not bool(limited.converged)
    assert int(limited.iterations) == 1


def test_degenerate_contrast_stays_in_bounds() -> None:
    # No decay over the exposures (a static scatterer, or K > 1 from bad data): the fit stays
    # in its box and reports what it can: β = K² for constant K, β = 1 with a residual above 1.
    k = np.stack([np.zeros(8), np.full(8, 0.5), np.full(8, 1.3)], axis=1)
    fit = fit_mesi(k, EXPOSURES_S)
    assert fit.converged.all()
    assert np.all((fit.rho >= 0) & (fit.rho <= 1))
    assert np.all((fit.beta > 0) & (fit.beta <= 1))
    assert np.all(fit.tau_c_s > 0)
    assert float(fit.rms[0]) < 1e-4
    assert float(fit.beta[1]) == pytest.approx(0.25, abs=1e-6)
    assert float(fit.rms[1]) < 1e-6
    assert float(fit.beta[2]) == 1.0
    assert float(fit.rms[2]) == pytest.approx(0.3, abs=1e-6)


def test_fit_rejects_bad_inputs() -> None:
    k = mesi_model(EXPOSURES_S, 1e-3, rho=0.6, beta=0.7)
    with pytest.raises(ValueError, match="at least 3 distinct exposures"):
        fit_mesi(k[:2], EXPOSURES_S[:2])
    with pytest.raises(ValueError, match="at least 3 distinct exposures"):
        fit_mesi(k[[0, 0, 1]], EXPOSURES_S[[0, 0, 1]])
    with pytest.raises(ValueError, match="at least 4 distinct exposures"):
        fit_mesi(k[:3], EXPOSURES_S[:3], nu=None)
    assert fit_mesi(k[:2], EXPOSURES_S[:2], beta=0.7).converged
    with pytest.raises(ValueError, match="exposures_s"):
        fit_mesi(k, np.r_[EXPOSURES_S[:-1], 0.0])
    with pytest.raises(ValueError, match="exposures_s"):
        fit_mesi(k, -EXPOSURES_S)
    with pytest.raises(ValueError, match="first axis"):
        fit_mesi(k[:5], EXPOSURES_S)
    with pytest.raises(ValueError, match="first axis"):
        fit_mesi(np.zeros((8, 4, 4)), EXPOSURES_S[:6])
    with pytest.raises(ValueError, match="beta"):
        fit_mesi(k, EXPOSURES_S, beta=1.5)
    with pytest.raises(ValueError, match="beta"):
        fit_mesi(np.zeros((8, 4, 4)), EXPOSURES_S, beta=np.full(3, 0.5))
    with pytest.raises(ValueError, match="nu"):
        fit_mesi(k, EXPOSURES_S, nu=np.nan)
    with pytest.raises(ValueError, match="unknown key"):
        fit_mesi(k, EXPOSURES_S, initial={"tau": 1e-3})
    with pytest.raises(ValueError, match="rho"):
        fit_mesi(k, EXPOSURES_S, initial={"rho": 2.0})
    with pytest.raises(ValueError, match="max_iter"):
        fit_mesi(k, EXPOSURES_S, max_iter=0)
    with pytest.raises(TypeError, match="max_iter"):
        fit_mesi(k, EXPOSURES_S, max_iter=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_starts"):
        fit_mesi(k, EXPOSURES_S, n_starts=3)
    with pytest.raises(ValueError, match="xtol"):
        fit_mesi(k, EXPOSURES_S, xtol=-1.0)
    with pytest.raises(TypeError, match="k must be a real"):
        fit_mesi(k.astype(complex), EXPOSURES_S)
