"""Numba kernel of the dynamic speckle simulator: one exposure of the image-plane field.

The field of the moving scatterers evolves per pixel as a complex Ornstein–Uhlenbeck (AR(1))
process; its innovations are pupil-filtered complex Gaussian fields taken from a precomputed bank
with a random circular shift and a random phase per sub-step (see :mod:`lsci.simulate`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def expose(
    state: np.ndarray,
    bank: np.ndarray,
    layers: np.ndarray,
    shifts_y: np.ndarray,
    shifts_x: np.ndarray,
    phases: np.ndarray,
    rate: np.ndarray,
    first_step_s: float,
    step_s: float,
    field_gain: np.ndarray,
    intensity_gain: np.ndarray,
    static_field: np.ndarray,
    static_amp: np.ndarray,
    dynamic_amp: np.ndarray,
    illumination: np.ndarray,
    out: np.ndarray,
    n_chunks: int,
) -> None:
    """:func:`expose_row` over all rows, split into ``n_chunks`` blocks run in parallel."""
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
                rate,
                first_step_s,
                step_s,
                field_gain,
                intensity_gain,
                static_field,
                static_amp,
                dynamic_amp,
                illumination,
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
    rate: np.ndarray,
    first_step_s: float,
    step_s: float,
    field_gain: np.ndarray,
    intensity_gain: np.ndarray,
    static_field: np.ndarray,
    static_amp: np.ndarray,
    dynamic_amp: np.ndarray,
    illumination: np.ndarray,
    out: np.ndarray,
) -> None:
    """:func:`expose_row` over all rows in one thread: small frames cost less without the
    parallel region, whose idle OpenMP workers spin after it."""
    for y in range(state.shape[0]):
        expose_row(
            y,
            state,
            bank,
            layers,
            shifts_y,
            shifts_x,
            phases,
            rate,
            first_step_s,
            step_s,
            field_gain,
            intensity_gain,
            static_field,
            static_amp,
            dynamic_amp,
            illumination,
            out,
        )


@njit(cache=True)
def expose_row(
    y: int,
    state: np.ndarray,
    bank: np.ndarray,
    layers: np.ndarray,
    shifts_y: np.ndarray,
    shifts_x: np.ndarray,
    phases: np.ndarray,
    rate: np.ndarray,
    first_step_s: float,
    step_s: float,
    field_gain: np.ndarray,
    intensity_gain: np.ndarray,
    static_field: np.ndarray,
    static_amp: np.ndarray,
    dynamic_amp: np.ndarray,
    illumination: np.ndarray,
    out: np.ndarray,
) -> None:
    """Advance row ``y`` of ``state`` through one exposure; write its exposure-averaged intensity.

    ``state`` (complex128, H×W) is the moving-scatterer field at the previous sample; it is first
    advanced by ``first_step_s``, then by ``step_s`` for each further sample, so the exposure is
    sampled at ``len(layers)`` instants. Sub-step ``j`` uses the innovation
    ``phases[j] · bank[layers[j], (y + shifts_y[j]) mod H, (x + shifts_x[j]) mod W]``;
    ``bank`` is complex64 of shape (L, H, W). ``rate`` is 1/τc in 1/s (0 for a static pixel).
    The sample means of the field and of its intensity are rescaled about their ensemble means
    by ``field_gain`` and ``intensity_gain`` (to the exact continuous-time second moments),
    combined with the static field, multiplied by ``illumination`` and written to ``out``
    (float32 or float64, H×W).
    """
    height, width = state.shape
    n_sub = layers.shape[0]
    inv_n = 1.0 / n_sub
    a_first = np.empty(width)
    b_first = np.empty(width)
    a_step = np.empty(width)
    b_step = np.empty(width)
    sum_field = np.zeros(width, dtype=np.complex128)
    sum_intensity = np.zeros(width)
    for x in range(width):
        r = rate[y, x]
        a_first[x] = math.exp(-first_step_s * r)
        # sqrt(1 − a²) through expm1 keeps the innovation exact for steps ≪ τc.
        b_first[x] = math.sqrt(-math.expm1(-2.0 * first_step_s * r))
        a_step[x] = math.exp(-step_s * r)
        b_step[x] = math.sqrt(-math.expm1(-2.0 * step_s * r))
    for j in range(n_sub):
        layer = layers[j]
        row = (y + shifts_y[j]) % height
        sx = shifts_x[j]
        phase = phases[j]
        if j == 0:
            a = a_first
            b = b_first
        else:
            a = a_step
            b = b_step
        for x in range(width):
            column = x + sx
            if column >= width:
                column -= width
            w = phase * bank[layer, row, column]
            e = a[x] * state[y, x] + b[x] * w
            state[y, x] = e
            sum_field[x] += e
            sum_intensity[x] += e.real * e.real + e.imag * e.imag
    for x in range(width):
        mean_field = sum_field[x] * (inv_n * field_gain[y, x])
        mean_intensity = 1.0 + (sum_intensity[x] * inv_n - 1.0) * intensity_gain[y, x]
        es = static_field[y, x]
        sa = static_amp[y, x]
        da = dynamic_amp[y, x]
        cross = es.real * mean_field.real + es.imag * mean_field.imag
        value = (
            sa * sa * (es.real * es.real + es.imag * es.imag)
            + 2.0 * sa * da * cross
            + da * da * mean_intensity
        )
        # The rescaled moments can leave a rare sample marginally below zero.
        out[y, x] = illumination[y, x] * max(value, 0.0)
