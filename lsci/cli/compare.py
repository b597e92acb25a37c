"""``lsci compare``: perfusion before and after a treatment, from the terminal.

The numbers come from the comparison engine (:mod:`lsci.analysis.compare_recordings`), the same
the Python API and the napari Compare widget use.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from lsci.analysis.compare_recordings import (
    RecordingComparison,
    compare_events,
    compare_recordings,
    default_settings,
)
from lsci.analysis.time_windows import DEFAULT_WINDOW_S
from lsci.core.models import MODELS
from lsci.errors import LsciError
from lsci.processing import ProcessingSettings
from lsci.recording import open_recording

FIGURE = "comparison.png"
TABLE = "comparison.csv"
REPORT = "comparison.json"


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


def settings_for(path: Path, model: str | None, window: int | None) -> ProcessingSettings:
    """The comparison's default settings for this recording, with the options given."""
    with open_recording(path) as recording:
        settings = default_settings(recording.metadata.exposure_s)
    changes: dict[str, Any] = {}
    if model is not None:
        changes["model"] = model
    if window is not None:
        changes["window"] = window
    return dataclasses.replace(settings, **changes)


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` on a temporary file beside ``path``, then rename it into place."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_outputs(result: RecordingComparison, out: Path) -> list[Path]:
    """The figure, the tidy CSV and the JSON report of a comparison, in folder ``out``."""
    from lsci.viz.figures import comparison_figure

    out.mkdir(parents=True, exist_ok=True)
    return [
        write_atomically(
            out / FIGURE,
            lambda p: comparison_figure(
                result.comparison,
                p,
                masks=result.masks,
                label=result.label,
                title=result.description,
            ),
        ),
        write_atomically(out / TABLE, lambda p: p.write_text(result.to_csv(), encoding="utf-8")),
        write_atomically(out / REPORT, lambda p: p.write_text(result.to_json(), encoding="utf-8")),
    ]


def summary(result: RecordingComparison) -> str:
    """One line per region: before, after and the change."""
    lines = [result.description]
    registration = result.comparison.registration
    if registration is not None:
        dy, dx = registration.shift_px
        lines.append(f"registration: after shifted by ({dy:+.2f}, {dx:+.2f}) px")
    for row in result.comparison.rois:
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
    help="Length of the before and after windows, seconds.",
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
    metavar="NAME=ROW0,COL0,ROW1,COL1",
    help="A rectangular region of the before map; repeatable [default: the whole field].",
)
@click.option("--reference", help="Name of the --roi that is healthy skin.")
@click.option("--no-register", is_flag=True, help="Compare the maps as they are, unaligned.")
@click.option(
    "--uncalibrated",
    is_flag=True,
    help="Ignore the recordings' stored calibrations (dark frame, camera noise, β).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for comparison.png, comparison.csv and comparison.json.",
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
    no_register: bool,
    uncalibrated: bool,
    out: Path,
) -> None:
    """Compare perfusion before and after a treatment.

    \b
    One recording with events:  lsci compare REC.h5 --before 'needling start'
                                    --after 'needling end' --out DIR
    Two recordings:             lsci compare BEFORE.h5 AFTER.h5 --out DIR

    Each recording is processed with its stored calibrations, the after map is registered
    onto the before map, and the regions are compared. Writes a figure, a table with one row
    per region and window, and a JSON report with every number and setting.
    """
    regions = dict(parse_roi(text) for text in rois)
    if reference is not None and reference not in regions:
        raise click.BadParameter(
            f"{reference!r} is not the name of a --roi", param_hint="--reference"
        )
    common: dict[str, Any] = {
        "settings": settings_for(recordings[0], model, window),
        "rois": regions,
        "reference": reference,
        "register": not no_register,
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
    except (ValueError, LsciError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc
    written = write_outputs(result, out)
    click.echo(summary(result))
    click.echo("wrote " + ", ".join(str(path) for path in written))
