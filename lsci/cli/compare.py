"""``lsci compare``: perfusion and hypoperfused area before and after a treatment, from the
terminal.

The numbers come from the comparison engine (:mod:`lsci.analysis.compare_recordings`), the same
the Python API and the napari Compare widget use. Every output is written under a temporary
name and renamed when complete (:mod:`lsci.recording.atomic`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import click
import numpy as np

from lsci.analysis.compare import AreaSettings
from lsci.analysis.compare_recordings import (
    RecordingComparison,
    compare_events,
    compare_recordings,
    default_settings,
)
from lsci.analysis.delineation import DEFAULT_FRACTION
from lsci.analysis.roi import read_rois, rois_geojson
from lsci.analysis.similarity import SimilarityRegistration
from lsci.analysis.time_windows import DEFAULT_WINDOW_S
from lsci.core.models import MODELS
from lsci.errors import LsciError
from lsci.processing import ProcessingSettings
from lsci.recording import open_recording
from lsci.recording.atomic import atomic_writes

FIGURE = "comparison.png"
TABLE = "comparison.csv"
NUMBERS = "comparison.json"
REPORT = "report.pdf"
ROIS = "rois.geojson"

_RECTANGLE = re.compile(r"^(?P<name>[^=]+)=(?P<corners>[^=]+)$")


def parse_roi(text: str) -> tuple[str, np.ndarray]:
    """``NAME=ROW0,COL0,ROW1,COL1`` → the name and the rectangle's ``(row, col)`` corners.

    The rectangle covers rows ``ROW0 ≤ r < ROW1`` and columns ``COL0 ≤ c < COL1`` of the before
    map (:func:`lsci.analysis.roi.polygon_mask`'s inside rule).
    """
    name, _, corners = text.partition("=")
    try:
        r0, c0, r1, c1 = (float(v) for v in corners.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not NAME=ROW0,COL0,ROW1,COL1", param_hint="--roi"
        ) from None
    if not name.strip():
        raise click.BadParameter(f"{text!r} has no name before '='", param_hint="--roi")
    return name.strip(), np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]])


def gather_rois(values: tuple[str, ...]) -> tuple[dict[str, np.ndarray], str | None]:
    """The regions of the ``--roi`` options (ROI files and rectangles) and the reference a file
    names, in the order given."""
    regions: dict[str, np.ndarray] = {}
    reference = None
    for value in values:
        if _RECTANGLE.match(value) and not Path(value).exists():
            pairs = [parse_roi(value)]
        else:
            try:
                read = read_rois(value)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--roi") from None
            pairs = list(read.rois.items())
            reference = read.reference or reference
        for name, polygon in pairs:
            if name in regions:
                raise click.BadParameter(f"two regions are named {name!r}", param_hint="--roi")
            regions[name] = polygon
    return regions, reference


def settings_for(path: Path, model: str | None, window: int | None) -> ProcessingSettings:
    """The comparison's default settings for this recording, with the options given."""
    with open_recording(path) as recording:
        settings = default_settings(recording.metadata.exposure_s)
    changes: dict[str, Any] = {}
    if model is not None:
        changes["model"] = model
    if window is not None:
        changes["window"] = window
    try:
        return dataclasses.replace(settings, **changes)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None


def write_outputs(
    result: RecordingComparison,
    out: Path,
    *,
    rois: dict[str, np.ndarray] | None = None,
    reference: str | None = None,
    inputs: tuple[Path, ...] = (),
) -> list[Path]:
    """The figure, tidy CSV, JSON, PDF report and (with ``rois``) the ROI file of a
    comparison, in folder ``out``, each complete or not at all."""
    from lsci.viz.figures import comparison_figure
    from lsci.viz.report import comparison_report

    out.mkdir(parents=True, exist_ok=True)
    names = [FIGURE, TABLE, NUMBERS, REPORT] + ([ROIS] if rois else [])
    targets = [out / name for name in names]
    with atomic_writes(targets, overwrite=True, inputs=inputs) as temporaries:
        files = dict(zip(names, temporaries, strict=True))
        comparison_figure(
            result.comparison,
            files[FIGURE],
            masks=result.masks,
            label=result.label,
            title=result.description,
        )
        files[TABLE].write_text(result.to_csv(), encoding="utf-8")
        files[NUMBERS].write_text(result.to_json(), encoding="utf-8")
        comparison_report(result, files[REPORT])
        if rois:
            files[ROIS].write_text(rois_geojson(rois, reference), encoding="utf-8")
    return targets


def summary(result: RecordingComparison) -> str:
    """What the terminal shows: the registration, the areas and one line per region."""
    comparison = result.comparison
    lines = [result.description]
    registration = comparison.registration
    if isinstance(registration, SimilarityRegistration):
        lines.append(
            f"registration: rotation {registration.rotation_deg:+.2f}°, scale "
            f"{registration.scale:.4f}, shift ({registration.shift_px[0]:+.2f}, "
            f"{registration.shift_px[1]:+.2f}) px, correlation {registration.correlation:.2f}"
        )
        if not registration.reliable:
            lines.append("WARNING registration unreliable: " + "; ".join(registration.reasons))
    elif registration is not None:
        dy, dx = registration.shift_px
        lines.append(f"registration: after shifted by ({dy:+.2f}, {dx:+.2f}) px")
    scale = comparison.scale
    lines.append(
        "scale: unknown (areas in px; set it with lsci scale)"
        if scale is None
        else f"scale: {scale.pixel_size_mm:.4g} mm/px ({scale.source})"
    )
    areas = comparison.areas
    if areas is not None:
        for name in ("before", "after"):
            delineation = getattr(areas, name)
            mm2 = "" if delineation.area_mm2 is None else f"{delineation.area_mm2:.2f} mm² = "
            lines.append(
                f"hypoperfused {name}: {mm2}{delineation.area_px} px "
                f"({delineation.threshold.description})"
            )
        reduction = (
            f"{areas.reduction_percent:.1f} %" if math.isfinite(areas.reduction_percent) else "–"
        )
        lines.append(
            f"area reduction: {reduction}; recovered {areas.recovered_px} px, still "
            f"hypoperfused {areas.persistent_px} px, new {areas.new_px} px"
        )
    if result.quality is not None:
        for name, check in zip(("before", "after"), result.quality, strict=True):
            if check.saturated_px or check.low_signal_px or check.undersampled:
                lines.append(
                    f"quality {name}: {check.saturated_px} px saturated, {check.low_signal_px} "
                    "px without signal left out"
                    + ("; speckle under-sampled (< 2 px)" if check.undersampled else "")
                )
    for row in comparison.rois:
        relative = (
            f", {row.relative_percent_change:+.1f} % vs reference"
            if np.isfinite(row.relative_ratio)
            else ""
        )
        lines.append(
            f"{row.name}: {row.before_mean:.4g} → {row.after_mean:.4g} {result.label} "
            f"(× {row.ratio:.3f}, {row.percent_change:+.1f} %{relative})"
        )
    return "\n".join(lines)


@click.command("compare")
@click.argument("recordings", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--before", "before_label", help="Event the before window ends at (one file).")
@click.option(
    "--after", "after_label", help="Event the after window starts at [default: --before]."
)
@click.option(
    "--window-s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_WINDOW_S,
    show_default=True,
    help="Length of the before and after windows, seconds (the default of the Python API and "
    "the napari widget too).",
)
@click.option(
    "--gap-s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Time left out next to each event, seconds.",
)
@click.option(
    "--model",
    type=click.Choice(list(MODELS)),
    help="Perfusion model [default: inverse_tau when the exposure time is known, else inverse_k2].",
)
@click.option("--window", type=int, help="Spatial contrast window, pixels [default: 7].")
@click.option(
    "--roi",
    "rois",
    multiple=True,
    metavar="FILE|NAME=ROW0,COL0,ROW1,COL1",
    help="Regions of the before map: an ROI file (GeoJSON, see lsci.analysis.roi; a region "
    "with role 'reference' is the reference), or a rectangle. Repeatable [default: the whole "
    "field]. The regions used are saved as rois.geojson in --out.",
)
@click.option("--reference", help="Name of the region that is healthy skin.")
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=DEFAULT_FRACTION,
    show_default=True,
    help="Hypoperfused below this fraction of the reference region's median perfusion.",
)
@click.option(
    "--absolute-threshold",
    type=float,
    help="Hypoperfused below this perfusion, in the maps' unit, instead of --threshold.",
)
@click.option(
    "--registration",
    type=click.Choice(["similarity", "translation", "none"]),
    default="similarity",
    show_default=True,
    help="Align the after map: rotation, scale and translation; translation only (a camera "
    "on a fixed mount); or not at all.",
)
@click.option(
    "--accept-unreliable",
    is_flag=True,
    help="Compare even when the similarity registration is unreliable (flagged in every "
    "output) instead of refusing.",
)
@click.option(
    "--uncalibrated",
    is_flag=True,
    help="Ignore the recordings' stored calibrations (dark frame, camera noise, β).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for comparison.png, comparison.csv, comparison.json, report.pdf and rois.geojson.",
)
def compare(
    recordings: tuple[Path, ...],
    before_label: str | None,
    after_label: str | None,
    window_s: float,
    gap_s: float,
    model: str | None,
    window: int | None,
    rois: tuple[str, ...],
    reference: str | None,
    threshold: float,
    absolute_threshold: float | None,
    registration: str,
    accept_unreliable: bool,
    uncalibrated: bool,
    out: Path,
) -> None:
    """Compare perfusion and the hypoperfused area before and after a treatment.

    \b
    One recording with events:  lsci compare REC.h5 --before 'needling start'
                                    --after 'needling end' --out DIR
    Two recordings:             lsci compare BEFORE.h5 AFTER.h5 --out DIR

    Each recording is processed with its stored calibrations, saturated and unlit pixels are
    left out, the after map is registered onto the before map, the regions are compared, and
    with a --reference region the hypoperfused area is delineated before and after (in mm²
    when the recording's scale is known). Writes a figure, a table with one row per region and
    window plus the area rows, a JSON file with every number and setting, a PDF report and the
    regions used.
    """
    regions, file_reference = gather_rois(rois)
    reference = reference or file_reference
    if reference is not None and reference not in regions:
        raise click.BadParameter(
            f"{reference!r} is not the name of a region given with --roi", param_hint="--reference"
        )
    common: dict[str, Any] = {
        "settings": settings_for(recordings[0], model, window),
        "rois": regions,
        "reference": reference,
        "register": registration != "none",
        "registration": "translation" if registration == "translation" else "similarity",
        "refuse_unreliable": not accept_unreliable,
        "area": AreaSettings(fraction=threshold, absolute=absolute_threshold),
        "calibrated": not uncalibrated,
    }
    try:
        if len(recordings) == 1:
            if before_label is None:
                raise click.UsageError("one recording needs --before LABEL (and maybe --after)")
            result = compare_events(
                recordings[0],
                before_label,
                after_label,
                window_s=window_s,
                gap_s=gap_s,
                **common,
            )
        elif len(recordings) == 2:
            if before_label is not None or after_label is not None:
                raise click.UsageError("--before and --after choose windows of one recording")
            if model is None and window is None:
                common["settings"] = None  # each recording's own exposure decides its default
            result = compare_recordings(recordings[0], recordings[1], **common)
        else:
            raise click.UsageError("give one recording with events, or two recordings")
        written = write_outputs(result, out, rois=regions, reference=reference, inputs=recordings)
    except (ValueError, LsciError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc
    click.echo(summary(result))
    click.echo("wrote " + ", ".join(str(path) for path in written))
