"""Camera-noise correction of speckle contrast: dark subtraction and the K² noise bias.

Shot noise, read noise and quantisation add variance to every pixel, so the measured K² is the
speckle's own ("fundamental") K² plus a bias that grows as the light gets dimmer. After dark
subtraction (Kim et al. 2023, the SCOS noise model)::

    K²_fundamental = K²_total − G/⟨I⟩ − σ²_read/⟨I⟩² − (1/12)/⟨I⟩² [− K²_spatial]

Units: ⟨I⟩ is the dark-subtracted mean intensity in ADU, the gain G in ADU per photoelectron
(the shot-noise variance of a signal of ⟨I⟩ ADU is G·⟨I⟩ ADU²), σ_read the read noise in ADU
(``CameraNoise.read_noise_adu``), 1/12 ADU² the variance of rounding to integers. K²_spatial is a
known extra term from fixed-pattern (pixel-to-pixel) heterogeneity of a spatial window; zero
unless measured.

A dark frame's per-pixel variance (:class:`lsci.calibration.stored.DarkFrame`) already holds read
noise
and the quantisation of the dark signal; when it is given as the read variance the separate 1/12
term is not subtracted again.

References
----------
.. [1] B. Kim, S. Zilpelwar, E. J. Sie, F. Marsili, B. Zimmermann, D. A. Boas and X. Cheng,
       "Measuring human cerebral blood flow and brain function with fiber-based speckle
       contrast optical spectroscopy system", Commun. Biol. 6, 844 (2023).
       :doi:`10.1038/s42003-023-05211-4`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from lsci._arrays import as_real, check_out
from lsci.core.contrast import spatial_contrast, spatial_mean, temporal_contrast, temporal_mean

if TYPE_CHECKING:
    from lsci.calibration.stored import CameraNoise, DarkFrame

__all__ = [
    "correct_k2",
    "fundamental_k2",
    "local_mean",
    "noise_k2",
    "subtract_dark",
]

#: Variance of rounding a continuous value to an integer ADU, ADU².
QUANTISATION_VARIANCE_ADU2 = 1.0 / 12.0


def subtract_dark(
    frames: npt.ArrayLike, dark: DarkFrame, *, out: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    """Subtract a dark frame's per-pixel mean from raw frames.

    Parameters
    ----------
    frames : (M, N) or (T, M, N) array_like
        Raw frames, ADU.
    dark : DarkFrame
        Dark calibration of the same frame size (and exposure, gain).
    out : ndarray of float32, optional
        Output of the frames' shape.

    Returns
    -------
    ndarray of float32
        ``frames − dark.mean``, ADU; may be negative where the signal is below the dark level.

    Raises
    ------
    ValueError
        If the frame size differs from the dark frame's or ``out`` has the wrong shape.
    TypeError
        If ``out`` is not a float32 array.
    """
    data = np.asarray(frames)
    dark_mean = np.asarray(dark.mean, dtype=np.float32)
    if data.ndim not in (2, 3) or data.shape[-2:] != dark_mean.shape:
        raise ValueError(
            f"frames of shape {data.shape} do not match the dark frame {dark_mean.shape}"
        )
    check_out(out, data.shape, (np.dtype(np.float32),))
    result: npt.NDArray[np.float32] = np.subtract(data, dark_mean, dtype=np.float32)
    if out is None:
        return result
    out[...] = result
    return out


def local_mean(
    frames: npt.ArrayLike,
    window: int,
    *,
    mode: Literal["spatial", "temporal"] = "spatial",
    edges: Literal["reflect", "mirror", "nearest", "wrap", "valid"] = "reflect",
    step: int | None = None,
    mask: npt.ArrayLike | None = None,
    out: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """Mean intensity over the same windows :mod:`lsci.core.contrast` uses for K.

    The means come from the contrast kernels themselves (:func:`lsci.core.contrast.spatial_mean`,
    :func:`lsci.core.contrast.temporal_mean`), so the windows, edges and mask rules are those
    of K by construction.

    Parameters
    ----------
    frames : (M, N) or (T, M, N) array_like
        Frames (spatial), or a (T, M, N) stack (temporal); uint8, uint16, float32 or float64.
    window : int
        Odd spatial side w, or temporal frame count N.
    mode : {'spatial', 'temporal'}
        Which windows.
    edges : str, optional
        Spatial border mode, as in :func:`lsci.core.contrast.spatial_contrast`.
    step : int, optional
        Temporal step between windows (default ``window``), as in
        :func:`lsci.core.contrast.temporal_contrast`.
    mask : array_like of bool, optional
        True at valid pixels, (M, N) or the frames' shape; the mean is over the valid samples,
        NaN where the pixel is masked or its window holds no valid sample.
    out : ndarray, optional
        C-contiguous float32 or float64 array of the output shape.

    Returns
    -------
    ndarray
        The shape :mod:`lsci.core.contrast` gives for the same settings; float32 unless ``out``
        is float64 (integer sums are exact, float input is summed in float64).

    Raises
    ------
    ValueError
        If the shapes or settings are invalid.
    TypeError
        If a dtype is not supported.
    """
    if mode == "spatial":
        return spatial_mean(frames, window, edges=edges, mask=mask, out=out)
    if mode != "temporal":
        raise ValueError(f"mode must be 'spatial' or 'temporal', got {mode!r}")
    return temporal_mean(frames, window, step=step, mask=mask, out=out)


def noise_k2(
    mean_adu: npt.ArrayLike,
    camera: CameraNoise,
    *,
    read_variance_adu2: float | npt.ArrayLike | None = None,
    n_samples: int | None = None,
    ddof: int = 0,
) -> npt.NDArray[np.float64]:
    """The camera-noise bias of K²: shot + read + quantisation (Kim et al. 2023).

    Parameters
    ----------
    mean_adu : array_like
        Dark-subtracted mean intensity of each window, ADU.
    camera : CameraNoise
        Gain (ADU/e⁻) and read noise.
    read_variance_adu2 : float or array_like, optional
        Read-noise variance in ADU², for example a dark frame's per-pixel variance; it is then
        taken to include quantisation. Default: ``camera.read_noise_adu²`` plus 1/12 ADU².
    n_samples, ddof : int, optional
        Samples per contrast window and the variance divisor ``n − ddof`` used for K. White
        noise adds ``(n − 1)/(n − ddof)`` of its variance to such an estimate (a factor 48/49 for
        7 × 7 with ddof = 0); without ``n_samples`` the factor is 1.

    Returns
    -------
    ndarray of float64
        ``f · (G/⟨I⟩ + σ²/⟨I⟩²)``; NaN where ``mean_adu <= 0`` or is not finite.
    """
    mean = np.asarray(mean_adu, dtype=np.float64)
    if read_variance_adu2 is None:
        variance: float | npt.NDArray[np.float64] = (
            camera.read_noise_adu**2 + QUANTISATION_VARIANCE_ADU2
        )
    else:
        variance = np.asarray(read_variance_adu2, dtype=np.float64)
        if np.any(variance < 0):
            raise ValueError("read_variance_adu2 must be >= 0")
    factor = 1.0
    if n_samples is not None:
        if n_samples < 2 or ddof not in (0, 1):
            raise ValueError(f"need n_samples >= 2 and ddof in (0, 1), got {n_samples}, {ddof}")
        factor = (n_samples - 1) / (n_samples - ddof)
    good = np.isfinite(mean) & (mean > 0)
    safe = np.where(good, mean, 1.0)
    bias = factor * (camera.gain_adu_per_e / safe + variance / safe**2)
    return np.where(good, bias, np.nan)


def correct_k2(
    k2: npt.ArrayLike,
    mean_adu: npt.ArrayLike,
    camera: CameraNoise,
    *,
    read_variance_adu2: float | npt.ArrayLike | None = None,
    k2_spatial: float | npt.ArrayLike = 0.0,
    n_samples: int | None = None,
    ddof: int = 0,
    out: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """Remove the camera-noise bias from a measured K² map.

    Parameters
    ----------
    k2 : array_like
        Measured K² (square of :mod:`lsci.core.contrast`'s K) of dark-subtracted frames.
    mean_adu : array_like
        Dark-subtracted mean intensity over the same windows (:func:`local_mean`), ADU;
        broadcastable to ``k2``.
    camera : CameraNoise
        Gain and read noise.
    read_variance_adu2, n_samples, ddof
        See :func:`noise_k2`.
    k2_spatial : float or array_like, optional
        Known spatial-heterogeneity term, subtracted as well.
    out : ndarray, optional
        Output of the result's dtype and shape (:mod:`lsci._arrays`).

    Returns
    -------
    ndarray
        ``K² − noise_k2`` (may be slightly negative where noise dominates; not clipped, so
        averages stay unbiased); float32 for float32 ``k2``, else float64; NaN where
        ``mean_adu <= 0``.

    Raises
    ------
    ValueError
        If the shapes do not broadcast or ``out`` has the wrong shape.
    TypeError
        If ``k2`` is not real-valued or ``out`` does not have the result's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from lsci.calibration.stored import CameraNoise
    >>> camera = CameraNoise(gain_adu_per_e=0.5, read_noise_e=2.0)
    >>> correct_k2(np.array([0.30]), np.array([50.0]), camera)  # 0.30 − 0.01 − (1 + 1/12)/2500
    array([0.28956667])
    """
    measured = as_real("k2", k2)
    dtype = measured.dtype
    bias = noise_k2(
        mean_adu, camera, read_variance_adu2=read_variance_adu2, n_samples=n_samples, ddof=ddof
    )
    try:
        corrected = measured.astype(np.float64) - bias - np.asarray(k2_spatial, dtype=np.float64)
    except ValueError:
        raise ValueError(
            f"k2 {measured.shape}, mean_adu {np.shape(mean_adu)} and k2_spatial "
            f"{np.shape(k2_spatial)} do not broadcast together"
        ) from None
    if corrected.shape != measured.shape:
        raise ValueError(
            f"mean_adu {np.shape(mean_adu)} must broadcast to the shape of k2 {measured.shape}"
        )
    check_out(out, measured.shape, (dtype,))
    if out is None:
        return corrected.astype(dtype)
    out[...] = corrected
    return out


def fundamental_k2(
    frames: npt.ArrayLike,
    camera: CameraNoise,
    *,
    dark: DarkFrame | None = None,
    mode: Literal["spatial", "temporal"] = "spatial",
    window: int = 7,
    ddof: int = 0,
    edges: Literal["reflect", "mirror", "nearest", "wrap", "valid"] = "reflect",
    mask: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Noise-corrected K² and mean intensity straight from raw frames.

    Subtracts ``dark`` (if given), computes K with :mod:`lsci.core.contrast` and the mean over the
    same windows, and removes the noise bias (:func:`correct_k2`). With a dark frame, its
    per-pixel variance (averaged over each window) is the read variance; without, the camera's
    read noise plus quantisation.

    Parameters
    ----------
    frames : (M, N) or (T, M, N) array_like
        Raw frames, ADU ((T, M, N) for temporal contrast).
    camera : CameraNoise
        Gain and read noise.
    dark : DarkFrame, optional
        Dark calibration. Without it the frames must already be dark-subtracted.
    mode, window, ddof, edges, mask
        As in :func:`lsci.core.contrast.spatial_contrast` /
        :func:`lsci.core.contrast.temporal_contrast`
        (temporal windows in consecutive blocks); ``mask`` True at valid pixels.

    Returns
    -------
    k2 : ndarray of float32
        Corrected K², the shape :mod:`lsci.core.contrast` gives.
    mean_adu : ndarray of float32
        Dark-subtracted mean intensity over the same windows.
    """
    data = subtract_dark(frames, dark) if dark is not None else np.asarray(frames)
    valid = None if mask is None else np.asarray(mask, dtype=bool)
    read_variance: npt.NDArray[np.floating[Any]] | None = None
    if mode == "spatial":
        k = spatial_contrast(data, window, ddof=ddof, edges=edges, mask=valid)
        mean = local_mean(data, window, mode="spatial", edges=edges, mask=valid)
        n_samples = window * window
        if dark is not None:
            read_variance = local_mean(dark.variance, window, edges=edges, mask=valid)
    elif mode == "temporal":
        k = temporal_contrast(data, window, ddof=ddof, mask=valid)
        mean = local_mean(data, window, mode="temporal", mask=valid)
        n_samples = window
        if dark is not None:
            read_variance = np.asarray(dark.variance, dtype=np.float64)
    else:
        raise ValueError(f"mode must be 'spatial' or 'temporal', got {mode!r}")
    k2 = correct_k2(
        k.astype(np.float64) ** 2,
        mean,
        camera,
        read_variance_adu2=read_variance,
        n_samples=n_samples,
        ddof=ddof,
    )
    return k2.astype(np.float32), mean.astype(np.float32)
