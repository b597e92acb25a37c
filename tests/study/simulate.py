"""Simulated follow-up visits with a known ischemic lesion, for the study tests.

A 128×128 skin patch (6.4 mm) without vessel, with a faint reflectance texture of the subject's
own, whose central ischemic region has ``1 / ischemic_factor`` of the healthy flow inside a
raised-cosine edge; per visit the factor and the radius shrink (the known recovery). The truth
of each visit is computed from the simulated correlation-time map itself: the lesion ROI's mean
flow as % of the reference ROI's, and the lesion pixels whose true flow is below half the
reference's, times the pixel area.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lsci.analysis.roi import polygon_mask
from lsci.calibration import BetaCalibration, calibrate_beta
from lsci.recording import AcquisitionMetadata, RecordingWriter
from lsci.sim.speckle import SpeckleSimulator, skin_flow_map, skin_reflectance_map

SHAPE = (128, 128)
EXPOSURE_S = 5e-3
FRAME_INTERVAL_S = 0.01
BASELINE_TAU_C_S = 1e-3
GRAIN_PX = 3.0
N_FRAMES = 30
WINDOW = 7
PIXEL_SIZE_UM = 5.0
MAGNIFICATION = 0.1
PIXEL_AREA_MM2 = (PIXEL_SIZE_UM / MAGNIFICATION / 1000.0) ** 2
HYPOPERFUSION_FRACTION = 0.5
# The subject's skin texture (reflectance), the same at every visit: what the registration of
# a later visit onto the first one finds. Fine enough (4 px) to register the patch, coarse
# enough to bias the 7 × 7 spatial contrast by only a few per cent.
TEXTURE = 0.1
TEXTURE_PX = 4.0

#: ROI corners as (row, col).
LESION = ((20.0, 20.0), (20.0, 108.0), (108.0, 108.0), (108.0, 20.0))
REFERENCE = ((1.0, 1.0), (1.0, 127.0), (13.0, 127.0), (13.0, 1.0))


@dataclass(frozen=True)
class Visit:
    """One simulated visit: the lesion's flow deficit and size."""

    ischemic_factor: float
    radius_px: float

    def tau_c_s(self) -> npt.NDArray[np.float64]:
        return skin_flow_map(
            SHAPE,
            baseline_tau_c_s=BASELINE_TAU_C_S,
            ischemic_factor=self.ischemic_factor,
            ischemic_radius_px=self.radius_px,
            edge_px=0.75 * self.radius_px,
            vessel=False,
            texture=0.0,
        )

    def truth(self) -> tuple[float, float]:
        """True lesion perfusion in % of reference and hypoperfused area in mm²."""
        flow = 1.0 / self.tau_c_s()
        lesion, reference = polygon_mask(LESION, SHAPE), polygon_mask(REFERENCE, SHAPE)
        reference_mean = flow[reference].mean()
        percent = 100.0 * flow[lesion].mean() / reference_mean
        below = np.count_nonzero(lesion & (flow < HYPOPERFUSION_FRACTION * reference_mean))
        return float(percent), float(below * PIXEL_AREA_MM2)


@cache
def skin_texture(seed: int) -> npt.NDArray[np.float64]:
    """The relative reflectance of a subject's skin patch."""
    # Evenly lit (a beam much wider than the patch): the shading of a narrower beam across the
    # spatial contrast window would add its own bias, which is not what the study measures.
    return skin_reflectance_map(
        SHAPE,
        beam_radius_px=100.0 * max(SHAPE),
        texture=TEXTURE,
        texture_px=TEXTURE_PX,
        vessel=False,
        rng=seed,
    )


@cache
def beta() -> BetaCalibration:
    """β of the simulated optics, measured on a static target as a user would."""
    static = SpeckleSimulator(
        SHAPE, tau_c_s=np.inf, exposure_s=EXPOSURE_S, grain_px=GRAIN_PX, seed=99
    ).frames(3)
    return calibrate_beta(static, window=WINDOW, exposure_s=EXPOSURE_S)


def write_visit(
    path: Path,
    visit: Visit,
    *,
    seed: int,
    serial: str,
    start_time_utc: str,
    events: Sequence[str] = (),
    skin: int = 0,
) -> Path:
    """Record the visit's simulated frames, with its β calibration and events.

    ``skin`` seeds the subject's skin texture: visits of one subject share it.
    """
    frames = SpeckleSimulator(
        SHAPE,
        tau_c_s=visit.tau_c_s(),
        illumination=skin_texture(skin),
        exposure_s=EXPOSURE_S,
        frame_interval_s=FRAME_INTERVAL_S,
        grain_px=GRAIN_PX,
        seed=seed,
    ).frames(N_FRAMES)
    meta = AcquisitionMetadata(
        exposure_s=EXPOSURE_S,
        frame_rate_hz=1.0 / FRAME_INTERVAL_S,
        bit_depth=12,
        pixel_size_um=PIXEL_SIZE_UM,
        magnification=MAGNIFICATION,
        camera_serial=serial,
        camera_model="simulated",
        start_time_utc=start_time_utc,
    )
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=frames.dtype) as writer:
        writer.append_many(frames, frame_ids=np.arange(N_FRAMES))
        for label in events:
            writer.add_event(label)
        arrays, attrs = beta().to_arrays_attrs()
        writer.save_calibration(BetaCalibration.default_name, arrays, attrs)
    return path


def write_rois(path: Path) -> Path:
    """The GeoJSON ROI file of the lesion and the reference skin ([x, y] = [col, row])."""

    def feature(name: str, role: str, corners: Sequence[tuple[float, float]]) -> dict:
        ring = [[col, row] for row, col in corners]
        return {
            "type": "Feature",
            "properties": {"name": name, "role": role},
            "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        }

    collection = {
        "type": "FeatureCollection",
        "features": [
            feature("healthy skin", "reference", REFERENCE),
            feature("lesion", "lesion", LESION),
        ],
    }
    path.write_text(json.dumps(collection))
    return path
