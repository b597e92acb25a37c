"""Figures of perfusion maps and before/after comparisons, as PNG files (matplotlib, no GUI).

Used by ``lsci demo``, the command line and the napari plugin's export, so a figure looks the
same wherever it is made; colours and limits follow :mod:`lsci.viz.display`, as in the napari
viewer. Every function draws into a new figure with the non-interactive Agg canvas and writes
it to ``path``; none needs a display.

Maps carry a scale bar: in millimetres when the pixel size on the skin is known
(:class:`lsci.analysis.scale.PixelScale`), in pixels otherwise, labelled so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lsci.analysis.compare import Comparison
from lsci.analysis.delineation import AreaComparison, AreaTimeCourse, Delineation
from lsci.analysis.scale import PixelScale
from lsci.recording.atomic import atomic_write
from lsci.viz.display import (
    CHANGE_COLORMAP,
    CHANGE_UNIT,
    HYPOPERFUSED_COLOUR,
    HYPOPERFUSED_EDGE,
    PERFUSION_COLORMAP,
    RAW_COLORMAP,
    display_limits,
    robust_limits,
)

__all__ = [
    "area_summary",
    "comparison_figure",
    "draw_comparison",
    "map_figure",
    "maps_figure",
    "scale_bar",
    "timecourse_figure",
]

_ROI_COLOURS = ("#00e5ff", "#7cfc00", "#ffd700", "#ff69b4", "#ffffff")


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    with atomic_write(path, overwrite=True) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    return path


def _show_map(
    axes: Axes, figure: Figure, image: npt.ArrayLike, title: str, label: str, **kwargs: Any
) -> None:
    artist = axes.imshow(np.asarray(image, dtype=np.float64), interpolation="nearest", **kwargs)
    axes.set_title(title)
    axes.set_axis_off()
    figure.colorbar(artist, ax=axes, fraction=0.046, pad=0.03, label=label)


def _outline(axes: Axes, masks: Mapping[str, npt.NDArray[np.bool_]]) -> None:
    for (name, mask), colour in zip(masks.items(), _ROI_COLOURS * 4, strict=False):
        axes.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
        rows, cols = np.nonzero(mask)
        if rows.size:
            axes.text(cols.mean(), rows.min() - 2, name, color=colour, ha="center", va="bottom",
                      fontsize=8, fontweight="bold")  # fmt: skip


def _hypoperfused(axes: Axes, delineation: Delineation, linestyle: str) -> None:
    """The outline of a hypoperfused area (outer boundaries and holes)."""
    halo = [patheffects.withStroke(linewidth=3.2, foreground=HYPOPERFUSED_EDGE)]
    for outline in delineation.outlines:
        axes.plot(outline[:, 1], outline[:, 0], color=HYPOPERFUSED_COLOUR, lw=1.5,
                  ls=linestyle, path_effects=halo)  # fmt: skip


def _outline_areas(axes: Axes, areas: AreaComparison | None, which: str = "both") -> None:
    if areas is None:
        return
    if which in ("both", "before"):
        _hypoperfused(axes, areas.before, "--")
    if which in ("both", "after"):
        _hypoperfused(axes, areas.after, "-")


def _nice_length(target: float) -> float:
    """The 1, 2 or 5 × 10^k nearest below ``target`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(target))
    for step in (5.0, 2.0, 1.0):
        if step * power <= target:
            return step * power
    return power


def scale_bar(axes: Axes, shape: tuple[int, ...], scale: PixelScale | None) -> str:
    """Draw a scale bar in the lower left of an image of ``shape`` and return its label.

    About a fifth of the image wide, rounded to 1, 2 or 5 × 10^k millimetres when the scale
    is known, else pixels (labelled "px, scale unknown").
    """
    cols = int(shape[1])
    rows = int(shape[0])
    if scale is None:
        length_px = _nice_length(cols / 5.0)
        label = f"{length_px:g} px (scale unknown)"
    else:
        length_mm = _nice_length(cols * scale.pixel_size_mm / 5.0)
        length_px = length_mm / scale.pixel_size_mm
        label = f"{length_mm:g} mm"
    left, bottom = 0.05 * cols, rows - 0.06 * rows
    halo = [patheffects.withStroke(linewidth=4.5, foreground="black")]
    axes.plot([left, left + length_px], [bottom, bottom], color="white", lw=3,
              solid_capstyle="butt", path_effects=halo)  # fmt: skip
    axes.text(left, bottom - 0.025 * rows, label, color="white", fontsize=8, ha="left",
              va="bottom", path_effects=[patheffects.withStroke(linewidth=2.5,
                                                                foreground="black")])  # fmt: skip
    return label


def _area(delineation: Delineation) -> str:
    mm2 = "" if delineation.area_mm2 is None else f"{delineation.area_mm2:.3g} mm², "
    return f"{mm2}{delineation.area_px} px"


def area_summary(areas: AreaComparison) -> str:
    """The hypoperfused area before and after in one line, with the threshold of the before map.

    Examples: ``"Hypoperfused area: 52.3 mm², 5230 px → 1.2 mm², 120 px (−97.7 %); ..."``.
    """
    change = (
        f"{-areas.reduction_percent:+.1f} %" if math.isfinite(areas.reduction_percent) else "n/a"
    )
    threshold = areas.before.threshold
    rule = (
        f"below {threshold.fraction:g} × the reference {threshold.statistic}"
        if threshold.method == "reference_fraction"
        else f"below {threshold.value:.4g} {threshold.unit}".rstrip()
    )
    return (
        f"Hypoperfused area ({rule}): {_area(areas.before)} → {_area(areas.after)} "
        f"({change}); recovered {areas.recovered_px} px, still hypoperfused "
        f"{areas.persistent_px} px"
    )


def map_figure(
    image: npt.ArrayLike,
    path: str | Path,
    *,
    title: str,
    label: str,
    cmap: str = PERFUSION_COLORMAP,
    limits: tuple[float, float] | None = None,
) -> Path:
    """One map with a colour bar.

    Parameters
    ----------
    image : (M, N) array_like
        The map (NaN shown blank).
    path : str or Path
        PNG file to write.
    title : str
        Figure title.
    label : str
        Colour-bar label, with the unit.
    cmap : str
        Matplotlib colour map.
    limits : tuple of float, optional
        Display range; default the 1st and 99th percentiles (:func:`robust_limits`).

    Returns
    -------
    Path
        The file written.
    """
    vmin, vmax = robust_limits(image) if limits is None else limits
    figure = Figure(figsize=(5.2, 4.4), layout="constrained")
    _show_map(figure.add_subplot(), figure, image, title, label, cmap=cmap, vmin=vmin, vmax=vmax)
    return _save(figure, path)


def maps_figure(
    images: Sequence[tuple[npt.ArrayLike, str, str]],
    path: str | Path,
    *,
    cmap: str = PERFUSION_COLORMAP,
) -> Path:
    """Maps side by side, each ``(image, title, colour-bar label)`` with its own colour bar."""
    figure = Figure(figsize=(4.6 * len(images), 4.2), layout="constrained")
    for index, (image, title, label) in enumerate(images, start=1):
        vmin, vmax = robust_limits(image)
        axes = figure.add_subplot(1, len(images), index)
        _show_map(axes, figure, image, title, label, cmap=cmap, vmin=vmin, vmax=vmax)
    return _save(figure, path)


def _roi_bars(axes: Axes, comparison: Comparison, label: str) -> None:
    """Mean before and after of each ROI, with its percent change written above."""
    names = [row.name for row in comparison.rois]
    x = np.arange(len(names))
    before = [row.before_mean for row in comparison.rois]
    after = [row.after_mean for row in comparison.rois]
    axes.bar(x - 0.2, before, 0.4, label="before", color="#5b7db1")
    axes.bar(x + 0.2, after, 0.4, label="after", color="#e07b39")
    for i, row in enumerate(comparison.rois):
        if np.isfinite(row.percent_change):
            top = np.nanmax([row.before_mean, row.after_mean, 0.0])
            axes.text(i, top * 1.02, f"{row.percent_change:+.0f} %", ha="center", va="bottom")
    axes.set_xticks(x, names)
    axes.set_ylabel(f"mean {label}")
    axes.set_title("Regions of interest")
    axes.legend(loc="upper left")
    axes.margins(y=0.15)


def draw_comparison(
    comparison: Comparison,
    *,
    label: str = "perfusion",
    masks: Mapping[str, npt.NDArray[np.bool_]] | None = None,
    before_intensity: npt.ArrayLike | None = None,
    title: str = "Perfusion before and after treatment",
) -> Figure:
    """Before, after, percent change and ROI bars of a before/after comparison, as a figure.

    The hypoperfused area (:attr:`Comparison.areas`, when delineated) is outlined on the maps,
    dashed before and solid after, and its numbers are written below; every map carries a
    scale bar (mm with :attr:`Comparison.scale`, else px).

    Parameters
    ----------
    comparison : lsci.analysis.compare.Comparison
        From :func:`lsci.analysis.compare.compare_before_after`.
    label : str
        What the maps show, with the unit (colour bars and bar axis).
    masks : dict of str to (M, N) bool array, optional
        Regions to outline on the maps, in the order of the ROI bars.
    before_intensity : (M, N) array_like, optional
        Grey underlay of the before and after maps (drawn semi-transparent over it).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        On the Agg canvas, attached to no GUI; :func:`comparison_figure` writes it as PNG.
    """
    figure = Figure(figsize=(13, 9.6), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=14)
    areas = comparison.areas
    shape = comparison.before.shape
    # Before and after share one colour scale, so equal colours mean equal perfusion.
    vmin, vmax = display_limits("perfusion", np.stack([comparison.before, comparison.after]))
    panels = (
        (1, comparison.before, "Before", "before"),
        (2, comparison.after, "After (registered)", "after"),
    )
    for index, image, name, which in panels:
        axes = figure.add_subplot(2, 2, index)
        if before_intensity is not None:
            axes.imshow(np.asarray(before_intensity, np.float64), cmap=RAW_COLORMAP)
        _show_map(axes, figure, image, name, label, cmap=PERFUSION_COLORMAP, vmin=vmin,
                  vmax=vmax, alpha=None if before_intensity is None else 0.75)  # fmt: skip
        _outline(axes, masks or {})
        _outline_areas(axes, areas, which)
        scale_bar(axes, shape, comparison.scale)

    low, high = display_limits("change", comparison.percent_change)
    axes = figure.add_subplot(2, 2, 3)
    _show_map(axes, figure, comparison.percent_change, "Change after / before",
              f"change ({CHANGE_UNIT})", cmap=CHANGE_COLORMAP, vmin=low, vmax=high)  # fmt: skip
    _outline(axes, masks or {})
    _outline_areas(axes, areas)
    scale_bar(axes, shape, comparison.scale)
    if areas is not None:
        halo = [patheffects.withStroke(linewidth=3.2, foreground=HYPOPERFUSED_EDGE)]
        handles = [
            Line2D([], [], color=HYPOPERFUSED_COLOUR, ls=style, lw=1.5, path_effects=halo,
                   label=f"hypoperfused {when}")
            for style, when in (("--", "before"), ("-", "after"))
        ]  # fmt: skip
        axes.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)
        figure.supxlabel(area_summary(areas), fontsize=10)
    _roi_bars(figure.add_subplot(2, 2, 4), comparison, label)
    return figure


def comparison_figure(
    comparison: Comparison,
    path: str | Path,
    *,
    label: str = "perfusion",
    masks: Mapping[str, npt.NDArray[np.bool_]] | None = None,
    before_intensity: npt.ArrayLike | None = None,
    title: str = "Perfusion before and after treatment",
) -> Path:
    """Write :func:`draw_comparison` of a before/after comparison as a PNG file.

    Parameters
    ----------
    comparison : lsci.analysis.compare.Comparison
        From :func:`lsci.analysis.compare.compare_before_after`.
    path : str or Path
        PNG file to write.
    label, masks, before_intensity, title
        As in :func:`draw_comparison`.

    Returns
    -------
    Path
        The file written.
    """
    figure = draw_comparison(
        comparison, label=label, masks=masks, before_intensity=before_intensity, title=title
    )
    return _save(figure, path)


def timecourse_figure(
    times_s: npt.ArrayLike,
    series: Mapping[str, npt.ArrayLike],
    path: str | Path,
    *,
    label: str,
    events: Sequence[tuple[float, str]] = (),
    title: str = "Perfusion over time",
    area: AreaTimeCourse | None = None,
) -> Path:
    """Mean perfusion of each region over time, with the event markers, and the hypoperfused
    area below it.

    Parameters
    ----------
    times_s : (T,) array_like
        Time of each value, seconds since the start of the recording.
    series : dict of str to (T,) array_like
        One curve per region.
    path : str or Path
        PNG file to write.
    label : str
        What the curves show, with the unit.
    events : sequence of (time_s, label)
        Drawn as labelled vertical lines.
    title : str
        Figure title.
    area : AreaTimeCourse, optional
        The hypoperfused area of each map (:func:`lsci.analysis.delineation.area_time_course`),
        drawn in a second panel on the same time axis (mm² when its scale is known, else px).

    Returns
    -------
    Path
        The file written.
    """
    figure = Figure(figsize=(9, 4.2 if area is None else 6.6), layout="constrained")
    if area is None:
        axes = figure.add_subplot()
    else:
        axes, below = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for (name, values), colour in zip(series.items(), ("#c0392b", "#2c7fb8", "#2ca25f", "#756bb1"),
                                      strict=False):  # fmt: skip
        axes.plot(np.asarray(times_s), np.asarray(values), label=name, color=colour, lw=1.6)
    panels = [axes] if area is None else [axes, below]
    for panel in panels:
        for time_s, _ in events:
            panel.axvline(time_s, color="0.35", ls="--", lw=1)
        panel.grid(alpha=0.3)
    for time_s, name in events:
        axes.annotate(name, (time_s, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                      ha="right", va="top", fontsize=8, color="0.25")  # fmt: skip
    axes.set_ylabel(label)
    axes.set_title(title)
    axes.legend(loc="lower right")
    if area is not None:
        values = area.area_px if area.area_mm2 is None else area.area_mm2
        unit = "px" if area.area_mm2 is None else "mm²"
        below.plot(area.times_s, values, color="#1b7837", lw=1.6, drawstyle="steps-mid")
        below.set_ylabel(f"hypoperfused area ({unit})")
        below.set_ylim(bottom=0)
        below.set_xlabel("time (s)")
    else:
        axes.set_xlabel("time (s)")
    return _save(figure, path)
