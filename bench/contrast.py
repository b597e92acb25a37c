"""Speckle-contrast kernels against scipy, OpenCV and pylsci, and against memory bandwidth.

Targets (issue: contrast core), as ratios from one run on the same machine:
spatial w=7 1024² uint8 ≥45× faster than scipy.ndimage.uniform_filter and ≥4× faster than the
best OpenCV box-filter variant with preallocated outputs; w=15 costs ≤1.3× w=5; the rolling
temporal update runs at ≥3000 frames/s at 1024².
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable

import numpy as np

from bench.report import Report, Row, Target
from bench.timing import Bandwidth, measure
from lsci.core.contrast import (
    RollingTemporalContrast,
    spatial_contrast,
    spatiotemporal_contrast,
    temporal_contrast,
)

SUITE = "contrast"
WINDOWS = (5, 7, 15)
TEMPORAL_N = 25


def speckle_like(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    """Exponentially distributed intensities (fully developed speckle statistics) in ``dtype``."""
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 4095  # 12-bit data in a 16-bit container
    return np.clip(rng.exponential(top / 6, size=shape), 0, top).astype(dtype)


def scipy_spatial(frame: np.ndarray, window: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    f = frame.astype(np.float32)
    mean = uniform_filter(f, window, mode="reflect")
    mean_sq = uniform_filter(f * f, window, mode="reflect")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(np.maximum(mean_sq - mean * mean, 0)) / mean


def opencv_variants(frame: np.ndarray, window: int) -> dict[str, Callable[[], object]]:
    """OpenCV box filters with every output preallocated; K finished with cv2 or NumPy ops."""
    import cv2

    mean = np.empty(frame.shape, np.float32)
    mean_sq = np.empty_like(mean)
    tmp = np.empty_like(mean)
    k = np.empty_like(mean)
    size = (window, window)
    border = cv2.BORDER_REFLECT

    def filters() -> None:
        cv2.boxFilter(frame, cv2.CV_32F, size, dst=mean, borderType=border)
        cv2.sqrBoxFilter(frame, cv2.CV_32F, size, dst=mean_sq, borderType=border)

    def with_cv2_ops() -> None:
        filters()
        cv2.multiply(mean, mean, dst=tmp)
        cv2.subtract(mean_sq, tmp, dst=tmp)
        cv2.max(tmp, 0, dst=tmp)
        cv2.sqrt(tmp, dst=tmp)
        cv2.divide(tmp, mean, dst=k)

    def with_numpy_ops() -> None:
        filters()
        np.multiply(mean, mean, out=tmp)
        np.subtract(mean_sq, tmp, out=tmp)
        np.maximum(tmp, 0, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(tmp, mean, out=k)

    return {
        "opencv box+sqrBox, cv2 ops": with_cv2_ops,
        "opencv box+sqrBox, numpy ops": with_numpy_ops,
    }


def pylsci_seconds_per_pixel(dtype: type, window: int) -> float | None:
    """pylsci's spatial contrast is a pure-Python loop: time a small crop, per pixel."""
    try:
        from pylsci import Lsci
    except ImportError:
        return None
    crop = speckle_like((96, 96), dtype)
    timing = measure(lambda: Lsci(nbh_s=window).spatial_contrast(crop), repeats=3, warmup=1)
    return timing.median_s / crop.size


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


def _row(case: str, impl: str, seconds: float, bytes_per_frame: int, bw: Bandwidth) -> Row:
    return Row(
        SUITE,
        case,
        impl,
        1e3 * seconds,
        per_second=1 / seconds,
        fraction_of_bandwidth=bytes_per_frame / seconds / bw.ceiling_bps,
    )


def _spatial(
    report: Report, bw: Bandwidth, frame: np.ndarray, repeats: int, with_baselines: bool
) -> dict[tuple[int, str], float]:
    """Spatial contrast at each window; returns median seconds by (window, implementation)."""
    size, dname = frame.shape[0], frame.dtype.name
    out = np.empty(frame.shape, np.float32)
    frame_bytes = frame.nbytes + out.nbytes
    seconds: dict[tuple[int, str], float] = {}
    for w in WINDOWS:
        case = f"spatial {size}² {dname} w={w}"

        def lsci_spatial(w: int = w) -> object:
            return spatial_contrast(frame, w, out=out)

        t = measure(lsci_spatial, repeats=repeats).median_s
        seconds[(w, "lsci")] = t
        report.rows.append(_row(case, "lsci", t, frame_bytes, bw))
        if not with_baselines:
            continue
        t = measure(lambda w=w: scipy_spatial(frame, w), repeats=max(3, repeats // 3)).median_s
        seconds[(w, "scipy")] = t
        report.rows.append(_row(case, "scipy uniform_filter", t, frame_bytes, bw))
        seconds[(w, "opencv")] = np.inf
        for name, fn in opencv_variants(frame, w).items():
            t = measure(fn, repeats=repeats).median_s
            seconds[(w, "opencv")] = min(seconds[(w, "opencv")], t)
            report.rows.append(_row(case, name, t, frame_bytes, bw))
        per_px = pylsci_seconds_per_pixel(frame.dtype.type, w)
        if per_px is not None:
            impl = "pylsci (96² crop, scaled)"
            report.rows.append(_row(case, impl, per_px * frame.size, frame_bytes, bw))
    return seconds


def _temporal(
    report: Report, bw: Bandwidth, stack: np.ndarray, repeats: int, with_baselines: bool
) -> float:
    """Whole-stack, rolling and spatio-temporal contrast; returns the rolling update seconds."""
    size, dname = stack.shape[1], stack.dtype.name
    out_bytes = 4 * size * size
    case = f"temporal {size}² {dname} N={TEMPORAL_N}"
    t = measure(lambda: temporal_contrast(stack, TEMPORAL_N), repeats=repeats).median_s
    report.rows.append(_row(case + " stack", "lsci", t, stack.nbytes + out_bytes, bw))
    if with_baselines:

        def numpy_temporal() -> np.ndarray:
            f = stack.astype(np.float64)
            return (f.std(axis=0) / f.mean(axis=0)).astype(np.float32)

        t = measure(numpy_temporal, repeats=max(3, repeats // 3)).median_s
        report.rows.append(_row(case + " stack", "numpy float64", t, stack.nbytes + out_bytes, bw))

    rolling = RollingTemporalContrast((size, size), TEMPORAL_N, dtype=stack.dtype)
    for frame in stack:
        rolling.update(frame)
    order = iter(np.tile(np.arange(TEMPORAL_N), 1000))
    rolling_s = measure(lambda: rolling.update(stack[next(order)]), repeats=5 * repeats).median_s
    # A rolling update reads the new and the oldest frame and writes K.
    moved = 2 * stack[0].nbytes + out_bytes
    report.rows.append(_row(case + " rolling update", "lsci", rolling_s, moved, bw))

    st = stack[:5]
    case = f"spatiotemporal {size}² {dname} 7×7×5"
    t = measure(lambda: spatiotemporal_contrast(st, 7, 5), repeats=repeats).median_s
    report.rows.append(_row(case, "lsci", t, st.nbytes + out_bytes, bw))
    return rolling_s


def run(report: Report, bandwidth: Bandwidth, *, quick: bool = False) -> None:
    """Measure every case and append the rows and targets to ``report``."""
    sizes = (1024,) if quick else (1024, 2048)
    repeats = 7 if quick else 15
    spatial: dict[tuple[int, str], float] = {}
    for size in sizes:
        for dtype in (np.uint8, np.uint16):
            with_baselines = size == 1024
            frame = speckle_like((size, size), dtype)
            seconds = _spatial(report, bandwidth, frame, repeats, with_baselines)
            stack = speckle_like((TEMPORAL_N, size, size), dtype, seed=1)
            rolling_s = _temporal(report, bandwidth, stack, repeats, with_baselines)
            if size == 1024 and dtype == np.uint8:
                spatial = seconds
                report.targets.append(
                    Target("rolling temporal update 1024² u8 (frames/s)", 1 / rolling_s, 3000)
                )
    report.targets += [
        Target(
            "spatial w=7 1024² u8: scipy time / lsci time",
            spatial[(7, "scipy")] / spatial[(7, "lsci")],
            45,
        ),
        Target(
            "spatial w=7 1024² u8: best OpenCV time / lsci time",
            spatial[(7, "opencv")] / spatial[(7, "lsci")],
            4,
        ),
        Target(
            "spatial 1024² u8: lsci w=15 time / w=5 time",
            spatial[(15, "lsci")] / spatial[(5, "lsci")],
            1.3,
            higher_is_better=False,
        ),
    ]
    cold, warm = compile_and_cache_load_s()
    report.extra["spatial_contrast_first_call_s"] = {"empty_cache": cold, "warm_cache": warm}
