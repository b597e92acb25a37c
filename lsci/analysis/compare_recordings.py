"""The comparison engine: perfusion before and after a treatment, straight from recordings.

Two ways to say what "before" and "after" are:

- :func:`compare_events`: the windows before and after events of one recording (the 10 s
  before "needling start" against the 10 s after "needling end");
- :func:`compare_recordings`: two recordings, each averaged over all its frames.

Either way the frames go through the processing engine with each recording's stored
calibrations (:func:`lsci.analysis.time_windows.window_maps`), the after map is registered onto
the before map on their mean intensities, and the regions of interest are compared
(:func:`lsci.analysis.compare.compare_before_after`). ``lsci compare``, the napari Compare
widget and the demo call these functions, so they report the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci._version import __version__
from lsci.analysis.compare import Comparison, compare_before_after, roi_statistics
from lsci.analysis.roi import RoiSpec, roi_masks
from lsci.analysis.time_windows import (
    DEFAULT_WINDOW_S,
    WindowMaps,
    event_window_maps,
    window_maps,
)
from lsci.processing import ProcessingSettings
from lsci.recording import open_recording

__all__ = [
    "FIELD_ROI",
    "RecordingComparison",
    "compare_events",
    "compare_recordings",
    "comparison_with_rois",
    "default_settings",
]

#: Name of the region that is the whole field of view, compared when no region is given.
FIELD_ROI = "field of view"


def default_settings(exposure_s: float | None) -> ProcessingSettings:
    """The settings a comparison uses unless told otherwise: spatial contrast in 7 × 7
    windows, one map per frame, and the default model for the exposure time
    (:func:`lsci.core.models.default_model`: 1/τc when it is known)."""
    return ProcessingSettings(mode="spatial", window=7, exposure_s=exposure_s)


@dataclass(frozen=True, eq=False)
class RecordingComparison:
    """A before/after comparison of recordings, with everything needed to report it.

    Attributes
    ----------
    comparison : Comparison
        Maps, registration and the ROI table.
    before, after : WindowMaps
        The mean maps compared, with their windows and the calibrations applied.
    sources : tuple of str
        The recording files of the before and after windows (the same file twice for
        :func:`compare_events`).
    masks : dict of str to (M, N) bool ndarray
        The regions of the table, in the before map's coordinates (the reference included).
    description : str
        What is compared, in one line.
    """

    comparison: Comparison
    before: WindowMaps
    after: WindowMaps
    sources: tuple[str, str]
    masks: dict[str, npt.NDArray[np.bool_]] = field(repr=False)
    description: str

    @property
    def label(self) -> str:
        """What the maps show, with the unit, e.g. ``"1/τc (1/s)"``."""
        return self.before.settings.perfusion_model.label

    def with_rois(
        self, rois: Mapping[str, RoiSpec], reference: RoiSpec | str | None = None
    ) -> RecordingComparison:
        """The same comparison with the ROI table of other regions (maps and registration kept).

        Parameters
        ----------
        rois, reference
            As :func:`comparison_with_rois`.
        """
        comparison, masks = comparison_with_rois(self.comparison, rois, reference)
        return dataclasses.replace(self, comparison=comparison, masks=masks)

    def to_dict(self) -> dict[str, Any]:
        """Every number, the settings, the calibrations, the registration and lsci's version."""
        settings = self.before.settings
        model = settings.perfusion_model
        return {
            "lsci_version": __version__,
            "description": self.description,
            "sources": {"before": self.sources[0], "after": self.sources[1]},
            "model": model.name,
            "unit": model.unit,
            "settings": settings.parameters(),
            "windows": {"before": self.before.to_dict(), "after": self.after.to_dict()},
            **self.comparison.to_dict(),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON (NaN written as ``null``)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False) + "\n"

    def tidy_rows(self) -> list[dict[str, Any]]:
        """The ROI table in tidy form: one row per region and window.

        Columns: ``roi``, ``window`` (``before``/``after``), ``source``, ``start_s``,
        ``stop_s``, ``pixels``, ``mean``, ``median``, ``std``, ``unit``, and the region's
        change: ``ratio``, ``percent_change``, ``relative_ratio``,
        ``relative_percent_change`` (the same on both of its rows).
        """
        rows = []
        unit = self.before.settings.perfusion_model.unit
        for stats in self.comparison.rois:
            for name, window, source in (
                ("before", self.before, self.sources[0]),
                ("after", self.after, self.sources[1]),
            ):
                rows.append(
                    {
                        "roi": stats.name,
                        "window": name,
                        "source": source,
                        "start_s": window.window_s[0],
                        "stop_s": window.window_s[1],
                        "pixels": stats.pixel_count,
                        "mean": getattr(stats, f"{name}_mean"),
                        "median": getattr(stats, f"{name}_median"),
                        "std": getattr(stats, f"{name}_std"),
                        "unit": unit,
                        "ratio": stats.ratio,
                        "percent_change": stats.percent_change,
                        "relative_ratio": stats.relative_ratio,
                        "relative_percent_change": stats.relative_percent_change,
                    }
                )
        return rows

    def to_csv(self) -> str:
        """:meth:`tidy_rows` as CSV (floats written exactly, NaN as ``nan``)."""
        import csv
        import io

        rows = self.tidy_rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
        return buffer.getvalue()


def compare_events(
    path: str | Path,
    before_label: str,
    after_label: str | None = None,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    gap_s: float = 0.0,
    settings: ProcessingSettings | None = None,
    rois: Mapping[str, RoiSpec] | None = None,
    reference: RoiSpec | str | None = None,
    register: bool = True,
    calibrated: bool = True,
) -> RecordingComparison:
    """Compare perfusion in the windows before and after events of one recording.

    Parameters
    ----------
    path : str or Path
        The recording.
    before_label : str
        The event the before window ends at, e.g. ``"needling start"``.
    after_label : str, optional
        The event the after window starts at (default ``before_label``).
    window_s : float
        Length of each window, seconds.
    gap_s : float
        Time left out next to each event, seconds.
    settings : ProcessingSettings, optional
        How maps are computed; default :func:`default_settings` for the recording's exposure.
    rois : mapping of str to mask or polygon, optional
        Regions in the before map's coordinates; default the whole field of view.
    reference : str or mask or polygon, optional
        Healthy-skin reference region (a name in ``rois`` or a region).
    register : bool
        Align the after map onto the before map by their mean intensities first.
    calibrated : bool
        Apply the recording's stored calibrations (dark frame, camera noise, β).

    Returns
    -------
    RecordingComparison

    Raises
    ------
    lsci.recording.RecordingError
        When the file cannot be read as a recording.
    ValueError
        When an event is missing, a window holds too few frames, or a region is invalid.
    lsci.analysis.registration.RegistrationError
        When ``register`` is true and the registration is unreliable.
    lsci.calibration.CalibrationMismatchError
        When the stored β was measured with other contrast settings.
    """
    after_label = before_label if after_label is None else after_label
    with open_recording(path) as recording:
        chosen = default_settings(recording.metadata.exposure_s) if settings is None else settings
        before, after = event_window_maps(
            recording,
            chosen,
            before_label,
            after_label,
            window_s=window_s,
            gap_s=gap_s,
            calibrated=calibrated,
        )
    description = (
        f"{Path(path).name}: {window_s:g} s before {before_label!r} "
        f"({before.window_s[0]:.1f}–{before.window_s[1]:.1f} s) vs {window_s:g} s after "
        f"{after_label!r} ({after.window_s[0]:.1f}–{after.window_s[1]:.1f} s)"
    )
    return _compare(before, after, (str(path), str(path)), description, rois, reference, register)


def compare_recordings(
    before_path: str | Path,
    after_path: str | Path,
    *,
    settings: ProcessingSettings | None = None,
    rois: Mapping[str, RoiSpec] | None = None,
    reference: RoiSpec | str | None = None,
    register: bool = True,
    calibrated: bool = True,
) -> RecordingComparison:
    """Compare perfusion of two recordings of the same field, each averaged over all its frames.

    Each recording is processed with its own stored calibrations and, without ``settings``,
    with :func:`default_settings` for its own exposure time. Parameters and errors as
    :func:`compare_events`.
    """
    windows = []
    for path in (before_path, after_path):
        with open_recording(path) as recording:
            chosen = settings
            if chosen is None:
                chosen = default_settings(recording.metadata.exposure_s)
            windows.append(window_maps(recording, None, chosen, calibrated=calibrated))
    before, after = windows
    if before.settings.perfusion_model != after.settings.perfusion_model:
        raise ValueError(
            f"{before_path} gives {before.settings.perfusion_model.label} and {after_path} "
            f"{after.settings.perfusion_model.label}: choose one model for both"
        )
    description = f"{Path(before_path).name} vs {Path(after_path).name}"
    return _compare(
        before,
        after,
        (str(before_path), str(after_path)),
        description,
        rois,
        reference,
        register,
    )


def comparison_with_rois(
    comparison: Comparison,
    rois: Mapping[str, RoiSpec],
    reference: RoiSpec | str | None = None,
) -> tuple[Comparison, dict[str, npt.NDArray[np.bool_]]]:
    """A comparison's ROI table recomputed for other regions, maps and registration kept.

    Parameters
    ----------
    comparison : Comparison
        A computed comparison.
    rois : mapping of str to mask or polygon
        Regions in the before map's coordinates (each must hold a pixel); with none, the whole
        field of view (:data:`FIELD_ROI`) is the one region.
    reference : str or mask or polygon, optional
        Healthy-skin reference: a name in ``rois`` or a region (then named ``"reference"``).

    Returns
    -------
    comparison : Comparison
        With the new table.
    masks : dict of str to bool ndarray
        The regions of the table, the reference included.
    """
    masks = _masks(rois, reference, comparison.before.shape)
    name = _reference_name(reference, masks)
    rows = roi_statistics(comparison.before, comparison.after, masks, reference=name)
    return dataclasses.replace(comparison, rois=rows, reference=name), masks


def _compare(
    before: WindowMaps,
    after: WindowMaps,
    sources: tuple[str, str],
    description: str,
    rois: Mapping[str, RoiSpec] | None,
    reference: RoiSpec | str | None,
    register: bool,
) -> RecordingComparison:
    shape = before.perfusion.shape
    masks = _masks(rois or {}, reference, shape)
    comparison = compare_before_after(
        before.perfusion,
        after.perfusion,
        masks,
        reference=_reference_name(reference, masks),
        register=register,
        before_intensity=before.intensity if register else None,
        after_intensity=after.intensity if register else None,
    )
    return RecordingComparison(comparison, before, after, sources, masks, description)


def _masks(
    rois: Mapping[str, RoiSpec],
    reference: RoiSpec | str | None,
    shape: tuple[int, ...],
) -> dict[str, npt.NDArray[np.bool_]]:
    """The regions as masks, with a reference region added as ``"reference"``; the whole field
    of view first when no region is given."""
    image = (int(shape[0]), int(shape[1]))
    masks = roi_masks(dict(rois), image) if rois else {}
    if isinstance(reference, str):
        if reference not in masks:
            raise ValueError(f"reference {reference!r} is not one of the ROIs {list(masks)}")
    elif reference is not None:
        if "reference" in masks:
            raise ValueError(
                "an ROI is already named 'reference': pass reference='reference' to use it, "
                "or rename it"
            )
        masks |= roi_masks({"reference": reference}, image)
    if not rois:
        masks = {FIELD_ROI: np.ones(image, dtype=bool), **masks}
    return masks


def _reference_name(
    reference: RoiSpec | str | None, masks: Mapping[str, npt.NDArray[np.bool_]]
) -> str | None:
    if isinstance(reference, str):
        return reference
    return None if reference is None else "reference"
