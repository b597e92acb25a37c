"""Sample data made on this machine by lsci's speckle simulator (nothing is downloaded).

The scene is a skin patch with a vessel and an ischemic disc in the middle, where the flow is
``1 / ischemic_factor`` of the healthy skin (:func:`lsci.sim.speckle.skin_flow_map`). Perfusion is
computed by lsci as 1/τc (exact visibility-equation inversion), so the numbers mean what they
say: after treatment the disc's flow goes from 1/5 to 4/5 of normal, a recovery factor of 4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.processing import ProcessingSettings, process_frames
from lsci.recording import AcquisitionMetadata, RecordingWriter
from lsci.sim.speckle import SpeckleSimulator, skin_flow_map, skin_reflectance_map
from napari_lsci._display import (
    PERFUSION_COLORMAP,
    RAW_COLORMAP,
    robust_limits,
)

__all__ = [
    "AFTER_FACTOR",
    "BEFORE_FACTOR",
    "EXPOSURE_S",
    "RECOVERY_FACTOR",
    "SHAPE",
    "before_after_pair",
    "ischemic_skin",
    "write_needling_recording",
]

SHAPE = (128, 128)
EXPOSURE_S = 5e-3
#: τc of healthy skin: T/τc = 25, and 5 in the untreated ischemic disc, where the contrast
#: still changes steeply with flow (the estimate is well conditioned).
BASELINE_TAU_C_S = 2e-4
#: Long enough after the exposure that consecutive frames are independent speckle patterns.
FRAME_INTERVAL_S = 0.05
#: τc in the ischemic disc over the healthy τc, before and after treatment.
BEFORE_FACTOR = 5.0
AFTER_FACTOR = 1.25
#: Flow in the disc after treatment over flow before.
RECOVERY_FACTOR = BEFORE_FACTOR / AFTER_FACTOR
#: Frames per sample series.
N_FRAMES = 20
#: Centre and radius of the ischemic disc, in pixels (row, col).
ISCHEMIC_CENTER = ((SHAPE[0] - 1) / 2.0, (SHAPE[1] - 1) / 2.0)
ISCHEMIC_RADIUS_PX = 26.0
UNIT = "1/τc (1/s)"

LayerData = tuple[Any, dict[str, Any], str]


def _flow(ischemic_factor: float, seed: int) -> npt.NDArray[np.float64]:
    return skin_flow_map(
        SHAPE,
        baseline_tau_c_s=BASELINE_TAU_C_S,
        ischemic_center=ISCHEMIC_CENTER,
        ischemic_radius_px=ISCHEMIC_RADIUS_PX,
        ischemic_factor=ischemic_factor,
        rng=seed,
    )


def simulate_skin(
    n_frames: int, ischemic_factors: tuple[float, ...], *, seed: int = 0
) -> list[npt.NDArray[np.uint16]]:
    """Raw frames of the sample skin patch, ``n_frames`` for each ischemia in turn.

    One simulated camera looks at one tissue (texture, static speckle, illumination) and
    only the flow changes between the series, as when the same patch is filmed before and
    after treatment.

    Parameters
    ----------
    n_frames : int
        Frames per series.
    ischemic_factors : tuple of float
        τc in the ischemic disc over the healthy τc, one per series.
    seed : int
        The tissue and noise.

    Returns
    -------
    list of ndarray
        One ``(n_frames, rows, cols)`` uint16 stack of 12-bit frames per series.
    """
    camera = SpeckleSimulator(
        SHAPE,
        tau_c_s=_flow(ischemic_factors[0], seed),
        exposure_s=EXPOSURE_S,
        frame_interval_s=FRAME_INTERVAL_S,
        # Faint fine texture (pores, hair): what registers the before and after images, as on
        # real skin; a smooth field would be refused by the registration.
        illumination=skin_reflectance_map(SHAPE, texture=0.1, texture_px=3.0, rng=seed + 1),
        grain_px=3.0,
        # No black level: the maps are computed without a dark-frame calibration, and an
        # offset would lower K (most at slow flow) and bias the recovery factor.
        dark_offset_adu=0.0,
        # Mean level at 1/10 of full scale: the bright tail of slow speckle is not clipped.
        gain_adu_per_e=0.2,
        seed=seed + 2,
    )
    series = []
    for factor in ischemic_factors:
        camera.set_tau_c(_flow(factor, seed))
        series.append(camera.frames(n_frames))
    return series


def perfusion_of(frames: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Mean 1/τc map of frames (spatial contrast, 7 × 7 window, averaged over the frames)."""
    settings = ProcessingSettings(
        mode="spatial", window=7, average=len(frames), model="inverse_tau", exposure_s=EXPOSURE_S
    )
    return process_frames(frames, settings).maps[0]


def _raw_kwargs(name: str, frames: npt.NDArray[Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "colormap": RAW_COLORMAP,
        "contrast_limits": robust_limits(frames[0], low=0.5, high=99.5),
        "metadata": {"unit": "ADU", **extra},
    }


def _perfusion_kwargs(name: str, perfusion: npt.NDArray[Any], **extra: Any) -> dict[str, Any]:
    _, upper = robust_limits(perfusion)
    return {
        "name": f"{name} [{UNIT}]",
        "colormap": PERFUSION_COLORMAP,
        "contrast_limits": (0.0, upper),
        "metadata": {"unit": UNIT, "lsci_role": "perfusion", **extra},
    }


def ischemic_skin() -> list[LayerData]:
    """Sample: raw speckle frames of an ischemic skin patch and its perfusion map."""
    [frames] = simulate_skin(N_FRAMES, (BEFORE_FACTOR,))
    perfusion = perfusion_of(frames)
    return [
        (frames, _raw_kwargs("ischemic skin raw [ADU]", frames), "image"),
        (perfusion, _perfusion_kwargs("ischemic skin perfusion", perfusion), "image"),
    ]


def before_after_pair() -> list[LayerData]:
    """Sample: mean intensity and perfusion of the same patch before and after treatment.

    Layers carry ``lsci_role`` (``"intensity"`` or ``"perfusion"``) and ``lsci_pair``
    (``"before"`` or ``"after"``) in their metadata, which the compare widget uses to fill in
    its choices.
    """
    layers: list[LayerData] = []
    series = simulate_skin(N_FRAMES, (BEFORE_FACTOR, AFTER_FACTOR))
    for pair, frames in zip(("before", "after"), series, strict=True):
        intensity = frames.mean(axis=0, dtype=np.float64).astype(np.float32)
        perfusion = perfusion_of(frames)
        intensity_kwargs = {
            "name": f"{pair} intensity [ADU]",
            "colormap": RAW_COLORMAP,
            "contrast_limits": robust_limits(intensity),
            "metadata": {
                "unit": "ADU",
                "lsci_role": "intensity",
                "lsci_pair": pair,
            },
        }
        layers.append((intensity, intensity_kwargs, "image"))
        layers.append(
            (
                perfusion,
                _perfusion_kwargs(f"{pair} perfusion", perfusion, lsci_pair=pair),
                "image",
            )
        )
    return layers


def write_needling_recording(
    path: str | Path, *, seconds_per_phase: float = 10.0, frame_interval_s: float = 0.5
) -> Path:
    """Write a recording of the sample patch with ``needling start`` / ``needling end`` events.

    The first phase shows the ischemic patch; after ``needling end`` the disc has recovered
    (flow × :data:`RECOVERY_FACTOR`). Host timestamps are spaced ``frame_interval_s`` apart
    (the simulator does not run in real time), so the phases last ``seconds_per_phase`` each,
    with the needling itself in between lasting one frame interval.

    Returns
    -------
    pathlib.Path
        The file.
    """
    per_phase = max(round(seconds_per_phase / frame_interval_s), 1)
    before, after = simulate_skin(per_phase, (BEFORE_FACTOR, AFTER_FACTOR))
    meta = AcquisitionMetadata(
        exposure_s=EXPOSURE_S,
        frame_rate_hz=1.0 / frame_interval_s,
        bit_depth=12,
        pixel_format="Mono12",
        camera_model="lsci simulator",
    )
    step = round(frame_interval_s * 1e9)
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint16) as writer:
        start = writer.start_host_time_ns
        for index, frame in enumerate(before):
            writer.append(frame, frame_id=index, host_timestamp_ns=start + index * step)
        end_before = start + per_phase * step
        writer.add_event("needling start", host_time_ns=end_before - step // 2)
        writer.add_event("needling end", host_time_ns=end_before + step // 2)
        for index, frame in enumerate(after):
            stamp = end_before + (index + 1) * step
            writer.append(frame, frame_id=per_phase + 1 + index, host_timestamp_ns=stamp)
    return Path(path)
