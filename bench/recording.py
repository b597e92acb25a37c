"""Sustained recording throughput, and what checksums and fsync cost.

Target (issue: recordings): 1280×1024 uint8 written for 60 s at ≥200 frames/s with Fletcher-32
checksums and an fsync every second. A short burst only measures memory (the page cache takes
it), so the main case runs for a minute; the cost cases run shorter and say so.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import Report, Row, Target
from bench.timing import Bandwidth
from lsci.recording import AcquisitionMetadata, RecordingWriter

SUITE = "recording"


def sustained_write(
    shape: tuple[int, int],
    dtype: type,
    seconds: float,
    *,
    checksum: bool = True,
    fsync_interval_s: float | None = 1.0,
    compression: str | None = None,
) -> tuple[float, float, float]:
    """Append frames as fast as possible for ``seconds``.

    Returns (frames per second, megabytes per second, slowest append in ms); the time includes
    closing the file (the last flush and fsync).
    """
    rng = np.random.default_rng(0)
    top = 255 if dtype == np.uint8 else 4095
    pool = np.clip(rng.exponential(top / 6, size=(16, *shape)), 0, top).astype(dtype)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        path = Path(folder) / "bench.h5"
        writer = RecordingWriter(
            path,
            AcquisitionMetadata(frame_rate_hz=1000.0, bit_depth=8 * pool.itemsize),
            frame_shape=shape,
            dtype=dtype,
            checksum=checksum,
            fsync_interval_s=fsync_interval_s,
            compression=compression,  # type: ignore[arg-type]
        )
        slowest = 0.0
        count = 0
        start = time.perf_counter()
        with writer:
            while (now := time.perf_counter()) - start < seconds:
                writer.append(pool[count % len(pool)], frame_id=count)
                slowest = max(slowest, time.perf_counter() - now)
                count += 1
        elapsed = time.perf_counter() - start
    return count / elapsed, count * pool[0].nbytes / elapsed / 1e6, 1e3 * slowest


def run(report: Report, bandwidth: Bandwidth, *, quick: bool = False) -> None:
    """Measure every case and append the rows and targets to ``report``."""
    main_s, cost_s = (10.0, 4.0) if quick else (60.0, 15.0)
    sxga, u8, qsxga, u16 = (1024, 1280), np.uint8, (2048, 2048), np.uint16
    cases = [
        ("1280×1024 u8, checksum, fsync 1 s", sxga, u8, main_s, True, 1.0, None),
        ("1280×1024 u8, no checksum, fsync 1 s", sxga, u8, cost_s, False, 1.0, None),
        ("1280×1024 u8, checksum, fsync at close", sxga, u8, cost_s, True, None, None),
        ("1280×1024 u8, checksum, fsync each flush", sxga, u8, cost_s, True, 0.0, None),
        ("1280×1024 u8, blosc-lz4, checksum", sxga, u8, cost_s, True, 1.0, "blosc-lz4"),
        ("2048×2048 u16, checksum, fsync 1 s", qsxga, u16, cost_s, True, 1.0, None),
        ("2048×2048 u16, blosc-lz4, checksum", qsxga, u16, cost_s, True, 1.0, "blosc-lz4"),
    ]
    for name, shape, dtype, seconds, checksum, fsync_s, compression in cases:
        print(f"  {name} for {seconds:g} s ...", flush=True)
        fps, mb_s, slowest_ms = sustained_write(
            shape, dtype, seconds, checksum=checksum, fsync_interval_s=fsync_s,
            compression=compression,
        )  # fmt: skip
        report.rows.append(
            Row(SUITE, name, f"RecordingWriter, {seconds:g} s", 1e3 / fps, per_second=fps,
                note=f"{mb_s:,.0f} MB/s, slowest append {slowest_ms:.0f} ms")
        )  # fmt: skip
        if name.startswith("1280×1024 u8, checksum, fsync 1 s"):
            report.targets.append(
                Target(f"sustained {seconds:g} s write 1280×1024 u8 + checksum + fsync (fps)",
                       fps, 200)
            )  # fmt: skip
