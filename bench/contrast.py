"""Speckle-contrast kernels against scipy, OpenCV, NumPy and pylsci, and against memory bandwidth.

Targets (issue: contrast core), as ratios from one run on the same machine, each stated on one
thread and on all threads: spatial w=7 1024² uint8 ≥45× faster than
scipy.ndimage.uniform_filter and ≥4× faster than the best OpenCV box-filter variant; w=15 costs
≤1.3× w=5; the rolling temporal update runs at ≥3000 frames/s at 1024² (all threads).

Fairness rules:

- Every implementation gets its best call: every buffer is allocated once, before timing, and
  passed as ``output=`` / ``dst=`` / ``out=``; the raw frames go in as they are (8- or 16-bit),
  cast only where the library needs it; K is finished in place.
- Every implementation gets the same threads as lsci on that row. lsci follows numba's setting
  and OpenCV its own (``cv2.setNumThreads``). SciPy's ndimage filters and NumPy have no threads
  of their own, so on n threads the frame is cut into n row bands (each reading the window's
  halo) that n Python threads compute at once; both release the GIL, so the bands run in
  parallel. OpenCV is measured both ways and its faster one counts.
- pylsci is pure Python (a double loop under the GIL): it runs on one thread whatever the
  setting, and its spatial contrast is timed on a 96² crop and scaled to the frame's pixels.
- Before timing, every baseline's K (except pylsci's: it zeroes the border and clamps K > 1)
  is checked against lsci's, so each row computes the same thing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.report import Report, Row, Target
from bench.timing import (
    Bandwidth,
    Timing,
    all_threads,
    measure,
    row_bands,
    run_bands,
    thread_limit,
)
from lsci.core.contrast import (
    RollingTemporalContrast,
    spatial_contrast,
    spatiotemporal_contrast,
    temporal_contrast,
)

SUITE = "contrast"
WINDOWS = (5, 7, 15)
TEMPORAL_N = 25
PYLSCI_CROP = 96

# A band of a baseline: given the input rows it reads, the output rows it fills and where
# those sit in its input, it allocates its buffers and returns the call that fills them.
Part = Callable[[np.ndarray, np.ndarray, slice], Callable[[], None]]


def speckle_like(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    """Exponentially distributed intensities (fully developed speckle statistics) in ``dtype``."""
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 4095  # 12-bit data in a 16-bit container
    return np.clip(rng.exponential(top / 6, size=shape), 0, top).astype(dtype)


def _finish_k(mean: np.ndarray, mean_sq: np.ndarray, tmp: np.ndarray, k: np.ndarray) -> None:
    """K = sqrt(max(E[I²] − E[I]², 0)) / E[I] with NumPy, in place."""
    with np.errstate(divide="ignore", invalid="ignore"):
        np.multiply(mean, mean, out=tmp)
        np.subtract(mean_sq, tmp, out=tmp)
        np.maximum(tmp, 0, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(tmp, mean, out=k)


def scipy_part(window: int) -> Part:
    """``scipy.ndimage.uniform_filter`` on I (read as it is) and on I² (float32)."""
    from scipy.ndimage import uniform_filter

    def part(src: np.ndarray, k: np.ndarray, inner: slice) -> Callable[[], None]:
        mean = np.empty(src.shape, np.float32)
        mean_sq = np.empty_like(mean)
        sq = np.empty_like(mean)

        def call() -> None:
            uniform_filter(src, window, output=mean, mode="reflect")
            np.multiply(src, src, out=sq, dtype=np.float32)
            uniform_filter(sq, window, output=mean_sq, mode="reflect")
            _finish_k(mean[inner], mean_sq[inner], sq[inner], k)

        return call

    return part


def opencv_parts(window: int) -> dict[str, Part]:
    """OpenCV's box filters: boxFilter + sqrBoxFilter straight from the raw frame (K finished
    with cv2 or with NumPy), or blur on float32 I and I²."""
    import cv2

    size = (window, window)
    border = cv2.BORDER_REFLECT  # lsci's and scipy's 'reflect'

    def box(cv2_ops: bool) -> Part:
        def part(src: np.ndarray, k: np.ndarray, inner: slice) -> Callable[[], None]:
            mean = np.empty(src.shape, np.float32)
            mean_sq = np.empty_like(mean)
            tmp = np.empty_like(mean)
            m, m2, t = mean[inner], mean_sq[inner], tmp[inner]

            def call() -> None:
                cv2.boxFilter(src, cv2.CV_32F, size, dst=mean, borderType=border)
                cv2.sqrBoxFilter(src, cv2.CV_32F, size, dst=mean_sq, borderType=border)
                if cv2_ops:
                    cv2.multiply(m, m, dst=t)
                    cv2.subtract(m2, t, dst=t)
                    cv2.max(t, 0, dst=t)
                    cv2.sqrt(t, dst=t)
                    cv2.divide(t, m, dst=k)
                else:
                    _finish_k(m, m2, t, k)

            return call

        return part

    def blur(src: np.ndarray, k: np.ndarray, inner: slice) -> Callable[[], None]:
        f = np.empty(src.shape, np.float32)
        sq = np.empty_like(f)
        mean = np.empty_like(f)
        mean_sq = np.empty_like(f)

        def call() -> None:
            np.copyto(f, src)
            np.multiply(f, f, out=sq)
            cv2.blur(f, size, dst=mean, borderType=border)
            cv2.blur(sq, size, dst=mean_sq, borderType=border)
            _finish_k(mean[inner], mean_sq[inner], sq[inner], k)

        return call

    return {
        "opencv box+sqrBox, cv2 ops": box(cv2_ops=True),
        "opencv box+sqrBox, numpy ops": box(cv2_ops=False),
        "opencv blur on float32": blur,
    }


def numpy_std_part(stack: np.ndarray, k: np.ndarray, _inner: slice) -> Callable[[], None]:
    """``np.mean`` and ``np.std`` over time in float64, straight from the raw stack."""
    mean = np.empty(k.shape, np.float64)
    std = np.empty_like(mean)

    def call() -> None:
        np.mean(stack, axis=0, dtype=np.float64, out=mean)
        np.std(stack, axis=0, dtype=np.float64, out=std)
        np.divide(std, mean, out=k)

    return call


def numpy_sums_part(stack: np.ndarray, k: np.ndarray, _inner: slice) -> Callable[[], None]:
    """Exact integer sums of I and I² over time, frame by frame, then K in float64."""
    acc = np.uint32 if stack.dtype == np.uint8 else np.uint64
    s1, s2, sq = (np.empty(k.shape, acc) for _ in range(3))
    a, b, c = (np.empty(k.shape, np.float64) for _ in range(3))
    n = len(stack)

    def call() -> None:
        s1.fill(0)
        s2.fill(0)
        for frame in stack:
            np.add(s1, frame, out=s1)
            np.multiply(frame, frame, out=sq, dtype=acc)
            np.add(s2, sq, out=s2)
        np.copyto(a, s1)
        np.copyto(b, s2)
        np.multiply(b, n, out=b)
        np.multiply(a, a, out=c)
        np.subtract(b, c, out=b)  # n·ΣI² − (ΣI)², exact
        np.sqrt(b, out=b)
        np.divide(b, a, out=k)

    return call


def banded(
    part: Part, source: np.ndarray, k: np.ndarray, bands: int, halo: int
) -> list[Callable[[], None]]:
    """One call per row band of ``source`` (frames: rows are axis 0; stacks: axis 1)."""
    axis = source.ndim - 2
    calls = []
    for read, rows, inner in row_bands(source.shape[axis], bands, halo):
        src = source[read] if axis == 0 else source[:, read]
        calls.append(part(src, k[rows], inner))
    return calls


def pylsci_spatial_per_pixel(dtype: type, window: int) -> Timing | None:
    """pylsci's spatial contrast is a pure-Python loop: time a small crop, per pixel."""
    try:
        from pylsci import Lsci
    except ImportError:
        return None
    crop = speckle_like((PYLSCI_CROP, PYLSCI_CROP), dtype)
    timing = measure(lambda: Lsci(nbh_s=window).spatial_contrast(crop), repeats=3, warmup=1)
    return Timing(timing.median_s / crop.size, timing.min_s / crop.size, timing.repeats)


def compile_and_cache_load_s() -> tuple[float, float]:
    """First-call time of spatial_contrast in a new process: with an empty and a warm cache."""
    code = (
        "import time, numpy as np\n"
        "from lsci.core.contrast import spatial_contrast\n"
        "frame = np.ones((64, 64), np.uint8)\n"
        "t = time.perf_counter(); spatial_contrast(frame, 7)\n"
        "print(time.perf_counter() - t)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"NUMBA_CACHE_DIR": cache}

        def first_call() -> float:
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            return float(out.stdout.strip())

        return first_call(), first_call()


def _check_same(name: str, k: np.ndarray, reference: np.ndarray) -> None:
    """A baseline must compute lsci's K (float32 two-pass sums: ≈1e-4 relative at K ≈ 1)."""
    np.testing.assert_allclose(k, reference, rtol=2e-3, atol=1e-4, err_msg=name)


class _Bench:
    """Shared state of one run: report, bandwidth, repeats and the pool that runs row bands."""

    def __init__(self, report: Report, bw: Bandwidth, repeats: int, pool: ThreadPoolExecutor):
        self.report, self.bw, self.repeats, self.pool = report, bw, repeats, pool

    def row(
        self, case: str, impl: str, timing: Timing, moved: int, threads: int, note: str = ""
    ) -> None:
        ceiling = self.bw.one_thread_bps if threads == 1 else self.bw.ceiling_bps
        seconds = timing.median_s
        self.report.rows.append(
            Row(SUITE, case, impl, 1e3 * seconds, per_second=1 / seconds,
                fraction_of_bandwidth=moved / seconds / ceiling, note=note, threads=threads,
                min_ms=1e3 * timing.min_s)
        )  # fmt: skip

    def baseline(
        self,
        part: Part,
        source: np.ndarray,
        reference: np.ndarray,
        threads: int,
        halo: int,
        own_threads: bool,
    ) -> dict[str, Timing]:
        """Timings of ``part`` on ``threads`` threads, by how they were given.

        A library with its own threads runs as one call under ``thread_limit(threads)``; on
        more than one thread every library also runs in row bands, one per thread.
        """
        k = np.empty(reference.shape, np.float32)
        ways: dict[str, Timing] = {}
        if own_threads or threads == 1:
            (call,) = banded(part, source, k, 1, halo)
            with thread_limit(threads):
                ways["one call"] = self._checked_timing("one call", call, k, reference)
        if threads > 1:
            calls = banded(part, source, k, threads, halo)
            with thread_limit(1):
                how = f"{threads} row bands"
                ways[how] = self._checked_timing(
                    how, lambda: run_bands(calls, self.pool), k, reference
                )
        return ways

    def _checked_timing(
        self, how: str, call: Callable[[], None], k: np.ndarray, reference: np.ndarray
    ) -> Timing:
        """Check the call's K against lsci's, then time it (as many repeats as lsci gets,
        a third of them for calls slower than 20 ms)."""
        k.fill(np.nan)
        first = measure(call, repeats=1, warmup=0)
        _check_same(how, k, reference)
        repeats = self.repeats if first.median_s < 0.02 else max(3, self.repeats // 3)
        return measure(call, repeats=repeats)

    def spatial(
        self, frame: np.ndarray, threads: int, with_baselines: bool
    ) -> dict[tuple[int, str], float]:
        """Spatial contrast at each window; median seconds by (window, implementation)."""
        size, dname = frame.shape[0], frame.dtype.name
        out = np.empty(frame.shape, np.float32)
        moved = frame.nbytes + out.nbytes
        seconds: dict[tuple[int, str], float] = {}
        for w in WINDOWS:
            case = f"spatial {size}² {dname} w={w}"
            with thread_limit(threads):
                t = measure(lambda w=w: spatial_contrast(frame, w, out=out), repeats=self.repeats)
            seconds[(w, "lsci")] = t.median_s
            self.row(case, "lsci", t, moved, threads)
            if not with_baselines:
                continue
            reference = out.copy()
            families = {"scipy uniform_filter": (scipy_part(w), False)}
            families |= {name: (part, True) for name, part in opencv_parts(w).items()}
            for name, (part, own) in families.items():
                ways = self.baseline(part, frame, reference, threads, w // 2, own)
                for how, timing in ways.items():
                    self.row(case, name, timing, moved, threads, note=how)
                family = "scipy" if name.startswith("scipy") else "opencv"
                fastest = min(timing.median_s for timing in ways.values())
                seconds[(w, family)] = min(seconds.get((w, family), np.inf), fastest)
            per_px = pylsci_spatial_per_pixel(frame.dtype.type, w) if threads == 1 else None
            if per_px is not None:
                n = frame.size
                scaled = Timing(per_px.median_s * n, per_px.min_s * n, per_px.repeats)
                note = f"{PYLSCI_CROP}² crop, time scaled ×{n / PYLSCI_CROP**2:.0f}"
                self.row(case, "pylsci (pure Python)", scaled, moved, 1, note)
        return seconds

    def temporal(self, stack: np.ndarray, threads: int, with_baselines: bool) -> float:
        """Whole-stack, rolling and spatio-temporal contrast; returns the rolling update seconds."""
        size, dname = stack.shape[1], stack.dtype.name
        out = np.empty(stack.shape[1:], np.float32)
        moved = stack.nbytes + out.nbytes
        case = f"temporal {size}² {dname} N={TEMPORAL_N} stack"
        with thread_limit(threads):
            call = lambda: temporal_contrast(stack, TEMPORAL_N, out=out[None])  # noqa: E731
            t = measure(call, repeats=self.repeats)
        self.row(case, "lsci", t, moved, threads)
        if with_baselines:
            reference = out.copy()
            for name, part in (("numpy mean/std float64", numpy_std_part),
                               ("numpy integer sums", numpy_sums_part)):  # fmt: skip
                ways = self.baseline(part, stack, reference, threads, 0, own_threads=False)
                for how, timing in ways.items():
                    self.row(case, name, timing, moved, threads, note=how)
            if threads == 1:
                self._pylsci_temporal(case, stack, moved)

        rolling = RollingTemporalContrast((size, size), TEMPORAL_N, dtype=stack.dtype)
        k = np.empty((size, size), np.float32)
        order = iter(np.tile(np.arange(TEMPORAL_N), 10_000))
        with thread_limit(threads):
            for frame in stack:
                rolling.update(frame, out=k)
            rolling_t = measure(
                lambda: rolling.update(stack[next(order)], out=k), repeats=5 * self.repeats
            )
        # A rolling update reads the new frame, reads and overwrites the oldest one in the ring,
        # reads and rewrites the per-pixel sums of I and I² (uint8 with N ≤ 257: uint16 and
        # uint32; uint16: two float64) and writes K: 19 bytes per pixel for uint8.
        sums_bytes = 2 + 4 if stack.dtype == np.uint8 else 2 * 8
        moved = 3 * stack[0].nbytes + 2 * sums_bytes * stack[0].size + out.nbytes
        self.row(f"temporal {size}² {dname} N={TEMPORAL_N} rolling update", "lsci", rolling_t,
                 moved, threads)  # fmt: skip

        st = stack[:5]
        with thread_limit(threads):
            call = lambda: spatiotemporal_contrast(st, 7, 5, out=out[None])  # noqa: E731
            t = measure(call, repeats=self.repeats)
        self.row(f"spatiotemporal {size}² {dname} 7×7×5", "lsci", t, st.nbytes + out.nbytes,
                 threads)  # fmt: skip
        return rolling_t.median_s

    def _pylsci_temporal(self, case: str, stack: np.ndarray, moved: int) -> None:
        try:
            from pylsci import Lsci
        except ImportError:
            return
        lsci_peer = Lsci(nbh_t=TEMPORAL_N)
        t = measure(lambda: lsci_peer.temporal_contrast(stack), repeats=3)
        self.row(case, "pylsci (NumPy)", t, moved, 1, note="clamps K > 1 to 1")


def run(report: Report, bandwidth: Bandwidth, *, quick: bool = False) -> None:
    """Measure every case on one thread and on all threads; append rows and targets."""
    sizes = (1024,) if quick else (1024, 2048)
    repeats = 7 if quick else 15
    counts = sorted({1, all_threads()})
    spatial: dict[int, dict[tuple[int, str], float]] = {}
    rolling: dict[int, float] = {}
    with ThreadPoolExecutor(max_workers=max(counts)) as pool:
        bench = _Bench(report, bandwidth, repeats, pool)
        for threads in counts:
            for size in sizes:
                for dtype in (np.uint8, np.uint16):
                    with_baselines = size == 1024
                    frame = speckle_like((size, size), dtype)
                    seconds = bench.spatial(frame, threads, with_baselines)
                    stack = speckle_like((TEMPORAL_N, size, size), dtype, seed=1)
                    rolling_s = bench.temporal(stack, threads, with_baselines)
                    if size == 1024 and dtype == np.uint8:
                        spatial[threads], rolling[threads] = seconds, rolling_s
    for threads in counts:
        s, on = spatial[threads], f"{threads} thread{'s' if threads > 1 else ''}"
        report.targets += [
            Target(f"spatial w=7 1024² u8, {on}: scipy time / lsci time",
                   s[(7, "scipy")] / s[(7, "lsci")], 45),
            Target(f"spatial w=7 1024² u8, {on}: best OpenCV time / lsci time",
                   s[(7, "opencv")] / s[(7, "lsci")], 4),
            Target(f"spatial 1024² u8, {on}: lsci w=15 time / w=5 time",
                   s[(15, "lsci")] / s[(5, "lsci")], 1.3, higher_is_better=False),
        ]  # fmt: skip
    most = max(counts)
    report.targets.append(
        Target(f"rolling temporal update 1024² u8, {most} threads (frames/s)", 1 / rolling[most],
               3000)
    )  # fmt: skip
    report.extra["contrast_threads"] = counts
    cold, warm = compile_and_cache_load_s()
    report.extra["spatial_contrast_first_call_s"] = {"empty_cache": cold, "warm_cache": warm}
