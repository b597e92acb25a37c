"""Rigid translation between two images: phase correlation with sub-pixel refinement.

The "after" recording of a before/after comparison is rarely taken with the camera in exactly the
same place. :func:`register_translation` measures the translation between the two mean-intensity
images (or maps) and says how much it trusts the answer; :func:`apply_shift` moves an image by
that translation, leaving NaN where the moved image has no data. A registration that cannot be
trusted raises :class:`RegistrationError` instead of returning a shift that would silently
compare misaligned pixels.

Convention (as ``skimage.registration.phase_cross_correlation``): the shift ``(dy, dx)`` returned
for ``(reference, moving)`` is the one that, applied to ``moving`` with :func:`apply_shift`,
aligns it with ``reference``. If ``moving[r, c] == reference[r - sy, c - sx]`` (moving is the
reference displaced by ``(sy, sx)``), the returned shift is ``(-sy, -sx)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.errors import LsciError

__all__ = [
    "Registration",
    "RegistrationError",
    "apply_shift",
    "register_translation",
]

# A correlation peak closer than this (pixels) to the main peak belongs to it: a sub-pixel
# shift spreads the peak over its neighbours.
_PEAK_EXCLUSION_RADIUS_PX = 3
# Cross-correlation passes that refine the phase-correlation shift, and how far (pixels) from
# it they look (see register_translation).
_REFINEMENT_PASSES = 2
_RESIDUAL_RADIUS_PX = 2
# Cross-power magnitudes below this many times the median count as noise (see
# _weighted_cross_power).
_NOISE_FLOOR_FACTOR = 10.0


class RegistrationError(LsciError):
    """The translation between two images could not be measured reliably."""


@dataclass(frozen=True)
class Registration:
    """The translation that aligns a moving image with a reference, and how reliable it is.

    Attributes
    ----------
    shift_px : tuple of float
        ``(dy, dx)`` in pixels (rows, columns): apply it to the moving image with
        :func:`apply_shift` to align it with the reference.
    peak_height : float
        Height of the normalised phase-correlation peak at the refined position. 1 for a
        pure circular shift of an image; lower with windowing, noise, content change.
    peak_ratio : float
        Peak height divided by the highest other local maximum of the correlation (farther
        than 3 pixels from the peak): 1 to 2.5 for unrelated images, large for a clear match.
    """

    shift_px: tuple[float, float]
    peak_height: float
    peak_ratio: float

    def to_dict(self) -> dict[str, Any]:
        """The registration as plain Python values (for JSON)."""
        return asdict(self) | {"shift_px": list(self.shift_px)}


def register_translation(
    reference: npt.ArrayLike,
    moving: npt.ArrayLike,
    *,
    upsample_factor: int = 20,
    window: bool = True,
    min_peak_ratio: float = 3.0,
    max_shift_px: float | None = None,
) -> Registration:
    """Measure the translation between two images by phase correlation.

    Parameters
    ----------
    reference : (M, N) array_like
        The fixed image (for example the mean intensity of the "before" recording). NaN and
        infinite pixels are replaced by the mean of the finite ones.
    moving : (M, N) array_like
        The image to align with ``reference``, same shape.
    upsample_factor : int, optional
        Sub-pixel precision: the peak is refined on a grid of ``1 / upsample_factor`` pixels.
        1 gives whole pixels.
    window : bool, optional
        Multiply both images by a 2-D Hann window before the Fourier transform, so the image
        borders (which a circular transform joins edge to edge) do not create a false peak at
        zero shift.
    min_peak_ratio : float, optional
        Refuse (raise :class:`RegistrationError`) when the correlation peak is not at least this
        many times higher than the next-highest peak (see Notes).
    max_shift_px : float, optional
        Refuse when the measured shift is longer than this (Euclidean, pixels). ``None``: no limit.

    Returns
    -------
    Registration
        The shift ``(dy, dx)`` to apply to ``moving`` and the quality of the match.

    Raises
    ------
    ValueError
        If the images are not 2-D, differ in shape, are smaller than 8 × 8 pixels or have no
        finite pixel, or a parameter is out of range.
    RegistrationError
        If the peak ratio is below ``min_peak_ratio`` (unrelated or featureless images) or the
        shift exceeds ``max_shift_px``.

    Notes
    -----
    Detection: the phase of the cross-power spectrum ``C = F_ref · conj(F_mov)`` has an inverse
    transform ``r`` with a sharp peak at the shift (phase correlation, Kuglin & Hines 1975).
    Each frequency is weighted by ``|C|² / (|C|² + ε²)`` with ``ε`` ten times the median
    ``|C|``, so frequencies at noise level (most of them, in a smooth image) fade out instead of
    drowning the peak; ``r`` is divided by the mean weight, so a perfect match peaks at 1
    (``peak_height``). ``peak_ratio`` divides the peak by the highest *local maximum* of ``r``
    farther than 3 pixels from it. On unrelated images of 48 px and more it stayed below 2.5
    in our tests (very smooth or smaller images can reach higher: raise ``min_peak_ratio``
    for them); matching images typically give 5 to 20.

    Sub-pixel position: the integer peak is refined by evaluating the inverse transform on a
    grid of ``1 / upsample_factor`` pixels over ±0.75 pixel around it, with two small matrix
    products (the matrix-multiply DFT of Guizar-Sicairos et al.), at ``O(M N U)`` instead of an
    ``U``-times larger FFT. Phase correlation places the peak of a smooth image only to within
    about a pixel (its few strong frequencies, the window), so the moving image is then moved
    by the estimate and the remaining shift measured by plain cross-correlation (the
    maximum-likelihood estimate for white noise) within ±2 pixels, twice. Images are
    mean-subtracted before windowing so that a bright background does not dominate.

    References
    ----------
    .. [1] C. D. Kuglin and D. C. Hines, "The phase correlation image alignment method",
           Proc. IEEE Int. Conf. Cybernetics and Society, 163-165, 1975.
    .. [2] M. Guizar-Sicairos, S. T. Thurman and J. R. Fienup, "Efficient subpixel image
           registration algorithms", Opt. Lett. 33, 156-158 (2008). :doi:`10.1364/OL.33.000156`

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.random((64, 64))
    >>> moving = np.roll(reference, (3, -2), axis=(0, 1))
    >>> register_translation(reference, moving).shift_px
    (-3.0, 2.0)
    """
    ref = _as_image(reference, "reference")
    mov = _as_image(moving, "moving")
    if ref.shape != mov.shape:
        raise ValueError(
            f"reference and moving must have the same shape, got {ref.shape} and {mov.shape}"
        )
    if isinstance(upsample_factor, bool) or not isinstance(upsample_factor, int | np.integer):
        raise TypeError(f"upsample_factor must be an int, got {type(upsample_factor).__name__}")
    if upsample_factor < 1:
        raise ValueError(f"upsample_factor must be >= 1, got {upsample_factor}")
    if not np.isfinite(min_peak_ratio) or min_peak_ratio < 1:
        raise ValueError(f"min_peak_ratio must be a finite number >= 1, got {min_peak_ratio}")
    if max_shift_px is not None and not max_shift_px >= 0:
        raise ValueError(f"max_shift_px must be >= 0 or None, got {max_shift_px}")

    ref_w = _prepare(ref, window)
    shift, height, ratio = _one_pass(ref_w, _prepare(mov, window), upsample_factor)
    if ratio < min_peak_ratio:
        raise RegistrationError(
            f"registration unreliable: the phase-correlation peak is only {ratio:.2f} times the "
            f"next one (at least {min_peak_ratio:g} required). The images do not show the same "
            "scene, or show too little structure; check that both recordings image the same "
            "field of view, or compare without registration (register=False)."
        )
    # Phase correlation finds the peak reliably, but the few strong frequencies of a smooth
    # image place it to within about a pixel only. Plain cross-correlation of the image moved
    # by the estimate (the maximum-likelihood shift for white noise) measures what is left.
    for _ in range(_REFINEMENT_PASSES):
        moved = _fill_missing(apply_shift(mov, shift))
        residual = _residual_shift(ref_w, _prepare(moved, window), upsample_factor)
        shift = shift + residual
        if float(np.abs(residual).max()) < 0.5 / upsample_factor:
            break
    result = Registration(
        shift_px=(float(shift[0]), float(shift[1])), peak_height=height, peak_ratio=ratio
    )
    if max_shift_px is not None and float(np.hypot(*shift)) > max_shift_px:
        raise RegistrationError(
            f"registration found a shift of {np.hypot(*shift):.1f} px "
            f"(dy={shift[0]:.2f}, dx={shift[1]:.2f}), more than max_shift_px={max_shift_px:g}"
        )
    return result


def apply_shift(
    image: npt.ArrayLike,
    shift_px: tuple[float, float] | npt.ArrayLike,
    *,
    out: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """Translate an image by ``(dy, dx)`` pixels with bilinear interpolation.

    Parameters
    ----------
    image : (M, N) array_like
        The image. NaN pixels stay NaN and spread to the output pixels that interpolate from
        them with a non-zero weight.
    shift_px : (2,) array_like of float
        ``(dy, dx)``: ``out[r, c] = image[r - dy, c - dx]``, interpolated.
    out : (M, N) ndarray, optional
        Output array of the result dtype.

    Returns
    -------
    shifted : (M, N) ndarray
        Float array (``numpy.result_type(image.dtype, float32)``: float32 for float32 and
        8/16-bit integer input, float64 for float64). Pixels whose source lies outside the
        image are NaN.

    Raises
    ------
    ValueError
        If ``image`` is not 2-D, ``shift_px`` does not hold two finite numbers or ``out`` has the
        wrong shape or dtype.

    Notes
    -----
    Bilinear interpolation is done as two separable 1-D linear interpolations. An integer shift
    copies pixels exactly. Unlike a Fourier shift it neither wraps content around the border
    nor rings around NaN pixels or sharp edges.

    Examples
    --------
    >>> import numpy as np
    >>> apply_shift(np.arange(4.0).reshape(1, 4), (0, 1.5))
    array([[nan, nan, 0.5, 1.5]])
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    shift = np.asarray(shift_px, dtype=np.float64)
    if shift.shape != (2,) or not np.all(np.isfinite(shift)):
        raise ValueError(f"shift_px must be two finite numbers (dy, dx), got {shift_px!r}")
    dtype = np.result_type(img.dtype, np.float32)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"image must hold real numbers, got dtype {img.dtype}")
    if out is not None and (out.shape != img.shape or out.dtype != dtype):
        raise ValueError(
            f"out must have shape {img.shape} and dtype {dtype}, got {out.shape} and {out.dtype}"
        )
    moved = _shift_axis(img.astype(dtype, copy=False), float(shift[0]), axis=0)
    moved = _shift_axis(moved, float(shift[1]), axis=1)
    if out is None:
        return moved
    out[...] = moved
    return out


def _shift_axis(
    img: npt.NDArray[np.floating[Any]], shift: float, axis: int
) -> npt.NDArray[np.floating[Any]]:
    """``out[i] = img[i - shift]`` along one axis, linear interpolation, NaN outside."""
    n = img.shape[axis]
    whole = int(np.floor(shift))
    frac = shift - whole
    # out[i] = (1 - frac) * img[i - whole] + frac * img[i - whole - 1]
    result = np.full_like(img, np.nan)
    index = np.arange(n)
    src = index - whole
    if frac == 0.0:
        ok = (src >= 0) & (src < n)
        _put(result, axis, index[ok], np.take(img, src[ok], axis=axis))
        return result
    ok = (src - 1 >= 0) & (src < n)
    near = np.take(img, src[ok], axis=axis)
    far = np.take(img, src[ok] - 1, axis=axis)
    _put(result, axis, index[ok], (1.0 - frac) * near + frac * far)
    return result


def _put(
    target: npt.NDArray[np.floating[Any]],
    axis: int,
    index: npt.NDArray[np.intp],
    values: npt.NDArray[np.floating[Any]],
) -> None:
    if axis == 0:
        target[index, :] = values
    else:
        target[:, index] = values


def _as_image(image: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D image, got shape {arr.shape}")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ValueError(f"{name} must be at least 8 × 8 pixels to register, got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).any():
        raise ValueError(f"{name} has no finite pixel")
    return _fill_missing(arr)


def _one_pass(
    ref_w: npt.NDArray[np.float64], mov_w: npt.NDArray[np.float64], upsample_factor: int
) -> tuple[npt.NDArray[np.float64], float, float]:
    """One phase correlation of prepared images: shift, peak height, peak ratio."""
    cross = _weighted_cross_power(np.fft.fft2(ref_w), np.fft.fft2(mov_w))
    corr = np.fft.ifft2(cross).real
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    rows, cols = corr.shape
    # Wrap the integer peak to a signed shift: half the image either side of zero.
    coarse = np.array(
        [peak[0] - rows if peak[0] > rows // 2 else peak[0],
         peak[1] - cols if peak[1] > cols // 2 else peak[1]],
        dtype=np.float64,
    )  # fmt: skip
    if upsample_factor > 1:
        shift, height = _refine_peak(cross, coarse, upsample_factor)
    else:
        shift, height = coarse, float(corr[peak])
    second = _second_peak(corr, peak)
    ratio = height / second if second > 0 else float("inf")
    return shift, height, ratio


def _residual_shift(
    ref_w: npt.NDArray[np.float64], mov_w: npt.NDArray[np.float64], upsample_factor: int
) -> npt.NDArray[np.float64]:
    """Peak of the plain cross-correlation within ``_RESIDUAL_RADIUS_PX`` of zero, refined."""
    cross = np.fft.fft2(ref_w) * np.conj(np.fft.fft2(mov_w))
    corr = np.fft.ifft2(cross).real
    rows, cols = corr.shape
    reach = np.arange(-_RESIDUAL_RADIUS_PX, _RESIDUAL_RADIUS_PX + 1)
    near = corr[np.ix_(reach % rows, reach % cols)]
    i, j = np.unravel_index(int(np.argmax(near)), near.shape)
    coarse = np.array([reach[i], reach[j]], dtype=np.float64)
    if upsample_factor == 1:
        return coarse
    return _refine_peak(cross, coarse, upsample_factor)[0]


def _fill_missing(image: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Replace NaN and infinite pixels by the mean of the finite ones (float64 copy)."""
    filled = image.astype(np.float64)
    finite = np.isfinite(filled)
    if not finite.all():
        filled[~finite] = filled[finite].mean()
    return filled


def _prepare(image: npt.NDArray[np.float64], window: bool) -> npt.NDArray[np.float64]:
    centred: npt.NDArray[np.float64] = image - image.mean()
    if window:
        rows, cols = image.shape
        centred *= np.outer(np.hanning(rows), np.hanning(cols))
    return centred


def _weighted_cross_power(
    f_ref: npt.NDArray[np.complex128], f_mov: npt.NDArray[np.complex128]
) -> npt.NDArray[np.complex128]:
    """Phase of the cross-power spectrum, weighted down where its magnitude is at noise level.

    Pure phase correlation gives every frequency the same weight, so the many frequencies where
    a smooth image has only noise drown the few that carry it. The weight
    ``w = |C|² / (|C|² + ε²)`` with ``ε`` = 10 × the median magnitude keeps the phase of the
    strong frequencies and fades out the rest; dividing by the mean weight keeps the peak of a
    perfect match at 1.
    """
    cross = f_ref * np.conj(f_mov)
    magnitude = np.abs(cross)
    if not magnitude.max() > 0:
        raise RegistrationError(
            "registration impossible: an image is uniform (no structure to correlate)"
        )
    # At least a tiny floor, for images whose spectrum is mostly exactly zero.
    eps = max(_NOISE_FLOOR_FACTOR * float(np.median(magnitude)), 1e-12 * float(magnitude.max()))
    weight = magnitude**2 / (magnitude**2 + eps**2)
    phase = np.divide(cross, magnitude, out=np.zeros_like(cross), where=magnitude > 0)
    return np.asarray(weight * phase / weight.mean(), dtype=np.complex128)


def _refine_peak(
    cross: npt.NDArray[np.complex128], coarse: npt.NDArray[np.float64], upsample_factor: int
) -> tuple[npt.NDArray[np.float64], float]:
    """Evaluate ``ifft2(cross)`` on a fine grid around ``coarse``; return the best position."""
    rows, cols = cross.shape
    half = int(np.ceil(0.75 * upsample_factor))
    offsets = np.arange(-half, half + 1) / upsample_factor
    ys = coarse[0] + offsets
    xs = coarse[1] + offsets
    # r(y, x) = 1/(MN) Σ_k Σ_l R[k, l] exp(2πi (f_k y + f_l x)), evaluated at ys × xs.
    ky = np.exp(2j * np.pi * np.outer(ys, np.fft.fftfreq(rows)))
    kx = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(cols), xs))
    fine = (ky @ cross @ kx).real / (rows * cols)
    i, j = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return np.array([ys[i], xs[j]]), float(fine[i, j])


def _second_peak(corr: npt.NDArray[np.float64], peak: tuple[np.intp, ...]) -> float:
    """Highest local maximum of ``corr`` farther than the exclusion radius from ``peak``.

    Local maxima (not just any value) so that the flank of a broad main peak does not count as
    a second peak. Neighbourhoods wrap around, as the correlation does.
    """
    rows, cols = corr.shape
    is_max = np.ones(corr.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_max &= corr >= np.roll(corr, (dy, dx), axis=(0, 1))
    dy = np.abs(np.arange(rows) - peak[0])
    dy = np.minimum(dy, rows - dy)
    dx = np.abs(np.arange(cols) - peak[1])
    dx = np.minimum(dx, cols - dx)
    far = (dy[:, None] ** 2 + dx[None, :] ** 2) > _PEAK_EXCLUSION_RADIUS_PX**2
    candidates = corr[far & is_max]
    return float(candidates.max()) if candidates.size else float(corr[far].max())
