"""``lsci cameras``: every camera kind lsci can drive and the devices each one offers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from lsci.drivers.registry import CAMERA_KINDS, CameraKind, DeviceInfo, OpenOptions, kinds_taking
from lsci.errors import LsciError

_COLUMNS = (
    ("index", "index"),
    ("vendor", "vendor"),
    ("model", "model"),
    ("serial", "serial_number"),
    ("id", "device_id"),
    ("interface", "interface"),
)


def _table(devices: Sequence[DeviceInfo]) -> list[str]:
    rows = [[label for label, _ in _COLUMNS]]
    rows += [[str(getattr(d, field)) for _, field in _COLUMNS] for d in devices]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _report(kind: CameraKind, options: OpenOptions) -> int:
    """Print one kind's device sources and devices; the number of devices found."""
    click.echo(f"{kind.label} (--camera {kind.name})")
    missing = kind.missing()
    if missing:
        click.echo(f'  not installed ({", ".join(missing)}): pip install "lsci[{kind.extra}]"')
        return 0
    try:
        groups = kind.discover(options)
    except LsciError as error:
        raise click.ClickException(str(error)) from None
    if not groups:
        click.echo(kind.setup_help, err=True)
        return 0
    found = 0
    for group in groups:
        click.echo(group.source)
        if group.error is not None:
            click.echo(f"  cannot use it: {group.error}")
        elif not group.devices:
            click.echo("  no cameras found (check cables, power and network settings)")
        else:
            click.echo("\n".join(_table(group.devices)))
            found += len(group.devices)
    return found


@click.command("cameras")
@click.option(
    "--camera",
    "kinds",
    multiple=True,
    type=click.Choice(list(CAMERA_KINDS)),
    help="Only this camera kind; repeat for more. Default: every kind.",
)
@click.option(
    "--cti",
    "producers",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="A GenTL producer (.cti) or a folder of them; repeat for more. Only the kinds that use "
    "one are listed. Default: the folders in GENICAM_GENTL64_PATH.",
)
def cameras(kinds: tuple[str, ...], producers: tuple[Path, ...]) -> None:
    """List the camera kinds and their devices: vendor, model, serial, id and interface.

    Open a listed device with 'lsci acquire --camera KIND --device INDEX' (or its serial or
    id). Exits with status 1 when no device is found.
    """
    names = list(kinds) or list(CAMERA_KINDS)
    if producers:
        names = [name for name in names if name in kinds_taking("producers")]
    options = OpenOptions(producers=producers)
    found = sum(_report(CAMERA_KINDS[name], options) for name in names)
    if not found:
        raise click.exceptions.Exit(1)
