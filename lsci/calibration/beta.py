"""The coherence factor β measured from a static target."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt

from lsci.calibration.noise import fundamental_k2, subtract_dark
from lsci.calibration.stored import (
    _MODES,
    BETA_TOLERANCE,
    BetaCalibration,
    CalibrationError,
    CalibrationWarning,
    CameraNoise,
    ContrastMode,
    DarkFrame,
    _check_window,
)
from lsci.core.contrast import spatial_contrast, temporal_contrast

__all__ = ["calibrate_beta"]


def calibrate_beta(
    frames: npt.ArrayLike,
    *,
    mode: ContrastMode = "spatial",
    window: int = 7,
    ddof: int = 0,
    edges: Literal["reflect", "mirror", "nearest", "wrap", "valid"] = "valid",
    mask: npt.ArrayLike | None = None,
    dark: DarkFrame | None = None,
    camera: CameraNoise | None = None,
    exposure_s: float | None = None,
    keep_map: bool = True,
) -> BetaCalibration:
    """Measure β = ⟨K²⟩ on a recording of a static scatterer (a teflon block).

    Parameters
    ----------
    frames : (T, M, N) array_like
        Raw frames of the target. ``mode='spatial'``: a static scatterer (any T ≥ 1).
        ``mode='temporal'``: a scatterer frozen during each exposure but decorrelated from frame
        to frame (a slowly moved diffuser, frames far apart): the temporal contrast of a truly
        static target is 0, which cannot calibrate anything.
    mode : {'spatial', 'temporal'}
        The contrast the measurements use.
    window : int
        The measurement's window: odd spatial side w, or temporal frame count N (T ≥ N; the
        frames are cut in consecutive blocks of N).
    ddof : {0, 1}
        The measurement's variance divisor.
    edges : str, optional
        Spatial border mode (:func:`lsci.core.contrast.spatial_contrast`); ``'valid'`` (default)
        keeps only full windows, so the border does not bias β.
    mask : (M, N) array_like of bool, optional
        True at valid pixels (for example without saturated ones).
    dark : DarkFrame, optional
        Subtracted from the frames before anything else.
    camera : CameraNoise, optional
        If given, the camera-noise bias of K² is removed
        (:func:`lsci.calibration.noise.correct_k2`) before
        averaging, so β is the fundamental speckle contrast.
    exposure_s : float, optional
        Recorded in the result, for the record.
    keep_map : bool, optional
        Keep the per-pixel β map in the result.

    Returns
    -------
    BetaCalibration

    Raises
    ------
    ValueError
        If the frames or a parameter are invalid.
    CalibrationError
        If ⟨K²⟩ is not in (0, 1 + BETA_TOLERANCE] (see the module's β policy), or no pixel is
        valid.

    Warns
    -----
    CalibrationWarning
        When ⟨K²⟩ is in (1, 1 + BETA_TOLERANCE] and is clipped to 1.

    Notes
    -----
    For a static target x = T/τc → 0 and the visibility equation gives K² = β (Boas & Dunn
    2010, eq. 12). β is the mean of K² (not of K, whose mean is lower) over all windows and
    frames; ``beta_median`` and ``k2_spread`` describe the per-pixel map, averaged over frames
    (spatial) or blocks (temporal).

    References
    ----------
    .. [1] D. A. Boas and A. K. Dunn, "Laser speckle contrast imaging in biomedical optics",
           J. Biomed. Opt. 15, 011109 (2010). :doi:`10.1117/1.3285504`
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    stack = np.asarray(frames)
    if stack.ndim != 3 or stack.shape[0] < 1:
        raise ValueError(f"frames must be a (T, M, N) stack, got shape {stack.shape}")
    _check_window(mode, window)
    if mode == "temporal" and stack.shape[0] < window:
        raise ValueError(
            f"temporal calibration needs at least window={window} frames, got {stack.shape[0]}"
        )
    if exposure_s is not None and not exposure_s > 0:
        raise ValueError(f"exposure_s must be > 0 seconds, got {exposure_s}")
    valid = None if mask is None else np.asarray(mask, dtype=bool)
    if camera is not None:
        k2 = fundamental_k2(
            stack, camera, dark=dark, mode=mode, window=window, ddof=ddof, edges=edges, mask=valid
        )[0].astype(np.float64)
    else:
        data = subtract_dark(stack, dark) if dark is not None else stack
        if mode == "spatial":
            k = spatial_contrast(data, window, ddof=ddof, edges=edges, mask=valid)
        else:
            k = temporal_contrast(data, window, ddof=ddof, mask=valid)
        k2 = k.astype(np.float64) ** 2
    finite = np.isfinite(k2)
    if not finite.any():
        raise CalibrationError("no valid pixel in the calibration frames")
    measured = float(k2[finite].mean())
    counts = finite.sum(axis=0)
    per_pixel = np.full(k2.shape[1:], np.nan)
    np.divide(np.where(finite, k2, 0.0).sum(axis=0), counts, out=per_pixel, where=counts > 0)
    good = per_pixel[np.isfinite(per_pixel)]
    beta = _accept_beta(measured)
    return BetaCalibration(
        beta=beta,
        mode=mode,
        window=int(window),
        ddof=int(ddof),
        beta_median=float(np.median(good)),
        k2_spread=float(good.std()),
        n_frames=int(stack.shape[0]),
        beta_map=per_pixel.astype(np.float32) if keep_map else None,
        exposure_s=exposure_s,
    )


def _accept_beta(measured: float) -> float:
    if not measured > 0:
        raise CalibrationError(
            f"measured β = ⟨K²⟩ = {measured:.3g}: no speckle contrast. For temporal contrast the "
            "target must decorrelate between frames (a truly static target gives K = 0)."
        )
    if measured > 1.0 + BETA_TOLERANCE:
        raise CalibrationError(
            f"measured β = ⟨K²⟩ = {measured:.3f} > 1 + {BETA_TOLERANCE}: not fully developed "
            "static speckle (non-uniform illumination, a structured target, saturation?)"
        )
    if measured > 1.0:
        warnings.warn(
            f"measured β = ⟨K²⟩ = {measured:.4f} slightly above 1; clipped to 1",
            CalibrationWarning,
            stacklevel=3,
        )
        return 1.0
    return measured
