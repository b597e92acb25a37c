"""Timing helpers: medians over repeats after a warm-up, and the memory-bandwidth ceiling."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
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


def all_threads() -> int:
    """The threads numba may use in this process (its start-up setting, not the current one)."""
    return int(numba.config.NUMBA_NUM_THREADS)


@contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run every library that has a thread pool on ``n`` threads, and restore them afterwards.

    numba (``numba.set_num_threads``; lsci's kernels follow it), OpenCV (``cv2.setNumThreads``)
    and, when threadpoolctl is installed, BLAS and OpenMP pools. SciPy's ndimage filters and
    NumPy's element-wise functions have no threads of their own: a baseline gives them ``n``
    threads with :func:`run_bands`.
    """
    with ExitStack() as stack:
        numba_before = numba.get_num_threads()
        numba.set_num_threads(n)
        stack.callback(numba.set_num_threads, numba_before)
        try:
            import cv2
        except ImportError:
            pass
        else:
            cv2_before = cv2.getNumThreads()
            cv2.setNumThreads(n)
            stack.callback(cv2.setNumThreads, cv2_before)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            stack.enter_context(threadpool_limits(limits=n))
        yield


def cpu_ticks() -> tuple[int, int] | None:
    """Clock ticks of all processors since boot: (stolen by the hypervisor, total); None where
    ``/proc/stat`` is not available.

    On a virtual machine, time the host gives to other guests is "steal": a run during which
    much is stolen is slower for reasons outside the code measured.
    """
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, counted in user]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def stolen_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of processor time stolen by the hypervisor between two :func:`cpu_ticks`."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


def thread_pools() -> list[dict[str, object]]:
    """The BLAS/OpenMP pools this process loaded (threadpoolctl), e.g. which OpenBLAS kernel."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [dict(pool) for pool in threadpool_info()]


def row_bands(rows: int, n: int, halo: int = 0) -> list[tuple[slice, slice, slice]]:
    """Split ``rows`` into ``n`` bands for ``n`` threads.

    Returns, per band, the input rows it reads (its own rows and up to ``halo`` rows on either
    side, clipped at the frame), its output rows, and where those output rows sit inside the
    input band.
    """
    bands = []
    for i in range(n):
        lo, hi = i * rows // n, (i + 1) * rows // n
        read_lo, read_hi = max(0, lo - halo), min(rows, hi + halo)
        bands.append((slice(read_lo, read_hi), slice(lo, hi), slice(lo - read_lo, hi - read_lo)))
    return bands


def run_bands(parts: list[Callable[[], object]], pool: ThreadPoolExecutor | None) -> None:
    """Run one callable per band: in ``pool`` (one band per thread), or inline for one band."""
    if pool is None or len(parts) == 1:
        for part in parts:
            part()
        return
    for future in [pool.submit(part) for part in parts]:
        future.result()


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
