"""What the Compare widget computes and exports (Qt-free): inputs, ROI table, areas, figure.

The numbers come from the comparison engine (:mod:`lsci.analysis.compare_recordings`), the one
``lsci compare`` and the Python API use: windows around the events of a recording are processed
with the recording's calibrations there, and the hypoperfused area is delineated against the
reference region there. This module only gathers the inputs (two maps, or two time windows of
one recording chosen by its events), keeps the ROI table and the areas up to date, lays the
engine's outlines out on the viewer's panels and writes the figure
(:func:`lsci.viz.figures.comparison_figure`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.analysis.compare import Comparison, compare_before_after
from lsci.analysis.compare_recordings import FIELD_ROI, compare_events, comparison_with_rois
from lsci.viz.figures import area_summary, comparison_figure

__all__ = [
    "FIELD_ROI",
    "TABLE_COLUMNS",
    "CompareInputs",
    "area_outlines",
    "area_text",
    "compute_comparison",
    "events_comparison",
    "export_figure",
    "stack_mean",
    "table_rows",
    "with_rois",
]

TABLE_COLUMNS = ("ROI", "pixels", "before", "after", "change %", "change vs reference %")
#: Planes of a stack read at once when averaging a layer.
_BATCH_FRAMES = 50


@dataclass(frozen=True)
class CompareInputs:
    """The two perfusion maps (or stacks) to compare and what they show.

    Attributes
    ----------
    before, after : ndarray
        (M, N) maps or (T, M, N) stacks (averaged over T, NaN ignored).
    before_intensity, after_intensity : ndarray or None
        Mean-intensity images: the photo-like underlay, and what registration aligns.
    unit : str
        Unit of the perfusion values.
    description : str
        Where the maps come from, for the status line and the figure title.
    """

    before: npt.NDArray[Any]
    after: npt.NDArray[Any]
    before_intensity: npt.NDArray[Any] | None = None
    after_intensity: npt.NDArray[Any] | None = None
    unit: str = ""
    description: str = ""


def stack_mean(data: Any, *, batch: int = _BATCH_FRAMES) -> npt.NDArray[np.float64] | None:
    """Per-pixel mean of a (T, M, N) stack ignoring NaN, read ``batch`` planes at a time.

    A 2-D map is returned as it is (as float64) and ``None`` stays ``None``. Reading in
    batches keeps a long lazy stack (raw frames of a recording) out of memory.
    """
    if data is None:
        return None
    if len(data.shape) == 2:
        return np.asarray(data, dtype=np.float64)
    total = np.zeros(data.shape[1:], dtype=np.float64)
    count = np.zeros(data.shape[1:], dtype=np.int64)
    for start in range(0, data.shape[0], batch):
        planes = np.asarray(data[start : start + batch], dtype=np.float64)
        finite = np.isfinite(planes)
        total += np.where(finite, planes, 0.0).sum(axis=0)
        count += finite.sum(axis=0)
    mean = np.full(total.shape, np.nan)
    np.divide(total, count, out=mean, where=count > 0)
    return mean


def events_comparison(
    path: str | Path,
    *,
    start_label: str,
    end_label: str,
    seconds: float,
    register: bool = True,
) -> tuple[CompareInputs, Comparison]:
    """The comparison of the ``seconds`` before ``start_label`` and after ``end_label`` of a
    recording, as :func:`lsci.analysis.compare_recordings.compare_events` computes it (the
    recording's calibrations applied, the default settings of ``lsci compare``).

    Raises
    ------
    ValueError, lsci.errors.LsciError
        When an event is missing, a window holds no frame, or the registration fails (lsci's
        message).
    """
    result = compare_events(path, start_label, end_label, window_s=seconds, register=register)
    inputs = CompareInputs(
        before=result.before.perfusion,
        after=result.after.perfusion,
        before_intensity=result.before.intensity,
        after_intensity=result.after.intensity,
        unit=result.label,
        description=result.description,
    )
    return inputs, result.comparison


def compute_comparison(inputs: CompareInputs, *, register: bool = True) -> Comparison:
    """Register and compare the inputs over the whole field (ROIs are added by :func:`with_rois`).

    Raises
    ------
    ValueError, lsci.analysis.registration.RegistrationError
        As :func:`lsci.analysis.compare.compare_before_after`.
    """
    before = np.asarray(inputs.before)
    field = np.ones(before.shape[-2:], dtype=bool)
    return compare_before_after(
        before,
        np.asarray(inputs.after),
        {FIELD_ROI: field},
        register=register,
        before_intensity=inputs.before_intensity if register else None,
        after_intensity=inputs.after_intensity if register else None,
    )


def with_rois(
    comparison: Comparison,
    rois: Mapping[str, npt.NDArray[np.bool_]],
    reference: str | npt.NDArray[np.bool_] | None = None,
) -> tuple[Comparison, dict[str, npt.NDArray[np.bool_]]]:
    """The comparison with its ROI table recomputed for these regions (maps unchanged).

    Parameters
    ----------
    comparison : Comparison
        A computed comparison.
    rois : mapping of str to bool mask
        Regions drawn on the before map; empty masks (drawn outside the map) are left out.
        Without any, the table has the whole field of view.
    reference : str or bool mask, optional
        Healthy-skin reference: the name of one of ``rois``, or a region (a row named
        ``"reference"``); ignored when empty.

    Returns
    -------
    comparison, masks
        As :func:`lsci.analysis.compare_recordings.comparison_with_rois`.
    """
    regions = {name: mask for name, mask in rois.items() if mask.any()}
    use_reference: str | npt.NDArray[np.bool_] | None
    if isinstance(reference, str):
        use_reference = reference if reference in regions else None
    else:
        use_reference = reference if reference is not None and reference.any() else None
    return comparison_with_rois(comparison, regions, use_reference)


def table_rows(comparison: Comparison) -> list[list[Any]]:
    """The ROI table as rows of :data:`TABLE_COLUMNS` (numbers rounded for reading)."""

    def rounded(value: float, digits: int) -> float | str:
        return round(value, digits) if math.isfinite(value) else "–"

    return [
        [
            row.name,
            row.pixel_count,
            rounded(row.before_mean, 3),
            rounded(row.after_mean, 3),
            rounded(row.percent_change, 1),
            rounded(row.relative_percent_change, 1),
        ]
        for row in comparison.rois
    ]


def export_figure(
    comparison: Comparison,
    path: str | Path,
    *,
    masks: Mapping[str, npt.NDArray[np.bool_]],
    unit: str = "",
    title: str = "",
) -> Path:
    """Write the comparison figure of ``lsci compare`` (:func:`lsci.viz.figures.comparison_figure`):
    before, after (registered), % change with the regions outlined, and ROI bars."""
    return comparison_figure(
        comparison,
        path,
        masks=dict(masks),
        label=unit or "perfusion",
        title=title or "Perfusion before and after treatment",
    )


def area_text(comparison: Comparison) -> str:
    """The hypoperfused area before and after in one line (the figure's caption), or what is
    needed to delineate it."""
    if comparison.areas is None:
        return (
            "Draw a region of healthy skin (the second region, or one named 'healthy skin') "
            "to delineate the hypoperfused area."
        )
    return area_summary(comparison.areas)


def area_outlines(comparison: Comparison, step: float) -> list[npt.NDArray[np.float64]]:
    """The engine's outlines of the hypoperfused area placed on the viewer's panels.

    The before panel (columns from 0) and the change panel (from ``2 · step``) show the area
    before the treatment, the after panel (from ``step``) the area after it; each outline is a
    closed ``(row, col)`` polygon as :attr:`lsci.analysis.delineation.Delineation.outlines`.
    """
    if comparison.areas is None:
        return []
    placed = []
    for delineation, offsets in (
        (comparison.areas.before, (0.0, 2.0 * step)),
        (comparison.areas.after, (step,)),
    ):
        for outline in delineation.outlines:
            for offset in offsets:
                placed.append(outline[:-1] + np.array([0.0, offset]))
    return placed
