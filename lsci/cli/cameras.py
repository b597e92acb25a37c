"""``lsci cameras``: the GenTL producers found and the GenICam cameras they offer."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from lsci.errors import LsciError

_ENV_VAR = "GENICAM_GENTL64_PATH"

NO_PRODUCER_HELP = f"""\
No GenTL producer found.

A GenTL producer is a .cti file from your camera vendor's SDK (the transport library for
GigE Vision, USB3 Vision, ...). Install the SDK, then either list the folder holding the .cti
file in {_ENV_VAR} (folders separated by ':'):

    export {_ENV_VAR}=/opt/vendor/lib/gentl

or name the producer directly:

    lsci cameras --cti /opt/vendor/lib/gentl/producer.cti

Cameras also need the camera extra: pip install "lsci[camera]"."""

_COLUMNS = (
    ("index", "index"),
    ("vendor", "vendor"),
    ("model", "model"),
    ("serial", "serial_number"),
    ("id", "device_id"),
    ("interface", "interface"),
)


def _table(devices: Sequence[Any]) -> list[str]:
    rows = [[label for label, _ in _COLUMNS]]
    rows += [[str(getattr(d, field)) for _, field in _COLUMNS] for d in devices]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


@click.command("cameras")
@click.option(
    "--cti",
    "producers",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help=f"A GenTL producer (.cti) or a folder of them; repeat for more. "
    f"Default: the folders in {_ENV_VAR}.",
)
def cameras(producers: tuple[Path, ...]) -> None:
    """List GenTL producers and their cameras: vendor, model, serial, id and interface.

    Open a listed camera by its index, serial or id.
    """
    # Imported here: the driver pulls in harvesters, the optional camera extra, only when used.
    genicam = importlib.import_module("lsci.drivers.genicam")
    try:
        reports = genicam.discover(list(producers) or None)
    except LsciError as error:
        raise click.ClickException(str(error)) from None
    if not reports:
        click.echo(NO_PRODUCER_HELP, err=True)
        raise click.exceptions.Exit(1)
    for report in reports:
        click.echo(f"GenTL producer {report.path}")
        if report.error is not None:
            click.echo(f"  cannot use it: {report.error}")
        elif not report.devices:
            click.echo("  no cameras found (check cables, power and network settings)")
        else:
            click.echo("\n".join(_table(report.devices)))
