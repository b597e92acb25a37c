"""``lsci import``: turn a multipage TIFF of raw speckle frames into a recording."""

from __future__ import annotations

import math
from pathlib import Path

import click

from lsci.errors import LsciError
from lsci.recording import AcquisitionMetadata, open_recording
from lsci.recording.convert import import_tiff


def _positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value!r} is invalid: it must be a finite number > 0")
    return value


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--fps",
    type=float,
    required=True,
    callback=_positive,
    help="Frame rate of the stack in frames per second; the timestamps are derived from it.",
)
@click.option(
    "--exposure-ms",
    type=float,
    required=True,
    callback=_positive,
    help="Exposure time in milliseconds.",
)
@click.option(
    "--pixel-size-um",
    type=float,
    default=None,
    callback=_positive,
    help="Sensor pixel pitch in micrometres.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The recording to create (.h5).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing recording.")
def import_command(
    file: Path,
    fps: float,
    exposure_ms: float,
    pixel_size_um: float | None,
    out: Path,
    overwrite: bool,
) -> None:
    """Import the multipage TIFF FILE of raw uint8/uint16 frames as a recording.

    Every page becomes a frame, copied exactly. Colour pages, pages of different size or
    type, and damaged files are refused with the reason; nothing is left under --out then.
    """
    metadata = AcquisitionMetadata(
        frame_rate_hz=fps, exposure_s=exposure_ms / 1e3, pixel_size_um=pixel_size_um
    )
    try:
        import_tiff(file, out, metadata, overwrite=overwrite)
        with open_recording(out) as rec:
            height, width = rec.frame_shape
            click.echo(f"Imported {len(rec)} frames of {height}×{width} {rec.dtype} into {out}")
    except (LsciError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
