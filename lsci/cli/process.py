"""``lsci process``: contrast and perfusion for whole recordings, on this machine or a cluster.

- Everything is checked before anything is written: a bad parameter, a recording that cannot
  be processed with these settings, or an unreachable scheduler give one line naming the
  problem and a non-zero exit.
- Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the run cleanly: the product set being written is
  removed, those already finished are kept, and the recordings, which are only read, stay as
  they were. A signal ``lsci process`` was started with ignored stays ignored (``nohup``
  ignores SIGHUP).
- Given several recordings (or a folder), a recording that cannot be processed (one still
  being recorded, a damaged one) is reported and the others are processed; a summary at the
  end lists what failed and why, and the exit status is 1 if anything did.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from lsci.calibration import CalibrationError
from lsci.cli.stop_signals import (
    Stopped,
    StoppedError,
    StopRequests,
    already_stopping,
    stop_requests,
)
from lsci.core.contrast import EDGE_MODES
from lsci.core.models import MODELS, default_model, get_model
from lsci.core.modes import MODES
from lsci.errors import LsciError
from lsci.processing import ProcessingResult, ProcessingSettings, process_recording
from lsci.processing.distributed import TASK_BYTES, connect, process_recording_distributed
from lsci.processing.recordings import (
    CHUNK_BYTES,
    CONTRAST_PRODUCT,
    PERFUSION_PRODUCT,
    STORAGE_DTYPES,
    RecordingPlan,
    plan_recording,
)
from lsci.processing.settings import DEFAULT_AVERAGE
from lsci.recording import open_recording


def recording_paths(paths: tuple[Path, ...]) -> list[Path]:
    """The files named, with each folder replaced by the ``*.h5`` recordings in it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.glob("*.h5") if not p.name.startswith("."))
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
        raise ValueError(
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


def check_options(options: dict[str, Any]) -> None:
    """Refuse settings that are invalid for any recording, before any file is read."""
    exposure_ms = options["exposure_ms"]
    if exposure_ms is not None and not 0 < exposure_ms < float("inf"):
        raise click.BadParameter(f"{exposure_ms} must be > 0", param_hint="--exposure-ms")
    beta = options["beta"]
    if beta is not None and not 0 < beta <= 1:
        raise click.BadParameter(f"{beta} must be in (0, 1]", param_hint="--beta")
    try:
        # The recording supplies the exposure time later; a placeholder checks the rest.
        probe = dict(options, exposure_ms=exposure_ms if exposure_ms is not None else 1.0)
        probe["model"] = options["model"] or "inverse_k2"
        settings = ProcessingSettings(
            mode=probe["mode"],
            window=probe["window"],
            frames_window=probe["frames_window"],
            step=probe["step"],
            average=probe["average"],
            ddof=probe["ddof"],
            edges=probe["edges"],
            model=probe["model"],
            exposure_s=probe["exposure_ms"] / 1e3,
            beta=probe["beta"],
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    products = options["products"] or ()
    if PERFUSION_PRODUCT in products and not settings.perfusion_model.derived:
        raise click.BadParameter(
            f"--model {settings.model} gives no perfusion map", param_hint="--products"
        )


def parse_products(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    allowed = (CONTRAST_PRODUCT, PERFUSION_PRODUCT)
    wrong = [name for name in names if name not in allowed]
    if wrong or not names:
        raise click.BadParameter(f"{value!r}: give a comma-separated list of {', '.join(allowed)}")
    return tuple(dict.fromkeys(names))


def report(result: ProcessingResult) -> str:
    if result.reused:
        return f"{result.path}: already processed with these settings, kept {result.product_set}"
    return (
        f"{result.path}: {result.maps} maps from {result.frames_read} frames in "
        f"{result.seconds:.2f} s ({result.frames_per_s:,.0f} frames/s, "
        f"{result.megabytes_per_s:,.0f} MB/s of raw frames) -> {result.product_set}"
    )


#: What makes one recording fail without stopping the others.
_FILE_ERRORS = (LsciError, CalibrationError, ValueError, OSError)
#: What a stopped run is doing while a repeated signal arrives.
_REMOVING = "the unfinished product set is being removed"


@click.command("process")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--mode", type=click.Choice(list(MODES)), default="spatial", show_default=True)
@click.option(
    "--window", type=int, default=7, show_default=True, help="Spatial window (odd, pixels)."
)
@click.option(
    "--frames-window", type=int, default=25, show_default=True, help="Frames per temporal window."
)
@click.option("--step", type=int, help="Frames between temporal windows [default: frames-window].")
@click.option(
    "--average",
    type=int,
    default=DEFAULT_AVERAGE,
    show_default=True,
    help="Spatial modes: frames whose K maps are averaged into one map. The default gives one "
    "map per 80 ms at 100 frames/s, common practice in LSCI: 8× less noise than one frame, "
    "still resolving the cardiac pulse. --average 1 keeps one map per frame.",
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
    "--products",
    callback=parse_products,
    help="Maps to store, comma-separated: contrast, perfusion [default: perfusion, or contrast "
    "with --model contrast]. Perfusion alone in float32 at the default --average stores half "
    "the bytes of 8-bit raw frames.",
)
@click.option(
    "--dtype",
    type=click.Choice(STORAGE_DTYPES),
    default="float32",
    show_default=True,
    help="Storage precision. float16 halves the size and keeps K to a relative 5e-4 (2^-11), "
    "but holds values up to 65504 only: 1/τc and 1/K² of fast flow overflow (warned about).",
)
@click.option(
    "--memory-mb",
    type=click.IntRange(16),
    help=f"Memory for one chunk of frames and maps [default: {CHUNK_BYTES >> 20}, or "
    f"{TASK_BYTES >> 20} per task with --scheduler].",
)
@click.option(
    "--overwrite", is_flag=True, help="Recompute and replace results made with the same settings."
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run on a Dask distributed cluster (e.g. tcp://host:8786); the files must be "
    "readable and writable by the workers at the same paths.",
)
def process(files: tuple[Path, ...], **options: Any) -> None:
    """Compute contrast and perfusion maps for recordings (FILES: .h5 files or folders).

    The maps of one run go into a product set beside each recording, in session.lsci/ for
    session.h5, named by the settings; the recording itself is only read. Running again with
    the same settings keeps what is there; other settings make another set. The cost (bytes
    written against the raw frames) is printed before each recording is processed.
    """
    paths = recording_paths(files)
    scheduler = options.pop("scheduler")
    overwrite = options.pop("overwrite")
    calibrated = not options.pop("uncalibrated")
    memory_mb = options.pop("memory_mb")
    default_bytes = CHUNK_BYTES if scheduler is None else TASK_BYTES
    memory_bytes = default_bytes if memory_mb is None else memory_mb << 20
    products = options.pop("products")
    dtype = options.pop("dtype")
    check_options(dict(options, products=products))
    failures: dict[Path, str] = {}
    with stop_requests(already_stopping(_REMOVING)) as stops, cluster(scheduler) as client:
        for path in paths:
            try:
                stops.check()
                settings = settings_for(path, options)
                plan = plan_recording(
                    path,
                    settings,
                    memory_bytes=memory_bytes,
                    calibrated=calibrated,
                    products=products
                    or ((PERFUSION_PRODUCT,) if settings.perfusion_model.derived else None),
                    dtype=dtype,
                )
                click.echo(plan.cost())
                result = run(plan, client, overwrite=overwrite, stops=stops)
            except Stopped as exc:
                raise StoppedError(
                    f"{exc}: {path} not finished (its partial results were removed); "
                    "finished product sets are kept",
                    exc.signum,
                ) from None
            except _FILE_ERRORS as exc:
                message = _message(exc)
                if len(paths) == 1:
                    raise click.ClickException(message) from None
                click.echo(f"Error: {message}", err=True)
                failures[path] = message
                continue
            click.echo(report(result))
        if stops.signum is not None:
            # It came while the last set was being published, too late to stop anything: the
            # work is complete, and the caller, who asked for a stop, is told so.
            raise StoppedError(
                f"{Stopped(stops.signum)} once every recording was done; their product sets "
                "are complete",
                stops.signum,
            )
    if failures:
        lines = [f"{len(paths) - len(failures)} of {len(paths)} recordings processed; failed:"]
        lines += [f"  {message}" for message in failures.values()]
        raise click.ClickException("\n".join(lines))


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, LsciError):
        text = f"{exc.filename}: {exc.strerror}" if exc.strerror else text
    return text


def run(
    plan: RecordingPlan, client: Any, *, overwrite: bool, stops: StopRequests
) -> ProcessingResult:
    """Process one planned recording, here or on the cluster, with a progress bar; a signal
    stops it after the chunk in progress."""
    with progress_bar(plan.path.name, stops.check) as advance, warnings.catch_warnings():
        warnings.simplefilter("always")
        if client is not None:
            return process_recording_distributed(
                plan.path,
                plan.settings,
                scheduler=client,
                overwrite=overwrite,
                progress=advance,
                plan=plan,
            )
        return process_recording(
            plan.path, plan.settings, overwrite=overwrite, progress=advance, plan=plan
        )


@contextlib.contextmanager
def cluster(scheduler: str | None) -> Iterator[Any]:
    """A client of the Dask scheduler (None without one), connected before any work starts."""
    if scheduler is None:
        yield None
        return
    try:
        client, _ = connect(scheduler)
    except (ImportError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--scheduler") from None
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def progress_bar(
    label: str, check: Callable[[], None] = lambda: None
) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, advanced by the ``progress(done, total)`` callback it yields,
    which calls ``check()`` first."""
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:

        def advance(done: int, total: int) -> None:
            check()
            bar.length = total
            bar.update(done - bar.pos)

        yield advance
