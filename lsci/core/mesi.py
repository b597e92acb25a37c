"""Multi-exposure speckle imaging (MESI): contrast at several exposures → τc, ρ, β, ν maps.

Conventions
-----------
K
    Speckle contrast σ_I/⟨I⟩ from :mod:`lsci.core.contrast` (float32 maps), one map per exposure,
    stacked as ``(n_exposures, H, W)`` (or ``(n_exposures,)`` for a single point), all computed
    with the same window and estimator.
T (``exposures_s``)
    Exposure times in seconds, one per plane of K, in any order.
τc (``tau_c_s``)
    Correlation time of the dynamic (flowing) light in seconds; 1/τc is proportional to flow.
ρ (``rho``)
    Fraction of the detected light that is dynamically scattered, ``0 <= ρ <= 1`` (1: no
    static scattering).
β (``beta``)
    Coherence factor, ``0 < β <= 1``, as in :mod:`lsci.core.perfusion`.
ν (``nu``)
    Additive contrast offset from experimental noise and nonergodic variance.

The model (Parthasarathy et al. 2008, Eq. 6, with the nonergodic term written as the variance
of the static light β(1−ρ)² and the noise ν outside the root, as in the project's physics notes)
is, with x = T/τc,

    K(T) = sqrt( β ρ² (e^(−2x) − 1 + 2x)/(2x²) + 4 β ρ (1−ρ) (e^(−x) − 1 + x)/x²
                 + β (1−ρ)² ) + ν.

The three terms are the dynamic–dynamic, dynamic–static (heterodyne) and static–static parts of
the intensity variance. With ρ = 1 and ν = 0 it reduces to the single-exposure visibility
equation of :func:`lsci.core.perfusion.visibility_k2`.

Why it stands alone: a recording holds one exposure time, so no user path of lsci (processing,
comparison, the live map) produces the several exposures a fit needs. The fit is here for
multi-exposure stacks measured with other tools, and it quantifies what the single-exposure
models miss under static scattering (docs/physics.md, the realistic skin regime).

References
----------
.. [1] A. B. Parthasarathy, W. J. Tom, A. Gopal, X. Zhang, A. K. Dunn, "Robust flow measurement
   with multi-exposure speckle imaging", Opt. Express 16, 1975–1989 (2008).
.. [2] D. A. Boas, A. K. Dunn, "Laser speckle contrast imaging in biomedical optics",
   J. Biomed. Opt. 15, 011109 (2010).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsci._arrays import as_int, as_real
from lsci.core._kernels import mesi as _km

__all__ = ["MesiFit", "fit_mesi", "mesi_model"]

FloatArray = npt.NDArray[np.floating[Any]]

_PARAMETERS = ("tau_c_s", "rho", "beta", "nu")
# Box bounds of the fit: τc within 1e4 of the exposure range, β away from 0, |ν| <= 1.
_TAU_RANGE = 1e4
_BETA_MIN = 1e-6
_NU_BOUND = 1.0
# Starting-point grid: τc over the exposure range widened 30× each way, and ρ.
_TAU_GRID_SIZE = 12
_TAU_GRID_WIDEN = 30.0
_RHO_GRID = np.array([0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0])
_RHO_SPLIT = 4  # with two starts, the first searches ρ >= 0.85, the second ρ < 0.85


def _exposures(exposures_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(exposures_s, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"exposures_s must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr > 0.0)):
        raise ValueError(f"exposures_s must be finite times > 0 in seconds, got {arr.tolist()}")
    return arr


def _real(name: str, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return as_real(name, values).astype(np.float64, copy=False)


def _check_range(name: str, arr: np.ndarray, lo: float, hi: float, lo_open: bool) -> None:
    ok = (arr > lo if lo_open else arr >= lo) & (arr <= hi)
    if not np.all(ok):
        bad = arr[~ok].ravel()[0]
        bracket = "(" if lo_open else "["
        raise ValueError(f"{name} must lie in {bracket}{lo}, {hi}], got {name}={bad!r}")


def mesi_model(
    exposures_s: npt.ArrayLike,
    tau_c_s: npt.ArrayLike,
    rho: npt.ArrayLike = 1.0,
    beta: npt.ArrayLike = 1.0,
    nu: npt.ArrayLike = 0.0,
) -> npt.NDArray[np.float64]:
    """Speckle contrast K(T) predicted by the multi-exposure model.

    Parameters
    ----------
    exposures_s : array_like
        1-D exposure times T in seconds, ``> 0``.
    tau_c_s : array_like
        Correlation time τc in seconds, ``> 0`` (``inf``: no motion); scalar or map.
    rho : array_like, optional
        Dynamic fraction ρ in ``[0, 1]``; scalar or map.
    beta : array_like, optional
        Coherence factor β in ``(0, 1]``; scalar or map.
    nu : array_like, optional
        Additive offset ν (finite); scalar or map.

    Returns
    -------
    k : ndarray of float64
        Shape ``(n_exposures,) + broadcast shape of the parameters``.

    Raises
    ------
    ValueError
        If a parameter is outside its range or the parameter shapes do not broadcast.
    TypeError
        If an input is not real-valued.

    Notes
    -----
    ``(e^(−2x) − 1 + 2x)/(2x²)`` and ``(e^(−x) − 1 + x)/x²`` are evaluated to a few ulp over the
    whole range (Taylor series below 1, ``expm1`` above), so ``x → 0`` gives ``sqrt(β) + ν``
    exactly and ``x → ∞`` gives ``sqrt(β)(1 − ρ) + ν``. See the module notes for the model.

    References
    ----------
    .. [1] Parthasarathy et al., Opt. Express 16, 1975 (2008), Eq. 6.

    Examples
    --------
    >>> from lsci.core.mesi import mesi_model
    >>> mesi_model([1e-6, 1e-3, 1.0], 1e-3, rho=0.5, beta=0.64).round(4).tolist()
    [0.7999, 0.6973, 0.401]
    """
    t = _exposures(exposures_s)
    values = [_real(n, v) for n, v in zip(_PARAMETERS, (tau_c_s, rho, beta, nu), strict=True)]
    try:
        arrays = np.broadcast_arrays(*values)
    except ValueError:
        shapes = [v.shape for v in values]
        raise ValueError(f"parameter shapes {shapes} do not broadcast") from None
    tau, r, b, n = (np.ascontiguousarray(a).reshape(-1) for a in arrays)
    _check_range("tau_c_s", tau, 0.0, math.inf, lo_open=True)
    _check_range("rho", r, 0.0, 1.0, lo_open=False)
    _check_range("beta", b, 0.0, 1.0, lo_open=True)
    if not np.all(np.isfinite(n)):
        raise ValueError("nu must be finite")
    out = np.empty((t.size, tau.size), dtype=np.float64)
    _km.mesi_model(t, tau, r, b, n, out)
    return out.reshape((t.size, *arrays[0].shape))


@dataclass(frozen=True)
class MesiFit:
    """Per-pixel results of :func:`fit_mesi`, each a map of the image shape.

    Attributes
    ----------
    tau_c_s : ndarray of float32
        Correlation time τc in seconds.
    rho : ndarray of float32
        Dynamic fraction ρ.
    beta : ndarray of float32
        Coherence factor β (the fixed value where β was fixed).
    nu : ndarray of float32
        Offset ν (the fixed value where ν was fixed).
    rms : ndarray of float32
        Root-mean-square residual of K over the exposures.
    converged : ndarray of bool
        True where the fit met its tolerance (or no step could lower the cost further) within
        ``max_iter``; False where it ran out of iterations or the input was not finite.
    iterations : ndarray of int32
        Levenberg–Marquardt iterations used.
    """

    tau_c_s: npt.NDArray[np.float32]
    rho: npt.NDArray[np.float32]
    beta: npt.NDArray[np.float32]
    nu: npt.NDArray[np.float32]
    rms: npt.NDArray[np.float32]
    converged: npt.NDArray[np.bool_]
    iterations: npt.NDArray[np.int32]


def _fixed_or_free(
    name: str, value: npt.ArrayLike | None, shape: tuple[int, ...], default: float
) -> tuple[bool, npt.NDArray[np.float64]]:
    """(free?, per-pixel values) for β or ν: None means fitted."""
    if value is None:
        return True, np.full(int(np.prod(shape)), default)
    arr = _real(name, value)
    try:
        flat = np.broadcast_to(arr, shape).reshape(-1).copy()
    except ValueError:
        raise ValueError(
            f"{name} of shape {arr.shape} does not broadcast to the image shape {shape}"
        ) from None
    if name == "beta":
        _check_range("beta", flat, 0.0, 1.0, lo_open=True)
    elif not np.all(np.isfinite(flat)):
        raise ValueError(f"{name} must be finite")
    return False, flat


def fit_mesi(
    k: npt.ArrayLike,
    exposures_s: npt.ArrayLike,
    *,
    beta: npt.ArrayLike | None = None,
    nu: npt.ArrayLike | None = 0.0,
    initial: Mapping[str, npt.ArrayLike] | None = None,
    max_iter: int = 100,
    xtol: float = 1e-10,
    n_starts: int | None = None,
) -> MesiFit:
    """Fit the multi-exposure speckle model to every pixel.

    Parameters
    ----------
    k : array_like
        Speckle contrast, shape ``(n_exposures, ...)``: ``(n_exposures, H, W)`` for maps or
        ``(n_exposures,)`` for one point.
    exposures_s : array_like
        The exposure time in seconds of each plane of ``k``, ``> 0``.
    beta : float or array_like or None, optional
        None (default) fits β in ``[1e-6, 1]``; a value or map (e.g. from a static-scatterer
        calibration) fixes it.
    nu : float or array_like or None, optional
        A value or map fixes ν (default 0: no noise offset); None fits it in ``[−1, 1]``.
    initial : mapping, optional
        Starting values replacing those of the built-in grid search, by name: any of
        ``"tau_c_s"``, ``"rho"``, ``"beta"``, ``"nu"``, each a scalar or a map of the image
        shape. Starting values of fixed parameters are ignored.
    max_iter : int, optional
        Maximum Levenberg–Marquardt iterations per pixel.
    xtol : float, optional
        Convergence when no parameter (ln τc, ρ, β, ν) moves more than ``xtol·(|p| + xtol)``
        in an accepted step, or the cost falls by less than 1e-14 relative.
    n_starts : {1, 2} or None, optional
        Fits per pixel, keeping the best: 1 starts from the best point of the whole grid; 2
        starts once from the grid with ρ >= 0.85 and once from ρ < 0.85 with ν starting at 0,
        which escapes the local minimum where a free ν absorbs the static plateau.
        None (default) uses 1 when ν is fixed and 2 when it is fitted.

    Returns
    -------
    MesiFit
        float32 maps of τc, ρ, β, ν and the residual RMS, the convergence flag and the
        iteration count. A pixel with any non-finite K gives NaN and ``converged = False``.

    Raises
    ------
    ValueError
        If ``k`` and ``exposures_s`` disagree in length, an exposure is not ``> 0``, there are
        fewer distinct exposures than fitted parameters (2 + β free + ν free), a fixed or
        initial value is outside its range, or ``max_iter``, ``xtol`` or ``n_starts`` are
        invalid.
    TypeError
        If ``k`` is not real-valued.

    Notes
    -----
    Least squares on K, unweighted, per pixel. Parameters are ``ln τc`` (so τc stays positive
    and steps are relative), ρ in ``[0, 1]``, β and ν; they are bounded to their physical
    ranges (τc within 1e4 of the exposure range) by projection with an active set, so ρ = 1
    (no static scattering) is reached exactly. The Jacobian is analytic. Each pixel starts at
    the best point of a grid of 12 τc (spanning the exposure range widened 30× each way) × 7 ρ,
    where √β and ν, entering linearly, are solved by least squares; this makes the fit robust
    without user starting values.

    τc is identifiable only where the exposures bracket it: the tests recover it (3-parameter
    fit, 8 exposures from 50 µs to 80 ms) for τc from T_min/2.5 to T_max/4. With ρ → 0 (only
    static light) it is not identifiable at all.

    Fitting both β and ν is poorly conditioned: β(1−ρ)² and ν trade off unless the exposures
    reach both plateaus (x ≪ 1 and x ≫ 1). Under noise (σ_K = 0.002, 8 exposures) such fits
    take a median of about 15 iterations, and about 4% of pixels drift along the valley
    until ``max_iter = 100`` (flagged ``converged = False``). Fix β from a static-scatterer
    calibration where possible; the default fixes ν = 0.

    References
    ----------
    .. [1] Parthasarathy et al., Opt. Express 16, 1975 (2008).
    .. [2] K. Levenberg, Q. Appl. Math. 2, 164 (1944); D. W. Marquardt, J. SIAM 11, 431 (1963).

    Examples
    --------
    >>> import numpy as np
    >>> from lsci.core.mesi import fit_mesi, mesi_model
    >>> t = np.geomspace(50e-6, 80e-3, 8)
    >>> k = mesi_model(t, 1e-3, rho=0.6, beta=0.8)
    >>> fit = fit_mesi(k, t)
    >>> [round(float(v), 6) for v in (fit.tau_c_s * 1e3, fit.rho, fit.beta)], bool(fit.converged)
    ([1.0, 0.6, 0.8], True)
    """
    t = _exposures(exposures_s)
    arr = as_real("k", k)
    if arr.ndim == 0 or arr.shape[0] != t.size:
        raise ValueError(
            f"k has shape {arr.shape}, but its first axis must hold one plane per exposure "
            f"({t.size} exposures)"
        )
    max_iter = as_int(max_iter, "max_iter")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if not (math.isfinite(xtol) and xtol > 0.0):
        raise ValueError(f"xtol must be finite and > 0, got {xtol!r}")
    if n_starts is None:
        n_starts = 2 if nu is None else 1
    if n_starts not in (1, 2):
        raise ValueError(f"n_starts must be 1, 2 or None, got {n_starts!r}")

    shape = arr.shape[1:]
    beta_free, beta_values = _fixed_or_free("beta", beta, shape, 1.0)
    nu_free, nu_values = _fixed_or_free("nu", nu, shape, 0.0)
    free = np.array([True, True, beta_free, nu_free])
    _check_identifiable(t, free)
    init, init_given = _initial_values(initial, shape)
    k2d = np.ascontiguousarray(arr).reshape(t.size, -1)
    params, rms, converged, iterations = _fit_pixels(
        k2d, t, n_starts, beta_values, nu_values, free, init, init_given, max_iter, float(xtol)
    )
    return MesiFit(
        tau_c_s=params[0].reshape(shape),
        rho=params[1].reshape(shape),
        beta=params[2].reshape(shape),
        nu=params[3].reshape(shape),
        rms=rms.reshape(shape),
        converged=converged.reshape(shape),
        iterations=iterations.reshape(shape),
    )


def _check_identifiable(t: npt.NDArray[np.float64], free: npt.NDArray[np.bool_]) -> None:
    """Each free parameter needs a distinct exposure of its own."""
    n_free = int(free.sum())
    n_distinct = np.unique(t).size
    if n_distinct < n_free:
        raise ValueError(
            f"fitting {n_free} parameters ({', '.join(np.array(_PARAMETERS)[free])}) needs at "
            f"least {n_free} distinct exposures, got {n_distinct}"
        )


def _initial_values(
    initial: Mapping[str, npt.ArrayLike] | None, shape: tuple[int, ...]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per-pixel starting values (ln τc, ρ, β, ν) given by the caller, and which are given."""
    init = np.zeros((int(np.prod(shape)), 4))
    init_given = np.zeros(4, dtype=bool)
    ranges = ((0.0, math.inf, True), (0.0, 1.0, False), (0.0, 1.0, True))
    for name, value in (initial or {}).items():
        if name not in _PARAMETERS:
            raise ValueError(f"initial has unknown key {name!r}; allowed: {list(_PARAMETERS)}")
        a = _PARAMETERS.index(name)
        values = _real(f"initial[{name!r}]", value)
        try:
            flat = np.broadcast_to(values, shape).reshape(-1)
        except ValueError:
            raise ValueError(
                f"initial[{name!r}] of shape {values.shape} does not broadcast to {shape}"
            ) from None
        if a < 3:
            lo, hi, lo_open = ranges[a]
            _check_range(f"initial[{name!r}]", flat, lo, hi, lo_open)
        elif not np.all(np.isfinite(flat)):
            raise ValueError("initial['nu'] must be finite")
        init[:, a] = np.log(flat) if a == 0 else flat
        init_given[a] = True
    return init, init_given


def _fit_pixels(
    k2d: npt.NDArray[np.floating[Any]],
    t: npt.NDArray[np.float64],
    n_starts: int,
    beta_values: npt.NDArray[np.float64],
    nu_values: npt.NDArray[np.float64],
    free: npt.NDArray[np.bool_],
    init: npt.NDArray[np.float64],
    init_given: npt.NDArray[np.bool_],
    max_iter: int,
    xtol: float,
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.int32]
]:
    """Run the fit kernel on (n_exposures, n_pixels) contrast: (params, rms, converged, iters)."""
    n_pix = k2d.shape[1]
    t_min, t_max = float(t.min()), float(t.max())
    lower = np.array([math.log(t_min / _TAU_RANGE), 0.0, _BETA_MIN, -_NU_BOUND])
    upper = np.array([math.log(t_max * _TAU_RANGE), 1.0, 1.0, _NU_BOUND])
    tau_grid = np.geomspace(t_min / _TAU_GRID_WIDEN, t_max * _TAU_GRID_WIDEN, _TAU_GRID_SIZE)
    f_basis, g_basis = _km.grid_basis(t, tau_grid)
    params = np.empty((4, n_pix), dtype=np.float32)
    rms = np.empty(n_pix, dtype=np.float32)
    converged = np.empty(n_pix, dtype=np.bool_)
    iterations = np.empty(n_pix, dtype=np.int32)
    # A few chunks per thread balance pixels that need many iterations.
    n_chunks = max(1, min(n_pix, 8 * numba.get_num_threads()))
    _km.fit_pixels(
        k2d, t, f_basis, g_basis, tau_grid, _RHO_GRID, _RHO_SPLIT, n_starts, beta_values,
        nu_values, free, init, init_given, lower, upper, max_iter, xtol, n_chunks, params, rms,
        converged, iterations,
    )  # fmt: skip
    return params, rms, converged, iterations
