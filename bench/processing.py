"""Offline processing against the raw-read ceiling, where the time goes, and Dask's speed-up.

Targets (issue: derived products in their own files), from one run on the same machine:

- the default ``lsci process`` (spatial K, w = 7, 8 frames per map, 1/τc stored in float32)
  of a 1280×1024 uint8 recording read from the page cache reaches ≥ 0.5× the throughput of
  reading its raw frames with h5py, and ≥ 300 raw frames/s;
- per-frame maps (``--average 1``) reach ≥ 0.2× that throughput;
- on a Dask ``LocalCluster``, 2 single-threaded workers, each writing its own part files, are
  ≥ 1.7× faster than 1 worker.

The frames are the real rat-cortex speckle frame of the shared test data (median K ≈ 0.09),
shifted by a few pixels from frame to frame; without it, exponential speckle (K ≈ 1).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from bench.report import Report, Row, Target
from bench.timing import Bandwidth, measure, thread_limit
from lsci.core.perfusion import inverse_correlation_time
from lsci.processing import ProcessingSettings, process_recording
from lsci.processing.chunks import Chunk, process_chunk
from lsci.processing.recordings import plan_recording
from lsci.processing.settings import DEFAULT_AVERAGE
from lsci.recording import AcquisitionMetadata, RecordingWriter
from lsci.recording.chunk_io import planes_buffer_bytes, read_planes, write_planes
from lsci.recording.sidecar import sidecar_folder

SUITE = "processing"
CHUNK_FRAMES = 64
SHAPE = (1024, 1280)
EXPOSURE_S = 0.005
REAL_FRAME = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rat_cortex_speckle.tif"
)


def frame_pool(shape: tuple[int, int], n: int = 16) -> np.ndarray:
    """``n`` distinct uint8 speckle frames of ``shape``."""
    rng = np.random.default_rng(0)
    if REAL_FRAME.is_file():
        import tifffile

        real = np.asarray(tifffile.imread(REAL_FRAME))
        tiles = np.tile(real, (-(-shape[0] // real.shape[0]), -(-shape[1] // real.shape[1])))
        shifts = rng.integers(-8, 9, size=(n, 2))
        return np.stack(
            [np.roll(tiles, tuple(s), axis=(0, 1))[: shape[0], : shape[1]] for s in shifts]
        )
    return np.clip(rng.exponential(40, size=(n, *shape)), 1, 255).astype(np.uint8)


def make_recording(path: Path, shape: tuple[int, int], n_frames: int) -> None:
    """A recording of speckle frames at 100 frames/s, 5 ms exposure, with checksums."""
    pool = frame_pool(shape)
    meta = AcquisitionMetadata(exposure_s=EXPOSURE_S, frame_rate_hz=100.0, bit_depth=8)
    with RecordingWriter(path, meta, frame_shape=shape, dtype=np.uint8, fsync_interval_s=None) as w:
        for i in range(n_frames):
            w.append(pool[i % len(pool)], frame_id=i)


def read_all(path: Path) -> float:
    """Seconds to read every raw frame with plain h5py, in chunks (the raw-read ceiling)."""
    start = time.perf_counter()
    with h5py.File(path, "r") as handle:
        frames = handle["raw/frames"]
        for first in range(0, frames.shape[0], CHUNK_FRAMES):
            frames[first : first + CHUNK_FRAMES]
    return time.perf_counter() - start


def _process_s(path: Path, settings: ProcessingSettings, products: tuple[str, ...]) -> float:
    """Seconds of a first ``lsci process`` of the recording: no product set exists yet."""
    plan = plan_recording(path, settings, products=products)
    # Deleting the previous run's set (what --overwrite would do) is not processing.
    shutil.rmtree(sidecar_folder(path), ignore_errors=True)
    # Every run starts with the previous runs' output on disk, not waiting in the page cache to
    # throttle this run's writes.
    os.sync()
    start = time.perf_counter()
    process_recording(path, settings, plan=plan)
    return time.perf_counter() - start


def _disk_write_s(folder: Path, n_bytes: int) -> float:
    """Seconds to write ``n_bytes`` to a new file in ``folder`` and make them durable, as a
    product set is (what no processing can beat).

    The disk's best call: each block's writeback starts as soon as it is written (as lsci's
    product writer does), so the final fsync has little left; buffering everything and then
    syncing was several times slower here.
    """
    block = np.random.default_rng(1).integers(0, 255, 4 << 20, dtype=np.uint8)
    os.sync()
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        start = time.perf_counter()
        with open(Path(tmp) / "disk.bin", "wb", buffering=0) as handle:
            for index in range(n_bytes // block.size):
                handle.write(block.data)
                os.posix_fadvise(
                    handle.fileno(), index * block.size, block.size, os.POSIX_FADV_DONTNEED
                )
            os.fsync(handle.fileno())
        return time.perf_counter() - start


def _stages(report: Report, path: Path, case: str) -> None:
    """Where the time of the default run goes: ms per raw frame, each stage alone on one thread
    (as a run computes each chunk), into reused memory (as a run does), median of five calls
    after a warm-up. Their sum is the CPU time a raw frame costs; a run shares it over the
    cores."""
    with thread_limit(1):
        _timed_stages(report, path, case)


def _timed_stages(report: Report, path: Path, case: str) -> None:
    n = 8 * DEFAULT_AVERAGE
    with h5py.File(path, "r") as handle:
        raw = handle["raw/frames"]
        buffer = np.empty(planes_buffer_bytes(raw, n), np.uint8)
        read = measure(lambda: read_planes(raw, 0, n, out=buffer), repeats=5)
        frames = read_planes(raw, 0, n, out=buffer)
    assert frames is not None
    chunk = Chunk(0, 0, n // DEFAULT_AVERAGE, 0, n)
    contrast_only = ProcessingSettings(average=DEFAULT_AVERAGE, model="contrast")
    k = np.empty((n // DEFAULT_AVERAGE, *SHAPE), np.float32)
    contrast = measure(
        lambda: process_chunk(frames, chunk, contrast_only, out=(k, None)), repeats=5
    )
    perfusion = np.empty_like(k)
    inverse = measure(lambda: inverse_correlation_time(k, EXPOSURE_S, out=perfusion), repeats=5)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        files = (Path(tmp) / f"w{i}.h5" for i in range(100))

        def write() -> None:
            # A new file each time, as each run writes a new product set; its pages dropped
            # after, as the product writer drops them. The files are deleted after the timing:
            # deleting one takes as long as writing it here, and a run deletes nothing.
            target = next(files)
            with h5py.File(target, "w", rdcc_nbytes=0) as out:
                dataset = out.create_dataset(
                    "p", shape=k.shape, dtype=k.dtype, chunks=(1, *k.shape[1:]), fletcher32=True
                )
                write_planes(dataset, 0, perfusion)
                os.posix_fadvise(out.id.get_vfd_handle(), 0, 0, os.POSIX_FADV_DONTNEED)

        written = measure(write, repeats=5)
    for stage, timing in (
        ("read (whole chunks, Fletcher-32 verified)", read),
        (f"K of every frame, mean of {DEFAULT_AVERAGE}", contrast),
        ("1/τc of the mean maps", inverse),
        ("write the maps (Fletcher-32)", written),
    ):
        seconds = timing.median_s
        row = Row(SUITE, case, f"stage: {stage}", 1e3 * seconds / n, per_second=n / seconds)
        row.threads = 1
        report.rows.append(row)


def _single_machine(report: Report, folder: Path, n_frames: int) -> None:
    path = folder / "process.h5"
    make_recording(path, SHAPE, n_frames)
    case = f"1280×1024 u8, {n_frames} frames"
    read_all(path)  # both measurements then start from the same (warm) page cache
    raw_s = min(read_all(path) for _ in range(3))
    raw_fps = n_frames / raw_s
    report.rows.append(
        Row(SUITE, case, "read raw frames (h5py)", 1e3 * raw_s / n_frames, per_second=raw_fps,
            note=f"{n_frames * SHAPE[0] * SHAPE[1] / 1e6 / raw_s:,.0f} MB/s")
    )  # fmt: skip
    runs = {
        "default": ProcessingSettings(average=DEFAULT_AVERAGE, exposure_s=EXPOSURE_S),
        "average 1": ProcessingSettings(average=1, exposure_s=EXPOSURE_S),
    }
    ratios = {}
    bounds = {}
    for name, settings in runs.items():
        seconds = min(_process_s(path, settings, ("perfusion",)) for _ in range(3))
        fps = n_frames / seconds
        written = 4 / settings.average
        report.rows.append(
            Row(SUITE, case, f"lsci process, {name} (1/τc float32, {written:.2f}× raw bytes)",
                1e3 * seconds / n_frames, per_second=fps, note=f"{fps / raw_fps:.2f}× raw read")
        )  # fmt: skip
        ratios[name] = fps / raw_fps
        # What no processing that stores these maps durably can beat on this disk.
        maps_bytes = settings.n_maps(n_frames) * 4 * SHAPE[0] * SHAPE[1]
        disk_s = min(_disk_write_s(path.parent, maps_bytes) for _ in range(2))
        bounds[name] = n_frames / disk_s / raw_fps
        report.rows.append(
            Row(SUITE, case, f"write + fsync the bytes of {name}'s maps (plain file)",
                1e3 * disk_s / n_frames, per_second=n_frames / disk_s,
                note=f"{bounds[name]:.2f}× raw read: the disk's bound")
        )  # fmt: skip
    report.targets.append(Target("default lsci process / raw read", ratios["default"], 0.5))
    report.targets.append(
        Target("default lsci process, raw frames/s", n_frames * ratios["default"] / raw_s, 300)
    )
    report.targets.append(Target("lsci process --average 1 / raw read", ratios["average 1"], 0.2))
    report.extra["process_over_raw_read"] = ratios
    report.extra["disk_bound_over_raw_read"] = bounds
    _stages(report, path, case)


def _cluster_seconds(path: Path, workers: int, settings: ProcessingSettings) -> float:
    from distributed import Client, LocalCluster

    from lsci.processing.distributed import TASK_BYTES, process_recording_distributed

    # One numba thread per worker process: the workers are the parallelism.
    before = os.environ.get("NUMBA_NUM_THREADS")
    os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):  # fmt: skip
            # Warm up: a whole untimed run, so that every worker has imported lsci and loaded
            # each compiled kernel it uses (seconds per process, more than the run itself).
            plan = plan_recording(path, settings, products=("perfusion",), memory_bytes=TASK_BYTES)
            process_recording_distributed(
                path, settings, scheduler=client, plan=plan, overwrite=True
            )
            seconds = []
            for _ in range(3):  # the fastest of three, as for the single-machine runs
                shutil.rmtree(sidecar_folder(path))  # a first run, as in _process_s
                os.sync()
                start = time.perf_counter()
                process_recording_distributed(path, settings, scheduler=client, plan=plan)
                seconds.append(time.perf_counter() - start)
            return min(seconds)
    finally:
        if before is None:
            del os.environ["NUMBA_NUM_THREADS"]
        else:
            os.environ["NUMBA_NUM_THREADS"] = before


def _dask(report: Report, folder: Path, n_frames: int) -> None:
    settings = ProcessingSettings(average=DEFAULT_AVERAGE, exposure_s=EXPOSURE_S)
    path = folder / "dask.h5"
    make_recording(path, SHAPE, n_frames)
    seconds = {workers: _cluster_seconds(path, workers, settings) for workers in (1, 2)}
    for workers, s in seconds.items():
        report.rows.append(
            Row(SUITE, f"1280×1024 u8, {n_frames} frames, defaults", f"Dask, {workers} worker(s)",
                1e3 * s / n_frames, per_second=n_frames / s)
        )  # fmt: skip
    report.targets.append(
        Target(
            "Dask speed-up, 2 workers over 1 (workers write parts)", seconds[1] / seconds[2], 1.7
        )
    )


def run(report: Report, bandwidth: Bandwidth, *, quick: bool = False) -> None:
    """Measure every case and append the rows and targets to ``report``."""
    with tempfile.TemporaryDirectory(prefix="lsci-bench-", dir=Path.cwd()) as tmp:
        # 400 frames (0.5 GB): per-frame maps write 4× that, on a disk shared with others.
        _single_machine(report, Path(tmp), 200 if quick else 400)
        _dask(report, Path(tmp), 200 if quick else 400)
