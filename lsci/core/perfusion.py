"""Perfusion models: from speckle contrast K to correlation time and perfusion indices.

Conventions
-----------
K
    Speckle contrast σ_I/⟨I⟩ as computed by :mod:`lsci.core.contrast` (normally a float32 map). Any
    real array is accepted; float32 and float64 are used as they are, other dtypes are converted
    to float64. ``K <= 0`` is treated as ``K = 0``.
β (``beta``)
    The coherence factor, ``0 < β <= 1``: the contrast of a static scatterer imaged with the same
    optics and window (``K² → β`` as the exposure goes to zero). It lumps together the pixel to
    speckle size ratio, polarisation and incoherent light.
x
    ``T/τc``, the exposure time over the speckle correlation time, both in seconds.
Units
    Times are in seconds (``exposure_s``, τc), rates in 1/s (1/τc). Perfusion indices are
    relative; :class:`PerfusionScale` turns one into calibrated perfusion units.
Output
    Maps are float32 unless a float64 ``out`` is given; computations run in float64.

The visibility equation for Lorentzian dynamics (Bandyopadhyay et al. 2005; Boas & Dunn 2010)

    K² = β · (e^(−2x) − 1 + 2x) / (2x²)

is inverted exactly by :func:`correlation_time` and :func:`inverse_correlation_time`. The
simplified indices :func:`speckle_flow_index` (1/K²) and :func:`correlation_time_approx`
(τc ≈ T·K²/β) are what other software often reports; they agree with the exact inversion only
when T ≫ τc.

References
----------
.. [1] R. Bandyopadhyay, A. S. Gittings, S. S. Suh, P. K. Dixon, D. J. Durian, "Speckle-visibility
   spectroscopy: a tool to study time-varying dynamics", Rev. Sci. Instrum. 76, 093110 (2005).
.. [2] D. A. Boas, A. K. Dunn, "Laser speckle contrast imaging in biomedical optics",
   J. Biomed. Opt. 15, 011109 (2010).
.. [3] J. C. Ramirez-San-Juan, R. Ramos-García, I. Guizar-Iturbide, G. Martínez-Niconoff,
   B. Choi, "Impact of velocity distribution assumption on simplified laser speckle imaging
   equation", Opt. Express 16, 3197 (2008).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci._arrays import as_real, prepare_out
from lsci.core._kernels import perfusion as _kp

__all__ = [
    "PerfusionScale",
    "correlation_time",
    "correlation_time_approx",
    "inverse_correlation_time",
    "relative_perfusion",
    "speckle_flow_index",
    "visibility_k2",
]

FloatArray = npt.NDArray[np.floating[Any]]


@functools.cache
def _inverse_table() -> npt.NDArray[np.float64]:
    table: npt.NDArray[np.float64] = _kp.build_inverse_table()
    return table


def _check_beta(beta: float) -> float:
    value = float(beta)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"beta must satisfy 0 < beta <= 1, got beta={beta!r}")
    return value


def _check_exposure(exposure_s: float) -> float:
    value = float(exposure_s)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"exposure_s must be a finite time > 0 in seconds, got {exposure_s!r}")
    return value


def _run_flat(kernel_call: Any, values: FloatArray, out: FloatArray) -> FloatArray:
    """Run ``kernel_call(values_1d, out_1d)``, writing into ``out`` whatever its layout."""
    flat_in = np.ascontiguousarray(values).reshape(-1)
    if out.flags.c_contiguous:
        kernel_call(flat_in, out.reshape(-1))
    else:
        tmp = np.empty(values.shape, dtype=out.dtype)
        kernel_call(flat_in, tmp.reshape(-1))
        np.copyto(out, tmp)
    return out


def visibility_k2(x: npt.ArrayLike, beta: float = 1.0) -> FloatArray:
    """Squared speckle contrast predicted for Lorentzian dynamics (the forward model).

    Parameters
    ----------
    x : array_like
        ``T/τc``, exposure time over correlation time (dimensionless, ``>= 0``).
    beta : float, optional
        Coherence factor, ``0 < beta <= 1``.

    Returns
    -------
    k2 : ndarray
        ``K² = β·(e^(−2x) − 1 + 2x)/(2x²)``, same shape as ``x``; float32 for float32 input,
        otherwise float64 (a model evaluation keeps the caller's precision). ``x = 0`` gives β,
        ``x = inf`` gives 0, negative or NaN ``x`` gives NaN.

    Raises
    ------
    ValueError
        If ``beta`` is outside ``(0, 1]``.
    TypeError
        If ``x`` is not real-valued.

    Notes
    -----
    Evaluated to a few ulp over the whole range: below ``2x = 1`` through the Taylor series
    ``Σ (−2x)^n·2/(n+2)!`` (the closed form cancels catastrophically there), above it through
    ``expm1``.

    References
    ----------
    .. [1] Bandyopadhyay et al., Rev. Sci. Instrum. 76, 093110 (2005), Eq. (6).
    .. [2] Boas & Dunn, J. Biomed. Opt. 15, 011109 (2010).

    Examples
    --------
    >>> from lsci.core.perfusion import visibility_k2
    >>> visibility_k2([0.0, 1.0, 1e6]).round(6).tolist()
    [1.0, 0.567668, 1e-06]
    """
    b = _check_beta(beta)
    arr = as_real("x", x)
    result = np.empty(arr.shape, dtype=arr.dtype)
    return _run_flat(lambda i, o: _kp.visibility_k2(i, b, o), arr, result)


def _invert(
    k: npt.ArrayLike, exposure_s: float, beta: float, out: np.ndarray | None, inverse: bool
) -> FloatArray:
    b = _check_beta(beta)
    t = _check_exposure(exposure_s)
    arr = as_real("k", k)
    result = prepare_out(out, arr.shape)
    if result.dtype == np.float32:
        # Rounded to float32 anyway: the rational approximation's 4e-10 cannot show.
        return _run_flat(
            lambda i, o: _kp.invert_visibility_rational(i, b, t, inverse, o), arr, result
        )
    table = _inverse_table()
    return _run_flat(lambda i, o: _kp.invert_visibility(i, b, t, inverse, table, o), arr, result)


def correlation_time(
    k: npt.ArrayLike,
    exposure_s: float,
    *,
    beta: float = 1.0,
    out: np.ndarray | None = None,
) -> FloatArray:
    """Speckle correlation time τc in seconds, by exact inversion of the visibility equation.

    Parameters
    ----------
    k : array_like
        Speckle contrast K (from :mod:`lsci.core.contrast`).
    exposure_s : float
        Camera exposure time T in seconds, ``> 0``.
    beta : float, optional
        Coherence factor, ``0 < beta <= 1``.
    out : ndarray, optional
        float32 or float64 array of the shape of ``k`` to write into.

    Returns
    -------
    tau_c_s : ndarray
        τc in seconds, float32 unless ``out`` is float64.

    Raises
    ------
    ValueError
        If ``exposure_s <= 0``, ``beta`` is outside ``(0, 1]`` or ``out`` has the wrong
        shape or is read-only.
    TypeError
        If ``k`` is not real-valued or ``out`` is not a float32/float64 array.

    Notes
    -----
    The visibility equation ``K²/β = (e^(−2x) − 1 + 2x)/(2x²)``, ``x = T/τc``, has no closed-form
    inverse. With ``s = K²/β``, the function ``G(s) = x·s/(1 − s)`` is smooth and bounded on
    ``0 <= s <= 1`` (``G → 1`` for large x, where ``x ≈ 1/s − 1/2``; ``G → 3/2`` for small x, where
    ``x ≈ 3(1 − s)/2``). It is tabulated once, as polynomials of degree 5 on 256 equal segments
    of s interpolating an exact float64 root at Chebyshev nodes, and ``x = G(s)·(1 − s)/s`` is
    then one polynomial evaluation per pixel, with no logarithm, exponential or iteration. For
    exact input x comes out to a few ulp (measured at most 1.2e-15 relative), at any x. float32
    results use a rational approximation of G of degree 8/8 instead (relative error ≤ 4e-10,
    far below float32's rounding), which needs no table lookup and so vectorises: about twice
    as fast.

    Precision is limited by the input as ``K²/β → 1`` (x → 0), where ``1 − K²/β ≈ 2x/3``: a
    relative error ε in K² becomes ``≈ 1.5·ε/x`` in x. For float64 K this is about 3e-13 at
    x = 1e-3; for float32 K (ε ≈ 1.2e-7) it is about 2e-4 at x = 1e-3 and 2e-6 at x = 0.1.

    Special values: ``K²/β >= 1`` (``K² >= β``, compared exactly; including K = +inf) means no
    measurable motion: τc = +inf and 1/τc = 0. ``K <= 0`` (including −inf) means infinitely fast
    decorrelation: τc = 0 and 1/τc = +inf; tiny K follows the large-x asymptote (and overflows
    to these limits). NaN gives NaN.

    References
    ----------
    .. [1] Bandyopadhyay et al., Rev. Sci. Instrum. 76, 093110 (2005).
    .. [2] Boas & Dunn, J. Biomed. Opt. 15, 011109 (2010).

    Examples
    --------
    >>> import numpy as np
    >>> from lsci.core.perfusion import correlation_time
    >>> tau = correlation_time(np.array([0.2, 1.0, 0.0], np.float32), 5e-3)
    >>> [round(float(v) * 1e6, 1) for v in tau]  # microseconds
    [204.2, inf, 0.0]
    """
    return _invert(k, exposure_s, beta, out, inverse=False)


def inverse_correlation_time(
    k: npt.ArrayLike,
    exposure_s: float,
    *,
    beta: float = 1.0,
    out: np.ndarray | None = None,
) -> FloatArray:
    """Inverse correlation time 1/τc in 1/s, the quantity proportional to flow.

    Parameters
    ----------
    k : array_like
        Speckle contrast K (from :mod:`lsci.core.contrast`).
    exposure_s : float
        Camera exposure time T in seconds, ``> 0``.
    beta : float, optional
        Coherence factor, ``0 < beta <= 1``.
    out : ndarray, optional
        float32 or float64 array of the shape of ``k`` to write into.

    Returns
    -------
    inv_tau_c_per_s : ndarray
        1/τc in 1/s, float32 unless ``out`` is float64.

    Raises
    ------
    ValueError
        If ``exposure_s <= 0``, ``beta`` is outside ``(0, 1]`` or ``out`` has the wrong
        shape or is read-only.
    TypeError
        If ``k`` is not real-valued or ``out`` is not a float32/float64 array.

    Notes
    -----
    The same inversion as :func:`correlation_time` (see its notes for the method, precision
    and special values), returning ``x/T``: K²/β >= 1 gives 0, K <= 0 gives +inf.

    References
    ----------
    .. [1] Bandyopadhyay et al., Rev. Sci. Instrum. 76, 093110 (2005).
    .. [2] Boas & Dunn, J. Biomed. Opt. 15, 011109 (2010).

    Examples
    --------
    >>> import numpy as np
    >>> from lsci.core.perfusion import inverse_correlation_time
    >>> rate = inverse_correlation_time(np.array([0.2, 1.0, 0.0], np.float32), 5e-3)
    >>> [round(float(v), 1) for v in rate]
    [4897.9, 0.0, inf]
    """
    return _invert(k, exposure_s, beta, out, inverse=True)


def speckle_flow_index(k: npt.ArrayLike, *, out: np.ndarray | None = None) -> FloatArray:
    """The simplified flow index 1/K² (often called BFI or SFI).

    Parameters
    ----------
    k : array_like
        Speckle contrast K.
    out : ndarray, optional
        float32 or float64 array of the shape of ``k`` to write into.

    Returns
    -------
    sfi : ndarray
        ``1/K²``, float32 unless ``out`` is float64. K = 0 gives +inf, NaN gives NaN.

    Raises
    ------
    ValueError
        If ``out`` has the wrong shape or is read-only.
    TypeError
        If ``k`` is not real-valued or ``out`` is not a float32/float64 array.

    Notes
    -----
    For T ≫ τc the visibility equation gives ``K² ≈ β·τc/T``, so ``1/K² ≈ T/(β·τc)`` is
    proportional to 1/τc. The proportionality fails as K²/β approaches 1 (T comparable to or
    shorter than τc): a small relative change of 1/τc changes 1/K² by 0.95 times as much at
    x = T/τc = 10, but only 0.48 times as much at x = 1 and ``≈ 2x/3`` times for x ≪ 1. Use
    :func:`inverse_correlation_time` for a quantity proportional to flow at any x.

    References
    ----------
    .. [1] Ramirez-San-Juan et al., Opt. Express 16, 3197 (2008).
    .. [2] Boas & Dunn, J. Biomed. Opt. 15, 011109 (2010).

    Examples
    --------
    >>> from lsci.core.perfusion import speckle_flow_index
    >>> speckle_flow_index([0.5, 0.1]).tolist()
    [4.0, 100.0]
    """
    arr = as_real("k", k)
    result = prepare_out(out, arr.shape)
    return _run_flat(_kp.inverse_square, arr, result)


def correlation_time_approx(
    k: npt.ArrayLike,
    exposure_s: float,
    *,
    beta: float = 1.0,
    out: np.ndarray | None = None,
) -> FloatArray:
    """Simplified correlation time ``τc ≈ T·K²/β`` in seconds, valid only for T ≫ τc.

    Parameters
    ----------
    k : array_like
        Speckle contrast K.
    exposure_s : float
        Camera exposure time T in seconds, ``> 0``.
    beta : float, optional
        Coherence factor, ``0 < beta <= 1`` (many programs use 1, which is the default).
    out : ndarray, optional
        float32 or float64 array of the shape of ``k`` to write into.

    Returns
    -------
    tau_c_s : ndarray
        ``T·K²/β`` in seconds, float32 unless ``out`` is float64.

    Raises
    ------
    ValueError
        If ``exposure_s <= 0``, ``beta`` is outside ``(0, 1]`` or ``out`` has the wrong
        shape or is read-only.
    TypeError
        If ``k`` is not real-valued or ``out`` is not a float32/float64 array.

    Notes
    -----
    The first term of the large-x expansion ``K²/β = 1/x − 1/(2x²) + O(e^(−2x)/x²)``. Relative
    to the exact inversion (:func:`correlation_time`) it is ``x·K²/β``, too small by the factor
    ``≈ 1 − τc/(2T)`` for large x (5% at T = 10·τc, 0.5% at T = 100·τc). For T ≲ τc it is
    meaningless: 43% too small at T = τc, and it saturates at ``T`` as K²/β → 1 where the exact
    τc diverges.

    References
    ----------
    .. [1] Ramirez-San-Juan et al., Opt. Express 16, 3197 (2008).

    Examples
    --------
    >>> from lsci.core.perfusion import correlation_time_approx
    >>> [round(float(v), 9) for v in correlation_time_approx([0.1], 5e-3)]
    [5e-05]
    """
    b = _check_beta(beta)
    t = _check_exposure(exposure_s)
    arr = as_real("k", k)
    result = prepare_out(out, arr.shape)
    np.multiply(np.square(arr, dtype=np.float64), t / b, out=result, casting="same_kind")
    return result


def relative_perfusion(
    index: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    out: np.ndarray | None = None,
) -> FloatArray:
    """Perfusion index relative to a baseline (1.0 = baseline), NaN-safe.

    Parameters
    ----------
    index : array_like
        A perfusion index map (1/τc, 1/K², perfusion units, ...).
    baseline : array_like
        The same index at baseline: a scalar (e.g. the mean over a region) or a map
        broadcastable to ``index``.
    out : ndarray, optional
        float32 or float64 array of the shape of ``index`` to write into.

    Returns
    -------
    ratio : ndarray
        ``index / baseline``, float32 unless ``out`` is float64. Where the baseline is NaN,
        not finite or ``<= 0`` the result is NaN (an index is positive; a ratio to zero means
        nothing), and NaN in ``index`` stays NaN. No warnings are raised.

    Raises
    ------
    ValueError
        If a scalar ``baseline`` is not a finite number ``> 0``, the shapes do not broadcast,
        or ``out`` has the wrong shape or is read-only.
    TypeError
        If an input is not real-valued or ``out`` is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> from lsci.core.perfusion import relative_perfusion
    >>> relative_perfusion([2.0, 3.0, np.nan], [2.0, 0.0, 1.0]).tolist()
    [1.0, nan, nan]
    """
    idx = as_real("index", index)
    base = as_real("baseline", baseline)
    if base.ndim == 0 and not (math.isfinite(float(base)) and float(base) > 0.0):
        raise ValueError(f"baseline must be a finite value > 0, got {float(base)!r}")
    try:
        shape = np.broadcast_shapes(idx.shape, base.shape)
    except ValueError:
        shape = None
    if shape != idx.shape:
        raise ValueError(
            f"baseline of shape {base.shape} does not broadcast to index of shape {idx.shape}"
        )
    result = prepare_out(out, idx.shape)
    valid = np.isfinite(base) & (base > 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(idx, base, dtype=np.float64)
    np.copyto(result, np.where(valid, ratio, np.nan), casting="same_kind")
    return result


@dataclass(frozen=True)
class PerfusionScale:
    """A linear perfusion-unit scale: ``pu = scale · index``.

    Commercial imagers report "perfusion units" (PU): arbitrary units, calibrated in the
    factory against a reference of moving scatterers. This class does the same for any lsci
    index: measure the reference, state the PU value it should read, and apply the scale.
    It calibrates a model's output rather than being a model of its own, so it is not in the
    model registry (:mod:`lsci.core.models` says why).

    Parameters
    ----------
    scale : float
        Perfusion units per unit of the index, finite and ``> 0``.
    index : str
        Name of the index the scale applies to (e.g. ``"inverse_correlation_time"`` or
        ``"speckle_flow_index"``); a scale is meaningless for any other index.
    unit : str
        Name of the calibrated unit, ``"PU"`` by default.
    note : str
        Free text describing the calibration (reference, date, exposure, β).

    Raises
    ------
    ValueError
        If ``scale`` is not finite and positive or ``index``/``unit`` is empty.

    Notes
    -----
    The scale is valid only for the acquisition settings (exposure, window, β, index) used at
    calibration; record them in ``note``. Linearity holds for 1/τc; for 1/K² it holds only in
    the T ≫ τc regime (see :func:`speckle_flow_index`).

    Examples
    --------
    >>> from lsci.core.perfusion import PerfusionScale
    >>> s = PerfusionScale.from_reference(2500.0, 250.0, index="inverse_correlation_time")
    >>> s.scale, s.apply([5000.0]).tolist()
    (0.1, [500.0])
    >>> PerfusionScale.from_dict(s.to_dict()) == s
    True
    """

    scale: float
    index: str = "inverse_correlation_time"
    unit: str = "PU"
    note: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool | str | bytes):
            raise TypeError(f"scale must be a number, got {self.scale!r}")
        scale = float(self.scale)
        if not (math.isfinite(scale) and scale > 0.0):
            raise ValueError(f"scale must be finite and > 0, got scale={self.scale!r}")
        object.__setattr__(self, "scale", scale)
        for name in ("index", "unit", "note"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str, got {getattr(self, name)!r}")
        if not self.index or not self.unit:
            raise ValueError(
                f"index and unit must be non-empty, got index={self.index!r}, unit={self.unit!r}"
            )

    @classmethod
    def from_reference(
        cls,
        index_value: npt.ArrayLike,
        reference_pu: float,
        *,
        index: str = "inverse_correlation_time",
        unit: str = "PU",
        note: str = "",
    ) -> PerfusionScale:
        """The scale that makes a reference measurement read ``reference_pu``.

        Parameters
        ----------
        index_value : array_like
            The index measured on the reference: a number, or a map or region of it, whose
            mean over finite values is used.
        reference_pu : float
            The perfusion-unit value the reference is defined to have, finite and ``> 0``.
        index, unit, note : str
            As in :class:`PerfusionScale`.

        Returns
        -------
        PerfusionScale
            With ``scale = reference_pu / mean(index_value)``.

        Raises
        ------
        ValueError
            If the reference index has no finite values or its mean is not ``> 0``, or
            ``reference_pu`` is not finite and ``> 0``.
        """
        values = as_real("index_value", index_value).astype(np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError("index_value has no finite values to calibrate against")
        mean = float(values.mean())
        if not mean > 0.0:
            raise ValueError(f"index_value must be > 0 on the reference, got mean {mean!r}")
        pu = float(reference_pu)
        if not (math.isfinite(pu) and pu > 0.0):
            raise ValueError(f"reference_pu must be finite and > 0, got {reference_pu!r}")
        return cls(scale=pu / mean, index=index, unit=unit, note=note)

    def apply(self, index_map: npt.ArrayLike, *, out: np.ndarray | None = None) -> FloatArray:
        """Perfusion units ``scale · index_map``, float32 unless ``out`` is float64."""
        arr = as_real("index_map", index_map)
        result = prepare_out(out, arr.shape)
        np.multiply(arr, self.scale, out=result, casting="same_kind")
        return result

    def to_dict(self) -> dict[str, str | float]:
        """Plain ``{str: str | float}`` form, e.g. for HDF5 attributes."""
        return {
            "model": "linear",
            "scale": self.scale,
            "index": self.index,
            "unit": self.unit,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerfusionScale:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If ``model`` is not ``"linear"`` or ``scale`` is missing or invalid.
        """
        model = data.get("model", "linear")
        if isinstance(model, bytes):
            model = model.decode()
        if model != "linear":
            raise ValueError(f"unsupported perfusion scale model {model!r}; only 'linear'")
        if "scale" not in data:
            raise ValueError("perfusion scale dict has no 'scale' entry")

        def text(key: str, default: str) -> str:
            value = data.get(key, default)
            # h5py may hand back attributes as bytes or numpy strings.
            return value.decode() if isinstance(value, bytes) else str(value)

        return cls(
            scale=float(data["scale"]),
            index=text("index", "inverse_correlation_time"),
            unit=text("unit", "PU"),
            note=text("note", ""),
        )
