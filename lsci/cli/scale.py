"""``lsci scale REC``: show a recording's pixel size on the skin, or measure it from two points."""

from __future__ import annotations

from pathlib import Path

import click

from lsci.analysis.scale import PixelScale, recording_scale, save_scale
from lsci.errors import LsciError
from lsci.recording import open_recording


def _points(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    if value is None:
        return None
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != 4:
        raise click.BadParameter(f"expected R0,C0,R1,C1 (four numbers), got {value!r}")
    return (numbers[0], numbers[1]), (numbers[2], numbers[3])


def describe(scale: PixelScale | None) -> str:
    """The text ``lsci scale`` prints for a scale (or its absence)."""
    if scale is None:
        return (
            "Scale: unknown (no measured scale, and the optics metadata lack pixel_size_um or "
            "magnification). Measure it: lsci scale REC --points R0,C0,R1,C1 --distance-mm D"
        )
    return (
        f"Scale: {scale.pixel_size_mm:.6g} mm/px ({1.0 / scale.pixel_size_mm:.4g} px/mm, "
        f"{scale.pixel_area_mm2:.4g} mm² per pixel)\nSource: {scale.source}"
    )


@click.command("scale")
@click.argument("recording", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--points",
    callback=_points,
    metavar="R0,C0,R1,C1",
    help="Two points (row, column in pixels) a known distance apart on the skin.",
)
@click.option(
    "--distance-mm", type=float, help="The distance between the two points on the skin, mm."
)
def scale(
    recording: Path,
    points: tuple[tuple[float, float], tuple[float, float]] | None,
    distance_mm: float | None,
) -> None:
    """Show the pixel size on the skin of RECORDING and its source, or measure it.

    With --points and --distance-mm the scale is measured between the two points (e.g. two marks
    of a ruler in the image) and stored with the recording's analysis, beside it; the recording
    itself is not modified. A measured scale takes precedence over the optics metadata.
    """
    if (points is None) != (distance_mm is None):
        raise click.UsageError("give --points and --distance-mm together, or neither")
    try:
        if points is not None and distance_mm is not None:
            save_scale(recording, points[0], points[1], distance_mm)
        with open_recording(recording) as rec:
            click.echo(describe(recording_scale(rec)))
    except (LsciError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
