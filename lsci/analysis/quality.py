"""Data-quality checks on raw frames: saturation, too little signal, speckle sampling.

Masks follow two conventions, named in each function: ``saturated_pixels`` and
``low_signal_pixels`` are True at *bad* pixels; :func:`valid_pixels` is True at *usable* pixels,
the ``mask`` convention of :mod:`lsci.core.contrast` (pass it on as ``mask=``).

Speckle grain size (:func:`speckle_grain_px`) uses the definition of :mod:`lsci.sim.speckle`: the
speckle diameter is the full width, between first zeros, of the intensity autocorrelation
``1 + |2 J1(u)/u|²`` of a circular pupil (Goodman 2007), i.e. twice the lag at which the
normalised autocovariance first vanishes. Contrast is under-estimated when the grain is smaller
than 2 pixels (Nyquist; Kirkpatrick et al. 2008): :class:`UnderSampledSpeckleWarning`.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lsci._arrays import as_int

if TYPE_CHECKING:
    from lsci.calibration import CameraNoise, DarkFrame

__all__ = [
    "NYQUIST_GRAIN_PX",
    "UnderSampledSpeckleWarning",
    "low_signal_pixels",
    "saturated_pixels",
    "speckle_grain_px",
    "valid_pixels",
]

#: Smallest speckle diameter (pixels) that samples speckle properly (Kirkpatrick et al. 2008).
NYQUIST_GRAIN_PX = 2.0

# First zero of J1: |2J1(u)/u|² first vanishes at u = 3.8317 (the edge of the Airy disk).
_J1_FIRST_ZERO = 3.831705970207512
# The grain is read from the largest lag whose normalised autocovariance is still above this:
# high enough to stand clear of estimation noise, low enough to be a wide lever.
_MIN_CORRELATION = 0.25
# Height of the first side lobe of |2J1(u)/u|²: the one-pixel-lag correlation of under-sampled
# speckle (grain < 2 px, lag beyond the first zero) can reach it, so a ρ(1) this low (plus the
# estimate's noise) cannot tell a 2.3 px grain from a 1 px one.
_AIRY_SIDELOBE = 0.0175


class UnderSampledSpeckleWarning(UserWarning):
    """The speckle grain is smaller than 2 pixels: contrast is under-estimated."""


def saturated_pixels(
    frames: npt.ArrayLike, bit_depth: int, *, any_frame: bool = True
) -> npt.NDArray[np.bool_]:
    """Pixels at the largest value the camera's ADC can give.

    Parameters
    ----------
    frames : (M, N) or (T, M, N) array_like of int
        Raw frames.
    bit_depth : int
        ADC bit depth (1 to 16); saturation is at ``2**bit_depth − 1``, also for 10/12/14-bit
        data in 16-bit containers.
    any_frame : bool, optional
        For a stack: True gives one (M, N) mask, a pixel being saturated when it is in any
        frame (its contrast is wrong for the whole window); False gives a mask per frame.

    Returns
    -------
    ndarray of bool
        True at saturated pixels.

    Raises
    ------
    ValueError
        If ``bit_depth`` is not in 1..16 or ``frames`` is not 2-D or 3-D.
    TypeError
        If ``bit_depth`` is not an integer or ``frames`` does not hold real numbers.

    Examples
    --------
    >>> import numpy as np
    >>> saturated_pixels(np.array([[4095, 12], [0, 4094]], np.uint16), 12)
    array([[ True, False],
           [False, False]])
    """
    data = _frames(frames)
    bit_depth = as_int(bit_depth, "bit_depth")
    if not 1 <= bit_depth <= 16:
        raise ValueError(f"bit_depth must be in 1..16, got {bit_depth}")
    saturated: npt.NDArray[np.bool_] = data >= 2**bit_depth - 1
    if data.ndim == 3 and any_frame:
        return np.asarray(saturated.any(axis=0))
    return saturated


def low_signal_pixels(
    frames: npt.ArrayLike,
    *,
    min_adu: float | None = None,
    camera: CameraNoise | None = None,
    read_noise_factor: float = 5.0,
    dark: DarkFrame | None = None,
) -> npt.NDArray[np.bool_]:
    """Pixels whose mean signal is too low for a meaningful contrast.

    Parameters
    ----------
    frames : (M, N) or (T, M, N) array_like
        Raw frames (or one mean image), ADU.
    min_adu : float, optional
        Threshold on the (dark-subtracted) mean signal, ADU.
    camera : CameraNoise, optional
        With it, the threshold is (also) ``read_noise_factor × camera.read_noise_adu``.
    read_noise_factor : float, optional
        Multiple of the read noise (default 5) the signal must exceed.
    dark : DarkFrame, optional
        Subtracted from the mean signal first.

    Returns
    -------
    (M, N) ndarray of bool
        True where the per-pixel mean over frames is below the larger of the thresholds given
        (or not finite).

    Raises
    ------
    ValueError
        If neither ``min_adu`` nor ``camera`` is given, a threshold is negative, or the dark
        frame's shape differs.

    Examples
    --------
    >>> import numpy as np
    >>> low_signal_pixels(np.array([[5.0, 50.0]]), min_adu=10)
    array([[ True, False]])
    """
    data = _frames(frames)
    if min_adu is None and camera is None:
        raise ValueError("give min_adu (ADU) or camera (with read_noise_factor) as a threshold")
    thresholds = []
    if min_adu is not None:
        if not min_adu >= 0:
            raise ValueError(f"min_adu must be >= 0, got {min_adu}")
        thresholds.append(float(min_adu))
    if camera is not None:
        if not read_noise_factor >= 0:
            raise ValueError(f"read_noise_factor must be >= 0, got {read_noise_factor}")
        thresholds.append(read_noise_factor * camera.read_noise_adu)
    mean = data.astype(np.float64).mean(axis=0) if data.ndim == 3 else data.astype(np.float64)
    if dark is not None:
        if np.shape(dark.mean) != mean.shape:
            raise ValueError(
                f"dark frame shape {np.shape(dark.mean)} differs from the frames {mean.shape}"
            )
        mean = mean - np.asarray(dark.mean, dtype=np.float64)
    low: npt.NDArray[np.bool_] = ~(mean >= max(thresholds))
    return low


def valid_pixels(
    frames: npt.ArrayLike,
    bit_depth: int,
    *,
    min_adu: float | None = None,
    camera: CameraNoise | None = None,
    read_noise_factor: float = 5.0,
    dark: DarkFrame | None = None,
) -> npt.NDArray[np.bool_]:
    """Pixels neither saturated in any frame nor too dark: the ``mask`` for
    :mod:`lsci.core.contrast`.

    Parameters
    ----------
    frames : (M, N) or (T, M, N) array_like
        Raw frames.
    bit_depth : int
        ADC bit depth (:func:`saturated_pixels`).
    min_adu, camera, read_noise_factor, dark
        Low-signal thresholds (:func:`low_signal_pixels`); with none of ``min_adu`` and
        ``camera`` only saturation is checked.

    Returns
    -------
    (M, N) ndarray of bool
        True at usable pixels.
    """
    valid = ~saturated_pixels(frames, bit_depth)
    if min_adu is not None or camera is not None:
        valid &= ~low_signal_pixels(
            frames, min_adu=min_adu, camera=camera, read_noise_factor=read_noise_factor, dark=dark
        )
    return valid


def speckle_grain_px(frames: npt.ArrayLike, *, max_lag_px: int = 16, warn: bool = True) -> float:
    """Estimate the speckle diameter in pixels from the intensity autocorrelation.

    Parameters
    ----------
    frames : (M, N) or (T, M, N) array_like
        Frames of speckle (raw or dark-subtracted; best a static target under even
        illumination, as for β calibration). Each frame's mean is removed; the
        autocovariances of the frames are averaged.
    max_lag_px : int, optional
        Largest lag examined; grains up to about ``2 × max_lag_px`` pixels can be measured.
    warn : bool, optional
        Issue :class:`UnderSampledSpeckleWarning` when the grain is below 2 pixels.

    Returns
    -------
    float
        Speckle diameter in pixels, the definition of :mod:`lsci.sim.speckle`'s ``grain_px``
        (module docstring). Grains of 2 px and less all read about 2–2.3 px: sampled at whole
        pixels, they cannot be told apart (the warning then says so).

    Raises
    ------
    ValueError
        If the frames are smaller than 8 × 8 pixels, uniform, or ``max_lag_px`` < 1.
    TypeError
        If ``max_lag_px`` is not an integer or ``frames`` does not hold real numbers.

    Warns
    -----
    UnderSampledSpeckleWarning
        If the estimate is below :data:`NYQUIST_GRAIN_PX` (2 pixels), or the one-pixel-lag
        correlation is within its noise of the Airy side lobe (0.0175), which under-sampled
        speckle can reach: then the grain is not shown to be resolved.

    Notes
    -----
    The autocovariance ``C(r)`` is computed with zero-padded FFTs (linear, not circular) and
    divided by the number of overlapping pixel pairs at each lag. Along the rows and the columns
    ``ρ(L) = C(L)/C(0)`` is averaged; at the largest lag ``L`` where ``ρ`` is still above 0.25
    (or ``L = 1``), the Airy model ``ρ = |2 J1(u)/u|²`` with ``u = 2 · 3.8317 · L / d`` is solved
    for the diameter ``d``. Point-sampled ideal speckle (as :mod:`lsci.sim.speckle` makes) gives
    ``d`` exactly up to estimation noise. Pixel-area integration, uncorrelated noise (it lowers
    ``ρ`` at all lags, so small grains read smaller) or an uneven illumination (a slow trend
    raises ``ρ``) bias the estimate; crop to an evenly lit region of good signal.

    References
    ----------
    .. [1] J. W. Goodman, *Speckle Phenomena in Optics*, Roberts & Company, 2007, §4.4, §5.4.
    .. [2] S. J. Kirkpatrick, D. D. Duncan and E. M. Wells-Gray, "Detrimental effects of
           speckle-pixel size matching in laser speckle contrast imaging", Opt. Lett. 33,
           2886-2888 (2008). :doi:`10.1364/OL.33.002886`
    """
    data = _frames(frames)
    stack = data[np.newaxis] if data.ndim == 2 else data
    rows, cols = stack.shape[1:]
    if rows < 8 or cols < 8:
        raise ValueError(f"frames must be at least 8 × 8 pixels, got {(rows, cols)}")
    max_lag_px = as_int(max_lag_px, "max_lag_px")
    if max_lag_px < 1:
        raise ValueError(f"max_lag_px must be a positive int, got {max_lag_px!r}")
    lags = min(max_lag_px, rows // 2, cols // 2)
    acov = np.zeros((lags + 1, lags + 1))
    for frame in stack:
        centred = frame.astype(np.float64) - frame.mean()
        spectrum = np.fft.rfft2(centred, s=(2 * rows, 2 * cols))
        full = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * rows, 2 * cols))
        acov += full[: lags + 1, : lags + 1]
    pairs = np.outer(rows - np.arange(lags + 1), cols - np.arange(lags + 1))
    acov /= pairs
    if not acov[0, 0] > 0:
        raise ValueError("frames are uniform: no speckle to measure")
    rho = 0.5 * (acov[1:, 0] + acov[0, 1:]) / acov[0, 0]
    above = rho >= _MIN_CORRELATION
    # The first lag where ρ drops below the threshold ends the central peak.
    lag = int(np.argmin(above)) if not above.all() else lags
    lag = max(lag, 1)
    u = _invert_airy(float(rho[lag - 1]))
    grain = 2.0 * _J1_FIRST_ZERO * lag / u
    # Standard error of a sample correlation of n nearly independent pixel pairs: 1/sqrt(n).
    unresolved = rho[0] < _AIRY_SIDELOBE + 3.0 / np.sqrt(stack.shape[0] * pairs[1, 0])
    if warn and (grain < NYQUIST_GRAIN_PX or unresolved):
        warnings.warn(
            f"speckle grain ≈ {grain:.2f} px is not resolved (at or below {NYQUIST_GRAIN_PX:g} "
            "px, Nyquist): the speckle is under-sampled and its contrast under-estimated; "
            "stop down the aperture (larger f-number) or magnify (Kirkpatrick et al. 2008)",
            UnderSampledSpeckleWarning,
            stacklevel=2,
        )
    return float(grain)


def _frames(frames: npt.ArrayLike) -> npt.NDArray[Any]:
    data = np.asarray(frames)
    if data.ndim not in (2, 3):
        raise ValueError(f"frames must be (M, N) or (T, M, N), got shape {data.shape}")
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise TypeError(f"frames must hold real numbers, got dtype {data.dtype}")
    return data


def _invert_airy(rho: float) -> float:
    """``u`` in (0, 3.8317] with ``|2 J1(u)/u|² = rho`` (3.8317 for ``rho <= 0``)."""
    u_table, airy = _airy_table()
    if rho >= 1.0:
        return float(u_table[1])
    if rho <= 0.0:
        return _J1_FIRST_ZERO
    # airy decreases along u_table: interpolate on the reversed arrays.
    return float(np.interp(rho, airy[::-1], u_table[::-1]))


@functools.cache
def _airy_table() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``|2 J1(u)/u|²`` on a fine grid of ``u`` in [0, 3.8317]."""
    u = np.linspace(0.0, _J1_FIRST_ZERO, 4001)
    # J1(u) = (1/π) ∫0^π cos(τ − u sin τ) dτ: the trapezoid rule on a periodic integrand
    # converges exponentially, 256 points give double precision for u < 4.
    tau = np.linspace(0.0, np.pi, 257)
    integrand = np.cos(tau[None, :] - u[:, None] * np.sin(tau[None, :]))
    j1 = np.trapezoid(integrand, tau, axis=1) / np.pi
    ratio = np.ones_like(u)
    ratio[1:] = 2.0 * j1[1:] / u[1:]
    airy: npt.NDArray[np.float64] = ratio**2
    airy[-1] = 0.0
    return u, airy
