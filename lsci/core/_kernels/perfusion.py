"""Numba kernels for the visibility equation and its inverse.

With ``g(u) = (e^(−u) − 1 + u) / u²`` the visibility equation for Lorentzian dynamics reads
``K²/β = f(x) = 2·g(2x)`` with ``x = T/τc``, and the multi-exposure model uses ``g(x)`` itself,
so both modules share the helpers below. ``g`` and its derivative are evaluated with a Taylor
series for ``u < 1`` and through ``expm1`` above: the closed forms cancel catastrophically near
``u = 0`` (they lose about ``eps/u³`` relative for the derivative).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Taylor coefficients 1/(n+2)! of g(u) = Σ (−u)^n / (n+2)!, used for u < 1. The first omitted
# term is below 1/21! ≈ 2e-20 relative to g ≈ 1/2.
_SERIES_DEGREE = 18
_SERIES = np.array([1.0 / math.factorial(n + 2) for n in range(_SERIES_DEGREE + 1)])
_SERIES_SWITCH = 1.0

# Below this s = K²/β the closed-form large-x inverse is used: s < 0.04 means x > 24, where the
# neglected term e^(−2x)/(2x²) of f(x) is below 1e-21 relative.
_ASYMPTOTE_S = 0.04

# Initial-guess table for the inverse: ln x and d(ln x)/dw at the nodes of a uniform grid in
# w = ln(1/s − 1), interpolated with cubic Hermite polynomials (error ≈ 1e-10 in ln x).
TABLE_W_MIN = -30.0
TABLE_W_MAX = 3.5
TABLE_SIZE = 1024


@njit(cache=True)
def _tail_series(z: float) -> tuple[float, float]:
    """``S(z) = Σ_{n≥1} z^(n−1)/(n+2)!`` and ``S'(z)``, so that ``g(u) = 1/2 + z·S(z)``, z = −u."""
    p: float = _SERIES[_SERIES_DEGREE]
    dp = 0.0
    for n in range(_SERIES_DEGREE - 1, 0, -1):
        dp = dp * z + p
        p = p * z + _SERIES[n]
    return p, dp


@njit(cache=True)
def g_and_dg(u: float) -> tuple[float, float]:
    """``g(u) = (e^(−u) − 1 + u)/u²`` and ``g'(u)``, accurate to a few ulp for ``u >= 0``."""
    if u < _SERIES_SWITCH:
        z = -u
        s, ds = _tail_series(z)
        return 0.5 + z * s, -(s + z * ds)
    em1 = math.expm1(-u)
    g = ((em1 + u) / u) / u
    dg = (((-(u + 2.0) * em1 - 2.0 * u) / u) / u) / u
    return g, dg


@njit(cache=True)
def f_q_df(x: float) -> tuple[float, float, float]:
    """``f(x) = 2g(2x)``, ``q = 1 − f(x)`` (without cancellation at small x) and ``f'(x)``."""
    u = 2.0 * x
    if u < _SERIES_SWITCH:
        z = -u
        s, ds = _tail_series(z)
        q = -2.0 * z * s
        return 1.0 - q, q, -4.0 * (s + z * ds)
    g, dg = g_and_dg(u)
    return 2.0 * g, 1.0 - 2.0 * g, 4.0 * dg


@njit(cache=True)
def f_and_q(x: float) -> tuple[float, float]:
    """``f(x) = 2g(2x)`` and ``q = 1 − f(x)``, like :func:`f_q_df` without the derivative."""
    u = 2.0 * x
    if u < _SERIES_SWITCH:
        z = -u
        p: float = _SERIES[_SERIES_DEGREE]
        for n in range(_SERIES_DEGREE - 1, 0, -1):
            p = p * z + _SERIES[n]
        q = -2.0 * z * p
        return 1.0 - q, q
    g = ((math.expm1(-u) + u) / u) / u
    return 2.0 * g, 1.0 - 2.0 * g


@njit(cache=True)
def visibility_ratio(x: float) -> float:
    """``K²/β = f(x)``; ``x = 0`` gives 1, ``x = inf`` gives 0, ``x < 0`` or NaN gives NaN."""
    if not x >= 0.0:
        return np.nan
    if x == np.inf:
        return 0.0
    g, _ = g_and_dg(2.0 * x)
    return 2.0 * g


@njit(cache=True, parallel=True)
def visibility_k2(x: np.ndarray, beta: float, out: np.ndarray) -> None:
    """Fill ``out`` (1-D) with ``β·f(x)`` for the 1-D array ``x``."""
    for i in prange(x.shape[0]):
        out[i] = beta * visibility_ratio(np.float64(x[i]))


@njit(cache=True)
def invert_ratio(s: float, table: np.ndarray) -> float:
    """Solve ``f(x) = s`` for ``x >= 0``.

    ``s >= 1`` gives 0 (no measurable motion), ``s <= 0`` gives inf, NaN gives NaN. Small ``s``
    uses the exact root of the large-x form ``1/x − 1/(2x²) = s``. Otherwise the table gives
    ``ln x`` to about 1e-10 from ``w = ln(1/s − 1)`` (nearly linear in ``ln x``: slope 1 at
    both ends), and one Newton step in x brings it to rounding level. The residual is taken as
    ``f − s`` or as ``(1 − s) − q``, whichever does not cancel.
    """
    if s != s:
        return np.nan
    if s >= 1.0:
        return 0.0
    if s <= 0.0:
        return np.inf
    if s < _ASYMPTOTE_S:
        return (1.0 + math.sqrt(1.0 - 2.0 * s)) / (2.0 * s)
    one_minus_s = 1.0 - s
    w = math.log(one_minus_s / s)
    pos = (w - TABLE_W_MIN) * ((TABLE_SIZE - 1) / (TABLE_W_MAX - TABLE_W_MIN))
    if pos <= 0.0:
        # Below the table (x < 1e-13): 1/f − 1 = 2x/3 to 1e-13 relative, dy/dw = 1.
        x0 = 1.5 * math.exp(w)
        dy_dw = 1.0
    else:
        j = min(int(pos), TABLE_SIZE - 2)
        t = pos - j
        h = (TABLE_W_MAX - TABLE_W_MIN) / (TABLE_SIZE - 1)
        t2 = t * t
        t3 = t2 * t
        y = (
            (2.0 * t3 - 3.0 * t2 + 1.0) * table[j, 0]
            + (t3 - 2.0 * t2 + t) * h * table[j, 1]
            + (3.0 * t2 - 2.0 * t3) * table[j + 1, 0]
            + (t3 - t2) * h * table[j + 1, 1]
        )
        x0 = math.exp(y)
        dy_dw = table[j, 1] * (1.0 - t) + table[j + 1, 1] * t
    f, q = f_and_q(x0)
    # f'(x0) from the tabulated slope: dψ/dy = −x f'/(q f) = 1/(dy/dw). Its ≈ 1e-6 relative
    # error multiplies the ≈ 1e-10 error of x0, so the Newton step stays at rounding level.
    df = -(q * f) / (x0 * dy_dw)
    residual = f - s if s < 0.5 else one_minus_s - q
    return x0 - residual / df


@njit(cache=True, parallel=True)
def invert_visibility(
    k: np.ndarray,
    beta: float,
    exposure_s: float,
    inverse: bool,
    table: np.ndarray,
    out: np.ndarray,
) -> None:
    """Fill ``out`` with τc (``inverse=False``) or 1/τc (``inverse=True``) from contrast ``k``.

    ``k`` and ``out`` are 1-D; ``k <= 0`` is treated as K = 0 (x = inf).
    """
    for i in prange(k.shape[0]):
        kk = np.float64(k[i])
        if kk != kk:
            out[i] = np.nan
            continue
        s = kk * kk / beta if kk > 0.0 else 0.0
        x = invert_ratio(s, table)
        out[i] = x / exposure_s if inverse else exposure_s / x


@njit(cache=True)
def build_table() -> np.ndarray:
    """The ``(TABLE_SIZE, 2)`` table of :func:`invert_ratio`: ``ln x`` and ``d ln x / dw``.

    Each node solves ``ψ(y) = ln(q/f) = w`` at ``x = e^y`` by bisection: ``ψ(y) − y`` lies in
    ``[ln(2/3), 0]`` (its two limits), so the root lies in ``[w, w + 0.41]``.
    """
    table = np.empty((TABLE_SIZE, 2), dtype=np.float64)
    h = (TABLE_W_MAX - TABLE_W_MIN) / (TABLE_SIZE - 1)
    for j in range(TABLE_SIZE):
        w = TABLE_W_MIN + j * h
        lo = w - 0.01
        hi = w + 0.42
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            f, q, _df = f_q_df(math.exp(mid))
            if math.log(q / f) < w:
                lo = mid
            else:
                hi = mid
        y = 0.5 * (lo + hi)
        x = math.exp(y)
        f, q, df = f_q_df(x)
        table[j, 0] = y
        # dψ/dy = −x f'/(q f); the table stores its reciprocal dy/dw.
        table[j, 1] = -(q * f) / (x * df)
    return table
