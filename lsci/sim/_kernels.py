"""Numba kernels of the dynamic speckle simulator: one exposure of the image-plane field.

The field of the moving scatterers evolves per pixel as a complex Ornstein–Uhlenbeck (AR(1))
process; its innovations are pupil-filtered complex Gaussian fields taken from a precomputed bank
with a random circular shift and a random phase per sub-step (see :mod:`lsci.sim.speckle`).

Arguments shared by the kernels:

``state``
    complex128 (H, W): the moving-scatterer field at the previous sample, updated in place.
``bank``
    complex64 (L, H, W): the innovation fields.
``layers``, ``shifts_y``, ``shifts_x``, ``phases``
    one entry per sample of the exposure, plus one: sample ``j`` draws the innovation
    ``W_j = phases[j] · bank[layers[j], (y + shifts_y[j]) mod H, (x + shifts_x[j]) mod W]``.
    The first sample, which follows the dead time between frames, draws ``(W_0 + W_n)/√2``
    from two different layers: after a dead time ≫ τc the field is that innovation alone, and
    a single layer would make the frame a translated copy of a bank field.
``steps``
    float64 (4, H, W): ``a``, ``sqrt(1 − a²)`` of the first step (from the previous sample to
    the first of this exposure), then of the steps between samples.
``gains``
    float64 (2, H, W): gains of the sample means of the field and of the intensity about their
    ensemble means (0 and 1), which give them their continuous-time second moments.
``mixing``
    float64 (3, H, W): amplitude of the static field, of the moving field, and illumination.
``static_field``
    complex128 (H, W): the field of the static scatterers.
``out``
    float32 or float64 (H, W): exposure-averaged intensity.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_SQRT_HALF = math.sqrt(0.5)


@njit(cache=True, parallel=True)
def expose(
    state: np.ndarray,
    bank: np.ndarray,
    layers: np.ndarray,
    shifts_y: np.ndarray,
    shifts_x: np.ndarray,
    phases: np.ndarray,
    steps: np.ndarray,
    gains: np.ndarray,
    mixing: np.ndarray,
    static_field: np.ndarray,
    out: np.ndarray,
    n_chunks: int,
) -> None:
    """One exposure of all rows, split into ``n_chunks`` blocks of rows run in parallel."""
    height = state.shape[0]
    for chunk in prange(n_chunks):
        for y in range(chunk * height // n_chunks, (chunk + 1) * height // n_chunks):
            expose_row(
                y,
                state,
                bank,
                layers,
                shifts_y,
                shifts_x,
                phases,
                steps,
                gains,
                mixing,
                static_field,
                out,
            )


@njit(cache=True)
def expose_serial(
    state: np.ndarray,
    bank: np.ndarray,
    layers: np.ndarray,
    shifts_y: np.ndarray,
    shifts_x: np.ndarray,
    phases: np.ndarray,
    steps: np.ndarray,
    gains: np.ndarray,
    mixing: np.ndarray,
    static_field: np.ndarray,
    out: np.ndarray,
) -> None:
    """One exposure of all rows in one thread.

    Small frames cost less without a parallel region, whose idle OpenMP workers spin after it.
    """
    for y in range(state.shape[0]):
        expose_row(
            y,
            state,
            bank,
            layers,
            shifts_y,
            shifts_x,
            phases,
            steps,
            gains,
            mixing,
            static_field,
            out,
        )


@njit(cache=True)
def _advance_span(
    field: np.ndarray,
    innovation: np.ndarray,
    offset: int,
    start: int,
    stop: int,
    phase: complex,
    a: np.ndarray,
    b: np.ndarray,
    sum_field: np.ndarray,
    sum_intensity: np.ndarray,
) -> None:
    """One AR(1) step of ``field[start:stop]`` with ``innovation[start + offset:...]``."""
    for x in range(start, stop):
        e = a[x] * field[x] + b[x] * (phase * innovation[x + offset])
        field[x] = e
        sum_field[x] += e
        sum_intensity[x] += e.real * e.real + e.imag * e.imag


@njit(cache=True)
def expose_row(
    y: int,
    state: np.ndarray,
    bank: np.ndarray,
    layers: np.ndarray,
    shifts_y: np.ndarray,
    shifts_x: np.ndarray,
    phases: np.ndarray,
    steps: np.ndarray,
    gains: np.ndarray,
    mixing: np.ndarray,
    static_field: np.ndarray,
    out: np.ndarray,
) -> None:
    """Advance row ``y`` of ``state`` through one exposure; write its mean intensity to ``out``.

    The exposure-averaged intensity is ``|s E_s|² + 2 s d Re(E_s* A) + d² B`` with ``A`` and
    ``B`` the gain-corrected sample means of the moving field and of its intensity, ``E_s`` the
    static field, ``s`` and ``d`` the static and moving amplitudes, times the illumination.
    """
    height, width = state.shape
    n_sub = layers.shape[0] - 1
    inv_n = 1.0 / n_sub
    field = state[y]
    sum_field = np.empty(width, dtype=np.complex128)
    sum_intensity = np.empty(width)
    first = bank[layers[0], (y + shifts_y[0]) % height]
    second = bank[layers[n_sub], (y + shifts_y[n_sub]) % height]
    phase_first = _SQRT_HALF * phases[0]
    phase_second = _SQRT_HALF * phases[n_sub]
    for x in range(width):
        column_first = (x + shifts_x[0]) % width
        column_second = (x + shifts_x[n_sub]) % width
        w = phase_first * first[column_first] + phase_second * second[column_second]
        e = steps[0, y, x] * field[x] + steps[1, y, x] * w
        field[x] = e
        sum_field[x] = e
        sum_intensity[x] = e.real * e.real + e.imag * e.imag
    a = steps[2, y]
    b = steps[3, y]
    for j in range(1, n_sub):
        innovation = bank[layers[j], (y + shifts_y[j]) % height]
        sx = shifts_x[j]
        # Two spans instead of a modulo per pixel: the circular shift wraps once per row.
        _advance_span(
            field, innovation, sx, 0, width - sx, phases[j], a, b, sum_field, sum_intensity
        )
        _advance_span(
            field,
            innovation,
            sx - width,
            width - sx,
            width,
            phases[j],
            a,
            b,
            sum_field,
            sum_intensity,
        )
    for x in range(width):
        mean_field = sum_field[x] * (inv_n * gains[0, y, x])
        mean_intensity = 1.0 + (sum_intensity[x] * inv_n - 1.0) * gains[1, y, x]
        es = static_field[y, x]
        s = mixing[0, y, x]
        d = mixing[1, y, x]
        cross = es.real * mean_field.real + es.imag * mean_field.imag
        value = s * s * (es.real * es.real + es.imag * es.imag) + 2.0 * s * d * cross
        value += d * d * mean_intensity
        # The rescaled moments can leave a rare sample marginally below zero.
        out[y, x] = mixing[2, y, x] * max(value, 0.0)
