"""``lsci info FILE``: a readable summary of a recording, also while it grows or after a crash."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import click

from lsci.errors import LsciError
from lsci.recording import DerivedProduct, Recording, open_recording
from lsci.recording.errors import RecordingWarning
from lsci.recording.products import product_folder

_LABEL_WIDTH = 16


def _line(label: str, value: object) -> str:
    return f"{label + ':':<{_LABEL_WIDTH}} {value}"


def _settings(rec: Recording) -> list[str]:
    meta = rec.metadata
    lines = []
    if meta.exposure_s is not None:
        lines.append(_line("Exposure", f"{meta.exposure_s * 1e3:g} ms"))
    if meta.gain is not None:
        lines.append(_line("Gain", f"{meta.gain:g}"))
    if meta.pixel_format or meta.bit_depth:
        bits = f", {meta.bit_depth} bit" if meta.bit_depth else ""
        lines.append(_line("Pixel format", f"{meta.pixel_format or 'unknown'}{bits}"))
    if meta.roi is not None:
        x, y, width, height = meta.roi
        lines.append(_line("ROI", f"{width}×{height} at ({x}, {y})"))
    camera = " ".join(v for v in (meta.camera_vendor, meta.camera_model) if v)
    if camera or meta.camera_serial:
        serial = f" (serial {meta.camera_serial})" if meta.camera_serial else ""
        lines.append(_line("Camera", f"{camera or 'unknown'}{serial}"))
    if meta.producer:
        lines.append(_line("Producer", meta.producer))
    if meta.laser_wavelength_nm is not None:
        lines.append(_line("Laser", f"{meta.laser_wavelength_nm:g} nm"))
    optics = []
    if meta.pixel_size_um is not None:
        optics.append(f"pixel {meta.pixel_size_um:g} µm")
    if meta.magnification is not None:
        optics.append(f"magnification {meta.magnification:g}×")
    if optics:
        lines.append(_line("Optics", ", ".join(optics)))
    return lines


def summary(rec: Recording) -> str:
    """The text ``lsci info`` prints for an open recording."""
    meta = rec.metadata
    height, width = rec.frame_shape
    storage = [rec.compression or "uncompressed", "checksums" if rec.checksum else "no checksums"]
    state = (
        "closed cleanly"
        if rec.closed_cleanly
        else "not closed: still being written, or the writer stopped (crash)"
    )
    lines = [
        _line("File", rec.path),
        _line(
            "Format",
            f"lsci recording v{rec.format_version}, written by lsci "
            f"{rec.lsci_version or 'unknown'}",
        ),
        _line("State", state),
        _line("Frames", f"{len(rec)} × {height}×{width} {rec.dtype} ({', '.join(storage)})"),
        _line("Start", meta.start_time_utc or "unknown"),
        _line("Duration", _duration(rec)),
    ]
    achieved = rec.achieved_fps
    if achieved is not None:
        rate = f"{achieved:.2f} fps achieved"
    elif len(rec) < 2:
        rate = "n/a (< 2 frames)"
    else:
        rate = "n/a (host timestamps do not increase)"
    if meta.frame_rate_hz is not None:
        rate += f" ({meta.frame_rate_hz:g} requested)"
    lines.append(_line("Frame rate", rate))
    lines.append(_line("Dropped frames", f"{rec.dropped_frames} (from frame-id gaps)"))
    lines.extend(_settings(rec))
    if meta.notes:
        lines.append(_line("Notes", meta.notes.replace("\n", " / ")))
    events = rec.events
    lines.append(_line("Events", len(events)))
    for event in events:
        lines.append(f"  {event.time_s:10.3f} s  frame {event.frame_index:<7d} {event.label}")
    calibrations = rec.calibrations
    lines.append(_line("Calibrations", len(calibrations)))
    for name, calibration in calibrations.items():
        arrays = ", ".join(
            f"{key} {'×'.join(map(str, array.shape)) or 'scalar'} {array.dtype}"
            for key, array in calibration.arrays.items()
        )
        lines.append(f"  {name}: {arrays}")
    with warnings.catch_warnings():
        # Unreadable products are listed below with the reason, not warned about as well.
        warnings.simplefilter("ignore", RecordingWarning)
        derived = rec.derived
    unreadable = rec.unreadable_derived
    lines += _product_sets(rec, derived, unreadable)
    legacy = {name: p for name, p in derived.items() if "/" not in name}
    set_names = {product_set.name for product_set in rec.product_sets}
    legacy_bad = {
        name: why for name, why in unreadable.items() if "/" not in name and name not in set_names
    }
    if legacy or legacy_bad:
        count = len(legacy) + len(legacy_bad)
        lines.append(_line("Derived", f"{count} inside the recording (older lsci versions)"))
    for name, product in legacy.items():
        info = product.info
        shape = "×".join(map(str, info.shape))
        lines.append(
            f"  {name}: {info.algorithm} {json.dumps(info.parameters, sort_keys=True)} "
            f"from {info.source}, {shape} {info.dtype}" + ("" if info.complete else " (incomplete)")
        )
    for name, problem in legacy_bad.items():
        lines.append(f"  {name}: unreadable ({problem})")
    return "\n".join(lines)


def _product_sets(
    rec: Recording, derived: Mapping[str, DerivedProduct], unreadable: Mapping[str, str]
) -> list[str]:
    """The product sets beside the recording: settings, size and products of each."""
    sets = rec.product_sets
    lines = [_line("Product sets", f"{len(sets)} in {product_folder(rec.path)}")]
    for product_set in sets:
        lines.append(
            f"  {product_set.name}: {product_set.maps} maps, {_size(product_set.size_bytes)}"
            + (
                f", unreadable ({unreadable[product_set.name]})"
                if product_set.name in unreadable
                else ""
            )
        )
        settings = json.dumps(product_set.parameters, sort_keys=True)
        lines.append(f"    {product_set.algorithm} {settings}")
        for name in product_set.products:
            key = f"{product_set.name}/{name}"
            if key in unreadable:
                lines.append(f"    {name}: unreadable ({unreadable[key]})")
                continue
            product = derived[key]
            unit = product.attrs.get("unit")
            shape = "×".join(map(str, product.shape))
            lines.append(f"    {name}: {shape} {product.dtype}" + (f" [{unit}]" if unit else ""))
    return lines


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes} B"


def _duration(rec: Recording) -> str:
    duration = rec.duration_s
    if duration >= 0:
        return f"{duration:.3f} s"
    return (
        f"unknown: the host clock ran backwards (last frame stamped {-duration:.3f} s before "
        "the first)"
    )


@click.command("info")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def info(file: Path) -> None:
    """Summarise the recording FILE: frames, timing, drops, settings, events, products.

    Works on a file that is still being written and on one whose writer crashed.
    """
    try:
        with open_recording(file) as rec:
            click.echo(summary(rec))
    except LsciError as exc:
        raise click.ClickException(str(exc)) from None
