"""What the Acquire widget drives (Qt-free): a camera, its settings, and one pipeline run.

The camera work is lsci's: :class:`lsci.drivers.simulated.SimulatedCamera` or
:class:`lsci.drivers.genicam.GenICamCamera`, the :class:`lsci.acquisition.AcquisitionPipeline`
(camera thread, ring buffer, recorder, live maps) and its psygnal signals. This module opens
the camera, tells which settings it supports (and why not), and starts and stops a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsci.acquisition import AcquisitionPipeline, LiveSettings, PipelineSummary, recording_metadata
from lsci.drivers.base import Camera, Roi
from lsci.recording import RecordingWriter

__all__ = [
    "ADJUSTABLE",
    "GENICAM",
    "SIMULATED",
    "AcquisitionRun",
    "SettingState",
    "genicam_devices",
    "open_camera",
    "setting_states",
]

SIMULATED = "simulated camera"
GENICAM = "GenICam camera"
#: Settings the widget offers, in display order.
ADJUSTABLE = ("exposure_s", "gain", "frame_rate_hz", "roi")
#: Sensor of the simulated camera: small enough to simulate in real time on a laptop.
SIMULATED_SHAPE = (256, 256)
#: Transport buffers of a GenICam stream (a third of a second at 200 frames/s).
GENICAM_BUFFERS = 64


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


def genicam_devices(producer: str | Path | None) -> list[tuple[str, int]]:
    """The devices GenTL producers offer, as ``(description, index)`` choices.

    Parameters
    ----------
    producer : str or pathlib.Path or None
        A ``.cti`` file or a folder of them; ``None`` searches ``GENICAM_GENTL64_PATH``.

    Raises
    ------
    ImportError
        When the camera extra (harvesters, genicam) is not installed.
    ValueError
        When the producer path does not exist.
    """
    from lsci.drivers.genicam import list_devices

    devices = list_devices(None if producer is None else [producer])
    return [
        (f"{d.index}: {d.vendor} {d.model} (serial {d.serial_number})", d.index) for d in devices
    ]


def open_camera(kind: str, *, producer: str | Path | None = None, device: int = 0) -> Camera:
    """Open the simulated camera or a GenICam device.

    Parameters
    ----------
    kind : {SIMULATED, GENICAM}
        Which camera.
    producer : str or pathlib.Path, optional
        GenTL producer for a GenICam device (default: ``GENICAM_GENTL64_PATH``).
    device : int
        Index of the GenICam device in :func:`genicam_devices`.

    Returns
    -------
    Camera
        Open, not acquiring.

    Raises
    ------
    ValueError
        For an unknown kind.
    lsci.drivers.base.CameraError
        When the device cannot be opened.
    """
    if kind == SIMULATED:
        from lsci.drivers.simulated import SimulatedCamera, SpeckleScene

        camera: Camera = SimulatedCamera(SpeckleScene.skin(SIMULATED_SHAPE), mode="replay")
    elif kind == GENICAM:
        from lsci.drivers.genicam import GenICamCamera

        camera = GenICamCamera(device, producer=producer, num_buffers=GENICAM_BUFFERS)
    else:
        raise ValueError(f"camera kind {kind!r} is invalid: allowed {SIMULATED!r}, {GENICAM!r}")
    camera.open()
    return camera


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
        Spatial window of the live flow index, odd >= 3.

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
    ) -> None:
        writer = None
        if path is not None:
            writer = RecordingWriter(
                path,
                recording_metadata(camera),
                frame_shape=camera.frame_shape,
                dtype=camera.frame_dtype,
            )
        live = LiveSettings(window=window, model="inverse_k2", max_rate_hz=display_rate_hz)
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
