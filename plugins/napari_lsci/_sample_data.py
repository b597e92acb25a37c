"""Sample data made on this machine by lsci's speckle simulator (nothing is downloaded).

The scene is lsci's simulated needling session (:class:`lsci.sim.needling.NeedlingScene`): a
skin patch with a vessel and an ischemic disc in the middle, where the flow is
``1 / BEFORE_FACTOR`` of the healthy skin until the needling, after which it is
``RECOVERY_FACTOR`` times higher in the needled part (a crescent on the disc's right stays
occluded). Perfusion is computed by lsci as 1/τc (exact visibility-equation inversion), so the
numbers mean what they say: the needled flow goes from 1/5 to 4/5 of normal, a recovery factor
of 4.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.core.models import MODELS
from lsci.demo import session
from lsci.processing import ProcessingSettings, process_frames
from lsci.sim.needling import NeedlingFrames, NeedlingScene, simulate_needling
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
    "SCENE",
    "SHAPE",
    "before_after_pair",
    "ischemic_skin",
    "write_needling_recording",
]

SHAPE = (128, 128)
EXPOSURE_S = 5e-3
#: Long enough after the exposure that consecutive frames are independent speckle patterns.
FRAME_INTERVAL_S = 0.05
#: τc in the ischemic disc over the healthy τc, before and after treatment (needled part).
BEFORE_FACTOR = 5.0
AFTER_FACTOR = 1.25
#: Flow in the needled part of the disc after treatment over flow before.
RECOVERY_FACTOR = BEFORE_FACTOR / AFTER_FACTOR
#: Frames per sample series.
N_FRAMES = 20
#: The sample patch. τc of healthy skin 0.2 ms: T/τc = 25, and 5 in the untreated ischemic
#: disc, where the contrast still changes steeply with flow (the estimate is well conditioned).
#: The needling times are set by each sample (see :func:`_scene`).
SCENE = NeedlingScene(
    shape=SHAPE,
    baseline_tau_c_s=2e-4,
    ischemic_factor=BEFORE_FACTOR,
    recovery_factor=RECOVERY_FACTOR,
)
UNIT = MODELS["inverse_tau"].label

LayerData = tuple[Any, dict[str, Any], str]


def _scene(frames_before: int, frame_interval_s: float) -> NeedlingScene:
    """The sample patch with the needling between frame ``frames_before - 1`` and the next."""
    return dataclasses.replace(
        SCENE,
        needling_start_s=(frames_before - 0.75) * frame_interval_s,
        needling_end_s=(frames_before - 0.25) * frame_interval_s,
    )


def _film(n_before: int, n_after: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Raw frames of the patch before and after the needling."""
    scene = _scene(n_before, FRAME_INTERVAL_S)
    filmed: NeedlingFrames = simulate_needling(
        scene, n_before + n_after, frame_interval_s=FRAME_INTERVAL_S, exposure_s=EXPOSURE_S
    )
    return filmed.split(scene.recovery_s)


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
    frames, _ = _film(N_FRAMES, 0)
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
    series = _film(N_FRAMES, N_FRAMES)
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

    The first phase shows the ischemic patch; after ``needling end`` the disc's needled part
    has recovered (flow × :data:`RECOVERY_FACTOR`). Frames are stamped ``frame_interval_s``
    apart (the simulator does not run in real time), ``seconds_per_phase`` before and after the
    needling, which lies between two frames (:func:`lsci.demo.session.write_needling_recording`).

    Returns
    -------
    pathlib.Path
        The file.
    """
    per_phase = max(round(seconds_per_phase / frame_interval_s), 1)
    return session.write_needling_recording(
        path,
        _scene(per_phase, frame_interval_s),
        2 * per_phase,
        frame_interval_s=frame_interval_s,
        exposure_s=EXPOSURE_S,
    )
