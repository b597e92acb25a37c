"""``lsci repair``: copy every readable frame of a crashed or damaged recording into a new file."""

from __future__ import annotations

from pathlib import Path

import click

from lsci.errors import LsciError
from lsci.recording import salvage_copy
from lsci.recording.repair import describe_indices


@click.command("repair")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The repaired copy to create (never FILE itself).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def repair(file: Path, out: Path, overwrite: bool) -> None:
    """Copy the recording FILE into a new, cleanly closed file; FILE is only read.

    Every frame is read and its checksum verified; frames that fail it are left out and
    listed, and the command then exits with status 1. Events, calibrations and derived
    products are copied. Use it on a file whose writer crashed (it can then be processed) or
    whose bytes were damaged.
    """
    try:
        report = salvage_copy(file, out, overwrite=overwrite)
    except LsciError as exc:
        raise click.ClickException(str(exc)) from None
    total = report.frames_copied + len(report.frames_lost)
    click.echo(f"Copied {report.frames_copied} of {total} frames into {out}")
    if report.frames_lost:
        click.echo(
            f"Error: {len(report.frames_lost)} frame(s) of {file} failed their checksum and "
            f"were left out (indices {describe_indices(report.frames_lost)})",
            err=True,
        )
        raise SystemExit(1)
