"""Timing helpers: medians over repeats after a warm-up, and the memory-bandwidth ceiling."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated calls (after ``warmup`` untimed calls)."""

    median_s: float
    min_s: float
    repeats: int


def measure(fn: Callable[[], object], *, repeats: int = 15, warmup: int = 2) -> Timing:
    """Time ``fn()``: median and minimum over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Timing(statistics.median(samples), min(samples), repeats)


@numba.njit(parallel=True, cache=True)
def _parallel_copy(dst: np.ndarray, src: np.ndarray, n_chunks: int) -> None:
    size = src.size
    for c in numba.prange(n_chunks):
        lo = c * size // n_chunks
        hi = (c + 1) * size // n_chunks
        dst[lo:hi] = src[lo:hi]


@dataclass(frozen=True)
class Bandwidth:
    """Copy bandwidth in bytes/s (bytes read + bytes written, as a kernel moves them)."""

    one_thread_bps: float
    all_threads_bps: float
    threads: int

    @property
    def ceiling_bps(self) -> float:
        return max(self.one_thread_bps, self.all_threads_bps)


def memory_bandwidth(n_bytes: int = 1 << 30, repeats: int = 5) -> Bandwidth:
    """Measure copy bandwidth with ``np.copyto`` (one thread) and a numba parallel copy."""
    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    threads = numba.get_num_threads()
    one = measure(lambda: np.copyto(dst, src), repeats=repeats, warmup=1).median_s
    every = measure(lambda: _parallel_copy(dst, src, threads), repeats=repeats, warmup=1).median_s
    moved = 2 * src.nbytes
    return Bandwidth(moved / one, moved / every, threads)
