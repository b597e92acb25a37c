"""Physically grounded simulation of raw laser speckle camera frames.

The model, in the image plane, pixel by pixel:

* The field is a circular complex Gaussian random field low-pass filtered by a circular pupil
  (Goodman), so its intensity is fully developed speckle whose grain size ``grain_px`` is set by
  the pupil radius. Pixels sample the field at their centres.
* Light from moving scatterers (fraction ρ) has the field autocorrelation
  g1(τ) = exp(−τ/τc) (Lorentzian, unordered motion), with a per-pixel correlation time τc(x, y);
  light from static scatterers (fraction 1 − ρ) is a second, frozen speckle field
  (Parthasarathy et al. 2008).
* The camera integrates the intensity over the exposure T, converts photoelectrons (Poisson) with
  read noise, gain and dark offset to ADU, and clips at the bit depth.

With fully developed, polarised speckle sampled at points (β = 1) the exposure-averaged
intensity has the contrast of the visibility equation (Bandyopadhyay et al. 2005; Boas & Dunn
2010)::

    K² = (e^(−2x) − 1 + 2x) / (2x²),   x = T/τc,

and with a static fraction the multi-exposure model of Parthasarathy et al. (2008).

Units: lengths in pixels, times in seconds, signals in photoelectrons (``_e``) or ADU (``_adu``).
Relative flow is proportional to 1/τc.

References
----------
.. [1] J. W. Goodman, *Speckle Phenomena in Optics*, Roberts & Company, 2007, ch. 4–5.
.. [2] R. Bandyopadhyay et al., "Speckle-visibility spectroscopy: a tool to study time-varying
   dynamics", Rev. Sci. Instrum. 76, 093110 (2005).
.. [3] D. A. Boas and A. K. Dunn, "Laser speckle contrast imaging in biomedical optics",
   J. Biomed. Opt. 15, 011109 (2010).
.. [4] A. B. Parthasarathy et al., "Robust flow measurement with multi-exposure speckle imaging",
   Opt. Express 16, 1975–1989 (2008).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from lsci._arrays import check_out, frame_shape
from lsci.sim._kernels import expose, expose_serial

__all__ = [
    "SUPPORTED_BIT_DEPTHS",
    "SpeckleSimulator",
    "skin_flow_map",
    "skin_reflectance_map",
    "soft_disk",
    "speckle_pattern",
]

SUPPORTED_BIT_DEPTHS: Final = (8, 10, 12, 14, 16)

# First zero of J1: the intensity autocorrelation of a circular pupil, |2J1(u)/u|², first
# vanishes at u = 3.8317, which fixes the pupil radius for a given grain diameter.
_J1_FIRST_ZERO: Final = 3.831705970207512

# Sub-steps: the largest step in units of the shortest τc, and the bounds on their number.
# The second moments are exact whatever the step (see SpeckleSimulator, Notes); the step only
# shapes the higher moments and the frame-to-frame correlation of the fastest pixels.
_MAX_STEP_OVER_TAU: Final = 1.0
_MIN_SUBSTEPS: Final = 8
_MAX_SUBSTEPS: Final = 256

# Independent pupil-filtered fields from which the innovations are drawn: enough pixels in all
# that their sample statistics match the Gaussian ones to a few 0.1 %, few layers for big frames.
_BANK_PIXELS: Final = 2**20
_BANK_MIN_LAYERS: Final = 4
_BANK_MAX_LAYERS: Final = 256

# Pixel-steps per frame below which one thread does the whole exposure: a parallel region costs
# milliseconds of CPU (idle OpenMP workers spin after it), more than it saves on small frames.
_PARALLEL_MIN_WORK: Final = 2**20

# Below this n·δ the sampled average of e^(−δ|j−k|) uses its series (see _sampled_average).
_SERIES_X: Final = 1e-4

SeedLike = int | np.random.Generator | None
Shape2D = tuple[int, int]


def _check_grain(grain_px: float) -> float:
    if not (math.isfinite(grain_px) and grain_px >= 1.0):
        raise ValueError(f"grain_px must be a finite number >= 1 pixel, got {grain_px!r}")
    return float(grain_px)


def _check_positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_non_negative(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _as_map(name: str, value: ArrayLike, shape: Shape2D) -> NDArray[np.float64]:
    """``value`` (scalar or array of ``shape``) as a new C-contiguous float64 map."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 0 and array.shape != shape:
        raise ValueError(f"{name} must be a scalar or an array of shape {shape}, got {array.shape}")
    return np.array(np.broadcast_to(array, shape), dtype=np.float64, order="C")


def _check_tau_c(tau_c_s: ArrayLike, shape: Shape2D) -> NDArray[np.float64]:
    tau = _as_map("tau_c_s", tau_c_s, shape)
    if np.isnan(tau).any():
        raise ValueError("tau_c_s must be > 0 seconds everywhere, got NaN")
    if (tau <= 0.0).any():
        raise ValueError(
            f"tau_c_s must be > 0 seconds (np.inf for a static scatterer) everywhere, "
            f"got minimum {float(tau.min())!r}"
        )
    return tau


def _check_timing(
    exposure_s: float, frame_interval_s: float | None, current_interval_s: float
) -> tuple[float, float]:
    """Validated (exposure, interval); the interval defaults to ``max(current, exposure)``."""
    exposure = _check_positive("exposure_s", exposure_s)
    if frame_interval_s is None:
        return exposure, max(current_interval_s, exposure)
    interval = _check_positive("frame_interval_s", frame_interval_s)
    if interval < exposure:
        raise ValueError(
            f"frame_interval_s must be >= exposure_s ({exposure!r} s), got {frame_interval_s!r}"
        )
    return exposure, interval


def _pupil_amplitude(shape: Shape2D, grain_px: float) -> NDArray[np.float64]:
    """Amplitude transfer function on the DFT grid, unit mean square.

    The pupil is a disk of radius ``k_c = 3.8317 / (π · grain_px)`` cycles per pixel. Point
    sampling at the pixel centres folds the parts of the disk beyond the Nyquist frequency back
    onto the grid, so the power spectrum of the sampled field is the sum of the disk's aliases;
    its covariance at integer lags is then exactly the Airy function of the continuous field.
    """
    k_c = _J1_FIRST_ZERO / (math.pi * grain_px)
    fy = np.fft.fftfreq(shape[0])[:, np.newaxis]
    fx = np.fft.fftfreq(shape[1])[np.newaxis, :]
    reach = math.ceil(k_c + 0.5)
    power = np.zeros(shape)
    for ky in range(-reach, reach + 1):
        for kx in range(-reach, reach + 1):
            power += (fy + ky) ** 2 + (fx + kx) ** 2 <= k_c * k_c
    if not power.any():
        # A grain larger than the grid: only the mean survives.
        power[0, 0] = 1.0
    amplitude: NDArray[np.float64] = np.sqrt(power / power.mean())
    return amplitude


def _gaussian_field(
    amplitude: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.complex128]:
    """A circular complex Gaussian field of unit variance with spectrum ``amplitude²``."""
    shape = amplitude.shape
    white = rng.standard_normal((2, *shape))
    spectrum = (white[0] + 1j * white[1]) * (amplitude * math.sqrt(0.5 * amplitude.size))
    field: NDArray[np.complex128] = np.fft.ifft2(spectrum)
    return field


def speckle_pattern(
    shape: Sequence[int], grain_px: float, *, rng: SeedLike = None
) -> NDArray[np.float64]:
    """A static, fully developed speckle intensity image.

    Parameters
    ----------
    shape : tuple of int
        Image shape (rows, columns) in pixels.
    grain_px : float
        Speckle diameter in pixels: the full width, between first zeros, of the intensity
        autocorrelation (the Airy disk diameter 2.44 λ f/# (1 + M) of the imaging system,
        Goodman). Must be >= 1; sampling needs >= 2 (Kirkpatrick et al. 2008).
    rng : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    numpy.ndarray of float64
        Intensity with expected value 1 at every pixel, exponentially distributed (contrast 1).

    Raises
    ------
    ValueError
        If ``shape`` is not two positive integers or ``grain_px`` < 1.

    Notes
    -----
    A circular complex Gaussian field with a flat spectrum is filtered by a circular pupil of
    radius ``k_c = 3.8317 / (π · grain_px)`` cycles per pixel; its intensity has the
    autocorrelation ``1 + |2 J1(u)/u|²`` with ``u = 2π k_c r`` (Goodman 2007, §4.4 and §5.4),
    which first vanishes at ``r = grain_px / 2``. Frequencies beyond Nyquist are folded back,
    which is what sampling the continuous field at the pixel centres does.

    References
    ----------
    .. [1] J. W. Goodman, *Speckle Phenomena in Optics*, Roberts & Company, 2007.
    .. [2] S. J. Kirkpatrick, D. D. Duncan and E. M. Wells-Gray, "Detrimental effects of
       speckle-pixel size matching in laser speckle contrast imaging", Opt. Lett. 33,
       2886–2888 (2008).

    Examples
    --------
    >>> from lsci.sim.speckle import speckle_pattern
    >>> image = speckle_pattern((256, 256), 4.0, rng=1)
    >>> image.shape, bool(0.9 < image.mean() < 1.1), bool(0.9 < image.std() / image.mean() < 1.1)
    ((256, 256), True, True)
    """
    dims = frame_shape(shape)
    amplitude = _pupil_amplitude(dims, _check_grain(grain_px))
    field = _gaussian_field(amplitude, np.random.default_rng(rng))
    intensity: NDArray[np.float64] = field.real**2 + field.imag**2
    return intensity


def _g(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(e^(−u) − 1 + u) / u²`` for ``u >= 0``; a Taylor series where the closed form cancels."""
    small = u < 0.1
    safe = np.where(small, 1.0, u)
    closed = (np.expm1(-safe) + safe) / safe**2
    series = 0.5 - u / 6.0 + u**2 / 24.0 - u**3 / 120.0 + u**4 / 720.0 - u**5 / 5040.0
    result: NDArray[np.float64] = np.where(small, series, closed)
    return result


def _sampled_average(decay: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """``(1/n²) Σ_{j,k<n} r^|j−k|`` with ``r = e^(−decay)``: the discrete counterpart of ``2g``.

    The closed form loses ``eps/(n·decay)``; below ``n·decay = 1e-4`` the second-order series
    in ``decay`` (moments of ``|j − k|``: ``(n² − 1)/(3n)`` and ``(n² − 1)/6``) is used.
    """
    small = decay * n < _SERIES_X
    d = np.where(small, 1.0, decay)
    r = np.exp(-d)
    one_minus_r = -np.expm1(-d)
    one_minus_rn = -np.expm1(-n * d)
    tail = r * (n * one_minus_r - one_minus_rn) / one_minus_r**2
    series = 1.0 - decay * (n * n - 1.0) / (3.0 * n) + decay**2 * (n * n - 1.0) / 12.0
    result: NDArray[np.float64] = np.where(small, series, (n + 2.0 * tail) / n**2)
    return result


def _moment_gains(
    x: NDArray[np.float64], n_sub: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gains that give the sample means of the field and of the intensity their exact variances.

    For a complex OU field of unit variance, the continuous exposure average of the field has
    ``E|A|² = 2 g(x)`` and that of the intensity has ``Var B = 2 g(2x)``; the average of ``n``
    equally spaced samples has ``D(x/n)`` and ``D(2x/n)`` instead (:func:`_sampled_average`).
    """
    field_gain = np.sqrt(2.0 * _g(x) / _sampled_average(x / n_sub, n_sub))
    intensity_gain = np.sqrt(2.0 * _g(2.0 * x) / _sampled_average(2.0 * x / n_sub, n_sub))
    return field_gain, intensity_gain


def _substeps(exposure_s: float, max_rate: float) -> int:
    """Number of samples per exposure: steps of at most τc_min, within the fixed bounds."""
    wanted = math.ceil(exposure_s * max_rate / _MAX_STEP_OVER_TAU)
    return min(max(wanted, _MIN_SUBSTEPS), _MAX_SUBSTEPS)


class SpeckleSimulator:
    """A stream of raw camera frames of dynamic laser speckle.

    Parameters
    ----------
    shape : tuple of int
        Frame shape (rows, columns) in pixels.
    tau_c_s : float or array_like
        Correlation time τc in seconds, a scalar or a map of ``shape``; ``np.inf`` marks a
        static scatterer. Must be > 0. Relative flow is proportional to 1/τc.
    exposure_s : float
        Exposure time T in seconds, > 0.
    frame_interval_s : float, optional
        Time between the starts of consecutive exposures, >= ``exposure_s``; defaults to
        ``exposure_s`` (no dead time). Consecutive frames are correlated through the field's
        evolution during this interval, as a camera sees them.
    grain_px : float
        Speckle diameter in pixels (first-zero width of the intensity autocorrelation, see
        :func:`speckle_pattern`), >= 1.
    static_fraction : float or array_like
        Fraction 1 − ρ of the light from static scatterers, in [0, 1] (Parthasarathy et al.
        2008); scalar or map.
    illumination : float or array_like
        Relative mean intensity (illumination × reflectance), >= 0; scalar or map. The expected
        signal of a pixel is ``mean_signal_e · illumination``.
    mean_signal_e : float
        Expected photoelectrons per pixel per exposure where ``illumination`` is 1, >= 0. It
        does not change with the exposure, as in multi-exposure systems that scale the laser
        power with the exposure (Parthasarathy et al. 2008).
    gain_adu_per_e : float
        Camera gain in ADU per photoelectron, > 0.
    read_noise_e : float
        Standard deviation of the Gaussian read noise in electrons, >= 0.
    dark_offset_adu : float
        Dark offset (black level) in ADU, >= 0.
    bit_depth : int
        ADC bit depth, one of 8, 10, 12, 14, 16. Frames are uint8 for 8 bits, uint16 otherwise,
        with values in [0, 2**bit_depth − 1]; larger values saturate.
    noise : bool
        If False, frames carry neither shot nor read noise (only rounding and saturation).
    seed : int, numpy.random.Generator or None
        Seed or generator; the same seed gives the same frames.

    Raises
    ------
    ValueError
        If a parameter is outside its range; the message names it.

    Notes
    -----
    The field of the moving scatterers, normalised to unit variance, evolves at every pixel as a
    complex Ornstein–Uhlenbeck process, ``E(t + h) = a E(t) + sqrt(1 − a²) W`` with
    ``a = exp(−h/τc)``, so ``g1(τ) = exp(−τ/τc)``. The innovation ``W`` is a pupil-filtered
    complex Gaussian field, which keeps the speckle grain; it is one of a bank of independent
    fields under a random circular shift and a random phase, which makes innovations of
    different sub-steps uncorrelated at the cost of one array read (no FFT per sub-step); the
    step across the dead time between frames mixes two such fields, so that no frame is a
    translated copy of another.
    Because the process is defined pixel by pixel, τc is exactly the correlation time of each
    pixel; where τc changes within a grain the field loses a little spatial coherence.

    The exposure is sampled at ``n`` equally spaced instants (steps of at most the shortest τc,
    8 to 256 samples). A sample average over-estimates the variance of the continuous
    integral, by a factor ``(δ coth δ)`` for ``x ≫ 1`` with ``δ = T/(n τc)``; the simulator
    removes this error exactly: the sample means of the field (``A``) and of the intensity
    (``B``) are rescaled about their ensemble means so that ``E|A|² = 2g(x)`` and
    ``Var B = 2g(2x)`` with ``g(u) = (e^(−u) − 1 + u)/u²``, their continuous-time values. The
    exposure-averaged intensity ``(1 − ρ)|E_s|² + 2 sqrt(ρ(1 − ρ)) Re(E_s* A) + ρ B`` (``E_s``
    the static field) therefore has the second moments of the continuous model at every x:
    ``K² = 2g(2x)`` without static scatterers (Bandyopadhyay et al. 2005) and
    ``K² = ρ² 2g(2x) + 4ρ(1 − ρ) g(x) + (1 − ρ)²`` over the ensemble with them (Parthasarathy
    et al. 2008), with β = 1. Only the higher moments and the correlation between consecutive
    frames keep a discretisation error, which shrinks with ``δ`` (``δ <= 1`` up to x = 256).

    Photoelectrons are Poisson distributed around ``mean_signal_e · illumination · intensity``;
    ``ADU = round(gain_adu_per_e · (electrons + read noise) + dark_offset_adu)`` (to the nearest
    integer), clipped to ``[0, 2**bit_depth − 1]``.

    References
    ----------
    .. [1] J. W. Goodman, *Speckle Phenomena in Optics*, Roberts & Company, 2007.
    .. [2] R. Bandyopadhyay et al., Rev. Sci. Instrum. 76, 093110 (2005).
    .. [3] D. A. Boas and A. K. Dunn, J. Biomed. Opt. 15, 011109 (2010).
    .. [4] A. B. Parthasarathy et al., Opt. Express 16, 1975–1989 (2008).

    Examples
    --------
    >>> from lsci.sim.speckle import SpeckleSimulator
    >>> camera = SpeckleSimulator((64, 64), tau_c_s=1e-3, exposure_s=5e-3, seed=0)
    >>> frame = camera.next_frame()
    >>> frame.dtype, frame.shape
    (dtype('uint16'), (64, 64))
    >>> camera.frames(3).shape
    (3, 64, 64)
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        tau_c_s: ArrayLike,
        exposure_s: float,
        frame_interval_s: float | None = None,
        grain_px: float = 4.0,
        static_fraction: ArrayLike = 0.0,
        illumination: ArrayLike = 1.0,
        mean_signal_e: float = 2000.0,
        gain_adu_per_e: float = 0.5,
        read_noise_e: float = 2.0,
        dark_offset_adu: float = 100.0,
        bit_depth: int = 12,
        noise: bool = True,
        seed: SeedLike = None,
    ) -> None:
        self._shape = frame_shape(shape)
        self._grain_px = _check_grain(grain_px)
        self._tau_c_s = _check_tau_c(tau_c_s, self._shape)
        self._exposure_s, self._frame_interval_s = _check_timing(exposure_s, frame_interval_s, 0.0)
        static = _as_map("static_fraction", static_fraction, self._shape)
        if not ((static >= 0.0) & (static <= 1.0)).all():
            raise ValueError("static_fraction must lie in [0, 1] everywhere")
        illum = _as_map("illumination", illumination, self._shape)
        if not (np.isfinite(illum) & (illum >= 0.0)).all():
            raise ValueError("illumination must be finite and >= 0 everywhere")
        if bit_depth not in SUPPORTED_BIT_DEPTHS:
            raise ValueError(f"bit_depth must be one of {SUPPORTED_BIT_DEPTHS}, got {bit_depth!r}")
        self._mean_signal_e = _check_non_negative("mean_signal_e", mean_signal_e)
        self._gain = _check_positive("gain_adu_per_e", gain_adu_per_e)
        self._read_noise_e = _check_non_negative("read_noise_e", read_noise_e)
        self._dark_offset_adu = _check_non_negative("dark_offset_adu", dark_offset_adu)
        self._bit_depth = int(bit_depth)
        self._dtype: np.dtype[np.unsignedinteger] = (
            np.dtype(np.uint8) if bit_depth == 8 else np.dtype(np.uint16)
        )
        self._noise = bool(noise)
        self._rng = np.random.default_rng(seed)

        # Amplitudes of the static and of the moving field, and the illumination (see kernel).
        self._mixing = np.stack([np.sqrt(static), np.sqrt(1.0 - static), illum])
        self._steps = np.empty((4, *self._shape))
        self._scratch = np.empty(self._shape)
        self._first_step_s = math.nan
        amplitude = _pupil_amplitude(self._shape, self._grain_px)
        self._static_field = _gaussian_field(amplitude, self._rng)
        self._state = _gaussian_field(amplitude, self._rng)
        n_layers = min(max(_BANK_PIXELS // amplitude.size, _BANK_MIN_LAYERS), _BANK_MAX_LAYERS)
        self._bank = np.empty((n_layers, *self._shape), dtype=np.complex64)
        for layer in self._bank:
            field = _gaussian_field(amplitude, self._rng)
            # Exact unit power per layer: the innovations then carry exactly unit variance.
            layer[...] = field / math.sqrt(float(np.mean(field.real**2 + field.imag**2)))

        self._update_dynamics()
        # The initial state is the stationary field at the first sample of the first frame;
        # afterwards the time from the last sample to the start of the next exposure.
        self._gap_s: float | None = None
        self._time_s = 0.0
        self._frame_index = 0

    # -- read-only state -------------------------------------------------------------------

    @property
    def shape(self) -> Shape2D:
        """Frame shape (rows, columns)."""
        return self._shape

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger]:
        """dtype of the raw frames (uint8 for 8 bits, uint16 otherwise)."""
        return self._dtype

    @property
    def bit_depth(self) -> int:
        """ADC bit depth."""
        return self._bit_depth

    @property
    def grain_px(self) -> float:
        """Speckle diameter in pixels."""
        return self._grain_px

    @property
    def exposure_s(self) -> float:
        """Current exposure time in seconds."""
        return self._exposure_s

    @property
    def frame_interval_s(self) -> float:
        """Current time between the starts of consecutive exposures, in seconds."""
        return self._frame_interval_s

    @property
    def tau_c_s(self) -> NDArray[np.float64]:
        """A copy of the current correlation-time map in seconds."""
        return self._tau_c_s.copy()

    @property
    def n_substeps(self) -> int:
        """Number of field samples per exposure."""
        return self._n_sub

    @property
    def frame_index(self) -> int:
        """Index of the next frame."""
        return self._frame_index

    @property
    def time_s(self) -> float:
        """Start time of the next exposure in seconds (the first starts at 0)."""
        return self._time_s

    # -- control ---------------------------------------------------------------------------

    def set_tau_c(self, tau_c_s: ArrayLike, *, where: ArrayLike | None = None) -> None:
        """Change the correlation time from the next frame on; the field evolves on unbroken.

        Parameters
        ----------
        tau_c_s : float or array_like
            New τc in seconds (scalar or map of ``shape``), > 0, ``np.inf`` for static.
        where : array_like of bool, optional
            Mask of ``shape``: only these pixels change (e.g. a patch whose perfusion
            recovers). All pixels change when omitted.

        Raises
        ------
        ValueError
            If ``tau_c_s`` or ``where`` is invalid.
        """
        tau = _check_tau_c(tau_c_s, self._shape)
        if where is not None:
            mask = np.asarray(where)
            if mask.dtype != np.bool_ or mask.shape != self._shape:
                raise ValueError(
                    f"where must be a boolean array of shape {self._shape}, "
                    f"got {mask.dtype} {mask.shape}"
                )
            tau = np.where(mask, tau, self._tau_c_s)
        self._tau_c_s = tau
        self._update_dynamics()

    def set_exposure(self, exposure_s: float, *, frame_interval_s: float | None = None) -> None:
        """Change the exposure (and frame interval) from the next frame on.

        Parameters
        ----------
        exposure_s : float
            Exposure time in seconds, > 0.
        frame_interval_s : float, optional
            Time between exposure starts, >= ``exposure_s``; by default the current interval,
            or ``exposure_s`` if that is shorter than the new exposure.

        Raises
        ------
        ValueError
            If ``exposure_s`` <= 0 or ``frame_interval_s`` < ``exposure_s``.
        """
        self._exposure_s, self._frame_interval_s = _check_timing(
            exposure_s, frame_interval_s, self._frame_interval_s
        )
        self._update_dynamics()

    def _update_dynamics(self) -> None:
        with np.errstate(divide="ignore"):
            self._rate = 1.0 / self._tau_c_s
        self._n_sub = _substeps(self._exposure_s, float(self._rate.max()))
        self._gains = np.stack(_moment_gains(self._exposure_s * self._rate, self._n_sub))
        self._set_steps(2, self._exposure_s / self._n_sub)
        self._first_step_s = math.nan

    def _set_steps(self, index: int, step_s: float) -> None:
        """AR(1) coefficients ``a = exp(−h/τc)`` and ``sqrt(1 − a²)`` of a step ``h``."""
        self._steps[index] = np.exp(-step_s * self._rate)
        # expm1 keeps the innovation exact for steps ≪ τc.
        self._steps[index + 1] = np.sqrt(-np.expm1(-2.0 * step_s * self._rate))

    # -- frames ----------------------------------------------------------------------------

    def next_intensity(self, out: NDArray[np.floating] | None = None) -> NDArray[np.floating]:
        """Advance one frame and return its noise-free exposure-averaged intensity.

        Parameters
        ----------
        out : numpy.ndarray of float32 or float64, optional
            C-contiguous array of ``shape`` to write into.

        Returns
        -------
        numpy.ndarray
            Exposure-averaged intensity in units of the mean intensity where ``illumination``
            is 1 (its expected value is ``illumination``); float64 unless ``out`` is given.

        Raises
        ------
        TypeError
            If ``out`` is not a float32 or float64 array.
        ValueError
            If ``out`` has the wrong shape or is not C-contiguous.
        """
        if out is None:
            out = np.empty(self._shape, dtype=np.float64)
        check_out(out, self._shape, contiguous=True)
        n_sub = self._n_sub
        step = self._exposure_s / n_sub
        first_step = 0.0 if self._gap_s is None else self._gap_s + 0.5 * step
        if first_step != self._first_step_s:
            self._set_steps(0, first_step)
            self._first_step_s = first_step
        rows, cols = self._shape
        rng = self._rng
        n_layers = self._bank.shape[0]
        layers = rng.integers(0, n_layers, n_sub + 1)
        # The first sample's second innovation comes from another layer (see the kernel).
        layers[n_sub] = (layers[0] + rng.integers(1, n_layers)) % n_layers
        args = (
            self._state,
            self._bank,
            layers,
            rng.integers(0, rows, n_sub + 1),
            rng.integers(0, cols, n_sub + 1),
            np.exp(2j * np.pi * rng.random(n_sub + 1)),
            self._steps,
            self._gains,
            self._mixing,
            self._static_field,
            out,
        )
        if rows * cols * n_sub < _PARALLEL_MIN_WORK:
            expose_serial(*args)
        else:
            expose(*args, min(numba.get_num_threads(), rows))
        self._gap_s = self._frame_interval_s - self._exposure_s + 0.5 * step
        self._time_s += self._frame_interval_s
        self._frame_index += 1
        return out

    def next_frame(
        self, out: NDArray[np.unsignedinteger] | None = None
    ) -> NDArray[np.unsignedinteger]:
        """Advance one frame and return its raw counts.

        Parameters
        ----------
        out : numpy.ndarray, optional
            Array of ``shape`` and :attr:`dtype` to write into.

        Returns
        -------
        numpy.ndarray of uint8 or uint16
            Raw counts in ``[0, 2**bit_depth − 1]``.

        Raises
        ------
        TypeError
            If ``out`` has the wrong dtype.
        ValueError
            If ``out`` has the wrong shape.
        """
        if out is None:
            out = np.empty(self._shape, dtype=self._dtype)
        check_out(out, self._shape, (self._dtype,))
        electrons = self.next_intensity(out=self._scratch)
        electrons *= self._mean_signal_e
        if self._noise:
            electrons = self._rng.poisson(electrons).astype(np.float64)
            if self._read_noise_e > 0.0:
                electrons += self._rng.normal(0.0, self._read_noise_e, self._shape)
        counts = electrons
        counts *= self._gain
        counts += self._dark_offset_adu
        np.rint(counts, out=counts)
        np.clip(counts, 0.0, float(2**self._bit_depth - 1), out=counts)
        out[...] = counts
        return out

    def frames(self, n: int) -> NDArray[np.unsignedinteger]:
        """The next ``n`` raw frames as an array of shape ``(n, rows, columns)``.

        Raises
        ------
        ValueError
            If ``n`` < 0.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        stack = np.empty((n, *self._shape), dtype=self._dtype)
        for frame in stack:
            self.next_frame(out=frame)
        return stack

    def intensities(self, n: int) -> NDArray[np.float64]:
        """The next ``n`` noise-free intensities (see :meth:`next_intensity`), float64.

        Raises
        ------
        ValueError
            If ``n`` < 0.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        stack = np.empty((n, *self._shape), dtype=np.float64)
        for frame in stack:
            self.next_intensity(out=frame)
        return stack


def _smooth_noise(
    shape: Shape2D, length_px: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Random texture with Gaussian correlation of length ``length_px``; zero mean, unit std."""
    fy = np.fft.fftfreq(shape[0])[:, np.newaxis]
    fx = np.fft.fftfreq(shape[1])[np.newaxis, :]
    kernel = np.exp(-2.0 * (math.pi * length_px) ** 2 * (fy**2 + fx**2))
    texture = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * kernel).real
    texture -= texture.mean()
    spread = texture.std()
    return texture / spread if spread > 0.0 else texture


def _vessel_distance(shape: Shape2D) -> NDArray[np.float64]:
    """Distance in pixels to a gently curved vessel crossing the frame left to right.

    The centreline is ``y = 0.3 H + 0.08 H sin(2π x / W)``; the distance is the vertical offset
    projected on the local normal, exact enough for a vessel a few pixels wide.
    """
    rows, cols = shape
    y = np.arange(rows, dtype=np.float64)[:, np.newaxis]
    x = np.arange(cols, dtype=np.float64)[np.newaxis, :]
    phase = 2.0 * math.pi * x / cols
    centre = 0.3 * rows + 0.08 * rows * np.sin(phase)
    slope = 0.08 * rows * 2.0 * math.pi / cols * np.cos(phase)
    distance: NDArray[np.float64] = np.abs(y - centre) / np.sqrt(1.0 + slope**2)
    return distance


def soft_disk(
    shape: Sequence[int], center: tuple[float, float], radius_px: float, edge_px: float
) -> NDArray[np.float64]:
    """A disk that is 1 inside and 0 outside, with a raised-cosine edge.

    Parameters
    ----------
    shape : tuple of int
        Map shape (rows, columns) in pixels.
    center : tuple of float
        (row, column) of the disk's centre in pixels.
    radius_px : float
        Radius to the middle of the edge, where the map is 1/2, in pixels.
    edge_px : float
        Width of the edge in pixels, centred on the radius; 0 for a sharp edge (1 up to
        the radius inclusive).

    Returns
    -------
    numpy.ndarray of float64
        Weights in [0, 1]: exactly 1 within ``radius_px - edge_px / 2`` and exactly 0 beyond
        ``radius_px + edge_px / 2``.

    Examples
    --------
    >>> from lsci.sim.speckle import soft_disk
    >>> disk = soft_disk((9, 9), (4.0, 4.0), 3.0, 2.0)
    >>> float(disk[4, 4]), float(disk[4, 7]), float(disk[4, 8])
    (1.0, 0.5, 0.0)
    """
    dims = frame_shape(shape)
    y = np.arange(dims[0], dtype=np.float64)[:, np.newaxis]
    x = np.arange(dims[1], dtype=np.float64)[np.newaxis, :]
    r = np.hypot(y - center[0], x - center[1])
    if edge_px > 0.0:
        t = np.clip((r - (radius_px - 0.5 * edge_px)) / edge_px, 0.0, 1.0)
        weight: NDArray[np.float64] = 0.5 * (1.0 + np.cos(math.pi * t))
        return weight
    return (r <= radius_px).astype(np.float64)


def skin_flow_map(
    shape: Sequence[int],
    *,
    baseline_tau_c_s: float = 1e-3,
    ischemic_center: tuple[float, float] | None = None,
    ischemic_radius_px: float | None = None,
    ischemic_factor: float = 5.0,
    edge_px: float | None = None,
    vessel: bool = True,
    vessel_factor: float = 0.2,
    vessel_width_px: float | None = None,
    texture: float = 0.15,
    texture_px: float | None = None,
    rng: SeedLike = None,
) -> NDArray[np.float64]:
    """Correlation-time map of a skin patch with an ischemic region and a vessel.

    Parameters
    ----------
    shape : tuple of int
        Map shape (rows, columns) in pixels.
    baseline_tau_c_s : float
        τc of normally perfused skin in seconds, > 0 (skin: about 0.1–5 ms).
    ischemic_center : tuple of float, optional
        (row, column) of the ischemic region's centre in pixels; the frame centre by default.
    ischemic_radius_px : float, optional
        Radius of the ischemic region in pixels, >= 0 (0: none); ``min(shape) / 5`` by default.
    ischemic_factor : float
        τc inside the ischemic region divided by the baseline, > 0; > 1 is slower flow (the
        relative flow there is ``1 / ischemic_factor``).
    edge_px : float, optional
        Width of the raised-cosine transition at the region's edge in pixels, >= 0;
        ``ischemic_radius_px / 4`` by default.
    vessel : bool
        Add a curved vessel crossing the frame in its upper third.
    vessel_factor : float
        τc on the vessel axis divided by the baseline, > 0; < 1 is faster flow.
    vessel_width_px : float, optional
        Full width at half maximum of the vessel's flow profile in pixels, > 0;
        ``min(shape) / 25`` (at least 2) by default.
    texture : float
        Standard deviation of the natural logarithm of the flow in the smooth random
        heterogeneity of the tissue, >= 0.
    texture_px : float, optional
        Correlation length of that heterogeneity in pixels, > 0; ``min(shape) / 16`` by default.
    rng : int, numpy.random.Generator or None
        Seed or generator for the texture.

    Returns
    -------
    numpy.ndarray of float64
        τc in seconds. Relative flow is ``baseline_tau_c_s / tau_c``.

    Raises
    ------
    ValueError
        If a parameter is outside its range; the message names it.

    Notes
    -----
    The logarithm of the relative flow is the sum of ``−w ln(ischemic_factor)`` (``w`` the
    region's mask, 1 inside, raised-cosine edge), ``−v ln(vessel_factor)`` (``v`` a Gaussian
    profile across the vessel) and the texture; τc is the baseline divided by the flow, as
    flow ∝ 1/τc (Boas & Dunn 2010).

    Examples
    --------
    >>> from lsci.sim.speckle import skin_flow_map
    >>> tau = skin_flow_map((128, 128), baseline_tau_c_s=1e-3, ischemic_factor=5.0, rng=0)
    >>> bool(tau[64, 64] > 3 * tau[120, 10])
    True
    """
    dims = frame_shape(shape)
    baseline = _check_positive("baseline_tau_c_s", baseline_tau_c_s)
    _check_positive("ischemic_factor", ischemic_factor)
    _check_positive("vessel_factor", vessel_factor)
    _check_non_negative("texture", texture)
    size = float(min(dims))
    radius = _check_non_negative(
        "ischemic_radius_px", size / 5.0 if ischemic_radius_px is None else ischemic_radius_px
    )
    edge = _check_non_negative("edge_px", radius / 4.0 if edge_px is None else edge_px)
    width = _check_positive(
        "vessel_width_px", max(size / 25.0, 2.0) if vessel_width_px is None else vessel_width_px
    )
    length = _check_positive("texture_px", size / 16.0 if texture_px is None else texture_px)
    cy, cx = (
        ((dims[0] - 1) / 2.0, (dims[1] - 1) / 2.0) if ischemic_center is None else ischemic_center
    )
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise ValueError(f"ischemic_center must be finite (row, column), got {ischemic_center!r}")

    mask = soft_disk(dims, (cy, cx), radius, edge)
    log_flow = -mask * math.log(ischemic_factor)
    if vessel:
        sigma = width / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        profile = np.exp(-0.5 * (_vessel_distance(dims) / sigma) ** 2)
        log_flow = log_flow - profile * math.log(vessel_factor)
    if texture > 0.0:
        log_flow = log_flow + texture * _smooth_noise(dims, length, np.random.default_rng(rng))
    tau: NDArray[np.float64] = baseline * np.exp(-log_flow)
    return tau


def skin_reflectance_map(
    shape: Sequence[int],
    *,
    beam_radius_px: float | None = None,
    texture: float = 0.08,
    texture_px: float | None = None,
    vessel: bool = True,
    vessel_contrast: float = 0.25,
    vessel_width_px: float | None = None,
    rng: SeedLike = None,
) -> NDArray[np.float64]:
    """Relative mean-intensity map of laser-lit skin, for ``illumination``.

    Parameters
    ----------
    shape : tuple of int
        Map shape (rows, columns) in pixels.
    beam_radius_px : float, optional
        1/e² radius of the Gaussian laser spot in pixels, > 0; ``0.9 · max(shape)`` by default
        (gentle vignetting).
    texture : float
        Relative standard deviation of the smooth reflectance texture, in [0, 1).
    texture_px : float, optional
        Correlation length of the texture in pixels, > 0; ``min(shape) / 12`` by default.
    vessel : bool
        Darken along the same vessel as :func:`skin_flow_map` (blood absorbs).
    vessel_contrast : float
        Fractional darkening on the vessel axis, in [0, 1).
    vessel_width_px : float, optional
        Full width at half maximum of the darkening in pixels, > 0; as in
        :func:`skin_flow_map` by default.
    rng : int, numpy.random.Generator or None
        Seed or generator for the texture.

    Returns
    -------
    numpy.ndarray of float64
        Non-negative map with mean 1.

    Raises
    ------
    ValueError
        If a parameter is outside its range; the message names it.

    Examples
    --------
    >>> from lsci.sim.speckle import skin_reflectance_map
    >>> illumination = skin_reflectance_map((64, 64), rng=0)
    >>> round(float(illumination.mean()), 6), bool(illumination.min() > 0)
    (1.0, True)
    """
    dims = frame_shape(shape)
    size = float(min(dims))
    radius = _check_positive(
        "beam_radius_px", 0.9 * max(dims) if beam_radius_px is None else beam_radius_px
    )
    if not 0.0 <= texture < 1.0:
        raise ValueError(f"texture must lie in [0, 1), got {texture!r}")
    if not 0.0 <= vessel_contrast < 1.0:
        raise ValueError(f"vessel_contrast must lie in [0, 1), got {vessel_contrast!r}")
    length = _check_positive("texture_px", size / 12.0 if texture_px is None else texture_px)
    width = _check_positive(
        "vessel_width_px", max(size / 25.0, 2.0) if vessel_width_px is None else vessel_width_px
    )
    y = np.arange(dims[0], dtype=np.float64)[:, np.newaxis] - (dims[0] - 1) / 2.0
    x = np.arange(dims[1], dtype=np.float64)[np.newaxis, :] - (dims[1] - 1) / 2.0
    reflectance = np.exp(-2.0 * (y**2 + x**2) / radius**2)
    if texture > 0.0:
        noise = _smooth_noise(dims, length, np.random.default_rng(rng))
        # Log-normal keeps the map positive; its relative spread is ≈ texture.
        reflectance = reflectance * np.exp(texture * noise)
    if vessel:
        sigma = width / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        reflectance = reflectance * (
            1.0 - vessel_contrast * np.exp(-0.5 * (_vessel_distance(dims) / sigma) ** 2)
        )
    result: NDArray[np.float64] = reflectance / reflectance.mean()
    return result
