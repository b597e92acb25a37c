"""Figures of perfusion maps and before/after comparisons, as PNG files (matplotlib, no GUI).

Used by ``lsci demo``, the command line and the napari plugin's export, so a figure looks the
same wherever it is made. Every function draws into a new figure with the non-interactive Agg
canvas and writes it to ``path``; none needs a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lsci.analysis.compare import Comparison

__all__ = ["comparison_figure", "map_figure", "maps_figure", "timecourse_figure"]

#: Colour map of perfusion and contrast maps (perceptually uniform).
MAP_CMAP = "inferno"
#: Colour map of changes, centred on no change.
CHANGE_CMAP = "RdBu_r"
_ROI_COLOURS = ("#00e5ff", "#7cfc00", "#ffd700", "#ff69b4", "#ffffff")


def _limits(
    image: npt.ArrayLike, percentiles: tuple[float, float] = (1, 99)
) -> tuple[float, float]:
    """Robust display limits: percentiles of the finite values (0, 1 when there are none)."""
    values = np.asarray(image, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, percentiles)
    return float(low), float(high if high > low else low + 1)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)
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


def map_figure(
    image: npt.ArrayLike,
    path: str | Path,
    *,
    title: str,
    label: str,
    cmap: str = MAP_CMAP,
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
        Display range; default the 1st and 99th percentiles.

    Returns
    -------
    Path
        The file written.
    """
    vmin, vmax = _limits(image) if limits is None else limits
    figure = Figure(figsize=(5.2, 4.4), layout="constrained")
    _show_map(figure.add_subplot(), figure, image, title, label, cmap=cmap, vmin=vmin, vmax=vmax)
    return _save(figure, path)


def maps_figure(
    images: Sequence[tuple[npt.ArrayLike, str, str]],
    path: str | Path,
    *,
    cmap: str = MAP_CMAP,
) -> Path:
    """Maps side by side, each ``(image, title, colour-bar label)`` with its own colour bar."""
    figure = Figure(figsize=(4.6 * len(images), 4.2), layout="constrained")
    for index, (image, title, label) in enumerate(images, start=1):
        vmin, vmax = _limits(image)
        axes = figure.add_subplot(1, len(images), index)
        _show_map(axes, figure, image, title, label, cmap=cmap, vmin=vmin, vmax=vmax)
    return _save(figure, path)


def comparison_figure(
    comparison: Comparison,
    path: str | Path,
    *,
    masks: Mapping[str, npt.NDArray[np.bool_]],
    label: str,
    title: str = "Perfusion before and after treatment",
) -> Path:
    """Before, after, percent change and ROI bars of a before/after comparison.

    Parameters
    ----------
    comparison : lsci.analysis.compare.Comparison
        From :func:`lsci.analysis.compare.compare_before_after`.
    path : str or Path
        PNG file to write.
    masks : dict of str to (M, N) bool array
        The regions, outlined on the maps in the order of the ROI bars.
    label : str
        What the maps show, with the unit (colour bars and bar axis).
    title : str
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    figure = Figure(figsize=(13, 9.2), layout="constrained")
    figure.suptitle(title, fontsize=14)
    # Before and after share one colour scale, so equal colours mean equal perfusion.
    vmin, vmax = _limits(np.stack([comparison.before, comparison.after]))
    panels = ((1, comparison.before, "Before"), (2, comparison.after, "After (registered)"))
    for index, image, name in panels:
        axes = figure.add_subplot(2, 2, index)
        _show_map(axes, figure, image, name, label, cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
        _outline(axes, masks)

    change = np.asarray(comparison.percent_change, dtype=np.float64)
    finite = np.abs(change[np.isfinite(change)])
    bound = float(np.percentile(finite, 98)) if finite.size else 100.0
    axes = figure.add_subplot(2, 2, 3)
    _show_map(axes, figure, change, "Change after / before", "change (%)", cmap=CHANGE_CMAP,
              vmin=-bound, vmax=bound)  # fmt: skip
    _outline(axes, masks)

    axes = figure.add_subplot(2, 2, 4)
    names = [row.name for row in comparison.rois]
    x = np.arange(len(names))
    before = [row.before_mean for row in comparison.rois]
    after = [row.after_mean for row in comparison.rois]
    axes.bar(x - 0.2, before, 0.4, label="before", color="#5b7db1")
    axes.bar(x + 0.2, after, 0.4, label="after", color="#e07b39")
    for i, row in enumerate(comparison.rois):
        top = np.nanmax([row.before_mean, row.after_mean, 0.0])
        axes.text(i, top * 1.02, f"{row.percent_change:+.0f} %", ha="center", va="bottom")
    axes.set_xticks(x, names)
    axes.set_ylabel(f"mean {label}")
    axes.set_title("Regions of interest")
    axes.legend(loc="upper left")
    axes.margins(y=0.15)
    return _save(figure, path)


def timecourse_figure(
    times_s: npt.ArrayLike,
    series: Mapping[str, npt.ArrayLike],
    path: str | Path,
    *,
    label: str,
    events: Sequence[tuple[float, str]] = (),
    title: str = "Perfusion over time",
) -> Path:
    """Mean perfusion of each region over time, with the event markers.

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

    Returns
    -------
    Path
        The file written.
    """
    figure = Figure(figsize=(9, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for (name, values), colour in zip(series.items(), ("#c0392b", "#2c7fb8", "#2ca25f", "#756bb1"),
                                      strict=False):  # fmt: skip
        axes.plot(np.asarray(times_s), np.asarray(values), label=name, color=colour, lw=1.6)
    for time_s, name in events:
        axes.axvline(time_s, color="0.35", ls="--", lw=1)
        axes.annotate(name, (time_s, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                      ha="right", va="top", fontsize=8, color="0.25")  # fmt: skip
    axes.set_xlabel("time (s)")
    axes.set_ylabel(label)
    axes.set_title(title)
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, path)
