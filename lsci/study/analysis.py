"""The numbers of one recording of a visit: ROI perfusion and the hypoperfused area.

The perfusion map of a recording is the time mean of the maps the processing engine computes
from all its frames (:func:`lsci.analysis.time_windows.window_maps`, with the recording's
calibrations: dark frame, camera noise, β): the inverse correlation time 1/τc in 1/s from the
speckle visibility equation (Bandyopadhyay et al. 2005; Boas & Dunn 2010). The recording file
is only read; nothing is stored in it or beside it.

Per ROI the catalog keeps the mean of that map, the mean as % of the reference ROI's mean
(healthy or contralateral skin, as burn and flap studies report it), and for lesion ROIs the
hypoperfused area in mm² (:func:`hypoperfused_area_mm2`).
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
    "hypoperfused_area_mm2",
    "pixel_size_mm",
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
        A lesion pixel is hypoperfused below this fraction of the reference ROI's mean
        perfusion, in (0, 1).
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
    maps : int
        Maps averaged.
    parameters : dict
        Processing settings and calibrations applied (the engine's provenance).
    pixel_size_mm : float or None
        Side of one pixel on the skin (None when the recording does not say).
    events : tuple of str
        Labels of the recording's events (procedure marks such as "needling start").
    """

    perfusion: npt.NDArray[np.float64]
    maps: int
    parameters: dict[str, Any]
    pixel_size_mm: float | None
    events: tuple[str, ...]


def pixel_size_mm(pixel_size_um: float | None, magnification: float | None) -> float | None:
    """Side of one camera pixel on the skin in mm: sensor pitch / optical magnification.

    None when either is unknown: an area is not guessed from a missing magnification.
    """
    if pixel_size_um is None or magnification is None:
        return None
    return pixel_size_um / magnification / 1000.0


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
    parameters = mean.settings.parameters() | mean.calibrations.parameters()
    size = pixel_size_mm(metadata.pixel_size_um, metadata.magnification)
    perfusion = mean.perfusion.astype(np.float64)
    return PerfusionMap(perfusion, mean.n_maps, parameters, size, events)


def hypoperfused_area_mm2(
    perfusion: npt.ArrayLike,
    lesion: npt.ArrayLike,
    reference: npt.ArrayLike,
    pixel_size_mm: float | None,
    *,
    fraction: float = 0.5,
) -> float:
    """Area of the lesion ROI perfused below ``fraction`` of the reference ROI's mean, in mm².

    The count of lesion pixels whose perfusion is below ``fraction × mean(reference)``, times
    the area of one pixel on the skin. A threshold relative to reference skin is what flap and
    burn studies report as "% zonal area below a perfusion threshold"; this is the study
    layer's own measure until the analysis layer's delineation replaces it here.

    Parameters
    ----------
    perfusion : (H, W) array_like
        Perfusion map (any unit; the threshold is relative).
    lesion, reference : (H, W) array_like of bool
        The lesion ROI and the reference ROI.
    pixel_size_mm : float or None
        Side of one pixel on the skin; None gives NaN (area unknown).
    fraction : float
        Threshold as a fraction of the reference mean, in (0, 1).

    Returns
    -------
    float
        Area in mm²; NaN when the pixel size is unknown or the reference has no finite value.

    Examples
    --------
    >>> import numpy as np
    >>> perfusion = np.array([[1.0, 1.0, 0.2, 0.4]])
    >>> reference = np.array([[True, True, False, False]])
    >>> hypoperfused_area_mm2(perfusion, ~reference, reference, 0.1)
    0.02
    """
    values = np.asarray(perfusion, dtype=np.float64)
    lesion_mask = np.asarray(lesion, dtype=bool)
    reference_values = values[np.asarray(reference, dtype=bool)]
    reference_values = reference_values[np.isfinite(reference_values)]
    if pixel_size_mm is None or reference_values.size == 0:
        return math.nan
    threshold = fraction * float(reference_values.mean())
    below = int(np.count_nonzero(lesion_mask & np.isfinite(values) & (values < threshold)))
    return round(below * pixel_size_mm**2, 12)


def rois_digest(rois: Sequence[Roi]) -> str:
    """Digest of a ROI set (names, roles, corners): a result is reused only for the same set."""
    text = json.dumps([r.to_feature() for r in sorted(rois, key=lambda r: r.name)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def analyse_recording(
    path: str | os.PathLike[str], rois: Sequence[Roi], settings: StudySettings
) -> dict[str, Any]:
    """ROI perfusion and hypoperfused areas of one recording.

    Returns
    -------
    dict
        JSON-ready: ``unit``, ``expression``, ``maps``, ``pixel_size_mm``, ``events``,
        ``processing`` (the engine's provenance) and ``rois``: per ROI name its ``role``,
        ``pixels`` (finite pixels used), ``perfusion_mean``, ``percent_of_reference`` and, for
        lesion ROIs, ``hypoperfused_area_mm2``. Missing values are None.

    Raises
    ------
    StudyError
        When the ROIs lie outside the frames or the recording cannot be analysed.
    """
    result = recording_perfusion_map(path, settings)
    perfusion = result.perfusion
    masks = roi_masks_of(rois, (perfusion.shape[0], perfusion.shape[1]))
    reference = next((roi.name for roi in rois if roi.role == "reference"), None)
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
        if roi.role == "lesion" and reference is not None:
            entry["hypoperfused_area_mm2"] = _json_number(
                hypoperfused_area_mm2(
                    perfusion,
                    masks[roi.name],
                    masks[reference],
                    result.pixel_size_mm,
                    fraction=settings.hypoperfusion_fraction,
                )
            )
        numbers[roi.name] = entry
    return {
        "unit": PERFUSION_UNIT,
        "expression": PERFUSION_EXPRESSION,
        "maps": result.maps,
        "pixel_size_mm": result.pixel_size_mm,
        "events": list(result.events),
        "processing": result.parameters,
        "rois": numbers,
    }


def _finite_mean(values: npt.NDArray[np.float64]) -> tuple[float, int]:
    finite = values[np.isfinite(values)]
    return (float(finite.mean()) if finite.size else math.nan), int(finite.size)


def _percent(value: float, reference: float) -> float:
    return 100.0 * value / reference if math.isfinite(reference) and reference > 0 else math.nan


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None
