"""Offline processing against the raw-read ceiling, and the Dask cluster's speed-up.

Targets (issue: recordings), from one run:

- ``lsci process`` spatial w=7 on a 1280×1024 uint8 recording reaches ≥80 % of the throughput
  of simply reading its raw frames (the work should be bound by I/O, not by computation);
- on a Dask ``LocalCluster``, 2 single-threaded workers process a compute-heavy setting
  (1/τc from the visibility equation) ≥1.6× faster than 1 worker.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import Report, Row, Target
from bench.timing import Bandwidth
from lsci.processing import ProcessingSettings, process_recording
from lsci.recording import AcquisitionMetadata, RecordingWriter, open_recording

SUITE = "processing"
CHUNK_FRAMES = 64


def make_recording(path: Path, shape: tuple[int, int], n_frames: int) -> None:
    """A recording of speckle-like uint8 frames (exponential intensities)."""
    rng = np.random.default_rng(0)
    pool = np.clip(rng.exponential(40, size=(16, *shape)), 1, 255).astype(np.uint8)
    meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=200.0, bit_depth=8)
    with RecordingWriter(path, meta, frame_shape=shape, dtype=np.uint8, fsync_interval_s=None) as w:
        for i in range(n_frames):
            w.append(pool[i % len(pool)], frame_id=i)


def read_all(path: Path) -> float:
    """Seconds to read every raw frame, in chunks as processing reads them."""
    start = time.perf_counter()
    with open_recording(path) as rec:
        for first in range(0, len(rec.frames), CHUNK_FRAMES):
            rec.frames[first : first + CHUNK_FRAMES]
    return time.perf_counter() - start


def _single_machine(report: Report, folder: Path, n_frames: int) -> None:
    path = folder / "process.h5"
    make_recording(path, (1024, 1280), n_frames)
    read_all(path)  # both measurements then start from the same (warm) page cache
    raw_s = min(read_all(path) for _ in range(3))
    frame_mb = 1024 * 1280 / 1e6
    report.rows.append(
        Row(SUITE, f"1280×1024 u8, {n_frames} frames", "read raw frames", 1e3 * raw_s / n_frames,
            per_second=n_frames / raw_s, note=f"{n_frames * frame_mb / raw_s:,.0f} MB/s")
    )  # fmt: skip
    ratios = {}
    # Full-rate float32 maps are 4× (K) or 8× (K and 1/K²) the uint8 input to write; averaging
    # frames into one map shrinks the output and shows what the writing costs.
    for model, average in (("contrast", 1), ("inverse_k2", 1), ("contrast", 8)):
        settings = ProcessingSettings(mode="spatial", window=7, model=model, average=average)
        result = process_recording(path, settings, overwrite=True)
        name = f"lsci process spatial w=7, {model}, average {average}"
        report.rows.append(
            Row(SUITE, f"1280×1024 u8, {n_frames} frames", name, 1e3 * result.seconds / n_frames,
                per_second=result.frames_per_s, note=f"{result.megabytes_per_s:,.0f} MB/s raw")
        )  # fmt: skip
        ratios[f"{model}, average {average}"] = result.frames_per_s / (n_frames / raw_s)
    report.targets.append(
        Target("lsci process spatial w=7 (K only) / raw read throughput",
               ratios["contrast, average 1"], 0.8)
    )  # fmt: skip
    report.extra["process_over_raw_read"] = ratios


def _cluster_seconds(path: Path, workers: int, settings: ProcessingSettings) -> float:
    from distributed import Client, LocalCluster

    from lsci.processing.distributed import process_recording_distributed

    # One numba thread per worker process: the workers are the parallelism.
    before = os.environ.get("NUMBA_NUM_THREADS")
    os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):  # fmt: skip
            # Warm up: every worker imports lsci and loads the compiled kernels.
            client.run(lambda: __import__("lsci.processing.distributed"))
            start = time.perf_counter()
            process_recording_distributed(
                path, settings, scheduler=client, memory_bytes=32 << 20, overwrite=True
            )
            return time.perf_counter() - start
    finally:
        if before is None:
            del os.environ["NUMBA_NUM_THREADS"]
        else:
            os.environ["NUMBA_NUM_THREADS"] = before


def _dask(report: Report, folder: Path, n_frames: int) -> None:
    settings = ProcessingSettings(mode="spatial", window=7, model="inverse_tau", exposure_s=0.005)
    seconds = {}
    for workers in (1, 2):
        # A file of its own: the second run must compute, not find the first run's products.
        path = folder / f"dask-{workers}.h5"
        make_recording(path, (512, 512), n_frames)
        seconds[workers] = _cluster_seconds(path, workers, settings)
    for workers, s in seconds.items():
        report.rows.append(
            Row(SUITE, f"512² u8, {n_frames} frames, 1/τc", f"Dask, {workers} worker(s)",
                1e3 * s / n_frames, per_second=n_frames / s)
        )  # fmt: skip
    report.targets.append(
        Target("Dask speed-up, 2 workers over 1 (1/τc)", seconds[1] / seconds[2], 1.6)
    )


def run(report: Report, bandwidth: Bandwidth, *, quick: bool = False) -> None:
    """Measure both cases and append the rows and targets to ``report``."""
    with tempfile.TemporaryDirectory(prefix="lsci-bench-", dir=Path.cwd()) as tmp:
        _single_machine(report, Path(tmp), 200 if quick else 800)
        _dask(report, Path(tmp), 60 if quick else 200)
