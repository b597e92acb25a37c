"""Numba kernels for speckle contrast; wrapped, validated and documented by
:mod:`lsci.core.contrast`.

Every kernel takes C-contiguous arrays that the wrapper has already checked, writes K into an
``out`` array it is given, and allocates only small per-band or per-chunk row buffers. Work per
pixel does not grow with the window, or only with log4(w): column running sums (vertical) and
radix-4 levels (horizontal) for spatial windows, running sums over frames for temporal ones.
Every inner loop runs over contiguous 1-D slices so that LLVM vectorises it.

Accumulators (chosen by ``lsci.core.contrast._accumulator``; all exact for integer input):
- uint8: float32 while n·255² < 2²⁴ (n ≤ 258: every partial sum is an integer below 2²⁴, and
  float32 lanes vectorise best), else int32 (n ≤ 33025).
- uint16: float64 (integer sums exact below 2⁵³).
- float32/float64: float64 sums of values minus an offset (per frame for spatial windows, per
  pixel for temporal ones) to limit cancellation in n·S2 − S1².
K is formed from n·S2 − S1² in float64 (exact for integer sums below 2⁵³), then one float32
square root and division.

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
# Bytes of one sub-band of output rows when spatial K is averaged over frames (see
# _spatial_band): small enough for the L1/L2 cache with the frames' column sums.
_SUB_BAND_BYTES = 48 << 10


# --------------------------------------------------------------------------------------------
# Spatial windows, no mask
# --------------------------------------------------------------------------------------------


@njit(parallel=True, **_OPTS)
def spatial_box(  # type: ignore[no-untyped-def]
    x, sq, out, w, nsamp, rowmap, colmap, left, ddof, nbands, offsets, use_off, acc, int_k, group
):
    """K over w×w windows of frames x (T, H, W) into out (T // group, Ho, Wo).

    Each output map is the mean K of ``group`` consecutive frames (1: K of each frame).
    ``acc`` is the accumulator type (float32 or int32 for uint8, float64 otherwise, exact for
    integer input); with ``use_off`` (float input) values are taken minus ``offsets[t]`` (acc
    dtype; zeros otherwise). ``rowmap``/``colmap`` give the source row/column of each padded
    row/column (lengths Ho + w − 1, Wo + w − 1); padded
    columns ``left .. left + W − 1`` are the frame's columns in order.

    Each job is a band of output rows of one map. Per output row and frame: the column sums of
    the window's rows are updated (add the row entering, subtract the row leaving), the padded
    row of column sums is summed horizontally with levels (level k holds sums of 4^k
    neighbours, one pass of four loads per level; the w-sum is a signed sum of a few level
    terms, see _window_terms), and K is formed from the two sums. Every inner loop runs over
    contiguous columns and vectorises; the cost per pixel grows only with log4(w). The frames
    of a group advance row by row together, so a map's row is summed while it is in cache.
    """
    T = out.shape[0]
    Ho = out.shape[1]
    band = (Ho + nbands - 1) // nbands
    for job in prange(T * nbands):
        t = job // nbands
        i0 = (job % nbands) * band
        i1 = min(Ho, i0 + band)
        f0 = t * group
        if i0 < i1:
            _spatial_band(
                x[f0 : f0 + group], sq[f0 : f0 + group], out[t], i0, i1, w, nsamp, rowmap,
                colmap, left, ddof, offsets[f0 : f0 + group], use_off, acc, int_k,
            )  # fmt: skip


@njit(fastmath=_FAST, **_OPTS)
def _spatial_band(  # type: ignore[no-untyped-def]
    xs, sqs, out, i0, i1, w, nsamp, rowmap, colmap, left, ddof, offs, use_off, acc, int_k
):
    """Output rows i0 .. i1 − 1 of the mean K of frames xs (G, H, W) into out (Ho, Wo).

    With nsamp = 0, xs holds intensities. Otherwise xs and sqs hold per-pixel sums of (I − off)
    and (I − off)² over nsamp frames (spatio-temporal windows): n = w²·nsamp. The mean is the
    sum of the frames' K in order, divided by G, as NumPy's mean of float32 maps.
    """
    G = xs.shape[0]
    W = xs.shape[2]
    Wo = out.shape[1]
    planes = nsamp > 0
    n = w * w * max(nsamp, 1)
    nf = np.float64(n)
    n32 = np.int32(n)
    scale = np.float32(math.sqrt(n / (n - ddof)))
    ne = Wo + w - 1
    mid_end = min(left + W, ne)
    nm = mid_end - left
    # The window sum is a signed sum of level terms (level, offset, sign), the first the top
    # level at offset 0; level k holds sums of 4^k neighbours (see _window_terms).
    nlev, nterm, tl, to, ts, reach = _window_terms(w)
    sg = np.empty(80, acc)
    for q in range(nterm):
        sg[q] = ts[q]
    nl = Wo + reach  # entries from ne on stay 0: terms reading them cancel
    levels1 = np.zeros((G, nlev + 1, nl), acc)
    levels2 = np.zeros((G, nlev + 1, nl), acc)
    h1 = np.zeros(Wo, acc)
    h2 = np.zeros(Wo, acc)
    krow = np.empty(Wo, out.dtype)
    for g in range(G):
        x = xs[g]
        sq = sqs[g]
        off = offs[g]
        c1 = levels1[g, 0, left:mid_end]
        c2 = levels2[g, 0, left:mid_end]
        for k in range(w):
            row = x[rowmap[i0 + k]]
            if planes:
                row2 = sq[rowmap[i0 + k]]
                for j in range(nm):
                    c1[j] += row[j]
                    c2[j] += row2[j]
            else:
                for j in range(nm):
                    v = acc(row[j]) - off
                    c1[j] += v
                    c2[j] += v * v
    # Rows go in sub-bands of `rows` rows, frame after frame: a frame's column sums stay in
    # cache through a sub-band, and so do the sub-band's rows of the mean.
    rows = max(1, min(i1 - i0, _SUB_BAND_BYTES // (4 * Wo))) if G > 1 else i1 - i0
    for first in range(i0, i1, rows):
        last = min(i1, first + rows)
        for g in range(G):
            for i in range(first, last):
                orow = out[i]
                x = xs[g]
                sq = sqs[g]
                off = offs[g]
                lv1 = levels1[g]
                lv2 = levels2[g]
                e1 = lv1[0]
                e2 = lv2[0]
                c1 = e1[left:mid_end]
                c2 = e2[left:mid_end]
                if i > i0 and planes:
                    ra = x[rowmap[i + w - 1]]
                    rs = x[rowmap[i - 1]]
                    ra2 = sq[rowmap[i + w - 1]]
                    rs2 = sq[rowmap[i - 1]]
                    for j in range(nm):
                        c1[j] += ra[j] - rs[j]
                        c2[j] += ra2[j] - rs2[j]
                elif i > i0:
                    ra = x[rowmap[i + w - 1]]
                    rs = x[rowmap[i - 1]]
                    for j in range(nm):
                        va = acc(ra[j]) - off
                        vs = acc(rs[j]) - off
                        c1[j] += va - vs
                        c2[j] += va * va - vs * vs
                for k in range(left):
                    e1[k] = e1[left + colmap[k]]
                    e2[k] = e2[left + colmap[k]]
                for k in range(mid_end, ne):
                    e1[k] = e1[left + colmap[k]]
                    e2[k] = e2[left + colmap[k]]
                span = 1
                for b in range(1, nlev + 1):
                    p1 = lv1[b - 1]
                    p2 = lv2[b - 1]
                    p1b = p1[span:]
                    p2b = p2[span:]
                    p1c = p1[2 * span :]
                    p2c = p2[2 * span :]
                    p1d = p1[3 * span :]
                    p2d = p2[3 * span :]
                    r1 = lv1[b]
                    r2 = lv2[b]
                    for j in range(nl - 4 * span + 1):
                        r1[j] = acc(acc(p1[j] + p1b[j]) + acc(p1c[j] + p1d[j]))
                        r2[j] = acc(acc(p2[j] + p2b[j]) + acc(p2c[j] + p2d[j]))
                    span *= 4
                dest = orow if g == 0 else krow
                a1 = lv1[nlev]
                a2 = lv2[nlev]
                if use_off or nterm > 4:
                    # General path: add the terms up in h, then K with the offset.
                    for j in range(Wo):
                        h1[j] = a1[j]
                        h2[j] = a2[j]
                    for q in range(1, nterm):
                        b1 = lv1[tl[q]][to[q] :]
                        b2 = lv2[tl[q]][to[q] :]
                        gq = sg[q]
                        for j in range(Wo):
                            h1[j] += gq * b1[j]
                            h2[j] += gq * b2[j]
                    for j in range(Wo):
                        dest[j] = _k32(h1[j], h2[j], nf, off, scale)
                elif nterm == 1:
                    for j in range(Wo):
                        dest[j] = _kk(acc(a1[j]), acc(a2[j]), nf, n32, scale, int_k)
                elif nterm == 2:
                    b1 = lv1[tl[1]][to[1] :]
                    b2 = lv2[tl[1]][to[1] :]
                    g1 = sg[1]
                    for j in range(Wo):
                        s1 = acc(a1[j] + g1 * b1[j])
                        s2 = acc(a2[j] + g1 * b2[j])
                        dest[j] = _kk(s1, s2, nf, n32, scale, int_k)
                elif nterm == 3:
                    b1 = lv1[tl[1]][to[1] :]
                    b2 = lv2[tl[1]][to[1] :]
                    d1 = lv1[tl[2]][to[2] :]
                    d2 = lv2[tl[2]][to[2] :]
                    g1 = sg[1]
                    g2 = sg[2]
                    for j in range(Wo):
                        s1 = acc(a1[j] + g1 * b1[j] + g2 * d1[j])
                        s2 = acc(a2[j] + g1 * b2[j] + g2 * d2[j])
                        dest[j] = _kk(s1, s2, nf, n32, scale, int_k)
                else:
                    b1 = lv1[tl[1]][to[1] :]
                    b2 = lv2[tl[1]][to[1] :]
                    d1 = lv1[tl[2]][to[2] :]
                    d2 = lv2[tl[2]][to[2] :]
                    f1 = lv1[tl[3]][to[3] :]
                    f2 = lv2[tl[3]][to[3] :]
                    g1 = sg[1]
                    g2 = sg[2]
                    g3 = sg[3]
                    for j in range(Wo):
                        s1 = acc(a1[j] + g1 * b1[j] + g2 * d1[j] + g3 * f1[j])
                        s2 = acc(a2[j] + g1 * b2[j] + g2 * d2[j] + g3 * f2[j])
                        dest[j] = _kk(s1, s2, nf, n32, scale, int_k)
                if g > 0:
                    for j in range(Wo):
                        orow[j] += krow[j]
        if G > 1:
            for i in range(first, last):
                _divide(out[i], G)


@njit(**_OPTS)
def _divide(row, count):  # type: ignore[no-untyped-def]
    """``row /= count`` as an exact IEEE division (compiled without fast-math, unlike its
    caller, whose flags would allow a multiplication by the rounded reciprocal)."""
    d = row.dtype.type(count)
    for j in range(row.shape[0]):
        row[j] = row[j] / d


@njit(**_OPTS)
def _window_terms(w):  # type: ignore[no-untyped-def]
    """Level terms whose signed sum is a w-wide window sum.

    Level k holds sums of 4^k neighbours. w is written in base 4 with digits −1, 0, 1, 2
    (15 = 16 − 1, 7 = 2·4 − 1): each digit d at level k gives |d| terms, positive ones laid
    left to right from offset 0, negative ones taken back from the end. Returns (top level,
    number of terms, levels, offsets, signs, reach), reach being the furthest entry read
    (offset + size) relative to the window start.
    """
    digits = np.zeros(40, np.int64)
    k = w
    top = 0
    i = 0
    while k != 0:
        d = k % 4
        if d == 3:
            d = -1
        digits[i] = d
        if d != 0:
            top = i
        k = (k - d) // 4
        i += 1
    tl = np.zeros(80, np.int64)
    to = np.zeros(80, np.int64)
    ts = np.zeros(80, np.int64)
    nterm = 0
    o = 0
    reach = 0
    for lev in range(top, -1, -1):
        size = 1 << (2 * lev)
        d = digits[lev]
        for _ in range(d):
            tl[nterm] = lev
            to[nterm] = o
            ts[nterm] = 1
            nterm += 1
            o += size
            reach = max(reach, o)
        for _ in range(-d):
            o -= size
            tl[nterm] = lev
            to[nterm] = o
            ts[nterm] = -1
            nterm += 1
    return top, nterm, tl, to, ts, reach


@njit(inline="always", fastmath=_FAST, **_OPTS)
def _kk(s1, s2, nf, n32, scale, int_k):  # type: ignore[no-untyped-def]
    """K from exact sums of I and I² (no offset). With ``int_k`` (uint8 data, n ≤ 363),
    n·S2 − S1² = n²·σ² < 2³¹ is formed in int32 arithmetic modulo 2³² (exact, and faster
    than float64); otherwise in float64 (:func:`_k32s`)."""
    if int_k:
        a = np.int32(s1)
        d = np.int32(np.int32(n32 * np.int32(s2)) - np.int32(a * a))
        return np.sqrt(np.float32(d)) * scale / np.float32(a)
    return _k32s(s1, s2, nf, scale)


@njit(inline="always", fastmath=_FAST, **_OPTS)
def _k32s(s1, s2, nf, scale):  # type: ignore[no-untyped-def]
    """K in float32 from sums of I and I² (no offset): NaN where S1 = 0 (then S2 = 0: 0/0)."""
    s1f = np.float64(s1)
    d = max(nf * np.float64(s2) - s1f * s1f, 0.0)
    return np.sqrt(np.float32(d)) * scale / np.float32(s1f)


@njit(inline="always", fastmath=_FAST, **_OPTS)
def _k32(s1, s2, nf, off, scale):  # type: ignore[no-untyped-def]
    """K in float32 from sums of (I − off) and (I − off)² over nf samples; NaN where ⟨I⟩ = 0.

    n·S2 − S1² is formed in float64 (exact for integer sums below 2⁵³), then one float32 square
    root and division: ≈1e-7 relative.
    """
    s1f = np.float64(s1)
    d = max(nf * np.float64(s2) - s1f * s1f, 0.0)
    total = np.float32(s1f + nf * off)
    k = np.sqrt(np.float32(d)) * scale / total
    return k if total != 0 else np.float32(np.nan)


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
def temporal_box(x2, out2, wt, step, ddof, chunk, use_off, acc, int_k):  # type: ignore[no-untyped-def]
    """Temporal K; block b covers frames b·step .. b·step + wt − 1 of each pixel (column).

    ``acc``: np.float32/np.int32 (uint8) or np.float64 (uint16: exact; float input: values
    taken minus the pixel's first frame when ``use_off``). Jobs are chunks of pixels; sums run
    over frames, added and subtracted when consecutive blocks overlap (step < wt).
    """
    P = x2.shape[1]
    nout = out2.shape[0]
    nf = np.float64(wt)
    n32 = np.int32(wt)
    scale = np.float32(math.sqrt(wt / (wt - ddof)))
    nchunks = (P + chunk - 1) // chunk
    for c in prange(nchunks):
        p0 = c * chunk
        p1 = min(P, p0 + chunk)
        L = p1 - p0
        s1 = np.zeros(L, acc)
        s2 = np.zeros(L, acc)
        off = np.zeros(L, acc)
        if use_off:
            first = x2[0][p0:p1]
            for k in range(L):
                off[k] = first[k]
        for b in range(nout):
            start = b * step
            if b == 0 or step >= wt:
                s1[:] = 0
                s2[:] = 0
                t0 = start
                if not use_off:
                    # Four frames per pass: a quarter of the accumulator loads and stores.
                    while t0 + 4 <= start + wt:
                        r0 = x2[t0][p0:p1]
                        r1 = x2[t0 + 1][p0:p1]
                        r2 = x2[t0 + 2][p0:p1]
                        r3 = x2[t0 + 3][p0:p1]
                        for k in range(L):
                            v0 = acc(r0[k])
                            v1 = acc(r1[k])
                            v2 = acc(r2[k])
                            v3 = acc(r3[k])
                            s1[k] += acc(acc(v0 + v1) + acc(v2 + v3))
                            s2[k] += acc(acc(v0 * v0 + v1 * v1) + acc(v2 * v2 + v3 * v3))
                        t0 += 4
                for t in range(t0, start + wt):
                    row = x2[t][p0:p1]
                    if use_off:
                        for k in range(L):
                            v = acc(row[k]) - off[k]
                            s1[k] += v
                            s2[k] += v * v
                    else:
                        for k in range(L):
                            v = acc(row[k])
                            s1[k] += v
                            s2[k] += v * v
            else:
                for t in range(start - step, start):
                    ra = x2[t + wt][p0:p1]
                    rs = x2[t][p0:p1]
                    if use_off:
                        for k in range(L):
                            va = acc(ra[k]) - off[k]
                            vs = acc(rs[k]) - off[k]
                            s1[k] += va - vs
                            s2[k] += va * va - vs * vs
                    else:
                        for k in range(L):
                            va = acc(ra[k])
                            vs = acc(rs[k])
                            s1[k] += va - vs
                            s2[k] += va * va - vs * vs
            orow = out2[b][p0:p1]
            if use_off:
                for k in range(L):
                    orow[k] = _k32(s1[k], s2[k], nf, off[k], scale)
            else:
                for k in range(L):
                    orow[k] = _kk(s1[k], s2[k], nf, n32, scale, int_k)


@njit(parallel=True, **_OPTS)
def temporal_planes(x2, t0, nt, p1, p2, off, chunk):  # type: ignore[no-untyped-def]
    """Per-pixel sums of (I − off) into p1 and of (I − off)² into p2 over frames t0 .. t0+nt−1
    of x2 (T, P); p1, p2 (P,) have the accumulator dtype (exact for integer input)."""
    P = x2.shape[1]
    nchunks = (P + chunk - 1) // chunk
    for c in prange(nchunks):
        q0 = c * chunk
        q1 = min(P, q0 + chunk)
        a = p1[q0:q1]
        b = p2[q0:q1]
        a[:] = 0
        b[:] = 0
        for t in range(t0, t0 + nt):
            row = x2[t][q0:q1]
            for k in range(q1 - q0):
                v = row[k] - off
                a[k] += v
                b[k] += v * v


# --------------------------------------------------------------------------------------------
# Rolling temporal window: one frame in, one K map out
# --------------------------------------------------------------------------------------------


@njit(parallel=True, fastmath=_FAST, **_OPTS)
def rolling_update(  # type: ignore[no-untyped-def]
    frame, ring, pos, evict, emit, s1, s2, off, out, wt, ddof, chunk, use_off, acc, int_k
):
    """Put frame (P,) into ring[pos] and update the running sums s1, s2 (P,).

    With ``evict`` the frame it replaces leaves the sums first. Writes K to out (P,) if ``emit``
    (the window is full after this frame), else NaN. Values are taken minus ``off`` (P,) when
    ``use_off`` (float input); ``acc`` is the sums' dtype (float32, int32 or float64).
    """
    P = frame.shape[0]
    nf = np.float64(wt)
    n32 = np.int32(wt)
    scale = np.float32(math.sqrt(wt / (wt - ddof)))
    nchunks = (P + chunk - 1) // chunk
    old = ring[pos]
    for c in prange(nchunks):
        p0 = c * chunk
        p1 = min(P, p0 + chunk)
        L = p1 - p0
        f = frame[p0:p1]
        r = old[p0:p1]
        a = s1[p0:p1]
        b = s2[p0:p1]
        o = out[p0:p1]
        of = off[p0:p1]
        if use_off:
            if evict:
                for k in range(L):
                    va = f[k] - of[k]
                    vs = r[k] - of[k]
                    a[k] += va - vs
                    b[k] += va * va - vs * vs
            else:
                for k in range(L):
                    va = f[k] - of[k]
                    a[k] += va
                    b[k] += va * va
        elif evict and emit:
            # The steady state: one pass updates the sums and writes K.
            for k in range(L):
                va = acc(f[k])
                vs = acc(r[k])
                sa = acc(a[k] + (va - vs))
                sb = acc(b[k] + (va * va - vs * vs))
                a[k] = sa
                b[k] = sb
                r[k] = f[k]
                o[k] = _kk(sa, sb, nf, n32, scale, int_k)
            continue
        elif evict:
            for k in range(L):
                va = acc(f[k])
                vs = acc(r[k])
                a[k] += va - vs
                b[k] += va * va - vs * vs
        else:
            for k in range(L):
                va = acc(f[k])
                a[k] += va
                b[k] += va * va
        for k in range(L):
            r[k] = f[k]
        if emit and use_off:
            for k in range(L):
                o[k] = _k32(a[k], b[k], nf, of[k], scale)
        elif emit:
            for k in range(L):
                o[k] = _kk(a[k], b[k], nf, n32, scale, int_k)
        else:
            for k in range(L):
                o[k] = np.nan


@njit(parallel=True, fastmath=_FAST, **_OPTS)
def rolling_update_u8(frame, ring, pos, evict, emit, s1, s2, out, wt, ddof, chunk):  # type: ignore[no-untyped-def]
    """:func:`rolling_update` for uint8 frames and windows of wt ≤ 257 frames, with narrow sums.

    s1 (P,) is uint16 and s2 (P,) uint32: ΣI ≤ 255·wt ≤ 65535 and ΣI² ≤ 65025·wt < 2³² (the
    latter up to wt = 66051). Both are updated with wrapping (modular) integer arithmetic; as
    each true sum fits its type, the stored value is the exact sum after every update, however
    long the run. K is formed as in :func:`_kk` with ``int_k`` (wt ≤ 363), so it is bit for bit
    the map :func:`temporal_box` gives for the same frames.

    Per pixel one pass moves 19 bytes (frame, ring slot read and written, 6 bytes of sums read
    and written, K written) against 23 with float32 sums; the narrow integer lanes also need
    fewer instructions (the square difference va² − vs² is one multiply-add of 16-bit pairs).
    """
    P = frame.shape[0]
    n32 = np.int32(wt)
    scale = np.float32(math.sqrt(wt / (wt - ddof)))
    nchunks = (P + chunk - 1) // chunk
    old = ring[pos]
    for c in prange(nchunks):
        p0 = c * chunk
        p1 = min(P, p0 + chunk)
        L = p1 - p0
        f = frame[p0:p1]
        r = old[p0:p1]
        a = s1[p0:p1]
        b = s2[p0:p1]
        o = out[p0:p1]
        if evict:
            # The steady state (evict implies emit): one pass updates the sums and writes K.
            for k in range(L):
                va = np.int16(f[k])
                vs = np.int16(r[k])
                sa = np.uint16(a[k] + np.uint16(va - vs))
                sq = np.int32(va) * np.int32(va) - np.int32(vs) * np.int32(vs)
                sb = np.uint32(b[k] + np.uint32(sq))
                a[k] = sa
                b[k] = sb
                r[k] = f[k]
                ia = np.int32(sa)
                d = np.int32(n32 * np.int32(sb) - ia * ia)
                o[k] = np.sqrt(np.float32(d)) * scale / np.float32(ia)
            continue
        for k in range(L):
            v = np.int32(f[k])
            a[k] = np.uint16(a[k] + v)
            b[k] = np.uint32(b[k] + v * v)
            r[k] = f[k]
        if emit:
            for k in range(L):
                ia = np.int32(a[k])
                d = np.int32(n32 * np.int32(b[k]) - ia * ia)
                o[k] = np.sqrt(np.float32(d)) * scale / np.float32(ia)
        else:
            for k in range(L):
                o[k] = np.nan


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
def box3d(x, m, mask_t, out, wt, step, w, rowmap, colmap, ddof, min_valid, nbands, off, zero, mean):  # type: ignore[no-untyped-def]
    """K (or, with ``mean``, ⟨I⟩) over wt×w×w voxels of x (T, H, W) into out (n_out, Ho, Wo).

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
                    elif mean:
                        out[b, i, j] = np.float64(a1) / ac + np.float64(off)
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


spatial_box_serial = _serial_twin(spatial_box, fast=True)
temporal_box_serial = _serial_twin(temporal_box, fast=True)
rolling_update_serial = _serial_twin(rolling_update, fast=True)
rolling_update_u8_serial = _serial_twin(rolling_update_u8, fast=True)
box3d_serial = _serial_twin(box3d, fast=False)
temporal_planes_serial = _serial_twin(temporal_planes, fast=False)
