"""One self-contained PDF per comparison, for a patient's chart or a paper's supplement.

:func:`comparison_report` writes the figure of :func:`lsci.viz.figures.draw_comparison` and,
on the following pages, every number of a :class:`~lsci.analysis.compare_recordings.
RecordingComparison`: the hypoperfused area before and after with its threshold, the ROI
table, the registration and its confidence, the scale and its source, the quality masks, the
processing settings, the calibrations applied, the sources and lsci's version. It uses
matplotlib's PDF backend only (fonts embedded; no network, no external program).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from lsci._version import __version__
from lsci.analysis.compare_recordings import RecordingComparison
from lsci.analysis.delineation import Delineation
from lsci.analysis.similarity import SimilarityRegistration
from lsci.recording.atomic import atomic_write
from lsci.viz.figures import draw_comparison

__all__ = ["comparison_report", "report_lines"]

#: A4 portrait, inches.
_PAGE_IN = (8.27, 11.69)
#: Lines of text per page at the report's font size.
_LINES_PER_PAGE = 68


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}g}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Rows of text in aligned columns (monospace)."""
    cells = [list(header)] + [[_number(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _area_lines(name: str, delineation: Delineation) -> list[str]:
    mm2 = _number(delineation.area_mm2)
    centroid = delineation.centroid_px
    where = "–" if centroid is None else f"({centroid[0]:.1f}, {centroid[1]:.1f}) px"
    if delineation.centroid_mm is not None:
        where += f" = ({delineation.centroid_mm[0]:.2f}, {delineation.centroid_mm[1]:.2f}) mm"
    return [
        f"  {name}: {delineation.area_px} px, {mm2} mm²; centroid (row, col) {where}",
        f"    threshold: {delineation.threshold.description}",
        f"    not measured: {delineation.excluded_px} px of the map, "
        f"{delineation.excluded_inside_px} px inside the area",
    ]


def report_lines(result: RecordingComparison) -> list[str]:
    """The text pages of the report, line by line (everything but the figure)."""
    comparison = result.comparison
    settings = result.before.settings
    lines = [
        "lsci comparison report",
        f"lsci {__version__}; written {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        result.description,
        f"Before: {result.sources[0]}  window {result.before.window_s[0]:.2f}–"
        f"{result.before.window_s[1]:.2f} s, frames {result.before.frames[0]}–"
        f"{result.before.frames[1]}, {result.before.n_maps} maps",
        f"After:  {result.sources[1]}  window {result.after.window_s[0]:.2f}–"
        f"{result.after.window_s[1]:.2f} s, frames {result.after.frames[0]}–"
        f"{result.after.frames[1]}, {result.after.n_maps} maps",
        f"Maps: {result.label}",
        "",
        "HYPOPERFUSED AREA",
    ]
    areas = comparison.areas
    if areas is None:
        lines.append("  not delineated: give a healthy reference region or an absolute threshold")
    else:
        lines += _area_lines("before", areas.before)
        lines += _area_lines("after", areas.after)
        lines += [
            f"  reduction: {areas.reduction_px} px, {_number(areas.reduction_mm2)} mm² "
            f"({_number(areas.reduction_percent, 3)} % of the area before)",
            f"  recovered: {areas.recovered_px} px ({_number(areas.recovered_mm2)} mm²); "
            f"still hypoperfused: {areas.persistent_px} px ({_number(areas.persistent_mm2)} "
            f"mm²); new: {areas.new_px} px ({_number(areas.new_mm2)} mm²); not measured "
            f"after: {areas.unmeasured_after_px} px",
            f"  islands and holes smaller than {areas.before.min_size_px} px cleaned"
            + (
                "" if areas.before.min_size_mm2 is None else f" ({areas.before.min_size_mm2:g} mm²)"
            ),
        ]
    lines += ["", "REGIONS OF INTEREST"]
    shares = ({}, {}) if areas is None else (areas.before.roi_share, areas.after.roi_share)
    lines += _table(
        ("ROI", "pixels", "before", "after", "change %", "vs ref. %", "hypo. before",
         "hypo. after"),
        (
            (row.name, row.pixel_count, row.before_mean, row.after_mean, row.percent_change,
             row.relative_percent_change, shares[0].get(row.name), shares[1].get(row.name))
            for row in comparison.rois
        ),
    )  # fmt: skip
    lines.append(
        f"  reference: {comparison.reference or 'none'}; means in {result.label}; 'hypo.' = "
        "share of the region's measured pixels that is hypoperfused"
    )
    lines += ["", "REGISTRATION (after onto before, on the mean intensities)"]
    registration = comparison.registration
    if registration is None:
        lines.append("  none: the maps were compared as recorded")
    elif isinstance(registration, SimilarityRegistration):
        lines += [
            f"  similarity: rotation {registration.rotation_deg:+.2f}°, scale "
            f"{registration.scale:.4f}, shift ({registration.shift_px[0]:+.2f}, "
            f"{registration.shift_px[1]:+.2f}) px",
            f"  confidence: correlation {registration.correlation:.3f}, residual "
            f"{registration.residual:.3f}, overlap {100 * registration.overlap:.1f} %; "
            + ("reliable" if registration.reliable else "NOT RELIABLE"),
            *(f"  reason: {reason}" for reason in registration.reasons),
        ]
    else:
        lines.append(
            f"  translation: shift ({registration.shift_px[0]:+.2f}, "
            f"{registration.shift_px[1]:+.2f}) px, peak ratio {registration.peak_ratio:.2f}"
        )
    lines += ["", "SCALE"]
    scale = comparison.scale
    lines.append(
        "  unknown: areas in pixels only"
        if scale is None
        else f"  {scale.pixel_size_mm:.5g} mm/px ({scale.pixel_area_mm2:.4g} mm² per pixel)"
    )
    lines += [
        f"  before recording: {result.scale_sources[0]}",
        f"  after recording:  {result.scale_sources[1]}",
    ]
    lines += ["", "QUALITY (pixels left out of every statistic and area)"]
    if result.quality is None:
        lines.append("  not checked")
    else:
        for name, check in zip(("before", "after"), result.quality, strict=True):
            grain = _number(check.speckle_grain_px, 3)
            lines.append(
                f"  {name}: {check.saturated_px} px saturated, {check.low_signal_px} px below "
                f"{check.low_signal_adu:g} ADU; speckle grain {grain} px"
                + (" — UNDER-SAMPLED (< 2 px)" if check.undersampled else "")
            )
    lines += ["", "PROCESSING SETTINGS"]
    lines += [f"  {key}: {value}" for key, value in settings.parameters().items()]
    lines += ["", "CALIBRATIONS APPLIED"]
    for name, window in (("before", result.before), ("after", result.after)):
        applied = window.calibrations.parameters()
        lines.append(f"  {name}: " + (", ".join(f"{k}={v}" for k, v in applied.items()) or "none"))
    return lines


def _text_page(lines: Sequence[str], page: int, pages: int) -> Figure:
    figure = Figure(figsize=_PAGE_IN)
    figure.text(0.06, 0.965, "\n".join(lines), family="monospace", fontsize=7.2, va="top",
                ha="left", wrap=False)  # fmt: skip
    figure.text(0.94, 0.02, f"page {page} of {pages}", fontsize=7, ha="right", color="0.4")
    return figure


def comparison_report(
    result: RecordingComparison,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Write the PDF report of a comparison.

    Parameters
    ----------
    result : RecordingComparison
        From :func:`lsci.analysis.compare_recordings.compare_events` or
        :func:`~lsci.analysis.compare_recordings.compare_recordings`.
    path : str or Path
        The PDF file to write (write to a temporary name and rename it, e.g. with
        :func:`lsci.recording.atomic_write`).
    title : str, optional
        Title of the figure page; default the comparison's description.

    Returns
    -------
    Path
        ``path``.
    """
    lines = report_lines(result)
    chunks = [lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)]
    pages = 1 + len(chunks)
    figure = draw_comparison(
        result.comparison,
        label=result.label,
        masks=result.masks,
        title=title or result.description,
    )
    figure.set_size_inches(_PAGE_IN[1], _PAGE_IN[0] * 1.05)
    path = Path(path)
    metadata = {
        "Title": f"lsci comparison: {result.description}",
        "Creator": f"lsci {__version__}",
        "Subject": "Perfusion and hypoperfused area before and after treatment",
    }
    with (
        atomic_write(path, overwrite=True) as temporary,
        PdfPages(temporary, metadata=metadata) as pdf,
    ):
        figure.savefig(pdf, format="pdf")
        for page, chunk in enumerate(chunks, start=2):
            _text_page(chunk, page, pages).savefig(pdf, format="pdf")
    return path
