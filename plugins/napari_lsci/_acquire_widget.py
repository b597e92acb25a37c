"""Acquire widget: camera settings, start/stop, recording, event marks and live perfusion."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
)
from superqt.utils import ensure_main_thread

from lsci.acquisition import PipelineStats, PipelineSummary
from lsci.drivers.base import Camera, FrameInfo
from lsci.errors import LsciError
from lsci.recording import Event
from napari_lsci._acquisition import (
    AcquisitionRun,
    SettingState,
    apply_setting,
    camera_choices,
    devices,
    open_camera,
    setting_states,
    takes,
)
from napari_lsci._display import PERFUSION_COLORMAP, robust_limits
from napari_lsci._reader import recording_layers
from napari_lsci._ui import chosen_file, notify_error, put_layers

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["LIVE_LAYER", "AcquireWidget"]

LIVE_LAYER = "live flow index [1/K² (a.u.)]"
#: Seconds between re-fits of the live layer's contrast limits to the current map.
_LIMITS_PERIOD_S = 2.0


class AcquireWidget(Container):
    """Acquire from the simulated camera or a GenICam device, with a live flow-index layer.

    The widget only drives lsci: it opens the camera (:meth:`connect_camera`), applies the
    settings the camera supports (:meth:`apply_settings`; unsupported ones are disabled with
    the reason from the camera's capability query), runs an
    :class:`lsci.acquisition.AcquisitionPipeline` (:meth:`start`, :meth:`stop`), marks events
    (:meth:`mark`) and listens to the pipeline's signals, delivered to the GUI thread.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.

    Attributes
    ----------
    camera_kind, producer, device, refresh_button, connect_button : magicgui widgets
        Camera choice: simulated, or a GenICam device of a GenTL producer (``.cti``).
    exposure_ms, gain, frame_rate, roi, apply_button : magicgui widgets
        Settings; ``roi`` is ``"offset_x, offset_y, width, height"``.
    setting_widgets : dict
        Those four widgets by setting name (``exposure_s``, ``gain``, ``frame_rate_hz``,
        ``roi``); a disabled one has the camera's reason as its tooltip.
    record, file : magicgui widgets
        Record to this ``.h5`` file (else live view only).
    display_rate : magicgui widget
        Most live maps shown per second (the pipeline computes no more than that).
    start_button, stop_button : magicgui widgets
        Run control.
    event_label, mark_button, mark_start_button, mark_end_button : magicgui widgets
        Event marks (``"needling start"``, ``"needling end"`` or any label).
    stats, status : magicgui Label
        Frame rate, frames recorded and dropped; last outcome.
    camera : Camera or None
        The open camera.
    run : AcquisitionRun or None
        The current (or last) run.
    summary : PipelineSummary or None
        Summary of the last finished run.
    events : list of Event
        Events stored during the current run.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.camera: Camera | None = None
        self.run: AcquisitionRun | None = None
        self.summary: PipelineSummary | None = None
        self.events: list[Event] = []
        self.live_maps = 0
        self._limits_time = 0.0
        choices = camera_choices()
        self.camera_kind = ComboBox(label="Camera", choices=choices, value=choices[0][1])
        self.producer = FileEdit(label="GenTL producer", mode="r", filter="*.cti", value="")
        self.device = ComboBox(label="Device", choices=self._device_choices)
        self.refresh_button = PushButton(text="Find devices")
        self.connect_button = PushButton(text="Connect")
        self.exposure_ms = FloatSpinBox(label="Exposure (ms)", min=0.001, max=10_000, step=0.5)
        self.gain = FloatSpinBox(label="Gain", min=-100.0, max=100.0, step=1.0)
        self.frame_rate = FloatSpinBox(label="Frame rate (Hz)", min=0.01, max=100_000, step=10)
        self.roi = LineEdit(label="ROI (x, y, w, h)", value="")
        self.apply_button = PushButton(text="Apply settings")
        self.record = CheckBox(text="Record to file", value=True)
        self.file = FileEdit(label="File", mode="w", filter="*.h5", value="")
        self.display_rate = FloatSpinBox(label="Display rate (Hz)", min=0.5, max=60.0, value=10.0)
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop")
        self.event_label = LineEdit(label="Event", value="needling start")
        self.mark_button = PushButton(text="Mark event")
        self.mark_start_button = PushButton(text="Needling start")
        self.mark_end_button = PushButton(text="Needling end")
        self.stats = Label(value="")
        self.status = Label(value="not connected")
        self.setting_widgets = {
            "exposure_s": self.exposure_ms,
            "gain": self.gain,
            "frame_rate_hz": self.frame_rate,
            "roi": self.roi,
        }
        self.extend(
            [
                self.camera_kind,
                self.producer,
                self.device,
                self.refresh_button,
                self.connect_button,
                self.exposure_ms,
                self.gain,
                self.frame_rate,
                self.roi,
                self.apply_button,
                self.record,
                self.file,
                self.display_rate,
                self.start_button,
                self.stop_button,
                self.event_label,
                self.mark_button,
                self.mark_start_button,
                self.mark_end_button,
                self.stats,
                self.status,
            ]
        )
        self.camera_kind.changed.connect(self._kind_changed)
        self.refresh_button.clicked.connect(self.device.reset_choices)
        self.connect_button.clicked.connect(self._connect_clicked)
        self.apply_button.clicked.connect(self._guarded(self.apply_settings))
        self.start_button.clicked.connect(self._guarded(self.start))
        self.stop_button.clicked.connect(self._guarded(self.stop))
        self.mark_button.clicked.connect(self._guarded(self.mark))
        self.mark_start_button.clicked.connect(self._guarded(lambda: self.mark("needling start")))
        self.mark_end_button.clicked.connect(self._guarded(lambda: self.mark("needling end")))
        self._kind_changed()
        self._update_enabled()

    # ------------------------------------------------------------------ camera
    def _device_choices(self, _widget: Any = None) -> list[tuple[str, int]]:
        kind = self.camera_kind.value
        if not takes(kind, "device"):
            return []
        try:
            return devices(kind, chosen_file(self.producer.value))
        except (LsciError, ValueError) as exc:
            self.status.value = f"no devices: {exc}"
            return []

    def _kind_changed(self, _value: Any = None) -> None:
        kind = self.camera_kind.value
        self.producer.visible = takes(kind, "producers")
        for widget in (self.device, self.refresh_button):
            widget.visible = takes(kind, "device")
        self.device.reset_choices()

    def _connect_clicked(self) -> None:
        action = self.disconnect_camera if self.camera is not None else self.connect_camera
        self._guarded(action)()

    def connect_camera(self) -> Camera:
        """Open the chosen camera and show its settings.

        Raises
        ------
        lsci.drivers.base.CameraError, ValueError
            When it cannot be opened (the camera extra missing, no such device...).
        """
        if self.camera is not None:
            self.disconnect_camera()
        device = self.device.value if self.device.value is not None else 0
        self.camera = open_camera(
            self.camera_kind.value,
            producer=chosen_file(self.producer.value),
            device=int(device),
        )
        self.connect_button.text = "Disconnect"
        self.status.value = f"connected to {self.camera.name}"
        self.refresh_settings()
        return self.camera

    def disconnect_camera(self) -> None:
        """Stop any run and close the camera."""
        if self.run is not None and self.summary is None:
            self.stop()
        if self.camera is not None:
            self.camera.close()
        self.camera = None
        self.connect_button.text = "Connect"
        self.status.value = "not connected"
        self._update_enabled()

    def setting_states(self) -> dict[str, SettingState]:
        """The camera's settings as the widget shows them (empty when not connected)."""
        return {} if self.camera is None else setting_states(self.camera)

    def refresh_settings(self) -> None:
        """Show the camera's current settings; disable those it does not support, saying why."""
        for name, state in self.setting_states().items():
            widget = self.setting_widgets[name]
            widget.enabled = state.enabled
            widget.tooltip = state.reason or (f"{state.unit}" if state.unit else None)
            if state.value is None:
                continue
            if name == "roi":
                widget.value = ", ".join(str(int(v)) for v in state.value)
                continue
            scale = 1e3 if name == "exposure_s" else 1.0
            if state.minimum is not None and state.maximum is not None:
                widget.min, widget.max = state.minimum * scale, state.maximum * scale
            widget.value = float(state.value) * scale
        self._update_enabled()

    def apply_settings(self) -> None:
        """Set every enabled setting on the camera from the widget's values.

        Raises
        ------
        ValueError, TypeError, lsci.drivers.base.CameraError
            The camera's own message when it refuses a value.
        """
        camera = self._require_camera()
        states = setting_states(camera)
        values = {
            "exposure_s": self.exposure_ms.value / 1e3,
            "gain": self.gain.value,
            "frame_rate_hz": self.frame_rate.value,
            "roi": _parse_roi(self.roi.value),
        }
        for name, value in values.items():
            if states[name].enabled and value is not None and value != states[name].value:
                apply_setting(camera, name, value)
        self.refresh_settings()

    def _require_camera(self) -> Camera:
        if self.camera is None:
            raise ValueError("connect a camera first")
        return self.camera

    # ------------------------------------------------------------------ run
    def start(self) -> AcquisitionRun:
        """Apply the settings and start acquiring (and recording when asked).

        Raises
        ------
        ValueError
            When no camera is connected, or recording is asked without a file.
        lsci.recording.RecordingError, lsci.drivers.base.CameraError
            When the file cannot be created or the camera cannot start.
        """
        camera = self._require_camera()
        if self.run is not None and self.summary is None:
            raise ValueError("already acquiring: stop first")
        self.apply_settings()
        path = None
        if self.record.value:
            path = chosen_file(self.file.value)
            if path is None:
                raise ValueError("choose the file to record to, or untick 'Record to file'")
        run = AcquisitionRun(camera, path, display_rate_hz=float(self.display_rate.value))
        signals = run.pipeline.events
        signals.live_map_ready.connect(self._on_live_map)
        signals.stats_updated.connect(self._on_stats)
        signals.event_marked.connect(self._on_event)
        signals.error.connect(self._on_error)
        signals.finished.connect(self._on_finished)
        self.run, self.summary, self.events, self.live_maps = run, None, [], 0
        run.start()
        self.status.value = "acquiring" + (f" to {path.name}" if path else " (live only)")
        self._update_enabled()
        return run

    def stop(self) -> PipelineSummary:
        """Stop acquiring; the recording is closed and the pipeline's threads joined on return.

        Returns
        -------
        PipelineSummary
            Its ``error`` holds what ended the run early, if anything.
        """
        if self.run is None:
            raise ValueError("not acquiring")
        summary = self.run.stop()
        self._finish(summary)
        return summary

    def mark(self, label: str | None = None) -> None:
        """Mark an event now (``label`` or the text in :attr:`event_label`)."""
        if self.run is None or self.summary is not None:
            raise ValueError("start acquiring before marking events")
        self.run.mark(self.event_label.value if label is None else label)

    # ------------------------------------------------------------------ signals
    # The pipeline emits from its relay thread; ensure_main_thread queues each call to the Qt
    # main thread, where touching widgets and layers is allowed.
    @ensure_main_thread
    def _on_live_map(self, image: np.ndarray, info: FrameInfo) -> None:
        self.live_maps += 1
        now = time.monotonic()
        refit = now - self._limits_time > _LIMITS_PERIOD_S
        if LIVE_LAYER in self.viewer.layers:
            layer = self.viewer.layers[LIVE_LAYER]
            layer.data = image
            if refit:
                layer.contrast_limits = robust_limits(image)
        else:
            self.viewer.add_image(
                image,
                name=LIVE_LAYER,
                colormap=PERFUSION_COLORMAP,
                contrast_limits=robust_limits(image),
                metadata={"unit": "1/K² (a.u.)", "frame_id": info.frame_id},
            )
        if refit:
            self._limits_time = now

    @ensure_main_thread
    def _on_stats(self, stats: PipelineStats) -> None:
        self.stats.value = (
            f"{stats.frame_rate_hz:.1f} fps · {stats.frames_recorded} recorded · dropped: "
            f"{stats.frames_dropped_camera} camera, {stats.frames_dropped_pipeline} pipeline"
        )

    @ensure_main_thread
    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self.status.value = f"marked {event.label!r} at frame {event.frame_index}"

    @ensure_main_thread
    def _on_error(self, error: BaseException) -> None:
        notify_error(error)
        # The pipeline stops itself after an error; stop() joins its threads and closes the
        # file.
        if self.run is not None and self.summary is None:
            self.stop()

    @ensure_main_thread
    def _on_finished(self, summary: PipelineSummary) -> None:
        if self.summary is None:
            self._finish(summary)

    def _finish(self, summary: PipelineSummary) -> None:
        if self.summary is not None:
            return
        self.summary = summary
        stats = summary.stats
        self._on_stats(stats)
        where = f"; saved {summary.path.name}" if summary.path is not None else ""
        self.status.value = (
            f"stopped after {summary.duration_s:.1f} s, {stats.frames_recorded} frames{where}"
        )
        if summary.path is not None and summary.error is None and stats.frames_recorded:
            put_layers(self.viewer, recording_layers(summary.path))
        self._update_enabled()

    # ------------------------------------------------------------------ helpers
    def _update_enabled(self) -> None:
        connected = self.camera is not None
        running = self.run is not None and self.summary is None
        self.start_button.enabled = connected and not running
        self.stop_button.enabled = running
        for widget in (self.mark_button, self.mark_start_button, self.mark_end_button):
            widget.enabled = running
        self.apply_button.enabled = connected and not running
        self.camera_kind.enabled = not running
        if not connected:
            for widget in self.setting_widgets.values():
                widget.enabled = False

    def _guarded(self, action: Any) -> Any:
        def call(*_args: Any) -> None:
            try:
                action()
            except Exception as exc:
                notify_error(exc)

        return call


def _parse_roi(text: str) -> tuple[int, ...] | None:
    """``"x, y, w, h"`` as four integers; ``None`` for an empty field."""
    if not text.strip():
        return None
    parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise ValueError(
            f"ROI {text!r} is invalid: give four whole numbers 'offset_x, offset_y, width, height'"
        )
    return values
