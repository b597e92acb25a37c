"""Speckle contrast K = σ_I / ⟨I⟩: spatial, temporal, spatio-temporal and rolling.

The speckle contrast of a set of intensity samples is their standard deviation over their mean,
``K = σ_I / ⟨I⟩`` (Boas & Dunn, "Laser speckle contrast imaging in biomedical optics",
J. Biomed. Opt. 15(1):011109, 2010). The samples are a w×w window of one frame
(:func:`spatial_contrast`), ``window`` consecutive frames of one pixel
(:func:`temporal_contrast`, :class:`RollingTemporalContrast`) or a w×w×N voxel
(:func:`spatiotemporal_contrast`).

Conventions (the same in every function of this module)
--------------------------------------------------------
Variance
    ``σ² = Σ(I − ⟨I⟩)² / (n − ddof)`` over the n samples: ``ddof=0`` (default) divides by n, as
    most LSCI code does; ``ddof=1`` divides by n − 1 (unbiased variance), which raises K by
    ``sqrt(n / (n − 1))`` (≈1 % for 7×7). K itself is returned, not K²; K > 1 is *not* clamped;
    a negative variance from rounding (float input only) becomes 0.
Zero mean
    Where ⟨I⟩ = 0 (for example a window of zeros) K is NaN.
Dtypes
    Input: uint8, uint16 (including 10/12/14-bit data in 16-bit containers), float32, float64;
    bool, complex and other dtypes raise TypeError. Output: float32, or the dtype of ``out``
    (float32 or float64). Integer input is summed exactly, for any window: uint8 in float32
    while every sum stays below 2²⁴ (up to 258 samples, e.g. 15×15 or 7×7×5), else in int32
    (never in float32 above 2²⁴); uint16 in float64 (integer sums exact below 2⁵³). Then
    ``n·ΣI² − (ΣI)²`` is formed in float64 (exact below 2⁵³: up to 37×37 full-range 16-bit
    windows; beyond, its rounding error is ≈1e-16/K² relative) and turned into K with one
    float32 square root and one division: K is within ≈2e-7 relative of the float64 value.
    There is no integer overflow for any window the frame holds.
    Float input is summed in float64 after subtracting an offset (the centre pixel of each frame
    for spatial windows, the first frame of each pixel for temporal windows, the centre pixel of
    the first frame for masked and spatio-temporal windows), which keeps the error of K within
    ≈1e-6 relative for K ≥ 1e-3 and intensities within 1e6× of the offset. Float input must be
    finite: a NaN or inf spoils the running sums of its whole band of rows (or pixel); exclude
    such pixels with ``mask`` instead.
Edges (spatial windows)
    ``edges`` names how the frame is extended beyond its border, with SciPy's names
    (``scipy.ndimage`` modes), or ``'valid'``:

    - ``'reflect'`` (default): half-sample symmetric, the edge pixel repeated,
      ``d c b a | a b c d | d c b a`` (SciPy 'reflect', NumPy ``np.pad`` 'symmetric',
      OpenCV BORDER_REFLECT);
    - ``'mirror'``: whole-sample symmetric, ``d c b | a b c d | c b a`` (SciPy 'mirror', NumPy
      'reflect', OpenCV BORDER_REFLECT_101);
    - ``'nearest'``: ``a a a | a b c d | d d d``; ``'wrap'``: ``b c d | a b c d | a b c``;
    - ``'valid'``: only windows fully inside the frame; the output is cropped by w − 1 rows and
      columns (shape (H − w + 1, W − w + 1)).

    The window must fit the frame (w ≤ min(H, W)) in every mode.
Masks
    ``mask`` is a boolean array, True for valid pixels: shape (H, W) (the same for every frame)
    or the full shape of ``frames``. Masked pixels are left out of every window's sums (also
    where they appear through edge reflection), and the output is NaN where the pixel itself is
    masked (has no valid sample in its time window) and where a window holds fewer than
    ``min_valid`` valid samples (default 2; always at least ddof + 1). n in the variance is the
    number of valid samples of that window.
Windows and shapes
    Spatial windows are odd (3, 5, 7, ...), centred on their pixel. Temporal windows are any
    length ≥ 2; with ``step`` s, output map b covers frames ``b·s .. b·s + window − 1`` and a
    stack of T frames gives ``(T − window) // s + 1`` maps (trailing frames that do not fill a
    window are not used).
Performance
    Work per pixel does not depend on the window size for temporal windows (running sums) and
    grows only with log4(w) for spatial ones (column running sums, then radix-4 level sums along
    the row); large inputs run on all numba threads (``numba.set_num_threads``), small ones on one.
    Kernels are compiled on first use and cached on disk. Non-contiguous input (slices,
    transposes) is copied frame by frame (spatial) or in slabs of rows (temporal) into a
    contiguous buffer; spatio-temporal and masked temporal windows make one contiguous copy of
    such a stack. Contiguous input is never copied.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from typing import Any, Literal

import numba
import numpy as np
import numpy.typing as npt

from lsci._arrays import INTENSITY_DTYPES, as_int, frame_shape, prepare_out
from lsci.core._kernels import contrast as _k

__all__ = [
    "EDGE_MODES",
    "RollingTemporalContrast",
    "spatial_contrast",
    "spatial_mean",
    "spatiotemporal_contrast",
    "temporal_contrast",
    "temporal_mean",
]

Edges = Literal["reflect", "mirror", "nearest", "wrap", "valid"]
EDGE_MODES: tuple[str, ...] = ("reflect", "mirror", "nearest", "wrap", "valid")

_SUPPORTED = INTENSITY_DTYPES
_SUPPORTED_NAMES = "uint8, uint16, float32 or float64"
# Non-contiguous input is copied into contiguous buffers of about this many bytes at a time.
_CHUNK_BYTES = 1 << 24


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _as_frames(frames: npt.ArrayLike, ndims: tuple[int, ...], what: str) -> np.ndarray:
    x = np.asarray(frames)
    if x.dtype == np.bool_:
        raise TypeError(
            f"frames must be intensities ({_SUPPORTED_NAMES}), got a bool array; "
            "pass a mask with mask= instead"
        )
    if x.dtype.kind == "c":
        raise TypeError(
            f"frames must be real intensities ({_SUPPORTED_NAMES}), got complex dtype {x.dtype}; "
            "take the intensity |field|² first"
        )
    if x.dtype not in _SUPPORTED:
        raise TypeError(
            f"frames dtype {x.dtype} is not supported: use {_SUPPORTED_NAMES} "
            "(convert other integer types with .astype(np.float32) or a fitting unsigned type)"
        )
    if x.ndim not in ndims:
        raise ValueError(f"frames must be {what}, got an array with ndim={x.ndim}")
    if x.size == 0:
        raise ValueError(f"frames is empty (shape {x.shape})")
    return x


def _check_spatial_window(window: Any, h: int, w: int, name: str = "window") -> int:
    win = as_int(window, name)
    if win < 3:
        raise ValueError(f"{name} must be an odd integer ≥ 3, got {win}")
    if win % 2 == 0:
        raise ValueError(f"{name} must be odd (a window centred on its pixel), got {win}")
    if win > min(h, w):
        raise ValueError(f"{name} {win} is too large for the {h}×{w} frame (at most {min(h, w)})")
    return win


def _check_temporal_window(window: Any, n_frames: int, name: str = "window") -> int:
    if window is None:
        window = n_frames
    win = as_int(window, name)
    if win < 2:
        raise ValueError(f"{name} must be ≥ 2 frames, got {win}")
    if win > n_frames:
        raise ValueError(f"{name} {win} is larger than the number of frames ({n_frames})")
    return win


def _check_step(step: Any, window: int) -> int:
    if step is None:
        return window
    s = as_int(step, "step")
    if s < 1:
        raise ValueError(f"step must be ≥ 1, got {s}")
    return s


def _check_ddof(ddof: Any) -> int:
    d = as_int(ddof, "ddof")
    if d not in (0, 1):
        raise ValueError(f"ddof must be 0 (divide by n) or 1 (divide by n − 1), got {d}")
    return d


def _check_edges(edges: Any) -> str:
    if edges not in EDGE_MODES:
        raise ValueError(f"edges must be one of {', '.join(map(repr, EDGE_MODES))}, got {edges!r}")
    return str(edges)


def _check_min_valid(min_valid: Any, ddof: int) -> int:
    mv = as_int(min_valid, "min_valid")
    if mv < 1:
        raise ValueError(f"min_valid must be ≥ 1, got {mv}")
    return max(mv, ddof + 1)


def _check_mask(mask: npt.ArrayLike, frames_shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """The mask as uint8 (1, H, W) or (T, H, W) C-contiguous, and whether it varies with time."""
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array (True = valid pixel), got dtype {m.dtype}")
    hw = frames_shape[-2:]
    if m.shape == hw:
        return np.ascontiguousarray(m.view(np.uint8)[None]), False
    if m.shape == frames_shape and len(frames_shape) == 3:
        return np.ascontiguousarray(m.view(np.uint8)), True
    allowed = f"{hw}" if len(frames_shape) == 2 else f"{hw} or {frames_shape}"
    raise ValueError(f"mask shape {m.shape} does not match the frames: expected {allowed}")


@functools.lru_cache(maxsize=64)
def _index_map(n: int, n_out: int, w: int, edges: str) -> np.ndarray:
    """Source index of each of the n_out + w − 1 padded positions along one axis.

    Cached (the kernels only read it): building it costs more than a small frame's K.
    """
    q = np.arange(n_out + w - 1, dtype=np.int64)
    if edges == "valid":
        return q
    q -= w // 2
    if edges == "reflect":
        q = np.where(q < 0, -q - 1, q)
        q = np.where(q >= n, 2 * n - q - 1, q)
    elif edges == "mirror":
        q = np.abs(q)
        q = np.where(q >= n, 2 * n - q - 2, q)
    elif edges == "nearest":
        q = np.clip(q, 0, n - 1)
    else:  # wrap
        q = q % n
    return q


# Below this many input samples a kernel runs single-threaded: starting the thread team costs
# more than the work.
_PARALLEL_MIN_WORK = 1 << 17


def _kernel(name: str, work: int) -> Any:
    """The parallel kernel ``name`` for large inputs, its serial twin for small ones."""
    return getattr(_k, name if work >= _PARALLEL_MIN_WORK else name + "_serial")


def _threads() -> int:
    return max(1, int(numba.get_num_threads()))


def _frame_chunks(x: np.ndarray, multiple: int = 1) -> Iterator[tuple[slice, np.ndarray]]:
    """(frame slice, C-contiguous frames) pieces of a (T, H, W) stack, each a ``multiple`` of
    frames; no copy if contiguous."""
    if x.flags.c_contiguous:
        yield slice(0, x.shape[0]), x
        return
    per = max(1, _CHUNK_BYTES // max(1, x[0].nbytes) // multiple) * multiple
    buf = np.empty((min(per, x.shape[0]), *x.shape[1:]), x.dtype)
    for a in range(0, x.shape[0], per):
        b = min(x.shape[0], a + per)
        np.copyto(buf[: b - a], x[a:b])
        yield slice(a, b), buf[: b - a]


def _accumulator(dtype: np.dtype[Any], n: int) -> tuple[Any, bool]:
    """Accumulator type of the fast kernels for n samples, and whether values get an offset.

    uint8: float32 while n·255² < 2²⁴ (n ≤ 258: every sum is an integer float32 holds exactly,
    and float32 lanes vectorise best), else int32 (exact while n·255² < 2³¹, n ≤ 33025 = 181²);
    uint16 and larger uint8 windows: float64 (integer sums exact below 2⁵³); float input:
    float64 with an offset.
    """
    if dtype == np.uint8 and n * 255 * 255 < 2**24:
        return np.float32, False
    if dtype == np.uint8 and n * 255 * 255 < 2**31:
        return np.int32, False
    return np.float64, dtype.kind == "f"


def _int_k(dtype: np.dtype[Any], n: int) -> bool:
    """Whether K may form n·ΣI² − (ΣI)² in int32: uint8 data (then it equals n²·σ² ≤
    n²·255²/4 < 2³¹ for n ≤ 363; the int32 arithmetic wraps modulo 2³² but the result fits)."""
    return bool(dtype == np.uint8 and n * n * (255 * 255 // 4 + 1) < 2**31)


def _offsets_zero(x: np.ndarray) -> tuple[Any, Any]:
    """Accumulator zero and whether values get an offset, by input dtype (not uint8)."""
    if x.dtype.kind == "f":
        return np.float64(0.0), True
    return np.int64(0), False


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def spatial_contrast(
    frames: npt.ArrayLike,
    window: int = 7,
    *,
    ddof: int = 0,
    edges: Edges = "reflect",
    mask: npt.ArrayLike | None = None,
    min_valid: int = 2,
    average: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Spatial speckle contrast K = σ_I/⟨I⟩ over a ``window``×``window`` neighbourhood.

    Parameters
    ----------
    frames : array_like, shape (H, W) or (T, H, W)
        One frame or a stack of frames (each frame processed on its own); uint8, uint16,
        float32 or float64.
    window : int
        Odd side length w of the square window, 3 ≤ w ≤ min(H, W). Default 7.
    ddof : {0, 1}
        Variance divisor n − ddof, with n = w² (or the number of valid samples with a mask).
    edges : {'reflect', 'mirror', 'nearest', 'wrap', 'valid'}
        Border handling (module docstring). 'valid' crops the output to (H − w + 1, W − w + 1).
    mask : array_like of bool, shape (H, W) or frames.shape, optional
        True for valid pixels; masked pixels are excluded from the sums and are NaN in K.
    min_valid : int
        With a mask, windows with fewer valid pixels give NaN. Default 2.
    average : int
        Return the mean K of every ``average`` consecutive frames (T a multiple of it): shape
        (T // average, H, W). The frames' K maps are summed in order and divided by
        ``average``, as NumPy averages float32 maps, but row by row while the rows are in
        cache, never storing a frame's whole map. Default 1 (K of each frame).
    out : ndarray, optional
        C-contiguous float32 or float64 array of the output shape to write K into.

    Returns
    -------
    ndarray
        K, shape (H, W) / (T // average, H, W) (or cropped with 'valid'), float32 unless
        ``out`` is given.

    References
    ----------
    Boas DA, Dunn AK. Laser speckle contrast imaging in biomedical optics. J Biomed Opt
    15(1):011109, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> k = spatial_contrast(np.full((8, 8), 100, np.uint8), 3)
    >>> k.shape, k.dtype, float(k.max())
    ((8, 8), dtype('float32'), 0.0)
    """
    x = _as_frames(frames, (2, 3), "one frame (H, W) or a stack (T, H, W)")
    squeeze = x.ndim == 2
    x3 = x[None] if squeeze else x
    t, h, wd = x3.shape
    w = _check_spatial_window(window, h, wd)
    ddof = _check_ddof(ddof)
    mode = _check_edges(edges)
    group = _check_average(average, t)
    ho, wo = (h - w + 1, wd - w + 1) if mode == "valid" else (h, wd)
    o = prepare_out(out, (ho, wo) if squeeze else (t // group, ho, wo), contiguous=True)
    o3 = o[None] if squeeze else o
    rowmap = _index_map(h, ho, w, mode)
    colmap = _index_map(wd, wo, w, mode)
    if mask is not None and group > 1:
        per_frame = spatial_contrast(
            x3, w, ddof=ddof, edges=edges, mask=mask, min_valid=min_valid
        ).astype(o.dtype, copy=False)
        o3[...] = per_frame[::group]
        for index in range(1, group):
            o3 += per_frame[index::group]
        o3 /= o.dtype.type(group)
        return o
    if mask is not None:
        m, mask_t = _check_mask(mask, x.shape)
        mv = _check_min_valid(min_valid, ddof)
        zero, use_off = _offsets_zero(x3)
        for sl, xc in _frame_chunks(x3):
            off = zero + (xc[0, h // 2, wd // 2] if use_off else 0)
            mc = m[sl] if mask_t else m
            _kernel("box3d", xc.size)(
                xc, mc, mask_t, o3[sl], 1, 1, w, rowmap, colmap, ddof, mv, _bands(ho, w, 1), off,
                zero, False,
            )  # fmt: skip
        return o
    left = 0 if mode == "valid" else w // 2
    for sl, xc in _frame_chunks(x3, group):
        # Partial sums of the horizontal pass cover up to w·reach samples (see _window_terms).
        acc, use_off = _accumulator(xc.dtype, w * int(_k._window_terms(w)[5]))
        offsets = np.zeros(xc.shape[0], acc)
        if use_off:
            offsets[:] = xc[:, h // 2, wd // 2]
        maps = slice(sl.start // group, sl.stop // group)
        _kernel("spatial_box", xc.size)(
            xc, xc, o3[maps], w, 0, rowmap, colmap, left, ddof,
            _bands(ho, w, xc.shape[0] // group), offsets, use_off, acc, _int_k(xc.dtype, w * w),
            group,
        )  # fmt: skip
    return o


def _check_average(average: int, n_frames: int) -> int:
    if isinstance(average, bool) or not isinstance(average, int | np.integer) or average < 1:
        raise ValueError(f"average={average!r} must be a positive integer")
    if n_frames % average:
        raise ValueError(f"{n_frames} frames are not a whole number of groups of {average}")
    return int(average)


def _bands(rows: int, w: int, n_frames: int) -> int:
    """Row bands per frame: enough jobs for every thread, bands no thinner than a window."""
    want = max(1, -(-2 * _threads() // n_frames))
    return max(1, min(want, rows // max(w, 8)))


def _pixel_chunk(n_pixels: int) -> int:
    return max(256, min(8192, -(-n_pixels // (8 * _threads()))))


def temporal_contrast(
    frames: npt.ArrayLike,
    window: int | None = 25,
    *,
    step: int | None = None,
    ddof: int = 0,
    mask: npt.ArrayLike | None = None,
    min_valid: int = 2,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Temporal speckle contrast K = σ_I/⟨I⟩ of each pixel over ``window`` consecutive frames.

    Parameters
    ----------
    frames : array_like, shape (T, H, W)
        Stack of frames; uint8, uint16, float32 or float64.
    window : int or None
        Frames per window N, 2 ≤ N ≤ T; None uses all T frames (one K map). Default 25.
    step : int, optional
        Frames between the starts of consecutive windows. Default ``window``: non-overlapping
        blocks (one map per block). ``step=1`` slides the window by one frame (one map per new
        frame, as :class:`RollingTemporalContrast` gives once it is full).
    ddof : {0, 1}
        Variance divisor N − ddof.
    mask : array_like of bool, shape (H, W) or (T, H, W), optional
        True for valid samples. With (H, W), masked pixels are NaN; with (T, H, W), masked
        samples are left out of their pixel's sums (n = the valid samples in the window).
    min_valid : int
        With a mask, windows with fewer valid samples give NaN. Default 2.
    out : ndarray, optional
        C-contiguous float32 or float64 array of the output shape.

    Returns
    -------
    ndarray, shape ((T − N) // step + 1, H, W)
        One K map per window, float32 unless ``out`` is given. With the defaults
        (step = N) and T = N, or ``window=None``, that is a single map of shape (1, H, W).

    References
    ----------
    Boas DA, Dunn AK. Laser speckle contrast imaging in biomedical optics. J Biomed Opt
    15(1):011109, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.random.default_rng(0).integers(1, 255, (10, 4, 5), dtype=np.uint8)
    >>> temporal_contrast(stack, 5).shape, temporal_contrast(stack, 5, step=1).shape
    ((2, 4, 5), (6, 4, 5))
    """
    x = _as_frames(frames, (3,), "a stack of frames (T, H, W)")
    t, h, wd = x.shape
    win = _check_temporal_window(window, t)
    st = _check_step(step, win)
    ddof = _check_ddof(ddof)
    nout = (t - win) // st + 1
    o = prepare_out(out, (nout, h, wd), contiguous=True)
    if mask is not None:
        m, mask_t = _check_mask(mask, x.shape)
        mv = _check_min_valid(min_valid, ddof)
        xc = np.ascontiguousarray(x)
        zero, use_off = _offsets_zero(xc)
        off = zero + (xc[0, h // 2, wd // 2] if use_off else 0)
        ident_r = np.arange(h, dtype=np.int64)
        ident_c = np.arange(wd, dtype=np.int64)
        _kernel("box3d", xc.size)(
            xc, m, mask_t, o, win, st, 1, ident_r, ident_c, ddof, mv, _bands(h, 1, 1), off, zero,
            False,
        )  # fmt: skip
        return o
    if x.flags.c_contiguous:
        _temporal_slab(x.reshape(t, h * wd), o.reshape(nout, h * wd), win, st, ddof)
        return o
    # Non-contiguous input: contiguous slabs of rows (all frames), never the whole stack.
    rows = max(1, _CHUNK_BYTES // max(1, t * wd * x.itemsize))
    for a in range(0, h, rows):
        b = min(h, a + rows)
        xs = np.ascontiguousarray(x[:, a:b])
        os_ = np.empty((nout, b - a, wd), o.dtype)
        _temporal_slab(xs.reshape(t, -1), os_.reshape(nout, -1), win, st, ddof)
        o[:, a:b] = os_
    return o


def _temporal_slab(x2: np.ndarray, o2: np.ndarray, win: int, st: int, ddof: int) -> None:
    acc, use_off = _accumulator(x2.dtype, win)
    chunk = _pixel_chunk(x2.shape[1])
    _kernel("temporal_box", x2.size)(
        x2, o2, win, st, ddof, chunk, use_off, acc, _int_k(x2.dtype, win)
    )


def spatiotemporal_contrast(
    frames: npt.ArrayLike,
    window: int = 7,
    frames_window: int = 5,
    *,
    step: int | None = None,
    ddof: int = 0,
    edges: Edges = "reflect",
    mask: npt.ArrayLike | None = None,
    min_valid: int = 2,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Spatio-temporal speckle contrast K = σ_I/⟨I⟩ over a w×w×N voxel.

    All w·w·N samples of the voxel enter one mean and one variance (this is not the average of
    N spatial K maps).

    Parameters
    ----------
    frames : array_like, shape (T, H, W)
        Stack of frames; uint8, uint16, float32 or float64.
    window : int
        Odd spatial side w, 3 ≤ w ≤ min(H, W). Default 7.
    frames_window : int
        Frames per voxel N, 2 ≤ N ≤ T. Default 5.
    step : int, optional
        Frames between consecutive voxels' starts; default N (non-overlapping), 1 slides.
    ddof, edges, mask, min_valid, out
        As in :func:`spatial_contrast` and :func:`temporal_contrast`.

    Returns
    -------
    ndarray, shape ((T − N) // step + 1, H', W')
        One K map per block of frames; (H', W') = (H, W), or (H − w + 1, W − w + 1) with 'valid'.

    References
    ----------
    Boas DA, Dunn AK. Laser speckle contrast imaging in biomedical optics. J Biomed Opt
    15(1):011109, 2010.
    """
    x = _as_frames(frames, (3,), "a stack of frames (T, H, W)")
    t, h, wd = x.shape
    w = _check_spatial_window(window, h, wd)
    win = _check_temporal_window(frames_window, t, "frames_window")
    st = _check_step(step, win)
    ddof = _check_ddof(ddof)
    mode = _check_edges(edges)
    mv = _check_min_valid(min_valid, ddof)
    ho, wo = (h - w + 1, wd - w + 1) if mode == "valid" else (h, wd)
    nout = (t - win) // st + 1
    o = prepare_out(out, (nout, ho, wo), contiguous=True)
    rowmap = _index_map(h, ho, w, mode)
    colmap = _index_map(wd, wo, w, mode)
    xc = np.ascontiguousarray(x)
    zero, use_off = _offsets_zero(xc)
    off = zero + (xc[0, h // 2, wd // 2] if use_off else 0)
    if mask is not None:
        m, mask_t = _check_mask(mask, x.shape)
        _kernel("box3d", xc.size)(
            xc, m, mask_t, o, win, st, w, rowmap, colmap, ddof, mv, _bands(ho, w, 1), off, zero,
            False,
        )  # fmt: skip
        return o
    # Per block: per-pixel sums over the block's frames (two planes), then the spatial kernel
    # on those planes with n = w²·N.
    acc, _ = _accumulator(xc.dtype, win * w * int(_k._window_terms(w)[5]))
    if use_off:
        acc = np.float64
    x2 = xc.reshape(t, h * wd)
    p1 = np.empty((1, h, wd), acc)
    p2 = np.empty((1, h, wd), acc)
    chunk = _pixel_chunk(h * wd)
    plane_kernel = _kernel("temporal_planes", win * h * wd)
    box_kernel = _kernel("spatial_box", h * wd * 2)
    offsets = np.full(1, off, acc)
    for b in range(nout):
        plane_kernel(x2, b * st, win, p1.reshape(-1), p2.reshape(-1), acc(off), chunk)
        box_kernel(
            p1, p2, o[b : b + 1], w, win, rowmap, colmap, 0 if mode == "valid" else w // 2,
            ddof, _bands(ho, w, 1), offsets, use_off, acc, _int_k(xc.dtype, w * w * win), 1,
        )  # fmt: skip
    return o


def spatial_mean(
    frames: npt.ArrayLike,
    window: int = 7,
    *,
    edges: Edges = "reflect",
    mask: npt.ArrayLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Mean intensity ⟨I⟩ over the same w×w windows :func:`spatial_contrast` uses for K.

    The mean is the first of the two window sums K is formed from, computed by the same kernel
    with the same edges and mask rules, so ⟨I⟩ and K of one call pair pixel by pixel (for
    example for the camera-noise bias of K², :mod:`lsci.calibration.noise`).

    Parameters
    ----------
    frames : array_like, shape (H, W) or (T, H, W)
        uint8, uint16, float32 or float64.
    window : int
        Odd side length w, 3 ≤ w ≤ min(H, W). Default 7.
    edges : {'reflect', 'mirror', 'nearest', 'wrap', 'valid'}
        Border handling, as in :func:`spatial_contrast`.
    mask : array_like of bool, shape (H, W) or frames.shape, optional
        True for valid pixels: the mean is over a window's valid pixels, NaN where the pixel
        itself is masked or its window holds none.
    out : ndarray, optional
        C-contiguous float32 or float64 array of the output shape.

    Returns
    -------
    ndarray
        ⟨I⟩, the shape :func:`spatial_contrast` gives, float32 unless ``out`` is given. Sums of
        integer input are exact; float input is summed in float64 after subtracting the centre
        pixel of the first frame.

    Examples
    --------
    >>> import numpy as np
    >>> spatial_mean(np.arange(9, dtype=np.uint8).reshape(3, 3), 3, edges="valid").tolist()
    [[4.0]]
    """
    x = _as_frames(frames, (2, 3), "one frame (H, W) or a stack (T, H, W)")
    squeeze = x.ndim == 2
    x3 = x[None] if squeeze else x
    t, h, wd = x3.shape
    w = _check_spatial_window(window, h, wd)
    mode = _check_edges(edges)
    ho, wo = (h - w + 1, wd - w + 1) if mode == "valid" else (h, wd)
    o = prepare_out(out, (ho, wo) if squeeze else (t, ho, wo), contiguous=True)
    o3 = o[None] if squeeze else o
    m, mask_t = _no_mask() if mask is None else _check_mask(mask, x.shape)
    rowmap = _index_map(h, ho, w, mode)
    colmap = _index_map(wd, wo, w, mode)
    zero, use_off = _offsets_zero(x3)
    for sl, xc in _frame_chunks(x3):
        off = zero + (xc[0, h // 2, wd // 2] if use_off else 0)
        mc = m[sl] if mask_t else m
        _kernel("box3d", xc.size)(
            xc, mc, mask_t, o3[sl], 1, 1, w, rowmap, colmap, 0, 1, _bands(ho, w, 1), off, zero,
            True,
        )  # fmt: skip
    return o


def temporal_mean(
    frames: npt.ArrayLike,
    window: int | None = 25,
    *,
    step: int | None = None,
    mask: npt.ArrayLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Mean intensity ⟨I⟩ of each pixel over the windows :func:`temporal_contrast` uses.

    Parameters
    ----------
    frames : array_like, shape (T, H, W)
        uint8, uint16, float32 or float64.
    window, step
        As in :func:`temporal_contrast`.
    mask : array_like of bool, shape (H, W) or (T, H, W), optional
        True for valid samples; the mean is over a window's valid samples, NaN where it has
        none.
    out : ndarray, optional
        C-contiguous float32 or float64 array of the output shape.

    Returns
    -------
    ndarray, shape ((T − N) // step + 1, H, W)
        ⟨I⟩ per window, float32 unless ``out`` is given.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.arange(4, dtype=np.uint16).reshape(4, 1, 1)
    >>> temporal_mean(stack, 2).ravel().tolist()
    [0.5, 2.5]
    """
    x = _as_frames(frames, (3,), "a stack of frames (T, H, W)")
    t, h, wd = x.shape
    win = _check_temporal_window(window, t)
    st = _check_step(step, win)
    nout = (t - win) // st + 1
    o = prepare_out(out, (nout, h, wd), contiguous=True)
    m, mask_t = _no_mask() if mask is None else _check_mask(mask, x.shape)
    xc = np.ascontiguousarray(x)
    zero, use_off = _offsets_zero(xc)
    off = zero + (xc[0, h // 2, wd // 2] if use_off else 0)
    ident_r = np.arange(h, dtype=np.int64)
    ident_c = np.arange(wd, dtype=np.int64)
    _kernel("box3d", xc.size)(
        xc, m, mask_t, o, win, st, 1, ident_r, ident_c, 0, 1, _bands(h, 1, 1), off, zero, True
    )
    return o


def _no_mask() -> tuple[np.ndarray, bool]:
    """The kernels' "no mask": an empty uint8 mask."""
    return np.zeros((0, 0, 0), np.uint8), False


# uint8 windows up to this many frames keep ΣI in uint16: 255·257 = 65535 = 2¹⁶ − 1.
_NARROW_U8_MAX_WINDOW = 257


class RollingTemporalContrast:
    """Temporal K over the last ``window`` frames, updated one frame at a time.

    Keeps a ring of the last ``window`` frames and per-pixel running sums of I and I²: each
    :meth:`update` subtracts the oldest frame, adds the new one and writes a K map, O(1) work
    per pixel whatever the window. Once :attr:`ready`, the map returned after frame i equals
    ``temporal_contrast(stack[i − window + 1 : i + 1], window)[0]`` (same conventions, same
    exactness). Before the window is full, :meth:`update` returns an all-NaN map (no estimate
    from a partial window); :attr:`count` says how many frames the window holds.

    The sums are exact integers for integer frames. uint8 frames with ``window`` ≤ 257 keep ΣI
    in uint16 (ΣI ≤ 255·257 = 65535) and ΣI² in uint32 (ΣI² ≤ 65025·window < 2³², which holds
    up to 66051 frames), updated with wrapping integer arithmetic: every stored sum is the exact
    sum, and the map is bit for bit the one :func:`temporal_contrast` gives. Other windows and
    dtypes use the accumulators of :func:`temporal_contrast` (module docstring); float sums are
    recomputed from the ring now and then so that rounding drift stays bounded.

    Parameters
    ----------
    shape : (H, W)
        Frame shape.
    window : int
        Frames per window N ≥ 2.
    dtype : uint8, uint16, float32 or float64
        Frame dtype (default uint16). Frames of a dtype that casts safely (uint8 into uint16)
        are accepted; others raise TypeError.
    ddof : {0, 1}
        Variance divisor N − ddof.

    Examples
    --------
    >>> import numpy as np
    >>> roll = RollingTemporalContrast((4, 5), 3, dtype=np.uint8)
    >>> for i in range(3):
    ...     k = roll.update(np.full((4, 5), 10 + i, np.uint8))
    >>> roll.ready, roll.count, k.shape, k.dtype
    (True, 3, (4, 5), dtype('float32'))
    """

    # Float sums are recomputed from the ring after this many full turns of it, so rounding
    # drift of the running sums cannot grow without bound.
    _RESUM_TURNS = 64

    def __init__(
        self,
        shape: tuple[int, int],
        window: int,
        *,
        dtype: npt.DTypeLike = np.uint16,
        ddof: int = 0,
    ) -> None:
        hw = frame_shape(shape)
        win = as_int(window, "window")
        if win < 2:
            raise ValueError(f"window must be ≥ 2 frames, got {win}")
        dt = np.dtype(dtype)
        if dt not in _SUPPORTED:
            raise TypeError(f"dtype {dt} is not supported: use {_SUPPORTED_NAMES}")
        self._shape = (hw[0], hw[1])
        self._window = win
        self._dtype = dt
        self._ddof = _check_ddof(ddof)
        p = hw[0] * hw[1]
        self._ring = np.zeros((win, p), dt)
        self._narrow = dt == np.uint8 and win <= _NARROW_U8_MAX_WINDOW
        if self._narrow:
            self._s1 = np.zeros(p, np.uint16)
            self._s2 = np.zeros(p, np.uint32)
            self._kernel = _kernel("rolling_update_u8", p)
        else:
            self._acc, self._use_off = _accumulator(dt, win)
            self._s1 = np.zeros(p, self._acc)
            self._s2 = np.zeros(p, self._acc)
            self._off = np.zeros(p, self._acc)
            self._kernel = _kernel("rolling_update", p)
            self._int_k = _int_k(dt, win)
        self._chunk = _pixel_chunk(p)
        self._pos = 0
        self._count = 0
        self._updates = 0
        self._outputs: list[np.ndarray] = []

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape (H, W)."""
        return self._shape

    @property
    def window(self) -> int:
        """Frames per window N."""
        return self._window

    @property
    def dtype(self) -> np.dtype[Any]:
        """Frame dtype."""
        return self._dtype

    @property
    def count(self) -> int:
        """Frames in the window now (0 after :meth:`reset`, at most :attr:`window`)."""
        return self._count

    @property
    def ready(self) -> bool:
        """True once the window is full and :meth:`update` returns K."""
        return self._count >= self._window

    def reset(self) -> None:
        """Forget all frames (for example after the camera settings changed)."""
        self._s1[:] = 0
        self._s2[:] = 0
        self._pos = 0
        self._count = 0
        self._updates = 0

    def _fresh_output(self) -> np.ndarray:
        """A float32 (H, W) array that nothing outside this object refers to.

        Allocating 4 MB per frame costs page faults (≈0.3 ms at 1024²), so the last two
        outputs are kept and one is reused when the caller no longer holds it (or any view of
        it): a returned map is never overwritten while it is still in use.
        """
        for i in range(len(self._outputs) - 1, -1, -1):  # the most recent first: cache-warm
            # References: the list and getrefcount's argument.
            if sys.getrefcount(self._outputs[i]) <= 2:
                buf = self._outputs.pop(i)
                self._outputs.append(buf)
                return buf
        buf = np.empty(self._shape, np.float32)
        self._outputs.append(buf)
        if len(self._outputs) > 2:
            self._outputs.pop(0)
        return buf

    def update(self, frame: npt.ArrayLike, *, out: np.ndarray | None = None) -> np.ndarray:
        """Add one frame; return K over the last ``window`` frames (all NaN until ready).

        Returns ``out`` (float32/float64, shape (H, W)) if given, else a float32 (H, W) array
        that nothing else refers to: an output of an earlier update is recycled once the caller
        has dropped every reference to it (a map you keep is never overwritten). Work per
        pixel: subtract the oldest frame, add the new one, form K: O(1) whatever the window.
        """
        f = np.asarray(frame)
        if f.dtype != self._dtype:
            if f.dtype.kind in "bc" or not np.can_cast(f.dtype, self._dtype, "safe"):
                raise TypeError(
                    f"frame dtype {f.dtype} does not fit this window's dtype {self._dtype}"
                )
            f = f.astype(self._dtype)
        if f.shape != self._shape:
            raise ValueError(f"frame shape {f.shape} does not match {self._shape}")
        f1 = np.ascontiguousarray(f).reshape(-1)
        o = self._fresh_output() if out is None else prepare_out(out, self._shape, contiguous=True)
        o1 = o.reshape(-1)
        evict = self._count >= self._window
        emit = self._count + 1 >= self._window
        if self._narrow:
            self._kernel(
                f1, self._ring, self._pos, evict, emit, self._s1, self._s2, o1, self._window,
                self._ddof, self._chunk,
            )  # fmt: skip
        else:
            if self._count == 0 and self._use_off:
                self._off[:] = f1
            self._kernel(
                f1, self._ring, self._pos, evict, emit, self._s1, self._s2, self._off, o1,
                self._window, self._ddof, self._chunk, self._use_off, self._acc, self._int_k,
            )  # fmt: skip
        self._pos = (self._pos + 1) % self._window
        self._count = min(self._count + 1, self._window)
        self._updates += 1
        if (
            self._dtype.kind == "f"
            and self._count == self._window
            and self._updates % (self._RESUM_TURNS * self._window) == 0
        ):
            _k.rolling_resum(self._ring, self._s1, self._s2, self._off, self._chunk)
        return o
