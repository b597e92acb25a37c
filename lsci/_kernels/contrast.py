"""Numba kernels for speckle contrast; wrapped, validated and documented by :mod:`lsci.contrast`.

Every kernel takes C-contiguous arrays that the wrapper has already checked, writes K into an
``out`` array it is given, and allocates only small per-band or per-chunk row buffers. Work per
pixel does not depend on the window: column running sums (vertical) plus a running difference
(horizontal) for spatial windows, running sums over frames for temporal windows.

Accumulators:
- uint8: int32 sums (exact for windows up to 181×181); the spatial kernel packs the horizontal
  sums S2·2³² + S1 into one int64 so that the serial horizontal running sum is a single chain.
- uint16: int64 sums (exact); n·S2 − S1² is formed in float64, exact below 2⁵³.
- float32/float64: float64 sums of values minus an offset (per frame for spatial windows, per
  pixel for temporal ones) to limit cancellation in n·S2 − S1².

Chunking (number of row bands, pixels per chunk) is passed in: a kernel that calls
``numba.get_num_threads()`` is silently not cached.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np
from numba import njit, prange

# error_model="numpy": x/0 gives inf/NaN instead of raising ZeroDivisionError.
_OPTS: dict[str, Any] = {"cache": True, "error_model": "numpy", "nogil": True}
# Fast-math flags that keep NaN/inf semantics (no "nnan"/"ninf"): reciprocal and approximate
# functions are allowed only in the integer kernels, whose sums are exact anyway.
_FAST = {"arcp", "contract", "afn", "nsz"}

_MASK32 = np.int64(0xFFFFFFFF)


# --------------------------------------------------------------------------------------------
# Spatial windows, no mask
# --------------------------------------------------------------------------------------------


@njit(parallel=True, fastmath=_FAST, **_OPTS)
def spatial_u8(x, out, w, rowmap, colmap, left, ddof, nbands):  # type: ignore[no-untyped-def]
    """K over w×w windows of uint8 frames x (T, H, W) into out (T, Ho, Wo).

    ``rowmap``/``colmap`` give the source row/column of each padded row/column (length
    Ho + w − 1 / Wo + w − 1); columns ``left .. left + W − 1`` of the padded row are the
    unpadded columns in order (``left`` = r for same-shape modes, 0 for 'valid').
    """
    T, _, W = x.shape
    Ho = out.shape[1]
    Wo = out.shape[2]
    n = w * w
    scale = np.float32(math.sqrt(n / (n - ddof)))
    band = (Ho + nbands - 1) // nbands
    ne = Wo + w - 1
    mid_end = min(left + W, ne)
    for job in prange(T * nbands):
        t = job // nbands
        i0 = (job % nbands) * band
        i1 = min(Ho, i0 + band)
        if i0 >= i1:
            continue
        c1 = np.zeros(W, np.int32)
        c2 = np.zeros(W, np.int32)
        e = np.empty(ne, np.int64)
        h = np.empty(Wo, np.int64)
        for k in range(w):
            row = x[t, rowmap[i0 + k]]
            for j in range(W):
                v = np.int32(row[j])
                c1[j] += v
                c2[j] += v * v
        for i in range(i0, i1):
            if i > i0:
                ra = x[t, rowmap[i + w - 1]]
                rs = x[t, rowmap[i - 1]]
                for j in range(W):
                    va = np.int32(ra[j])
                    vs = np.int32(rs[j])
                    c1[j] += va - vs
                    c2[j] += va * va - vs * vs
            # Packed padded row: S2 in the high 32 bits, S1 in the low 32 bits. Every partial
            # sum below is a true (non-negative, < 2³¹) window sum, so the packing is exact.
            for k in range(left):
                s = colmap[k]
                e[k] = (np.int64(c2[s]) << 32) + c1[s]
            for k in range(left, mid_end):
                e[k] = (np.int64(c2[k - left]) << 32) + c1[k - left]
            for k in range(mid_end, ne):
                s = colmap[k]
                e[k] = (np.int64(c2[s]) << 32) + c1[s]
            a = np.int64(0)
            for k in range(w - 1):
                a += e[k]
            for j in range(Wo):
                a += e[j + w - 1]
                h[j] = a
                a -= e[j]
            orow = out[t, i]
            for j in range(Wo):
                s1 = h[j] & _MASK32
                s2 = h[j] >> 32
                d = n * s2 - s1 * s1
                orow[j] = np.sqrt(np.float32(d)) * scale / np.float32(s1)


@njit(parallel=True, **_OPTS)
def spatial_generic(x, out, w, rowmap, colmap, left, ddof, nbands, offsets, zero):  # type: ignore[no-untyped-def]
    """K over w×w windows for uint16 (int64 sums) or float (float64 sums minus offsets[t]).

    ``zero`` is a scalar of the accumulator type (np.int64(0) or np.float64(0)); ``offsets``
    (T,) has the accumulator dtype (all zero for integer input).
    """
    T, _, W = x.shape
    Ho = out.shape[1]
    Wo = out.shape[2]
    n = w * w
    scale = math.sqrt(n / (n - ddof))
    band = (Ho + nbands - 1) // nbands
    ne = Wo + w - 1
    mid_end = min(left + W, ne)
    for job in prange(T * nbands):
        t = job // nbands
        i0 = (job % nbands) * band
        i1 = min(Ho, i0 + band)
        if i0 >= i1:
            continue
        off = offsets[t]
        c1 = np.full(W, zero)
        c2 = np.full(W, zero)
        e1 = np.full(ne, zero)
        e2 = np.full(ne, zero)
        h1 = np.full(Wo, zero)
        h2 = np.full(Wo, zero)
        for k in range(w):
            row = x[t, rowmap[i0 + k]]
            for j in range(W):
                v = row[j] - off
                c1[j] += v
                c2[j] += v * v
        for i in range(i0, i1):
            if i > i0:
                ra = x[t, rowmap[i + w - 1]]
                rs = x[t, rowmap[i - 1]]
                for j in range(W):
                    va = ra[j] - off
                    vs = rs[j] - off
                    c1[j] += va - vs
                    c2[j] += va * va - vs * vs
            for k in range(left):
                e1[k] = c1[colmap[k]]
                e2[k] = c2[colmap[k]]
            for k in range(left, mid_end):
                e1[k] = c1[k - left]
                e2[k] = c2[k - left]
            for k in range(mid_end, ne):
                e1[k] = c1[colmap[k]]
                e2[k] = c2[colmap[k]]
            a1 = zero
            a2 = zero
            for k in range(w - 1):
                a1 += e1[k]
                a2 += e2[k]
            for j in range(Wo):
                a1 += e1[j + w - 1]
                a2 += e2[j + w - 1]
                h1[j] = a1
                h2[j] = a2
                a1 -= e1[j]
                a2 -= e2[j]
            orow = out[t, i]
            for j in range(Wo):
                orow[j] = _k_from_sums(np.float64(h1[j]), np.float64(h2[j]), n, off, scale)


@njit(inline="always", **_OPTS)
def _k_from_sums(s1, s2, n, off, scale):  # type: ignore[no-untyped-def]
    """K from float64 sums of (I − off) and (I − off)² over n samples; NaN where ⟨I⟩ = 0."""
    d = max(n * s2 - s1 * s1, 0.0)
    total = s1 + n * off
    k = math.sqrt(d) * scale / total
    return k if total != 0.0 else np.nan


# --------------------------------------------------------------------------------------------
# Temporal windows, no mask: x2 (T, P) frames as rows, out2 (n_out, P)
# --------------------------------------------------------------------------------------------


@njit(parallel=True, fastmath=_FAST, **_OPTS)
def temporal_u8(x2, out2, wt, step, ddof, chunk):  # type: ignore[no-untyped-def]
    """Temporal K for uint8 with int32 sums; block b covers frames b·step .. b·step + wt − 1."""
    P = x2.shape[1]
    nout = out2.shape[0]
    scale = np.float32(math.sqrt(wt / (wt - ddof)))
    nchunks = (P + chunk - 1) // chunk
    for c in prange(nchunks):
        p0 = c * chunk
        L = min(P, p0 + chunk) - p0
        s1 = np.zeros(L, np.int32)
        s2 = np.zeros(L, np.int32)
        for b in range(nout):
            start = b * step
            if b == 0 or step >= wt:
                s1[:] = 0
                s2[:] = 0
                for t in range(start, start + wt):
                    row = x2[t, p0 : p0 + L]
                    for k in range(L):
                        v = np.int32(row[k])
                        s1[k] += v
                        s2[k] += v * v
            else:
                for t in range(start - step, start):
                    ra = x2[t + wt, p0 : p0 + L]
                    rs = x2[t, p0 : p0 + L]
                    for k in range(L):
                        va = np.int32(ra[k])
                        vs = np.int32(rs[k])
                        s1[k] += va - vs
                        s2[k] += va * va - vs * vs
            orow = out2[b, p0 : p0 + L]
            for k in range(L):
                d = np.int64(wt) * s2[k] - np.int64(s1[k]) * s1[k]
                orow[k] = np.sqrt(np.float32(d)) * scale / np.float32(s1[k])


@njit(parallel=True, **_OPTS)
def temporal_generic(x2, out2, wt, step, ddof, chunk, zero, use_offset):  # type: ignore[no-untyped-def]
    """Temporal K for uint16 (int64 sums) or float (float64 sums minus the first frame).

    With ``use_offset`` (float input) each pixel's values are taken minus its first frame.
    """
    P = x2.shape[1]
    nout = out2.shape[0]
    scale = math.sqrt(wt / (wt - ddof))
    nchunks = (P + chunk - 1) // chunk
    for c in prange(nchunks):
        p0 = c * chunk
        L = min(P, p0 + chunk) - p0
        s1 = np.full(L, zero)
        s2 = np.full(L, zero)
        off = np.full(L, zero)
        if use_offset:
            for k in range(L):
                off[k] = x2[0, p0 + k]
        for b in range(nout):
            start = b * step
            if b == 0 or step >= wt:
                s1[:] = 0
                s2[:] = 0
                for t in range(start, start + wt):
                    row = x2[t, p0 : p0 + L]
                    for k in range(L):
                        v = row[k] - off[k]
                        s1[k] += v
                        s2[k] += v * v
            else:
                for t in range(start - step, start):
                    ra = x2[t + wt, p0 : p0 + L]
                    rs = x2[t, p0 : p0 + L]
                    for k in range(L):
                        va = ra[k] - off[k]
                        vs = rs[k] - off[k]
                        s1[k] += va - vs
                        s2[k] += va * va - vs * vs
            orow = out2[b, p0 : p0 + L]
            for k in range(L):
                orow[k] = _k_from_sums(np.float64(s1[k]), np.float64(s2[k]), wt, off[k], scale)


# --------------------------------------------------------------------------------------------
# Rolling temporal window: one frame in, one K map out
# --------------------------------------------------------------------------------------------


@njit(parallel=True, fastmath=_FAST, **_OPTS)
def rolling_u8(frame, ring, pos, evict, emit, s1, s2, out, wt, ddof, chunk):  # type: ignore[no-untyped-def]
    """Put frame (P,) into ring[pos] and update int32 sums; with ``evict`` the frame it replaces
    leaves the sums first. Writes K if ``emit`` (the window is full after this frame), else NaN.
    """
    P = frame.shape[0]
    scale = np.float32(math.sqrt(wt / (wt - ddof)))
    nchunks = (P + chunk - 1) // chunk
    for c in prange(nchunks):
        p0 = c * chunk
        p1 = min(P, p0 + chunk)
        if evict:
            for p in range(p0, p1):
                va = np.int32(frame[p])
                vs = np.int32(ring[pos, p])
                ring[pos, p] = frame[p]
                a = s1[p] + va - vs
                b = s2[p] + va * va - vs * vs
                s1[p] = a
                s2[p] = b
                d = np.int64(wt) * b - np.int64(a) * a
                out[p] = np.sqrt(np.float32(d)) * scale / np.float32(a)
        else:
            for p in range(p0, p1):
                va = np.int32(frame[p])
                ring[pos, p] = frame[p]
                a = s1[p] + va
                b = s2[p] + va * va
                s1[p] = a
                s2[p] = b
                if emit:
                    d = np.int64(wt) * b - np.int64(a) * a
                    out[p] = np.sqrt(np.float32(d)) * scale / np.float32(a)
                else:
                    out[p] = np.nan


@njit(parallel=True, **_OPTS)
def rolling_generic(frame, ring, pos, evict, emit, s1, s2, off, out, wt, ddof, chunk):  # type: ignore[no-untyped-def]
    """As :func:`rolling_u8` with int64 (uint16) or float64 (float, minus off) sums."""
    P = frame.shape[0]
    scale = math.sqrt(wt / (wt - ddof))
    nchunks = (P + chunk - 1) // chunk
    for c in prange(nchunks):
        p0 = c * chunk
        p1 = min(P, p0 + chunk)
        for p in range(p0, p1):
            va = frame[p] - off[p]
            a = s1[p] + va
            b = s2[p] + va * va
            if evict:
                vs = ring[pos, p] - off[p]
                a -= vs
                b -= vs * vs
            ring[pos, p] = frame[p]
            s1[p] = a
            s2[p] = b
            if emit:
                out[p] = _k_from_sums(np.float64(a), np.float64(b), wt, off[p], scale)
            else:
                out[p] = np.nan


@njit(parallel=True, **_OPTS)
def rolling_resum(ring, s1, s2, off, chunk):  # type: ignore[no-untyped-def]
    """Recompute the float sums exactly from the ring (removes running-sum drift)."""
    n, P = ring.shape
    nchunks = (P + chunk - 1) // chunk
    for c in prange(nchunks):
        p0 = c * chunk
        p1 = min(P, p0 + chunk)
        for p in range(p0, p1):
            s1[p] = 0
            s2[p] = 0
        for t in range(n):
            for p in range(p0, p1):
                v = ring[t, p] - off[p]
                s1[p] += v
                s2[p] += v * v


# --------------------------------------------------------------------------------------------
# General (masked and/or spatio-temporal) windows: wt frames × w×w pixels, temporal step
# --------------------------------------------------------------------------------------------


@njit(parallel=True, **_OPTS)
def box3d(x, m, mask_t, out, wt, step, w, rowmap, colmap, ddof, min_valid, nbands, off, zero):  # type: ignore[no-untyped-def]
    """K over wt×w×w voxels of x (T, H, W) into out (n_out, Ho, Wo), optionally masked.

    ``m`` is a uint8 mask (valid = 1) of shape (T, H, W) when ``mask_t`` else (1, H, W) (the same
    mask for every frame), or shape (0, 0, 0) for no mask. Values are taken minus ``off`` (a
    scalar of the accumulator type, like ``zero``). Output is NaN where the pixel itself has no
    valid sample in the time block, or where the voxel holds fewer than ``min_valid`` samples.
    """
    _, H, W = x.shape
    nout, Ho, Wo = out.shape
    has_mask = m.shape[0] > 0
    t1 = np.full((H, W), zero)
    t2 = np.full((H, W), zero)
    tc = np.zeros((H, W), np.int64)
    ne = Wo + w - 1
    band = (Ho + nbands - 1) // nbands
    for b in range(nout):
        start = b * step
        fresh = b == 0 or step >= wt
        for i in prange(H):
            if fresh:
                t1[i, :] = 0
                t2[i, :] = 0
                tc[i, :] = 0
                lo_add = start
                hi_add = start + wt
                lo_sub = 0
                hi_sub = 0
            else:
                lo_add = start - step + wt
                hi_add = start + wt
                lo_sub = start - step
                hi_sub = start
            for t in range(lo_sub, hi_sub):
                mt = t if mask_t else 0
                for j in range(W):
                    if not has_mask or m[mt, i, j]:
                        v = x[t, i, j] - off
                        t1[i, j] -= v
                        t2[i, j] -= v * v
                        tc[i, j] -= 1
            for t in range(lo_add, hi_add):
                mt = t if mask_t else 0
                for j in range(W):
                    if not has_mask or m[mt, i, j]:
                        v = x[t, i, j] - off
                        t1[i, j] += v
                        t2[i, j] += v * v
                        tc[i, j] += 1
        for bi in prange(nbands):
            i0 = bi * band
            i1 = min(Ho, i0 + band)
            if i0 >= i1:
                continue
            c1 = np.full(W, zero)
            c2 = np.full(W, zero)
            cc = np.zeros(W, np.int64)
            h1 = np.full(ne, zero)
            h2 = np.full(ne, zero)
            hc = np.zeros(ne, np.int64)
            for k in range(w):
                r = rowmap[i0 + k]
                for j in range(W):
                    c1[j] += t1[r, j]
                    c2[j] += t2[r, j]
                    cc[j] += tc[r, j]
            for i in range(i0, i1):
                if i > i0:
                    ra = rowmap[i + w - 1]
                    rs = rowmap[i - 1]
                    for j in range(W):
                        c1[j] += t1[ra, j] - t1[rs, j]
                        c2[j] += t2[ra, j] - t2[rs, j]
                        cc[j] += tc[ra, j] - tc[rs, j]
                for k in range(ne):
                    s = colmap[k]
                    h1[k] = c1[s]
                    h2[k] = c2[s]
                    hc[k] = cc[s]
                a1 = zero
                a2 = zero
                ac = 0
                for k in range(w - 1):
                    a1 += h1[k]
                    a2 += h2[k]
                    ac += hc[k]
                ci = rowmap[i + w // 2]
                for j in range(Wo):
                    a1 += h1[j + w - 1]
                    a2 += h2[j + w - 1]
                    ac += hc[j + w - 1]
                    if ac < min_valid or ac <= ddof or tc[ci, colmap[j + w // 2]] == 0:
                        out[b, i, j] = np.nan
                    else:
                        scale = math.sqrt(ac / (ac - ddof))
                        out[b, i, j] = _k_from_sums(
                            np.float64(a1), np.float64(a2), ac, np.float64(off), scale
                        )
                    a1 -= h1[j]
                    a2 -= h2[j]
                    ac -= hc[j]


# --------------------------------------------------------------------------------------------
# Serial twins: the same code compiled without threads, for small inputs, where starting the
# thread team costs more than the work (and much more on a busy machine).
# --------------------------------------------------------------------------------------------


def _serial_twin(dispatcher: Any, fast: bool) -> Any:
    f = dispatcher.py_func
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__)
    g.__qualname__ = f.__qualname__ + "_serial"  # its own on-disk cache entry
    g.__doc__ = f"Serial version of :func:`{f.__name__}`."
    if fast:
        return njit(fastmath=_FAST, **_OPTS)(g)
    return njit(**_OPTS)(g)


spatial_u8_serial = _serial_twin(spatial_u8, fast=True)
spatial_generic_serial = _serial_twin(spatial_generic, fast=False)
temporal_u8_serial = _serial_twin(temporal_u8, fast=True)
temporal_generic_serial = _serial_twin(temporal_generic, fast=False)
rolling_u8_serial = _serial_twin(rolling_u8, fast=True)
rolling_generic_serial = _serial_twin(rolling_generic, fast=False)
box3d_serial = _serial_twin(box3d, fast=False)
