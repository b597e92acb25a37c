"""Small recordings for the napari plugin tests, written with the real writer and processor."""

from __future__ import annotations

from pathlib import Path

from lsci.demo.session import write_needling_recording
from lsci.processing import ProcessingSettings, process_recording
from lsci.sim.needling import NeedlingScene

SHAPE = (32, 40)
N_FRAMES = 12
FRAME_INTERVAL_S = 0.01
# A small needling session whose events fall on the time stamps of frames 4 and 8.
SCENE = NeedlingScene(
    shape=SHAPE, needling_start_s=4 * FRAME_INTERVAL_S, needling_end_s=8 * FRAME_INTERVAL_S
)


def write_small_recording(path: Path, *, processed: bool = True) -> Path:
    """A 12-frame simulated needling session and, optionally, its contrast and perfusion.

    The optics are known (pixel 5 µm, magnification 0.5), so a pixel is 10 µm on the skin.
    """
    write_needling_recording(
        path,
        SCENE,
        N_FRAMES,
        frame_interval_s=FRAME_INTERVAL_S,
        exposure_s=5e-3,
        seed=1,
        pixel_size_um=5.0,
        magnification=0.5,
    )
    if processed:
        process_recording(path, ProcessingSettings(mode="spatial", window=5, average=2))
    return path
