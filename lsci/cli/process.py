"""``lsci process``: contrast and perfusion for whole recordings, on this machine or a cluster."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from lsci.core.contrast import EDGE_MODES
from lsci.core.models import MODELS, default_model, get_model
from lsci.core.modes import MODES
from lsci.processing import ProcessingResult, ProcessingSettings, process_recording
from lsci.recording import open_recording


def recording_paths(paths: tuple[Path, ...]) -> list[Path]:
    """The files named, with each folder replaced by the ``*.h5`` recordings in it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(path.glob("*.h5"))
            if not inside:
                raise click.BadParameter(f"{path} holds no .h5 recordings", param_hint="FILES")
            found += inside
        else:
            found.append(path)
    return found


def settings_for(path: Path, options: dict[str, Any]) -> ProcessingSettings:
    """Settings for one recording: the exposure time comes from its metadata unless given, and
    without ``--model`` the model is :func:`lsci.core.models.default_model` for it."""
    exposure_s = options["exposure_ms"] / 1e3 if options["exposure_ms"] is not None else None
    if exposure_s is None:
        with open_recording(path) as recording:
            exposure_s = recording.metadata.exposure_s
    model = options["model"] or default_model(exposure_s)
    if get_model(model).needs_exposure and exposure_s is None:
        raise click.UsageError(
            f"{path} does not record its exposure time, which --model {model} needs: "
            "give it with --exposure-ms"
        )
    return ProcessingSettings(
        mode=options["mode"],
        window=options["window"],
        frames_window=options["frames_window"],
        step=options["step"],
        average=options["average"],
        ddof=options["ddof"],
        edges=options["edges"],
        model=model,
        exposure_s=exposure_s,
        beta=options["beta"],
    )


def report(result: ProcessingResult) -> str:
    if result.reused:
        return f"{result.path}: already processed with these settings, kept"
    return (
        f"{result.path}: {result.maps} maps from {result.frames_read} frames in "
        f"{result.seconds:.2f} s ({result.frames_per_s:,.0f} frames/s, "
        f"{result.megabytes_per_s:,.0f} MB/s of raw frames) -> /derived/"
        + ", /derived/".join(result.products)
    )


@click.command("process")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--mode", type=click.Choice(list(MODES)), default="spatial", show_default=True)
@click.option("--window", type=int, default=7, show_default=True, help="Spatial window (pixels).")
@click.option(
    "--frames-window", type=int, default=25, show_default=True, help="Frames per temporal window."
)
@click.option("--step", type=int, help="Frames between temporal windows [default: frames-window].")
@click.option(
    "--average", type=int, default=1, show_default=True, help="Spatial K maps averaged per map."
)
@click.option("--ddof", type=click.IntRange(0, 1), default=0, show_default=True)
@click.option("--edges", type=click.Choice(EDGE_MODES), default="reflect", show_default=True)
@click.option(
    "--model",
    type=click.Choice(list(MODELS)),
    help="Perfusion model [default: inverse_tau when the exposure time is known, else inverse_k2].",
)
@click.option(
    "--beta",
    type=float,
    help="Coherence factor β for models that use it [default: the recording's β calibration, "
    "else 1].",
)
@click.option(
    "--uncalibrated",
    is_flag=True,
    help="Ignore the recording's stored calibrations (dark frame, camera noise, β).",
)
@click.option(
    "--exposure-ms",
    type=float,
    help="Exposure time for models that need it [default: from the file].",
)
@click.option(
    "--memory-mb",
    type=click.IntRange(16),
    default=512,
    show_default=True,
    help="Memory for one chunk of frames and maps.",
)
@click.option("--overwrite", is_flag=True, help="Replace products made with other settings.")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run on a Dask distributed cluster (e.g. tcp://host:8786); the files must be "
    "readable by the workers at the same paths.",
)
def process(files: tuple[Path, ...], **options: Any) -> None:
    """Compute contrast and perfusion maps for recordings (FILES: .h5 files or folders).

    The maps are stored in each recording's /derived group with the settings as provenance;
    running again with the same settings keeps what is there.
    """
    paths = recording_paths(files)
    scheduler = options.pop("scheduler")
    overwrite = options.pop("overwrite")
    calibrated = not options.pop("uncalibrated")
    memory_bytes = options.pop("memory_mb") << 20
    for path in paths:
        settings = settings_for(path, options)
        with progress_bar(path.name) as advance:
            if scheduler is not None:
                from lsci.processing.distributed import process_recording_distributed

                result = process_recording_distributed(
                    path,
                    settings,
                    scheduler=scheduler,
                    memory_bytes=memory_bytes,
                    overwrite=overwrite,
                    calibrated=calibrated,
                    progress=advance,
                )
            else:
                result = process_recording(
                    path,
                    settings,
                    memory_bytes=memory_bytes,
                    overwrite=overwrite,
                    calibrated=calibrated,
                    progress=advance,
                )
        click.echo(report(result))


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, advanced by the ``progress(done, total)`` callback it yields."""
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:

        def advance(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        yield advance
