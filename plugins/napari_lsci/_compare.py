"""What the Compare widget computes and exports (Qt-free): inputs, ROI table, figure.

The numbers come from :mod:`lsci.analysis.compare`, :mod:`lsci.analysis.time_windows` and
:mod:`lsci.processing.process`;
this module only gathers the inputs (two maps, or two time windows of one recording chosen
by its events), keeps the ROI table up to date and draws the figure.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from lsci.analysis.compare import Comparison, compare_before_after, roi_statistics
from lsci.analysis.time_windows import event_windows, recording_window_mean
from lsci.processing.process import ProcessingSettings, plan_chunks, process_chunk
from lsci.recording import open_recording
from napari_lsci._display import (
    CHANGE_COLORMAP,
    PERFUSION_COLORMAP,
    robust_limits,
    symmetric_limits,
    unit_of,
)

__all__ = [
    "FIELD_ROI",
    "TABLE_COLUMNS",
    "CompareInputs",
    "comparison_figure",
    "compute_comparison",
    "perfusion_maps",
    "recording_inputs",
    "settings_for_recording",
    "stack_mean",
    "table_rows",
    "with_rois",
]

#: Name of the whole-field row shown before any ROI is drawn.
FIELD_ROI = "field of view"
TABLE_COLUMNS = ("ROI", "pixels", "before", "after", "change %", "change vs reference %")
#: Raw frames read at once when averaging a time window of a recording.
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


def settings_for_recording(path: str | Path) -> ProcessingSettings:
    """Default perfusion settings for a recording: spatial 7 × 7, and 1/τc when the exposure is
    recorded (a linear flow index), else 1/K²."""
    with open_recording(path) as recording:
        exposure_s = recording.metadata.exposure_s
    if exposure_s is None:
        return ProcessingSettings(mode="spatial", window=7, model="1/K2")
    return ProcessingSettings(mode="spatial", window=7, model="tau", exposure_s=exposure_s)


def perfusion_maps(frames: npt.NDArray[Any], settings: ProcessingSettings) -> npt.NDArray[Any]:
    """Perfusion maps (contrast for model ``'none'``) of a batch of raw frames, via
    lsci.processing.process.

    Returns an empty (0, M, N) stack when the batch is too short for one map.
    """
    n_maps = settings.n_maps(len(frames))
    if n_maps == 0:
        return np.empty((0, *settings.map_shape(frames.shape)), np.float32)
    chunk = plan_chunks(len(frames), settings, maps_per_chunk=n_maps)[0]
    result = process_chunk(frames[chunk.frame_start : chunk.frame_stop], chunk, settings)
    return result.perfusion if result.perfusion is not None else result.contrast


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


def _as_float32(frames: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    return frames.astype(np.float32)


def recording_inputs(
    path: str | Path,
    *,
    start_label: str,
    end_label: str,
    seconds: float = 10.0,
    settings: ProcessingSettings | None = None,
) -> CompareInputs:
    """Mean perfusion and intensity over the ``seconds`` before ``start_label`` and after
    ``end_label`` (e.g. before "needling start" and after "needling end").

    Parameters
    ----------
    path : str or pathlib.Path
        The recording.
    start_label, end_label : str
        Event labels; the first event of each label is used.
    seconds : float
        Length of each window, > 0.
    settings : ProcessingSettings, optional
        How perfusion is computed; :func:`settings_for_recording` by default.

    Raises
    ------
    ValueError
        When an event is missing or a window holds no frame (lsci's message).
    """
    settings = settings_for_recording(path) if settings is None else settings
    with open_recording(path) as recording:
        events = recording.events
        before_window = event_windows(events, start_label, before_s=seconds)[0]
        after_window = event_windows(events, end_label, after_s=seconds)[1]
        per_map = settings.frames_between_maps
        # Whole maps per batch: a batch boundary never cuts a temporal window.
        batch = settings.frames_per_map + per_map * max(
            (_BATCH_FRAMES - settings.frames_per_map) // per_map, 0
        )

        def perfusion(frames: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return perfusion_maps(frames, settings)

        maps = [
            recording_window_mean(recording, window, perfusion, batch_frames=batch)
            for window in (before_window, after_window)
        ]
        intensity = [
            recording_window_mean(recording, window, _as_float32, batch_frames=_BATCH_FRAMES)
            for window in (before_window, after_window)
        ]
    return CompareInputs(
        before=maps[0],
        after=maps[1],
        before_intensity=intensity[0],
        after_intensity=intensity[1],
        unit=unit_of("perfusion", settings.parameters()),
        description=(
            f"{Path(path).name}: {seconds:g} s before {start_label!r} "
            f"({before_window[0]:.1f}–{before_window[1]:.1f} s) vs {seconds:g} s after "
            f"{end_label!r} ({after_window[0]:.1f}–{after_window[1]:.1f} s)"
        ),
    )


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
    reference: npt.NDArray[np.bool_] | None = None,
) -> Comparison:
    """The comparison with its ROI table recomputed for these regions (maps unchanged).

    Parameters
    ----------
    comparison : Comparison
        A computed comparison.
    rois : mapping of str to bool mask
        Regions drawn on the before map; empty masks are left out. Without any, the table has
        the whole field of view.
    reference : bool mask, optional
        Healthy-skin reference region (a row named ``"reference"``).
    """
    regions = {name: mask for name, mask in rois.items() if mask.any()}
    if not regions:
        regions = {FIELD_ROI: np.ones(comparison.before.shape, dtype=bool)}
    use_reference = reference is not None and bool(reference.any())
    rows = roi_statistics(
        comparison.before,
        comparison.after,
        regions,
        reference=reference if use_reference else None,
    )
    return dataclasses.replace(
        comparison, rois=rows, reference="reference" if use_reference else None
    )


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


def comparison_figure(
    comparison: Comparison,
    *,
    unit: str = "",
    title: str = "",
    before_intensity: npt.NDArray[Any] | None = None,
) -> Figure:
    """A figure of the comparison: before, after (registered), % change and ROI bars.

    Parameters
    ----------
    comparison : Comparison
        With its ROI table.
    unit : str
        Perfusion unit for the colour bar and the bar chart.
    title : str
        Figure title.
    before_intensity : ndarray, optional
        Grey underlay of the two maps.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to any GUI backend; save it with ``savefig``.
    """
    figure = Figure(figsize=(16, 4.2), layout="constrained")
    axes = figure.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    maps = np.concatenate([comparison.before.ravel(), comparison.after.ravel()])
    _, upper = robust_limits(maps)
    images = (("before", comparison.before), ("after (registered)", comparison.after))
    for ax, (name, image) in zip(axes[:2], images, strict=True):
        if before_intensity is not None:
            ax.imshow(before_intensity, cmap="gray")
        shown = ax.imshow(
            image,
            cmap=PERFUSION_COLORMAP,
            vmin=0.0,
            vmax=upper,
            alpha=0.75 if before_intensity is not None else 1.0,
        )
        ax.set_title(name)
        ax.set_axis_off()
    figure.colorbar(shown, ax=axes[:2], shrink=0.8, label=unit or "perfusion")
    low, high = symmetric_limits(comparison.percent_change)
    change = axes[2].imshow(comparison.percent_change, cmap=CHANGE_COLORMAP, vmin=low, vmax=high)
    axes[2].set_title("change (%)")
    axes[2].set_axis_off()
    figure.colorbar(change, ax=axes[2], shrink=0.8, label="%")
    names = [row.name for row in comparison.rois]
    positions = np.arange(len(names))
    bars = axes[3]
    bars.bar(positions - 0.2, [row.before_mean for row in comparison.rois], 0.4, label="before")
    bars.bar(positions + 0.2, [row.after_mean for row in comparison.rois], 0.4, label="after")
    for x, row in zip(positions, comparison.rois, strict=True):
        if math.isfinite(row.percent_change):
            top = np.nanmax([row.before_mean, row.after_mean])
            bars.annotate(f"{row.percent_change:+.0f} %", (x, top), ha="center", va="bottom")
    bars.set_xticks(positions, names, rotation=20)
    bars.set_ylabel(f"mean perfusion ({unit})" if unit else "mean perfusion")
    bars.legend()
    bars.set_title("regions of interest")
    if title:
        figure.suptitle(title)
    return figure
