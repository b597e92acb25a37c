"""The numbers of one recording of a visit: ROI perfusion and the hypoperfused area.

The perfusion map of a recording is the time mean of the maps the processing engine computes
from all its frames (:func:`lsci.analysis.time_windows.window_maps`, with the recording's
calibrations: dark frame, camera noise, β): the inverse correlation time 1/τc in 1/s from the
speckle visibility equation (Bandyopadhyay et al. 2005; Boas & Dunn 2010). The recording file
is only read; nothing is stored in it or beside it.

Per ROI the catalog keeps the mean of that map, the mean as % of the reference ROI's mean
(healthy or contralateral skin, as burn and flap studies report it), and for lesion ROIs the
hypoperfused area in mm² and share (:func:`analyse_recording`).

The hypoperfused area is the analysis layer's
(:func:`lsci.analysis.delineation.delineate_hypoperfusion`), not a second definition: the
whole map is delineated against the reference ROI (below ``hypoperfusion_fraction`` of its
median, islands and holes under 1 mm² cleaned), and a lesion ROI's area is the part of that
delineation *inside* the ROI, in mm² with the recording's scale
(:func:`lsci.analysis.scale.recording_scale`: a ruler measurement stored beside the recording
wins over the optics metadata). Inside the ROI rather than the whole delineation, because the
ROI is where the clinician says the lesion is: dark hair, a shadow or a vessel compressed by
the hand elsewhere in the field would otherwise count as lesion. The ROI's hypoperfused share
is kept beside the area (the delineation's ``roi_share``: the fraction of its measured pixels).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.analysis.delineation import delineate_hypoperfusion
from lsci.analysis.scale import PixelScale, recording_scale
from lsci.analysis.time_windows import window_maps
from lsci.processing import ProcessingSettings
from lsci.recording import open_recording
from lsci.study.errors import StudyError
from lsci.study.rois import Roi, roi_masks_of

__all__ = [
    "PERFUSION_UNIT",
    "PerfusionMap",
    "StudySettings",
    "analyse_recording",
    "recording_perfusion_map",
]

#: The perfusion model of the processing engine (:data:`lsci.core.models.MODELS`): 1/τc.
PERFUSION_MODEL = "inverse_tau"
#: Unit of the absolute perfusion the study reports.
PERFUSION_UNIT = "1/s"
#: How the absolute perfusion is expressed, written beside the numbers in every output.
PERFUSION_EXPRESSION = (
    "1/τc in 1/s from the speckle visibility equation, time mean over the recording, "
    "β from the recording's calibration (1 without one)"
)
_MEMORY_BYTES = 256 << 20


@dataclass(frozen=True)
class StudySettings:
    """How every recording of a study is analysed; stored in the catalog at creation.

    Parameters
    ----------
    mode : {'spatial', 'temporal', 'spatiotemporal'}
        Contrast mode (:mod:`lsci.core.contrast`).
    window : int
        Spatial window side in pixels (odd, ≥ 3).
    frames_window : int
        Frames per temporal window (temporal modes).
    hypoperfusion_fraction : float
        A pixel is hypoperfused below this fraction of the reference ROI's median perfusion,
        in (0, 1) (:func:`lsci.analysis.delineation.delineate_hypoperfusion`).
    """

    mode: str = "spatial"
    window: int = 7
    frames_window: int = 25
    hypoperfusion_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.hypoperfusion_fraction < 1:
            raise ValueError(
                f"hypoperfusion_fraction={self.hypoperfusion_fraction!r} must lie in (0, 1)"
            )
        self.processing(exposure_s=1e-3)  # validates mode and windows

    def processing(self, *, exposure_s: float) -> ProcessingSettings:
        """The processing engine's settings for a recording taken with ``exposure_s``."""
        return ProcessingSettings(
            mode=self.mode,
            window=self.window,
            frames_window=self.frames_window,
            model=PERFUSION_MODEL,
            exposure_s=exposure_s,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form, as stored in the catalog."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySettings:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class PerfusionMap:
    """Time-mean perfusion of a recording, with what made it.

    Attributes
    ----------
    perfusion : (H, W) ndarray of float64
        1/τc in 1/s (:data:`PERFUSION_UNIT`).
    intensity : (H, W) ndarray of float64
        Mean raw intensity (dark frame subtracted when there is one): the image the ROIs of
        later visits are registered on.
    maps : int
        Maps averaged.
    parameters : dict
        Processing settings and calibrations applied (the engine's provenance).
    scale : PixelScale or None
        Size of one pixel on the skin (:func:`lsci.analysis.scale.recording_scale`); None when
        the recording does not say: an area is not guessed from a missing magnification.
    events : tuple of str
        Labels of the recording's events (procedure marks such as "needling start").
    """

    perfusion: npt.NDArray[np.float64]
    intensity: npt.NDArray[np.float64]
    maps: int
    parameters: dict[str, Any]
    scale: PixelScale | None
    events: tuple[str, ...]


def recording_perfusion_map(path: str | os.PathLike[str], settings: StudySettings) -> PerfusionMap:
    """Compute the time-mean perfusion map of a recording with the processing engine.

    Raises
    ------
    StudyError
        When the recording does not state its exposure time (1/τc needs it).
    lsci.recording.RecordingError, lsci.calibration.CalibrationError, ValueError
        When the recording cannot be read or processed.
    """
    path = Path(path)
    with open_recording(path) as recording:
        metadata = recording.metadata
        if metadata.exposure_s is None:
            raise StudyError(
                f"{path}: the recording does not state its exposure time; 1/τc needs it"
            )
        events = tuple(event.label for event in recording.events)
        processing = settings.processing(exposure_s=metadata.exposure_s)
        mean = window_maps(recording, None, processing, memory_bytes=_MEMORY_BYTES)
        scale = recording_scale(recording)
    parameters = mean.settings.parameters() | mean.calibrations.parameters()
    return PerfusionMap(
        mean.perfusion.astype(np.float64),
        mean.intensity.astype(np.float64),
        mean.n_maps,
        parameters,
        scale,
        events,
    )


def rois_digest(rois: Sequence[Roi]) -> str:
    """Digest of a ROI set (names, roles, corners): a result is reused only for the same set."""
    text = json.dumps([r.to_feature() for r in sorted(rois, key=lambda r: r.name)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def analyse_recording(
    path: str | os.PathLike[str], rois: Sequence[Roi], settings: StudySettings
) -> dict[str, Any]:
    """ROI perfusion and hypoperfused areas of one recording.

    The ROIs are in this recording's pixel coordinates (mapped onto it from the visit they were
    drawn on, :mod:`lsci.study.follow`).

    Returns
    -------
    dict
        JSON-ready: ``unit``, ``expression``, ``maps``, ``pixel_size_mm``, ``scale`` (how the
        pixel size is known), ``events``, ``processing`` (the engine's provenance),
        ``delineation`` (the hypoperfused region of the whole map: threshold, minimum size,
        area) and ``rois``: per ROI name its ``role``, ``pixels`` (finite pixels used),
        ``perfusion_mean``, ``percent_of_reference`` and, for lesion ROIs,
        ``hypoperfused_area_mm2`` and ``hypoperfused_share`` (module docstring). Missing values
        are None.

    Raises
    ------
    StudyError
        When the ROIs lie outside the frames or the recording cannot be analysed.
    ValueError
        When the reference ROI has no measured pixel or no perfusion above zero.
    """
    result = recording_perfusion_map(path, settings)
    perfusion = result.perfusion
    masks = roi_masks_of(rois, (perfusion.shape[0], perfusion.shape[1]))
    reference = next((roi.name for roi in rois if roi.role == "reference"), None)
    lesions = {roi.name: masks[roi.name] for roi in rois if roi.role == "lesion"}
    delineation = None
    if reference is not None and lesions:
        delineation = delineate_hypoperfusion(
            perfusion,
            reference=masks[reference],
            fraction=settings.hypoperfusion_fraction,
            rois=lesions,
            scale=result.scale,
            unit=PERFUSION_UNIT,
        )
    means = {name: _finite_mean(perfusion[mask]) for name, mask in masks.items()}
    reference_mean = means[reference][0] if reference is not None else math.nan
    numbers: dict[str, Any] = {}
    for roi in rois:
        mean, pixels = means[roi.name]
        entry: dict[str, Any] = {
            "role": roi.role,
            "pixels": pixels,
            "perfusion_mean": _json_number(mean),
            "percent_of_reference": _json_number(_percent(mean, reference_mean)),
        }
        if roi.name in lesions and delineation is not None:
            inside = int(np.count_nonzero(delineation.mask & lesions[roi.name]))
            area = None if result.scale is None else inside * result.scale.pixel_area_mm2
            entry["hypoperfused_area_mm2"] = area
            entry["hypoperfused_share"] = _json_number(delineation.roi_share[roi.name])
        numbers[roi.name] = entry
    return {
        "unit": PERFUSION_UNIT,
        "expression": PERFUSION_EXPRESSION,
        "maps": result.maps,
        "pixel_size_mm": None if result.scale is None else result.scale.pixel_size_mm,
        "scale": None if result.scale is None else result.scale.to_dict(),
        "events": list(result.events),
        "processing": result.parameters,
        "delineation": None if delineation is None else delineation.to_dict(),
        "rois": numbers,
    }


def _finite_mean(values: npt.NDArray[np.float64]) -> tuple[float, int]:
    finite = values[np.isfinite(values)]
    return (float(finite.mean()) if finite.size else math.nan), int(finite.size)


def _percent(value: float, reference: float) -> float:
    return 100.0 * value / reference if math.isfinite(reference) and reference > 0 else math.nan


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None
