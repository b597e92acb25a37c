"""What the Acquire widget drives (Qt-free): a camera, its settings, and one pipeline run.

The camera work is lsci's: the camera kinds of :mod:`lsci.drivers.registry`, the
:class:`lsci.acquisition.AcquisitionPipeline` (camera thread, ring buffer, recorder, live maps)
and its psygnal signals. This module opens the camera, tells which settings it supports (and
why not), and starts and stops a run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsci.acquisition import AcquisitionPipeline, LiveSettings, PipelineSummary, recording_metadata
from lsci.core.models import default_model
from lsci.drivers.base import Camera, Roi, UnsupportedFeatureError
from lsci.drivers.registry import CAMERA_KINDS, OpenOptions, camera_kind
from lsci.recording import RecordingWriter

__all__ = [
    "ADJUSTABLE",
    "AcquisitionRun",
    "SettingState",
    "camera_choices",
    "devices",
    "live_settings",
    "open_camera",
    "session_file",
    "setting_states",
    "takes",
]

#: Settings the widget offers, in display order.
ADJUSTABLE = ("exposure_s", "gain", "frame_rate_hz", "roi")
#: Sensor of the simulated camera: small enough to simulate in real time on a laptop.
SIMULATED_SHAPE = (256, 256)


@dataclass(frozen=True)
class SettingState:
    """How the widget shows one camera setting.

    Attributes
    ----------
    name : str
        Setting name (:data:`lsci.drivers.base.SETTING_NAMES`).
    enabled : bool
        Available and writable on this camera now.
    value : Any
        Current value (``None`` when unavailable).
    minimum, maximum : float or None
        Allowed range of a numeric setting.
    unit : str
        Unit the camera reports.
    reason : str
        Why the setting cannot be changed (empty when it can).
    """

    name: str
    enabled: bool
    value: Any
    minimum: float | None
    maximum: float | None
    unit: str
    reason: str


def camera_choices() -> list[tuple[str, str]]:
    """``(label, kind name)`` of every registered camera kind, for a combo box."""
    return [(kind.label, kind.name) for kind in CAMERA_KINDS.values()]


def takes(kind: str, option: str) -> bool:
    """Whether camera kind ``kind`` reads the :class:`lsci.drivers.registry.OpenOptions` field
    ``option`` (the widget shows only the inputs a kind uses)."""
    return option in camera_kind(kind).options


def devices(kind: str, producer: str | Path | None) -> list[tuple[str, int]]:
    """The devices a camera kind offers, as ``(description, index)`` choices.

    Parameters
    ----------
    kind : str
        A registered camera kind name.
    producer : str or pathlib.Path or None
        A ``.cti`` file or a folder of them, for kinds that use one; ``None`` searches
        ``GENICAM_GENTL64_PATH``.

    Raises
    ------
    lsci.drivers.base.CameraError
        When the kind's optional packages are not installed.
    ValueError
        When the producer path does not exist.
    """
    options = OpenOptions(producers=() if producer is None else (Path(producer),))
    return [
        (f"{d.index}: {d.vendor} {d.model} (serial {d.serial_number})", d.index)
        for d in camera_kind(kind).list_devices(options)
    ]


def open_camera(kind: str, *, producer: str | Path | None = None, device: int = 0) -> Camera:
    """Open a camera of a registered kind.

    Parameters
    ----------
    kind : str
        A registered camera kind name (:data:`lsci.drivers.registry.CAMERA_KINDS`).
    producer : str or pathlib.Path, optional
        GenTL producer for a GenICam device (default: ``GENICAM_GENTL64_PATH``).
    device : int
        Index of the device in :func:`devices`.

    Returns
    -------
    Camera
        Open, not acquiring.

    Raises
    ------
    ValueError
        For an unknown kind.
    lsci.drivers.base.CameraError
        When the device cannot be opened or the kind's packages are not installed.
    """
    options = OpenOptions(
        producers=() if producer is None else (Path(producer),),
        device=device,
        shape=SIMULATED_SHAPE,
    )
    return camera_kind(kind).open(options)


def setting_states(camera: Camera) -> dict[str, SettingState]:
    """What the camera lets the user change, from its capability query."""
    capabilities = camera.capabilities()
    states: dict[str, SettingState] = {}
    for name in ADJUSTABLE:
        capability = capabilities[name]
        value = camera.get(name) if capability.available else None
        limits = capability.range
        reason = ""
        if not capability.available:
            reason = capability.reason or f"{camera.name} has no {name}"
        elif not capability.writable:
            reason = capability.reason or f"{name} is read-only on {camera.name}"
        states[name] = SettingState(
            name=name,
            enabled=capability.available and capability.writable,
            value=value,
            minimum=None if limits is None else limits.minimum,
            maximum=None if limits is None else limits.maximum,
            unit=capability.unit,
            reason=reason,
        )
    return states


def apply_setting(camera: Camera, name: str, value: Any) -> None:
    """Set one setting; ``roi`` accepts any 4-sequence ``(offset_x, offset_y, width, height)``.

    Raises
    ------
    ValueError, TypeError
        When the camera refuses the value (its message names the allowed range).
    lsci.drivers.base.CameraError
        When the setting is unsupported or the camera is in the wrong state.
    """
    if name == "roi":
        value = Roi(*(int(v) for v in value))
    camera.set(name, value)


def session_file(folder: str | Path, *, now: float | None = None) -> Path:
    """A new recording file in ``folder`` named by the local date and time, never an existing one.

    ``lsci-2026-12-01-1432.h5``, then ``lsci-2026-12-01-1432-2.h5`` and so on: the user
    records without typing a name.
    """
    stamp = time.strftime("%Y-%m-%d-%H%M", time.localtime(now))
    folder = Path(folder)
    candidate = folder / f"lsci-{stamp}.h5"
    number = 1
    while candidate.exists():
        number += 1
        candidate = folder / f"lsci-{stamp}-{number}.h5"
    return candidate


def live_settings(
    camera: Camera, *, display_rate_hz: float = 10.0, window: int = 7, beta: float = 1.0
) -> LiveSettings:
    """Live settings for a camera: the offline default model for its exposure time.

    1/τc (1/s) when the camera reports its exposure (:func:`lsci.core.models.default_model`),
    computed with ``beta``; 1/K² (a.u.) otherwise.
    """
    try:
        exposure = camera.get("exposure_s")
    except UnsupportedFeatureError:
        exposure = None
    exposure_s = float(exposure) if isinstance(exposure, int | float) else None
    return LiveSettings(
        window=window,
        model=default_model(exposure_s),
        exposure_s=exposure_s,
        beta=beta,
        max_rate_hz=display_rate_hz,
    )


class AcquisitionRun:
    """One start-to-stop run of the pipeline on an open camera, optionally recorded.

    Parameters
    ----------
    camera : Camera
        Open, configured.
    path : str or pathlib.Path or None
        Recording file to create; ``None`` for live view only.
    display_rate_hz : float
        Most live maps per second (the pipeline skips the others): what the display affords.
    window : int
        Spatial window of the live map, odd >= 3.
    beta : float
        Coherence factor β of the optics for the live 1/τc (1 when not calibrated).
    pixel_size_um, magnification : float, optional
        The optics, written with the recording: the pixel size on the skin is their ratio
        (:func:`lsci.analysis.scale.scale_from_metadata`).

    Attributes
    ----------
    pipeline : AcquisitionPipeline
        Connect to ``pipeline.events`` before :meth:`start`.
    """

    def __init__(
        self,
        camera: Camera,
        path: str | Path | None,
        *,
        display_rate_hz: float = 10.0,
        window: int = 7,
        beta: float = 1.0,
        pixel_size_um: float | None = None,
        magnification: float | None = None,
    ) -> None:
        live = live_settings(camera, display_rate_hz=display_rate_hz, window=window, beta=beta)
        metadata = dataclasses.replace(
            recording_metadata(camera), pixel_size_um=pixel_size_um, magnification=magnification
        )
        self.metadata = metadata
        writer = None
        if path is not None:
            writer = RecordingWriter(
                path,
                metadata,
                frame_shape=camera.frame_shape,
                dtype=camera.frame_dtype,
            )
        try:
            self.pipeline = AcquisitionPipeline(camera, writer, live=live)
        except BaseException:
            if writer is not None:
                writer.close()
            raise
        self.path = None if path is None else Path(path)

    def start(self) -> None:
        """Start acquiring (see :meth:`lsci.acquisition.AcquisitionPipeline.start`)."""
        self.pipeline.start()

    def mark(self, label: str) -> None:
        """Mark an event, e.g. ``"needling start"``."""
        self.pipeline.mark_event(label)

    def stop(self) -> PipelineSummary:
        """Stop, record the last frames, close the file; the threads are joined on return.

        Errors that ended the run early are in the summary's ``error``, not raised.
        """
        return self.pipeline.stop(raise_on_error=False)
