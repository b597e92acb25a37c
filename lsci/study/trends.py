"""Trends across visits: one tidy row per visit, recording and ROI, and their figure.

Columns (units in the names):

``perfusion_inv_s``
    Mean 1/τc over the ROI in 1/s (see :data:`lsci.study.analysis.PERFUSION_EXPRESSION`).
``perfusion_percent_of_reference``
    That mean as % of the reference ROI's mean in the same recording.
``hypoperfused_area_mm2``
    Lesion ROIs: the part of the hypoperfused region inside the ROI, below the study's
    fraction of the reference ROI's median
    (:func:`lsci.analysis.delineation.delineate_hypoperfusion`; :mod:`lsci.study.analysis`).
``*_change_*``
    Change from the subject's first visit at that site: perfusion in % of its first value,
    % of reference in percentage points, area in mm².
``roi_mapping``
    How the ROIs were placed on the recording: ``drawn`` on it, moved by ``registration`` or
    by ``control_points`` (:mod:`lsci.study.follow`).
``registration_correlation``
    The registration's confidence: correlation of the aligned mean intensities.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lsci.study.analysis import StudySettings
from lsci.study.output import output_folder, safe_name, write_atomically

__all__ = [
    "TREND_COLUMNS",
    "Trend",
    "TrendRow",
    "cell",
    "trend_figure",
    "trend_plot",
    "with_changes",
    "write_csv",
]


@dataclass(frozen=True)
class TrendRow:
    """One ROI of one recording of one visit (see the module docstring for the columns)."""

    subject: str
    site: str
    visit: str
    visit_number: int
    day: int | None
    visit_date: date | None
    notes: str
    recording: int
    roi: str
    role: str
    roi_pixels: int
    perfusion_inv_s: float
    perfusion_percent_of_reference: float
    hypoperfused_area_mm2: float
    perfusion_change_percent: float = math.nan
    percent_of_reference_change_points: float = math.nan
    hypoperfused_area_change_mm2: float = math.nan
    events: str = ""
    roi_mapping: str = "drawn"
    registration_correlation: float = math.nan


#: Columns of a trend CSV (the catalog's own view: visit labels, no dates or notes).
TREND_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(TrendRow) if f.name not in ("visit_date", "notes")
)


def _mean(values: Iterable[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def with_changes(rows: Sequence[TrendRow]) -> list[TrendRow]:
    """The rows with their change from the first visit of each subject, site and ROI.

    The first visit's value is the mean over its recordings at that site.
    """
    first: dict[tuple[str, str, str], tuple[float, float, float]] = {}
    for key in {(r.subject, r.site, r.roi) for r in rows}:
        own = [r for r in rows if (r.subject, r.site, r.roi) == key]
        earliest = min(r.visit_number for r in own)
        base = [r for r in own if r.visit_number == earliest]
        first[key] = (
            _mean(r.perfusion_inv_s for r in base),
            _mean(r.perfusion_percent_of_reference for r in base),
            _mean(r.hypoperfused_area_mm2 for r in base),
        )
    changed = []
    for row in rows:
        perfusion, percent, area = first[(row.subject, row.site, row.roi)]
        changed.append(
            replace(
                row,
                perfusion_change_percent=100.0 * (row.perfusion_inv_s / perfusion - 1)
                if perfusion > 0
                else math.nan,
                percent_of_reference_change_points=row.perfusion_percent_of_reference - percent,
                hypoperfused_area_change_mm2=row.hypoperfused_area_mm2 - area,
            )
        )
    return changed


def cell(value: Any) -> str:
    """A value as a CSV cell: 6 significant digits, empty when missing or not finite."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def write_csv(path: Path, rows: Sequence[Any], columns: Sequence[str], cells: Any = None) -> Path:
    """Write ``rows`` as CSV with ``columns`` (attributes of each row, or ``cells(row)``).

    Missing and non-finite numbers are empty cells.
    """

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                values = cells(row) if cells is not None else [getattr(row, c) for c in columns]
                writer.writerow([cell(v) for v in values])

    return write_atomically(path, write)


_COLOURS = ("#c0392b", "#2c7fb8", "#2ca25f", "#756bb1", "#e08214", "#636363")


def _series(
    rows: Sequence[TrendRow], roi: str, value: str, by_day: bool
) -> tuple[list[float], list[float]]:
    points: dict[float, list[float]] = {}
    for row in rows:
        if row.roi == roi:
            x = float(row.day) if by_day and row.day is not None else float(row.visit_number)
            points.setdefault(x, []).append(getattr(row, value))
    xs = sorted(points)
    return xs, [_mean(points[x]) for x in xs]


def trend_plot(rows: Sequence[TrendRow], *, title: str) -> Figure:
    """Perfusion (% of reference) and hypoperfused area across the visits of one site.

    The x axis is the day relative to the event when every visit states it (the event, day 0,
    is drawn as a line), else the visit number. Visits whose recordings hold events (procedure
    marks such as "needling start") are marked with their labels. The figure is not attached to
    a canvas: save it (:func:`trend_figure`) or put it on a GUI canvas.
    """
    by_day = all(row.day is not None for row in rows)
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    percent_axes, area_axes = figure.subplots(1, 2)
    rois = list(dict.fromkeys(row.roi for row in rows))
    roles = {row.roi: row.role for row in rows}
    for roi, colour in zip(rois, _COLOURS * 4, strict=False):
        if roles[roi] != "reference":
            xs, ys = _series(rows, roi, "perfusion_percent_of_reference", by_day)
            percent_axes.plot(xs, ys, "o-", color=colour, label=roi, lw=1.6)
        if roles[roi] == "lesion":
            xs, ys = _series(rows, roi, "hypoperfused_area_mm2", by_day)
            area_axes.plot(xs, ys, "s-", color=colour, label=roi, lw=1.6)
    percent_axes.axhline(100.0, color="0.6", lw=1, ls=":")
    percent_axes.set_ylabel("perfusion (1/τc), % of reference ROI")
    area_axes.set_ylabel("hypoperfused area (mm²)")
    area_axes.set_ylim(bottom=0)
    marks: dict[float, dict[str, None]] = {}  # labels in the order they were marked
    for row in rows:
        if row.events:
            x = float(row.day) if by_day and row.day is not None else float(row.visit_number)
            marks.setdefault(x, {}).update(dict.fromkeys(row.events.split("; ")))
    for axes in (percent_axes, area_axes):
        _mark_events(axes, marks, by_day)
        axes.set_xlabel("day after the event" if by_day else "visit")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="best", fontsize=8)
    figure.suptitle(title)
    return figure


def trend_figure(rows: Sequence[TrendRow], path: Path, *, title: str) -> Path:
    """Write :func:`trend_plot` of one site as a PNG (under a temporary name, then renamed)."""
    figure = trend_plot(rows, title=title)

    def write(temporary: Path) -> None:
        FigureCanvasAgg(figure)
        figure.savefig(temporary, format="png", dpi=110, metadata={"Software": None})

    return write_atomically(path, write)


def _mark_events(axes: Axes, marks: dict[float, dict[str, None]], by_day: bool) -> None:
    if by_day:
        axes.axvline(0.0, color="0.2", lw=1.2)
        axes.annotate("event (day 0)", (0.0, 1.0), xycoords=("data", "axes fraction"),
                      rotation=90, ha="right", va="top", fontsize=8)  # fmt: skip
    for x, labels in sorted(marks.items()):
        axes.axvline(x, color="0.35", ls="--", lw=1)
        axes.annotate(", ".join(labels), (x, 1.0), xycoords=("data", "axes fraction"),
                      rotation=90, ha="right", va="top", fontsize=7, color="0.25")  # fmt: skip


@dataclass(frozen=True)
class Trend:
    """A subject's trend: rows in visit order, per site and ROI, with the study's settings."""

    subject: str
    rows: list[TrendRow]
    settings: StudySettings

    @property
    def sites(self) -> list[str]:
        """The body sites, in the order of the rows."""
        return list(dict.fromkeys(row.site for row in self.rows))

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``trend_<subject>.csv`` and one ``trend_<subject>_<site>.png`` per site.

        Files are written under temporary names and renamed when complete.
        """
        folder = output_folder(out_dir)
        stem = f"trend_{safe_name(self.subject)}"
        files = [write_csv(folder / f"{stem}.csv", self.rows, TREND_COLUMNS)]
        for site in self.sites:
            rows = [row for row in self.rows if row.site == site]
            files.append(
                trend_figure(
                    rows, folder / f"{stem}_{safe_name(site)}.png", title=f"{self.subject} · {site}"
                )
            )
        return files
