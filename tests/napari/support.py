"""Small recordings for the napari plugin tests, written with the real writer and processor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsci.processing import ProcessingSettings, process_recording
from lsci.recording import AcquisitionMetadata, RecordingWriter
from lsci.sim.speckle import SpeckleSimulator

SHAPE = (32, 40)
N_FRAMES = 12
FRAME_INTERVAL_NS = 10_000_000


def write_small_recording(path: Path, *, processed: bool = True) -> Path:
    """A 12-frame simulated recording with two events and, optionally, contrast and perfusion.

    The optics are known (pixel 5 µm, magnification 0.5), so a pixel is 10 µm on the skin.
    """
    camera = SpeckleSimulator(SHAPE, tau_c_s=1e-3, exposure_s=5e-3, grain_px=3.0, seed=1)
    frames = camera.frames(N_FRAMES)
    meta = AcquisitionMetadata(
        exposure_s=5e-3, frame_rate_hz=100.0, bit_depth=12, pixel_size_um=5.0, magnification=0.5
    )
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint16) as writer:
        start = writer.start_host_time_ns
        for index, frame in enumerate(frames):
            writer.append(
                frame, frame_id=index, host_timestamp_ns=start + index * FRAME_INTERVAL_NS
            )
        writer.add_event("needling start", host_time_ns=start + 4 * FRAME_INTERVAL_NS)
        writer.add_event("needling end", host_time_ns=start + 8 * FRAME_INTERVAL_NS)
    if processed:
        process_recording(path, ProcessingSettings(mode="spatial", window=5, average=2))
    return path
