"""Numba kernels for the visibility equation and its inverse.

With ``g(u) = (e^(−u) − 1 + u) / u²`` the visibility equation for Lorentzian dynamics reads
``K²/β = f(x) = 2·g(2x)`` with ``x = T/τc``, and the multi-exposure model uses ``g(x)`` itself,
so both modules share the helpers below. ``g`` and its derivative are evaluated with a Taylor
series for ``u < 1`` and through ``expm1`` above: the closed forms cancel catastrophically near
``u = 0`` (they lose about ``eps/u³`` relative for the derivative).

The inverse ``x(s)`` of ``s = f(x)`` is read from a piecewise polynomial table of

    G(s) = x·s/(1 − s),   so that   x = G(s)·(1 − s)/s,

which is smooth and bounded on the closed interval ``0 <= s <= 1``: ``G(0) = 1`` (large x,
``x ≈ 1/s − 1/2``), ``G(1) = 3/2`` (small x, ``x ≈ 3(1 − s)/2``). The factor ``(1 − s)/s`` carries
both singular ends exactly, so one polynomial evaluation gives x to a few ulp relative, with no
logarithm, exponential or iteration per pixel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

# error_model="numpy": x/0 gives inf/NaN instead of raising ZeroDivisionError (and keeps the
# per-pixel loop free of the checks).
_OPTS: dict[str, Any] = {"cache": True, "error_model": "numpy", "nogil": True}
# Fused multiply-add only: it rounds once where a product and a sum would round twice, and
# keeps NaN/inf semantics and the order of operations.
_FMA = {"contract"}

# Taylor coefficients 1/(n+2)! of g(u) = Σ (−u)^n / (n+2)!, used for u < 1. The first omitted
# term is below 1/21! ≈ 2e-20 relative to g ≈ 1/2.
_SERIES_DEGREE = 18
_SERIES = np.array([1.0 / math.factorial(n + 2) for n in range(_SERIES_DEGREE + 1)])
_SERIES_SWITCH = 1.0

# The inverse table: G(s) on INVERSE_SEGMENTS equal segments of s, each a polynomial of degree
# INVERSE_DEGREE in the local variable t ∈ [−1, 1] (monomial coefficients, lowest first),
# interpolating G at the segment's Chebyshev nodes. G is so smooth that 256 segments of degree 5
# reach rounding level (x within 1.2e-15 relative, measured; degree 4 gives ≈ 8e-15) in a 12 kB
# table that stays in the L1 cache.
INVERSE_SEGMENTS = 256
INVERSE_DEGREE = 5  # _g_polynomial spells out the six coefficients
# Pixels per block of invert_visibility: its scratch rows (28 bytes a pixel) stay in L1.
_INVERT_BLOCK = 512

# For float32 results: G(s) ≈ P(t)/Q(t), t = 2s − 1, both of degree 8 (monomial coefficients,
# lowest first), as fit_inverse_rational() makes them. Relative error ≤ 4e-10 on 0 <= s <= 1
# (measured, tests/test_perfusion.py), 150 times below float32's rounding (6e-8): the float32
# result is the exact inversion's, rounded, within an ulp. Unlike the table it needs no lookup
# per pixel, so the whole loop vectorises.
INVERSE_RATIONAL_P = np.array([
    0.11983683568361414, 0.6241033823670716, 1.4348734338193438, 1.8763265439489474,
    1.5066670932321533, 0.7460595735219007, 0.21524144932690237, 0.030569535902053177,
    0.0012802064998407618,
])  # fmt: skip
INVERSE_RATIONAL_Q = np.array([
    0.09373497010388143, 0.4690032521582288, 1.0296662369858338, 1.2733028033831646,
    0.9530979384907943, 0.4299188120119559, 0.10856867582864188, 0.012341159002342155,
    0.00033818796874340276,
])  # fmt: skip


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


@njit(inline="always", fastmath=_FMA, **_OPTS)
def _g_polynomial(t: float, c: np.ndarray) -> float:
    """``G(s)`` from the coefficients ``c`` of the table row of s's segment (see
    :func:`build_inverse_table`), at the local variable ``t ∈ [−1, 1]``.

    ``s·INVERSE_SEGMENTS`` is exact (a power of two), so the segment and ``t`` carry no error of
    their own. The degree-5 polynomial is evaluated in Estrin's scheme, whose three dependent
    steps (against Horner's five) let neighbouring pixels overlap.
    """
    t2 = t * t
    low = c[0] + c[1] * t
    mid = c[2] + c[3] * t
    high = c[4] + c[5] * t
    g: float = low + t2 * (mid + t2 * high)
    return g


@njit(parallel=True, fastmath=_FMA, **_OPTS)
def invert_visibility(
    k: np.ndarray,
    beta: float,
    exposure_s: float,
    inverse: bool,
    table: np.ndarray,
    out: np.ndarray,
) -> None:
    """Fill ``out`` with τc (``inverse=False``) or 1/τc (``inverse=True``) from contrast ``k``.

    ``k`` and ``out`` are 1-D. With ``s = K²/β`` and ``x = G(s)·(1 − s)/s``: ``K² >= β`` (K = +inf
    too) gives x = 0 (no measurable motion), ``K <= 0`` gives x = inf, NaN gives NaN; ``s``
    underflowing to 0 gives x = inf through the division itself. The special values are
    selected after the polynomial (evaluated at a harmless s = 1/2 for them) rather than
    branched to. ``s`` is ``K²·(1/β)``, within an ulp of ``K²/β`` and one division per pixel
    cheaper; the test for no motion compares ``K²`` with β exactly, and ``s`` rounded up to 1
    just below that gives x = 0.

    Pixels go in blocks of ``_INVERT_BLOCK`` through three loops: ``s`` and the table position,
    the table lookup (the only loop that cannot vectorise: each pixel reads its own segment),
    and the division and special values, so that the first and last vectorise.
    """
    n = k.shape[0]
    per_chunk = _INVERT_BLOCK * 32
    for c in prange((n + per_chunk - 1) // per_chunk):
        s = np.empty(_INVERT_BLOCK)
        t = np.empty(_INVERT_BLOCK)
        g = np.empty(_INVERT_BLOCK)
        seg = np.empty(_INVERT_BLOCK, np.int32)
        for b0 in range(c * per_chunk, min(n, (c + 1) * per_chunk), _INVERT_BLOCK):
            m = min(_INVERT_BLOCK, n - b0)
            _invert_block(k[b0 : b0 + m], beta, exposure_s, inverse, table, out[b0 : b0 + m],
                          s, t, seg, g)  # fmt: skip


@njit(inline="always", fastmath=_FMA, **_OPTS)
def _invert_block(k, beta, exposure_s, inverse, table, out, s, t, seg, g):  # type: ignore[no-untyped-def]
    """One block of :func:`invert_visibility`, with scratch rows ``s``, ``t``, ``seg``, ``g``."""
    m = k.shape[0]
    inv_beta = 1.0 / beta
    still = 0.0 if inverse else np.inf  # x = 0
    fast = np.inf if inverse else 0.0  # x = inf
    for i in range(m):
        kk = np.float64(k[i])
        k2 = kk * kk
        sc = min(k2 * inv_beta, 1.0) if k2 < beta else 0.5
        sc = sc if kk == kk else 0.5
        pos = sc * INVERSE_SEGMENTS  # exact: a power of two
        j = min(np.int32(pos), np.int32(INVERSE_SEGMENTS - 1))
        s[i] = sc
        seg[i] = j
        t[i] = 2.0 * (pos - j) - 1.0
    for i in range(m):
        g[i] = _g_polynomial(t[i], table[seg[i]])
    for i in range(m):
        kk = np.float64(k[i])
        sc = s[i]
        x_num = g[i] * (1.0 - sc)  # x = x_num / sc
        value = x_num / (sc * exposure_s) if inverse else (exposure_s * sc) / x_num
        value = value if kk * kk < beta else still
        value = value if kk > 0.0 else fast
        out[i] = value if kk == kk else np.nan


@njit(parallel=True, fastmath=_FMA, **_OPTS)
def invert_visibility_rational(
    k: np.ndarray, beta: float, exposure_s: float, inverse: bool, out: np.ndarray
) -> None:
    """:func:`invert_visibility` with G from the rational approximation (float32 results).

    The same special values and the same ``s``; ``G = P(t)/Q(t)`` (Estrin's scheme) in place of
    the table, so ``x = P·(1 − s)/(Q·s)``: one division per pixel.
    """
    n = k.shape[0]
    per_chunk = _INVERT_BLOCK * 32
    for c in prange((n + per_chunk - 1) // per_chunk):
        start = c * per_chunk
        stop = min(n, start + per_chunk)
        _invert_rational_span(k[start:stop], beta, exposure_s, inverse, out[start:stop])


@njit(fastmath=_FMA, **_OPTS)
def _invert_rational_span(k, beta, exposure_s, inverse, out):  # type: ignore[no-untyped-def]
    """One span of :func:`invert_visibility_rational`: a plain loop, which LLVM vectorises."""
    p0, p1, p2, p3, p4, p5, p6, p7, p8 = INVERSE_RATIONAL_P
    q0, q1, q2, q3, q4, q5, q6, q7, q8 = INVERSE_RATIONAL_Q
    inv_beta = 1.0 / beta
    still = 0.0 if inverse else np.inf  # x = 0
    fast = np.inf if inverse else 0.0  # x = inf
    for i in range(k.shape[0]):
        kk = np.float64(k[i])
        k2 = kk * kk
        sc = min(k2 * inv_beta, 1.0) if k2 < beta else 0.5
        sc = sc if kk == kk else 0.5
        t = 2.0 * sc - 1.0
        t2 = t * t
        t4 = t2 * t2
        num = (p0 + p1 * t + (p2 + p3 * t) * t2) + t4 * (
            (p4 + p5 * t + (p6 + p7 * t) * t2) + p8 * t4
        )
        den = (q0 + q1 * t + (q2 + q3 * t) * t2) + t4 * (
            (q4 + q5 * t + (q6 + q7 * t) * t2) + q8 * t4
        )
        x_num = num * (1.0 - sc)  # x = x_num / (den · sc)
        value = x_num / (den * sc * exposure_s) if inverse else (exposure_s * sc * den) / x_num
        value = value if k2 < beta else still
        value = value if kk > 0.0 else fast
        out[i] = value if kk == kk else np.nan


def fit_inverse_rational(
    degree: int = 8, nodes: int = 4000, iterations: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``G(s) ≈ P(t)/Q(t)``, ``t = 2s − 1``, as :data:`INVERSE_RATIONAL_P` and ``_Q`` were.

    Loeb's iteratively reweighted linear least squares on the relative error, at ``nodes``
    Chebyshev nodes of s in (0, 1) where G is solved to rounding level; ``Q(t)`` is normalised
    by its first Chebyshev coefficient. Returns the monomial coefficients of P and Q in t,
    lowest first.
    """
    index = np.arange(nodes)
    s = (np.cos(np.pi * (index + 0.5) / nodes) + 1.0) / 2.0
    g = np.array([_solve_ratio(v) * v / (1.0 - v) for v in s])
    t = 2.0 * s - 1.0
    basis = np.polynomial.chebyshev.chebvander(t, degree)
    q = np.ones_like(s)
    for _ in range(iterations):
        system = np.hstack([basis, -(g[:, None] * basis[:, 1:])])
        weight = 1.0 / (q * g)
        coefficients = np.linalg.lstsq(system * weight[:, None], g * weight, rcond=None)[0]
        p_cheb = coefficients[: degree + 1]
        q_cheb = np.concatenate([[1.0], coefficients[degree + 1 :]])
        q = np.polynomial.chebyshev.chebval(t, q_cheb)
    cheb2poly = np.polynomial.chebyshev.cheb2poly
    return cheb2poly(p_cheb), cheb2poly(q_cheb)


@njit(parallel=True, **_OPTS)
def inverse_square(k: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (1-D) with ``1/K²`` in float64 arithmetic: K = 0 gives inf, NaN gives NaN."""
    for i in prange(k.shape[0]):
        kk = np.float64(k[i])
        out[i] = 1.0 / (kk * kk)


@njit(**_OPTS)
def _solve_ratio(s: float) -> float:
    """The root of ``f(x) = s``, ``0 < s < 1``, to rounding level (for building the table).

    Bisection in ``y = ln x`` on ``ψ(y) = ln(q/f) = w = ln((1 − s)/s)``: ``ψ(y) − y`` lies in
    ``[ln(2/3), 0]`` (its two limits), so the root lies in ``[w, w + 0.41]``. One Newton step
    in x then removes the rounding of ``e^y``; its residual is ``f − s`` or ``(1 − s) − q``,
    whichever does not cancel.
    """
    w = math.log((1.0 - s) / s)
    lo = w - 0.01
    hi = w + 0.42
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        f, q, _df = f_q_df(math.exp(mid))
        if math.log(q / f) < w:
            lo = mid
        else:
            hi = mid
    x = math.exp(0.5 * (lo + hi))
    f, q, df = f_q_df(x)
    residual = f - s if s < 0.5 else (1.0 - s) - q
    return x - residual / df


@njit(**_OPTS)
def build_inverse_table() -> np.ndarray:
    """The ``(INVERSE_SEGMENTS, INVERSE_DEGREE + 1)`` table of :func:`_g_polynomial`.

    In each segment, G is sampled at the ``n = INVERSE_DEGREE + 1`` Chebyshev nodes
    ``t_m = cos(π(m + 1/2)/n)`` (never at s = 0 or 1), its interpolating Chebyshev series is
    found by discrete orthogonality, ``c_k = (2 − δ_k0)/n · Σ_m G_m T_k(t_m)``, and converted to
    monomial coefficients in t.
    """
    n = INVERSE_DEGREE + 1
    # Monomial coefficients of T_0 … T_(n−1), by the recurrence T_k = 2t·T_(k−1) − T_(k−2).
    cheb = np.zeros((n, n))
    cheb[0, 0] = 1.0
    cheb[1, 1] = 1.0
    for k in range(2, n):
        cheb[k, 1:] = 2.0 * cheb[k - 1, :-1]
        cheb[k] -= cheb[k - 2]
    angles = np.pi * (np.arange(n) + 0.5) / n
    nodes = np.cos(angles)
    table = np.zeros((INVERSE_SEGMENTS, n))
    values = np.empty(n)
    for j in range(INVERSE_SEGMENTS):
        for m in range(n):
            s = (j + 0.5 + 0.5 * nodes[m]) / INVERSE_SEGMENTS
            values[m] = _solve_ratio(s) * s / (1.0 - s)
        for k in range(n):
            c = (1.0 if k == 0 else 2.0) / n * np.sum(values * np.cos(k * angles))
            table[j] += c * cheb[k]
    return table
