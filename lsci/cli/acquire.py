"""``lsci acquire``: record raw speckle from a camera, with live statistics and event marks.

Behaviour worth knowing:

- Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal or the SSH session was closed) stop the
  acquisition like the end of ``--duration``: the camera stops, the frames it still delivers
  are recorded, the file is closed complete, and the command exits with status 0. A second
  signal while stopping only repeats that it is closing. A signal ``lsci acquire`` was started
  with ignored stays ignored (``nohup`` ignores SIGHUP).
- A mark that cannot be stored is a warning, never the end of the recording; labels of
  ``--mark-at`` are checked (1 to 128 UTF-8 bytes) before anything is recorded.
- When writing fails (a full disk), the summary counts only the frames in the file; those
  that were not stored count as dropped by the pipeline, and the file records the loss as an
  event.
- A setting the camera does not have (for example ``--exposure-ms`` on a camera without
  ``ExposureTime``) is an error before anything is recorded, not a warning: speckle contrast
  depends on the exposure, and a recording at an unknown exposure cannot be analysed as asked.
  Leave the option out to record at the camera's own setting.
- With ``--event-key``, every key pressed on the terminal marks an event ``key 1``, ``key
  2``, ...; when standard input is not a terminal (a pipe), every line read marks an event
  labelled with the line's text.
- The status line on standard error shows the achieved frame rate, frames recorded, frames
  dropped by the camera (gaps in its ids) and by the pipeline (the disk fell behind), the ring
  buffer's fill, the disk write rate and the median of the latest live map (K, or 1/K²).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click
import numpy as np

from lsci.acquisition import (
    AcquisitionPipeline,
    LiveSettings,
    PipelineStats,
    PipelineSummary,
    recording_metadata,
)
from lsci.analysis.scale import scale_from_metadata
from lsci.cli.stop_signals import (
    CLOSING_THE_RECORDING,
    StopRequests,
    already_stopping,
    stop_requests,
)
from lsci.core.models import MODELS
from lsci.drivers.base import Camera, Capability, FrameInfo
from lsci.drivers.genicam import ENV_VAR, ProducerNotFoundError
from lsci.drivers.registry import CAMERA_KINDS, OpenOptions, camera_kind, kinds_taking
from lsci.errors import LsciError
from lsci.recording import RecordingWriter
from lsci.recording.events import check_label
from lsci.recording.layout import EVENT_LABEL_BYTES
from lsci.viz.display import display_limits

if TYPE_CHECKING:
    from lsci.analysis.live import LiveAnalysis, LiveUpdate

__all__ = ["acquire"]

# Status updates per second on a terminal; elsewhere (logs, pipes) one line per second.
_STATUS_PERIOD_S = 0.25
_LOG_PERIOD_S = 1.0
_LIVE_RATE_HZ = 4.0
#: Models a live map can show without the exposure time.
LIVE_MODELS = [name for name, model in MODELS.items() if not model.needs_exposure]


def _parse_mark(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[tuple[float, str]]:
    marks = []
    for value in values:
        seconds, sep, label = value.partition(":")
        try:
            when = float(seconds)
        except ValueError:
            when = math.nan
        if not sep or not label.strip() or not math.isfinite(when) or when < 0:
            raise click.BadParameter(
                f"{_shorten(value)!r} must be SECONDS:LABEL with SECONDS >= 0, e.g. "
                "'20:needling start'",
                ctx,
                param,
            )
        try:
            check_label(label)
        except ValueError:
            size = len(label.strip().encode("utf-8"))
            raise click.BadParameter(
                f"the label {_shorten(label.strip())!r} is {size} UTF-8 bytes"
                f"{' with a NUL' if chr(0) in label else ''}: allowed are 1 to "
                f"{EVENT_LABEL_BYTES} bytes of text without NUL",
                ctx,
                param,
            ) from None
        marks.append((when, label.strip()))
    return sorted(marks)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_shape(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    # The simulator (and its compiled kernels) loads only when a shape is checked.
    from lsci.drivers.simulated import MAX_SENSOR_PX, check_sensor_shape

    height, sep, width = value.lower().partition("x")
    try:
        if not (sep and height.isdigit() and width.isdigit()):
            raise ValueError
        return check_sensor_shape((int(height), int(width)))
    except ValueError:
        raise click.BadParameter(
            f"{_shorten(value)!r} must be HEIGHTxWIDTH, each from 16 to {MAX_SENSOR_PX} "
            "pixels, e.g. 512x512",
            ctx,
            param,
        ) from None


def _parse_rectangle(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[tuple[float, float]] | None:
    """``R0,C0,R1,C1`` (pixels) as the corners of a rectangle polygon."""
    if value is None:
        return None
    try:
        r0, c0, r1, c1 = (float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not R0,C0,R1,C1: four numbers, the rectangle's corners in pixels"
        ) from None
    if not all(math.isfinite(v) and v >= 0 for v in (r0, c0, r1, c1)) or r1 <= r0 or c1 <= c0:
        raise click.BadParameter(
            f"{value!r} is not a rectangle: need 0 <= R0 < R1 and 0 <= C0 < C1 (pixels)"
        )
    return [(r0, c0), (r0, c1), (r1, c1), (r1, c0)]


def _positive_finite(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value} is invalid: allowed finite numbers > 0", ctx, param)
    return value


def _open_camera(
    kind: str, cti: Path | None, device: str, sim_mode: str, sim_shape: tuple[int, int]
) -> Camera:
    options = OpenOptions(
        producers=() if cti is None else (cti,),
        device=device,
        shape=sim_shape,
        mode="physical" if sim_mode == "physical" else "replay",
    )
    return camera_kind(kind).open(options)


def _apply(camera: Camera, name: str, value: Any, option: str) -> None:
    """Set one setting, turning a refusal into a message that names the option."""
    capability: Capability = camera.capabilities()[name]
    if not (capability.available and capability.writable):
        why = f": {capability.reason}" if capability.reason else ""
        state = "not available" if not capability.available else "read-only"
        raise click.UsageError(
            f"{option} cannot be applied: {name} is {state} on {camera.name}{why}. "
            f"Leave {option} out to record at the camera's own setting."
        )
    try:
        camera.set(name, value)
    except (ValueError, TypeError) as error:
        raise click.UsageError(f"{option}: {error}") from None


class _EventInput:
    """Marks events from key presses on a terminal, or from lines on a pipe, in a thread."""

    def __init__(self, pipeline: AcquisitionPipeline, stream: TextIO) -> None:
        self._pipeline = pipeline
        self._stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lsci-event-keys", daemon=True)
        self._presses = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        fd = self._stream.fileno()
        restore: Any = None
        if self._stream.isatty():
            import termios
            import tty

            restore = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()
            if restore is not None:
                import termios

                termios.tcsetattr(fd, termios.TCSADRAIN, restore)

    def _run(self) -> None:
        fd = self._stream.fileno()
        terminal = self._stream.isatty()
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(fd, 1 if terminal else 4096)
            if not data:
                return  # end of the pipe
            if terminal:
                self._mark("")
                continue
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._mark(line.decode("utf-8", errors="replace").strip())

    def _mark(self, label: str) -> None:
        self._presses += 1
        _mark(self._pipeline, label or f"key {self._presses}")


class _Status:
    """The status line, from the pipeline's signals."""

    def __init__(self, pipeline: AcquisitionPipeline, symbol: str) -> None:
        self._terminal = sys.stderr.isatty()
        self._period_s = _STATUS_PERIOD_S if self._terminal else _LOG_PERIOD_S
        self._last_s = 0.0
        self._live: float | None = None
        self._area: str = ""
        self._symbol = symbol
        pipeline.events.live_map_ready.connect(self._on_live)
        pipeline.events.event_marked.connect(
            lambda event: self._line(
                f"event {event.label!r} at {event.time_s:.2f} s (frame {event.frame_index})"
            )
        )
        pipeline.events.frames_dropped.connect(
            lambda drop: self._line(f"warning: {drop.label}: the disk is not keeping up")
        )
        pipeline.events.problem.connect(lambda text: self._line(f"warning: {text}"))

    def _on_live(self, image: np.ndarray, info: FrameInfo) -> None:
        finite = image[np.isfinite(image)]
        self._live = float(np.median(finite)) if finite.size else None

    def on_analysis(self, update: LiveUpdate) -> None:
        """The live area of hypoperfusion, from a :class:`LiveAnalysis` of the live maps."""
        found = update.delineation
        if found is None:
            self._area = ""
        elif found.area_mm2 is not None:
            self._area = f"  hypoperfused {found.area_mm2:.1f} mm²"
        else:
            self._area = f"  hypoperfused {found.area_px} px"

    def _line(self, text: str) -> None:
        click.echo(("\r\x1b[K" if self._terminal else "") + text, err=True)

    def show(self, stats: PipelineStats, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_s < self._period_s:
            return
        self._last_s = now
        live = "" if self._live is None else f"  {self._symbol} {self._live:.3g}"
        text = (
            f"{stats.elapsed_s:7.1f} s  {stats.frame_rate_hz:6.1f} fps  "
            f"recorded {stats.frames_recorded}  dropped camera {stats.frames_dropped_camera} "
            f"pipeline {stats.frames_dropped_pipeline}  queue {stats.queue_depth}/"
            f"{stats.ring_capacity}  disk {stats.disk_write_bytes_per_s / 1e6:.1f} MB/s{live}"
            f"{self._area}"
        )
        if self._terminal:
            click.echo("\r\x1b[K" + text, err=True, nl=False)
        else:
            click.echo(text, err=True)

    def end(self) -> None:
        if self._terminal:
            click.echo("", err=True)


def _summary_text(summary: PipelineSummary, path: Path, stopped_by: str) -> str:
    s = summary.stats
    lines = [
        f"stopped by {stopped_by}: recorded {s.frames_recorded} frames in "
        f"{summary.duration_s:.1f} s ({summary.mean_frame_rate_hz:.1f} fps) to {path}",
        f"dropped: {s.frames_dropped_camera} by the camera, {s.frames_dropped_pipeline} by the "
        "pipeline",
    ]
    lines += [
        f"event {e.label!r} at {e.time_s:.2f} s, frame {e.frame_index}" for e in summary.events
    ]
    lines += [f"warning: {problem}" for problem in summary.problems]
    return "\n".join(lines)


@click.command("acquire")
@click.option(
    "--camera",
    "camera_kind",
    type=click.Choice(list(CAMERA_KINDS)),
    required=True,
    help=" ".join(f"{kind.name}: {kind.summary}" for kind in CAMERA_KINDS.values()),
)
@click.option(
    "--cti",
    type=click.Path(exists=True, path_type=Path),
    help="GenTL producer (.cti) or a folder of them; default: GENICAM_GENTL64_PATH.",
)
@click.option(
    "--device",
    default="0",
    show_default=True,
    help="GenICam camera: serial number, id, or index as listed by 'lsci cameras' (a number "
    "is an index unless a camera has it as serial number or id).",
)
@click.option(
    "--exposure-ms", type=float, callback=_positive_finite, help="Exposure time in milliseconds."
)
@click.option(
    "--fps", type=float, callback=_positive_finite, help="Frame rate in frames per second."
)
@click.option("--pixel-format", help="Pixel format, e.g. Mono8 or Mono12.")
@click.option(
    "--duration",
    type=float,
    callback=_positive_finite,
    help="Seconds to record; default: until Ctrl-C, SIGTERM or SIGHUP.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The recording to write (.h5).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option(
    "--mark-at",
    "marks",
    multiple=True,
    callback=_parse_mark,
    metavar="SECONDS:LABEL",
    help="Mark an event SECONDS after the start, e.g. '20:needling start'; repeatable.",
)
@click.option(
    "--event-key",
    is_flag=True,
    help="Mark an event at every key press (or every line when stdin is a pipe).",
)
@click.option(
    "--live",
    type=click.Choice(LIVE_MODELS),
    default="contrast",
    show_default=True,
    help="Live map shown in the status line: K, or a perfusion model of it.",
)
@click.option(
    "--pixel-size-um",
    type=float,
    callback=_positive_finite,
    help="Sensor pixel size in micrometres, stored with the recording (areas in mm²).",
)
@click.option(
    "--magnification",
    type=float,
    callback=_positive_finite,
    help="Optical magnification (sensor over skin); a pixel on the skin is pixel size over it.",
)
@click.option(
    "--reference",
    callback=_parse_rectangle,
    metavar="R0,C0,R1,C1",
    help="Healthy skin, a rectangle in pixels: the status line then shows the hypoperfused "
    "area of the live map (below half of its median), in mm² when the scale is known.",
)
@click.option("--notes", default="", help="Free text stored with the recording.")
@click.option(
    "--sim-mode",
    type=click.Choice(["replay", "physical"]),
    default="replay",
    show_default=True,
    help="Simulated camera: loop a few simulated frames, or simulate every frame (slow).",
)
@click.option(
    "--sim-shape",
    default="512x512",
    show_default=True,
    callback=_parse_shape,
    help="Simulated camera: sensor HEIGHTxWIDTH.",
)
def acquire(
    camera_kind: str,
    cti: Path | None,
    device: str,
    exposure_ms: float | None,
    fps: float | None,
    pixel_format: str | None,
    duration: float | None,
    out: Path,
    overwrite: bool,
    marks: list[tuple[float, str]],
    event_key: bool,
    live: str,
    pixel_size_um: float | None,
    magnification: float | None,
    reference: list[tuple[float, float]] | None,
    notes: str,
    sim_mode: str,
    sim_shape: tuple[int, int],
) -> None:
    """Record raw speckle frames to an HDF5 recording while showing live statistics.

    The simulated camera (--camera sim) looks at a skin patch whose ischemic centre recovers
    its perfusion 20 s after the start.
    """
    takes_producer = kinds_taking("producers")
    if cti is not None and camera_kind not in takes_producer:
        raise click.UsageError(f"--cti applies to --camera {' or '.join(takes_producer)} only")
    if out.exists() and not overwrite:
        raise click.UsageError(f"{out} exists: choose another --out or pass --overwrite")
    if reference is not None and not MODELS[live].derived:
        raise click.UsageError(
            "--reference delineates perfusion: choose a perfusion model with --live, "
            f"e.g. --live {LIVE_MODELS[-1]}"
        )
    try:
        camera = _open_camera(camera_kind, cti, device, sim_mode, sim_shape)
    except ProducerNotFoundError:
        raise click.ClickException(
            f"no GenTL producer found: install your camera vendor's GenTL producer (a .cti "
            f"file) and list its folder in {ENV_VAR}, or name it with --cti PATH"
        ) from None
    except (LsciError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    try:
        # From here on a stop signal is recorded, not acted on at once: the recording created
        # below is then closed complete, however early the signal came.
        with stop_requests(already_stopping(CLOSING_THE_RECORDING)) as stops:
            if pixel_format is not None:
                _apply(camera, "pixel_format", pixel_format, "--pixel-format")
            if exposure_ms is not None:
                _apply(camera, "exposure_s", exposure_ms / 1e3, "--exposure-ms")
            if fps is not None:
                _apply(camera, "frame_rate_hz", fps, "--fps")
            producer = None if cti is None else str(cti)
            metadata = recording_metadata(camera, producer=producer, notes=notes)
            if pixel_size_um is not None:
                metadata = dataclasses.replace(metadata, pixel_size_um=pixel_size_um)
            if magnification is not None:
                metadata = dataclasses.replace(metadata, magnification=magnification)
            try:
                writer = RecordingWriter(
                    out,
                    metadata,
                    frame_shape=camera.frame_shape,
                    dtype=camera.frame_dtype,
                    overwrite=overwrite,
                )
            except LsciError as error:
                raise click.ClickException(str(error)) from None
            try:
                settings = LiveSettings(model=live, max_rate_hz=_LIVE_RATE_HZ)
                pipeline = AcquisitionPipeline(camera, writer, live=settings)
                analysis = None
                if reference is not None:
                    # Delineation needs scikit-image, which only --reference uses.
                    from lsci.analysis.live import LiveAnalysis

                    analysis = LiveAnalysis(
                        settings,
                        fit_limits=functools.partial(display_limits, "perfusion"),
                        pixel_scale=scale_from_metadata(metadata),
                        reference=reference,
                    )
            except BaseException:
                writer.close()  # nothing recorded: the file is closed empty, not left open
                raise
            _record(pipeline, out, duration, marks, event_key, stops, analysis)
    finally:
        camera.close()


def _record(
    pipeline: AcquisitionPipeline,
    out: Path,
    duration: float | None,
    marks: list[tuple[float, str]],
    event_key: bool,
    stops: StopRequests,
    analysis: LiveAnalysis | None = None,
) -> None:
    live = pipeline.live_settings
    status = _Status(pipeline, live.perfusion_model.symbol if live is not None else "K")
    if analysis is not None:
        analysis.events.updated.connect(status.on_analysis)
        analysis.attach(pipeline)
    keys = _EventInput(pipeline, sys.stdin) if event_key else None
    try:
        pipeline.start()
    except LsciError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"recording to {out}"
        + ("" if duration is None else f" for {duration:g} s")
        + ("; Ctrl-C stops" if signal.SIGINT in stops.signals else ""),
        err=True,
    )
    started = time.monotonic()
    schedule = list(marks)
    stopped_by = "the end of --duration"
    try:
        with keys.running() if keys is not None else contextlib.nullcontext():
            while True:
                if stops.name is not None:
                    stopped_by = stops.name
                    break
                if pipeline.wait(0.05):
                    stopped_by = "an error"
                    break
                elapsed = time.monotonic() - started
                if duration is not None and elapsed >= duration:
                    break
                while schedule and schedule[0][0] <= elapsed:
                    _mark(pipeline, schedule.pop(0)[1])
                status.show(pipeline.stats())
    finally:
        # Whatever happened here, the recording is closed complete.
        summary = pipeline.stop(raise_on_error=False)
        if analysis is not None:
            analysis.close(timeout_s=5.0)
    status.show(summary.stats, force=True)
    status.end()
    for when, label in schedule:
        click.echo(
            f"warning: {label!r} at {when:g} s was not marked: the recording ended first",
            err=True,
        )
    click.echo(_summary_text(summary, out, stopped_by), err=True)
    if summary.error is not None:
        raise click.ClickException(
            f"acquisition stopped early: {summary.error} (the first "
            f"{summary.stats.frames_recorded} frames are in {out})"
        )


def _mark(pipeline: AcquisitionPipeline, label: str) -> None:
    """Mark an event; one that cannot be marked is a warning, never the end of recording."""
    try:
        pipeline.mark_event(label)
    except (LsciError, ValueError, TypeError) as error:
        click.echo(f"\nwarning: event {label!r} not marked: {error}", err=True)
