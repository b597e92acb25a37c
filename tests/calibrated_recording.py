"""A simulated needling recording that stores a dark frame and a β calibration.

The camera has a black level and read noise, and the optics a β below 1, so a result that skips
the dark frame or takes β = 1 is measurably wrong. Written with the real
:class:`lsci.recording.RecordingWriter`; the calibrations are measured by lsci from simulated
dark and static-target frames of the same camera and stored with
``lsci.recording.store_calibration``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsci.calibration import DarkFrame, calibrate_beta
from lsci.recording import AcquisitionMetadata, RecordingWriter, store_calibration
from lsci.sim.speckle import SpeckleSimulator, skin_flow_map, skin_reflectance_map

SHAPE = (96, 96)
EXPOSURE_S = 5e-3
#: T/τc = 25 in healthy skin, 5 in the untreated disc.
BASELINE_TAU_C_S = 2e-4
BEFORE_FACTOR = 5.0
#: Flow in the disc after treatment over flow before: the truth a comparison must recover.
RECOVERY_FACTOR = 3.0
CENTER = (47.5, 47.5)
RADIUS_PX = 20.0
FRAMES_PER_PHASE = 16
FRAME_INTERVAL_S = 0.25
WINDOW = 7
DARK_OFFSET_ADU = 120.0
#: Inside the disc's flat core, and healthy skin away from the disc and the vessel, as
#: ``(row, col)`` polygons (napari's Shapes convention).
PATCH = np.array([[38.0, 38.0], [38.0, 58.0], [58.0, 58.0], [58.0, 38.0]])
HEALTHY = np.array([[74.0, 4.0], [74.0, 24.0], [92.0, 24.0], [92.0, 4.0]])


def _camera(tau_c_s: object, *, illumination: object, seed: int) -> SpeckleSimulator:
    return SpeckleSimulator(
        SHAPE,
        tau_c_s=tau_c_s,  # type: ignore[arg-type]
        exposure_s=EXPOSURE_S,
        frame_interval_s=0.05,
        grain_px=2.0,
        illumination=illumination,  # type: ignore[arg-type]
        gain_adu_per_e=0.2,
        read_noise_e=4.0,
        dark_offset_adu=DARK_OFFSET_ADU,
        seed=seed,
    )


def _flow(factor: float) -> np.ndarray:
    return skin_flow_map(
        SHAPE,
        baseline_tau_c_s=BASELINE_TAU_C_S,
        ischemic_center=CENTER,
        ischemic_radius_px=RADIUS_PX,
        ischemic_factor=factor,
        rng=3,
    )


def write_calibrated_needling(path: Path) -> Path:
    """Before ``needling start`` the disc is ischemic; after ``needling end`` its flow is
    :data:`RECOVERY_FACTOR` times higher. The file stores ``dark_frame`` and ``beta``."""
    skin = skin_reflectance_map(SHAPE, texture=0.1, texture_px=3.0, rng=4)
    camera = _camera(_flow(BEFORE_FACTOR), illumination=skin, seed=5)
    before = camera.frames(FRAMES_PER_PHASE)
    camera.set_tau_c(_flow(BEFORE_FACTOR / RECOVERY_FACTOR))
    after = camera.frames(FRAMES_PER_PHASE)
    dark = DarkFrame.from_frames(
        _camera(np.inf, illumination=0.0, seed=6).frames(16), exposure_s=EXPOSURE_S
    )
    static = _camera(np.inf, illumination=skin_reflectance_map(SHAPE, texture=0.0), seed=7)
    beta = calibrate_beta(static.frames(4), window=WINDOW, dark=dark, exposure_s=EXPOSURE_S)

    meta = AcquisitionMetadata(
        exposure_s=EXPOSURE_S,
        frame_rate_hz=1 / FRAME_INTERVAL_S,
        bit_depth=12,
        pixel_format="Mono12",
        camera_model="lsci simulator",
    )
    step = round(FRAME_INTERVAL_S * 1e9)
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint16) as writer:
        start = writer.start_host_time_ns
        for index, frame in enumerate(before):
            writer.append(frame, frame_id=index, host_timestamp_ns=start + index * step)
        end_before = start + FRAMES_PER_PHASE * step
        writer.add_event("needling start", host_time_ns=end_before - step // 2)
        writer.add_event("needling end", host_time_ns=end_before + step // 2)
        for index, frame in enumerate(after):
            stamp = end_before + (index + 1) * step
            writer.append(frame, frame_id=FRAMES_PER_PHASE + index, host_timestamp_ns=stamp)
    store_calibration(path, dark)
    store_calibration(path, beta)
    return path
