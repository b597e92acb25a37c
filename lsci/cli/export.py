"""``lsci export``: raw frames, timestamps or derived products to TIFF, PNG or CSV."""

from __future__ import annotations

from pathlib import Path

import click

from lsci.errors import LsciError
from lsci.recording.convert import FORMATS, RAW, export


@click.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--what",
    default=RAW,
    show_default=True,
    help="'raw' (frames), 'timestamps' (CSV table) or a derived product: its full name as "
    "lsci info lists it (SET/perfusion), or its plain name (perfusion) for the newest one.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="tiff",
    show_default=True,
    help="tiff keeps the numbers; csv writes them as text; png is scaled for viewing.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Output file; stacks as PNG/CSV become <stem>_<frame:06d><suffix>.",
)
@click.option(
    "--start", type=click.IntRange(min=0), default=None, help="First frame of a stack (default 0)."
)
@click.option(
    "--stop",
    type=click.IntRange(min=0),
    default=None,
    help="Frame after the last one exported (default: the end).",
)
@click.option("--vmin", type=float, default=None, help="PNG: value drawn black (default min).")
@click.option("--vmax", type=float, default=None, help="PNG: value drawn white (default max).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option(
    "--incomplete",
    is_flag=True,
    help="Export a derived product whose computation did not finish (unwritten maps are NaN).",
)
def export_command(
    file: Path,
    what: str,
    fmt: str,
    out: Path,
    start: int | None,
    stop: int | None,
    vmin: float | None,
    vmax: float | None,
    overwrite: bool,
    incomplete: bool,
) -> None:
    """Export frames, timestamps or a derived product of the recording FILE.

    PNG scales values linearly from --vmin (black) to --vmax (white), 8-bit grayscale; use
    TIFF or CSV to keep the numbers. Outputs appear only once complete; the recording itself
    is never an allowed output.
    """
    try:
        written = export(
            file,
            out,
            what=what,
            fmt=fmt,
            start=start,
            stop=stop,
            vmin=vmin,
            vmax=vmax,
            overwrite=overwrite,
            allow_incomplete=incomplete,
        )
    except (LsciError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    first = written[0]
    more = f" … {written[-1].name} ({len(written)} files)" if len(written) > 1 else ""
    click.echo(f"Wrote {first}{more}")
