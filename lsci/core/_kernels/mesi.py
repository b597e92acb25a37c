"""Numba kernels for multi-exposure speckle imaging: the model and a per-pixel bounded fit.

Parameters are held as ``p = (ln τc, ρ, β, ν)``. The fit is Levenberg–Marquardt with
Marquardt scaling and box bounds handled by projection plus an active set: a parameter sitting
on a bound with the gradient pushing outwards is frozen for that step. This reaches ρ = 1 (no
static scattering) exactly, which a logistic reparametrisation only approaches.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from lsci.core._kernels.perfusion import g_and_dg

N_PARAMS = 4
_LAMBDA_START = 1e-3
_LAMBDA_MAX = 1e12
_LAMBDA_MIN = 1e-12
_LAMBDA_CONVERGED = 1e-2
# Relative decrease of the cost below which an accepted step counts as converged.
_FTOL = 1e-14
# Floor of sqrt(V) against division by zero (V = 0 needs ρ = 1 and x = inf).
_SQRT_V_MIN = 1e-150


@njit(cache=True)
def _g_pair(x: float) -> tuple[float, float, float, float]:
    """``g(x), g'(x), g(2x), g'(2x)`` sharing one ``expm1``: e^(−2x) − 1 = em1·(em1 + 2)."""
    if x < 1.0:
        g1, dg1 = g_and_dg(x)
        g2, dg2 = g_and_dg(2.0 * x)
        return g1, dg1, g2, dg2
    em1 = math.expm1(-x)
    em2 = em1 * (em1 + 2.0)
    u = 2.0 * x
    g1 = ((em1 + x) / x) / x
    dg1 = (((-(x + 2.0) * em1 - 2.0 * x) / x) / x) / x
    g2 = ((em2 + u) / u) / u
    dg2 = (((-(u + 2.0) * em2 - 2.0 * u) / u) / u) / u
    return g1, dg1, g2, dg2


@njit(cache=True)
def model_and_jacobian(
    k: np.ndarray, exposures: np.ndarray, p: np.ndarray, r: np.ndarray, jac: np.ndarray
) -> float:
    """Residuals ``model − k`` and their Jacobian at ``p``; returns ``½ Σ r²``."""
    inv_tau = math.exp(-p[0])
    rho = p[1]
    sqrt_beta = math.sqrt(p[2])
    nu = p[3]
    a = rho * rho
    b = 4.0 * rho * (1.0 - rho)
    c = (1.0 - rho) * (1.0 - rho)
    cost = 0.0
    for e in range(exposures.shape[0]):
        x = exposures[e] * inv_tau
        g1, dg1, g2, dg2 = _g_pair(x)
        f2 = 2.0 * g2
        v = a * f2 + b * g1 + c
        sv = max(math.sqrt(v), _SQRT_V_MIN)
        res = sqrt_beta * sv + nu - k[e]
        r[e] = res
        cost += res * res
        dk_dv = sqrt_beta / (2.0 * sv)
        jac[e, 0] = -dk_dv * (a * 4.0 * dg2 + b * dg1) * x
        jac[e, 1] = dk_dv * (2.0 * rho * f2 + 4.0 * (1.0 - 2.0 * rho) * g1 - 2.0 * (1.0 - rho))
        jac[e, 2] = sv / (2.0 * sqrt_beta)
        jac[e, 3] = 1.0
    return 0.5 * cost


@njit(cache=True, parallel=True)
def mesi_model(
    exposures: np.ndarray,
    tau_c_s: np.ndarray,
    rho: np.ndarray,
    beta: np.ndarray,
    nu: np.ndarray,
    out: np.ndarray,
) -> None:
    """Fill ``out[e, i]`` with K at exposure ``e`` for the parameters of point ``i``."""
    for i in prange(tau_c_s.shape[0]):
        inv_tau = 1.0 / tau_c_s[i]
        r = rho[i]
        a = r * r
        b = 4.0 * r * (1.0 - r)
        c = (1.0 - r) * (1.0 - r)
        for e in range(exposures.shape[0]):
            x = exposures[e] * inv_tau
            if x == np.inf:
                v = c
            else:
                g1, _ = g_and_dg(x)
                g2, _ = g_and_dg(2.0 * x)
                v = a * 2.0 * g2 + b * g1 + c
            out[e, i] = math.sqrt(beta[i] * v) + nu[i]


@njit(cache=True)
def grid_basis(exposures: np.ndarray, tau_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(x) = 2g(2x)`` and ``g(x)`` for every ``(τc, T)`` of the starting-point grid."""
    n_tau = tau_grid.shape[0]
    n_exp = exposures.shape[0]
    f_basis = np.empty((n_tau, n_exp))
    g_basis = np.empty((n_tau, n_exp))
    for i in range(n_tau):
        for e in range(n_exp):
            x = exposures[e] / tau_grid[i]
            g1, _ = g_and_dg(x)
            g2, _ = g_and_dg(2.0 * x)
            f_basis[i, e] = 2.0 * g2
            g_basis[i, e] = g1
    return f_basis, g_basis


@njit(cache=True)
def _grid_start(
    k: np.ndarray,
    f_basis: np.ndarray,
    g_basis: np.ndarray,
    tau_grid: np.ndarray,
    rho_grid: np.ndarray,
    free: np.ndarray,
    solve_nu: bool,
    lower: np.ndarray,
    upper: np.ndarray,
    p: np.ndarray,
) -> None:
    """Best grid point in (τc, ρ), with √β and ν solved by linear least squares at each point.

    ``p`` holds the fixed β and ν on entry and the starting point on exit; only the ``rho_grid``
    given is searched. ν is solved for only if ``solve_nu``; otherwise it keeps its entry value.
    """
    n_exp = k.shape[0]
    best = np.inf
    best_i = 0
    best_j = 0
    best_sb = math.sqrt(p[2])
    best_nu = p[3]
    sum_k = 0.0
    sum_kk = 0.0
    for e in range(n_exp):
        sum_k += k[e]
        sum_kk += k[e] * k[e]
    sb_lo = math.sqrt(lower[2])
    sb_hi = math.sqrt(upper[2])
    for i in range(tau_grid.shape[0]):
        for j in range(rho_grid.shape[0]):
            rho = rho_grid[j]
            a = rho * rho
            b = 4.0 * rho * (1.0 - rho)
            c = (1.0 - rho) * (1.0 - rho)
            s1 = 0.0
            s2 = 0.0
            sk = 0.0
            for e in range(n_exp):
                sv = math.sqrt(a * f_basis[i, e] + b * g_basis[i, e] + c)
                s1 += sv
                s2 += sv * sv
                sk += sv * k[e]
            sb = math.sqrt(p[2])
            nu = p[3]
            if free[2] and solve_nu:
                det = n_exp * s2 - s1 * s1
                if det > 1e-12 * n_exp * s2:
                    sb = (n_exp * sk - s1 * sum_k) / det
                    nu = (s2 * sum_k - s1 * sk) / det
                else:
                    sb = sk / s2
                    nu = 0.0
            elif free[2]:
                sb = (sk - nu * s1) / s2
            elif solve_nu:
                nu = (sum_k - sb * s1) / n_exp
            if free[2]:
                sb = min(max(sb, sb_lo), sb_hi)
            if solve_nu:
                nu = min(max(nu, lower[3]), upper[3])
            # Σ (sb·sv + ν − k)² expanded in the sums above.
            cost = (
                sb * sb * s2
                + n_exp * nu * nu
                + sum_kk
                + 2.0 * sb * nu * s1
                - 2.0 * sb * sk
                - 2.0 * nu * sum_k
            )
            if cost < best:
                best = cost
                best_i = i
                best_j = j
                best_sb = sb
                best_nu = nu
    p[0] = math.log(tau_grid[best_i])
    p[1] = rho_grid[best_j]
    p[2] = best_sb * best_sb
    p[3] = best_nu


@njit(cache=True)
def _solve_spd(m: np.ndarray, rhs: np.ndarray, n: int, sol: np.ndarray) -> bool:
    """Solve ``m[:n, :n] sol = rhs`` by Cholesky in place; False if not positive definite."""
    for j in range(n):
        d = m[j, j]
        for q in range(j):
            d -= m[j, q] * m[j, q]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        m[j, j] = d
        for i in range(j + 1, n):
            s = m[i, j]
            for q in range(j):
                s -= m[i, q] * m[j, q]
            m[i, j] = s / d
    for i in range(n):
        s = rhs[i]
        for q in range(i):
            s -= m[i, q] * sol[q]
        sol[i] = s / m[i, i]
    for i in range(n - 1, -1, -1):
        s = sol[i]
        for q in range(i + 1, n):
            s -= m[q, i] * sol[q]
        sol[i] = s / m[i, i]
    return True


@njit(cache=True)
def _fit_one(
    k: np.ndarray,
    exposures: np.ndarray,
    p: np.ndarray,
    free: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_iter: int,
    xtol: float,
    r: np.ndarray,
    jac: np.ndarray,
    r_try: np.ndarray,
    jac_try: np.ndarray,
    p_try: np.ndarray,
    m: np.ndarray,
    rhs: np.ndarray,
    step: np.ndarray,
    index: np.ndarray,
) -> tuple[float, bool, int]:
    """Bounded Levenberg–Marquardt from ``p`` (updated in place): (cost, converged, iterations)."""
    n_exp = exposures.shape[0]
    cost = model_and_jacobian(k, exposures, p, r, jac)
    lam = _LAMBDA_START
    for it in range(1, max_iter + 1):
        # Gradient and Gauss-Newton matrix of the parameters that may move.
        n = 0
        max_diag = 0.0
        for a in range(N_PARAMS):
            if not free[a]:
                continue
            grad = 0.0
            for e in range(n_exp):
                grad += jac[e, a] * r[e]
            # Frozen on a bound when the descent direction −grad points out of the box.
            if (p[a] <= lower[a] and grad > 0.0) or (p[a] >= upper[a] and grad < 0.0):
                continue
            index[n] = a
            rhs[n] = -grad
            n += 1
        if n == 0 or cost == 0.0:
            return cost, True, it - 1
        for i in range(n):
            s = 0.0
            for e in range(n_exp):
                s += jac[e, index[i]] * jac[e, index[i]]
            max_diag = max(max_diag, s)
        while True:
            # Fresh lower triangle for each λ: the solve overwrites it with the factor.
            for i in range(n):
                for j in range(i + 1):
                    s = 0.0
                    for e in range(n_exp):
                        s += jac[e, index[i]] * jac[e, index[j]]
                    m[i, j] = s
                m[i, i] += lam * max(m[i, i], 1e-12 * max_diag + 1e-300)
            if not _solve_spd(m, rhs, n, step):
                lam *= 10.0
                if lam > _LAMBDA_MAX:
                    return cost, True, it
                continue
            for a in range(N_PARAMS):
                p_try[a] = p[a]
            for i in range(n):
                a = index[i]
                p_try[a] = min(max(p[a] + step[i], lower[a]), upper[a])
            cost_try = model_and_jacobian(k, exposures, p_try, r_try, jac_try)
            if cost_try < cost:
                small_step = True
                for a in range(N_PARAMS):
                    if abs(p_try[a] - p[a]) > xtol * (abs(p[a]) + xtol):
                        small_step = False
                    p[a] = p_try[a]
                small_drop = cost - cost_try <= _FTOL * cost
                cost = cost_try
                r, r_try = r_try, r
                jac, jac_try = jac_try, jac
                # Small steps or gains only mean convergence for a near Gauss-Newton step: a
                # heavily damped step is short in a flat valley too.
                if (small_step or small_drop) and lam <= _LAMBDA_CONVERGED:
                    return cost, True, it
                lam = max(lam * 0.1, _LAMBDA_MIN)
                break
            lam *= 10.0
            if lam > _LAMBDA_MAX:
                # No step of any length lowers the cost: a minimum to rounding level.
                return cost, True, it
    return cost, False, max_iter


@njit(cache=True, parallel=True)
def fit_pixels(
    k: np.ndarray,
    exposures: np.ndarray,
    f_basis: np.ndarray,
    g_basis: np.ndarray,
    tau_grid: np.ndarray,
    rho_grid: np.ndarray,
    rho_split: int,
    n_starts: int,
    fixed_beta: np.ndarray,
    fixed_nu: np.ndarray,
    free: np.ndarray,
    init: np.ndarray,
    init_given: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_iter: int,
    xtol: float,
    n_chunks: int,
    out_params: np.ndarray,
    out_rms: np.ndarray,
    out_converged: np.ndarray,
    out_iterations: np.ndarray,
) -> None:
    """Fit every pixel (column) of ``k`` (``(n_exposures, n_pixels)``).

    ``out_params`` is ``(4, n_pixels)`` with τc in seconds, ρ, β, ν. Pixels with a non-finite
    contrast get NaN, ``converged = False`` and 0 iterations.
    """
    n_exp, n_pix = k.shape
    chunk = (n_pix + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        kk = np.empty(n_exp)
        r = np.empty(n_exp)
        r_try = np.empty(n_exp)
        jac = np.empty((n_exp, N_PARAMS))
        jac_try = np.empty((n_exp, N_PARAMS))
        p = np.empty(N_PARAMS)
        p_try = np.empty(N_PARAMS)
        m = np.empty((N_PARAMS, N_PARAMS))
        rhs = np.empty(N_PARAMS)
        step = np.empty(N_PARAMS)
        index = np.empty(N_PARAMS, dtype=np.int64)
        for px in range(c * chunk, min((c + 1) * chunk, n_pix)):
            finite = True
            for e in range(n_exp):
                kk[e] = k[e, px]
                if not math.isfinite(kk[e]):
                    finite = False
            if not finite:
                for a in range(N_PARAMS):
                    out_params[a, px] = np.nan
                out_rms[px] = np.nan
                out_converged[px] = False
                out_iterations[px] = 0
                continue
            best_cost = np.inf
            for start in range(n_starts):
                # One start searches the whole grid. Two start from the best grid points with
                # mostly dynamic light (ρ >= split) and with much static light, the second with
                # ν kept at its fixed value or 0: a free ν can otherwise absorb the static
                # plateau and trap the fit.
                p[2] = fixed_beta[px]
                p[3] = fixed_nu[px]
                if n_starts == 1:
                    rhos = rho_grid
                elif start == 0:
                    rhos = rho_grid[rho_split:]
                else:
                    rhos = rho_grid[:rho_split]
                solve_nu = free[3] and start == 0
                _grid_start(kk, f_basis, g_basis, tau_grid, rhos, free, solve_nu, lower, upper, p)
                for a in range(N_PARAMS):
                    if free[a]:
                        if init_given[a]:
                            p[a] = init[px, a]
                        p[a] = min(max(p[a], lower[a]), upper[a])
                cost, converged, iterations = _fit_one(
                    kk,
                    exposures,
                    p,
                    free,
                    lower,
                    upper,
                    max_iter,
                    xtol,
                    r,
                    jac,
                    r_try,
                    jac_try,
                    p_try,
                    m,
                    rhs,
                    step,
                    index,
                )
                if cost < best_cost:
                    best_cost = cost
                    out_params[0, px] = math.exp(p[0])
                    out_params[1, px] = p[1]
                    out_params[2, px] = p[2]
                    out_params[3, px] = p[3]
                    out_rms[px] = math.sqrt(2.0 * cost / n_exp)
                    out_converged[px] = converged
                    out_iterations[px] = iterations
                if init_given[0] and init_given[1]:
                    # A user starting point for τc and ρ replaces the grid: one start.
                    break
