"""Acquire widget: camera settings, start/stop, recording, event marks and live perfusion.

The live map is analysed by :class:`lsci.analysis.live.LiveAnalysis`: perfusion in the
calibrated unit (1/τc with the camera's exposure and the given β), a colour scale fixed after
the first seconds (or by the user) and never refitted on its own, and the hypoperfused outline
and area against the ROI named "healthy skin" in the named-ROI layer.
"""

from __future__ import annotations

import functools
from pathlib import Path
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
from napari.utils.colormaps import DirectLabelColormap
from psygnal import Signal, SignalGroup
from superqt.utils import ensure_main_thread

from lsci.acquisition import PipelineStats, PipelineSummary
from lsci.analysis.live import LiveAnalysis, LiveUpdate
from lsci.analysis.scale import scale_from_metadata
from lsci.drivers.base import Camera
from lsci.errors import LsciError
from lsci.recording import Event
from napari_lsci._acquisition import (
    AcquisitionRun,
    SettingState,
    apply_setting,
    camera_choices,
    devices,
    open_camera,
    session_file,
    setting_states,
    takes,
)
from napari_lsci._display import PERFUSION_COLORMAP, display_limits
from napari_lsci._reader import recording_layers
from napari_lsci._rois import REFERENCE_NAME, named_rois, roi_layer
from napari_lsci._ui import (
    NewestOnly,
    chosen_file,
    fit_to_dock,
    notify_error,
    put_layers,
    show_status,
)

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["LIVE_LAYER", "OUTLINE_LAYER", "AcquireSignals", "AcquireWidget", "live_layer"]

#: Name of the live map's layer, followed by its unit (hover values then carry it).
LIVE_LAYER = "live perfusion"
OUTLINE_LAYER = "live hypoperfused outline"
perfusion_limits = functools.partial(display_limits, "perfusion")


class AcquireSignals(SignalGroup):
    """What the Acquire widget tells other widgets (emitted in the GUI thread).

    Signals
    -------
    started(LiveAnalysis)
        A run started; connect to the analysis' signals for its live updates.
    finished(PipelineSummary)
        The run ended and its recording is closed.
    """

    started = Signal(object)
    finished = Signal(object)


class AcquireWidget(Container):
    """Acquire from the simulated camera or a GenICam device, with live calibrated perfusion.

    The widget only drives lsci: it opens the camera (:meth:`connect_camera`), applies the
    settings the camera supports (:meth:`apply_settings`; unsupported ones are disabled with
    the reason from the camera's capability query), runs an
    :class:`lsci.acquisition.AcquisitionPipeline` (:meth:`start`, :meth:`stop`) with a
    :class:`lsci.analysis.live.LiveAnalysis` on its live maps, marks events (:meth:`mark`) and
    listens to their signals, delivered to the GUI thread.

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
    beta, pixel_um, magnification : magicgui widgets
        β of the optics for the live 1/τc; sensor pixel size and magnification (0: unknown),
        written with the recording and giving areas in mm².
    record, folder, file : magicgui widgets
        Record to ``file``, or, when it is empty, to a new file named by the date and time in
        ``folder``; without ``record``, live view only.
    display_rate : magicgui widget
        Most live maps shown per second (the pipeline computes no more than that).
    start_button, stop_button : magicgui widgets
        Run control.
    event_label, mark_button, mark_start_button, mark_end_button : magicgui widgets
        Event marks (``"needling start"``, ``"needling end"`` or any label).
    colour_max, fix_colours_button, refit_colours_button : magicgui widgets
        The live colour scale: fixed from the first seconds; set the upper limit by hand, or
        fit it once more to the next seconds.
    stats, status : magicgui Label
        Frame rate, frames recorded and dropped; last outcome (wrapped, full text as tooltip).
    camera : Camera or None
        The open camera.
    run : AcquisitionRun or None
        The current (or last) run.
    analysis : LiveAnalysis or None
        The live analysis of that run.
    last_update : LiveUpdate or None
        The newest live map shown.
    summary : PipelineSummary or None
        Summary of the last finished run.
    events : list of Event
        Events stored during the current run.
    signals : AcquireSignals
        ``started`` and ``finished``, for other widgets.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.camera: Camera | None = None
        self.run: AcquisitionRun | None = None
        self.analysis: LiveAnalysis | None = None
        self.last_update: LiveUpdate | None = None
        self.summary: PipelineSummary | None = None
        self.events: list[Event] = []
        self.signals = AcquireSignals()
        self.live_maps = 0
        self._show_update = NewestOnly(self._on_update)
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
        self.beta = FloatSpinBox(label="β of the optics", min=0.01, max=1.0, step=0.01, value=1.0)
        self.beta.tooltip = "coherence factor β for the live 1/τc; 1 when not calibrated"
        self.pixel_um = FloatSpinBox(label="Sensor pixel (µm)", min=0.0, max=1000.0, value=0.0)
        self.pixel_um.tooltip = "sensor pixel pitch; 0 when unknown (areas then in pixels)"
        self.magnification = FloatSpinBox(
            label="Magnification", min=0.0, max=1000.0, step=0.01, value=0.0
        )
        self.magnification.tooltip = "optical magnification; 0 when unknown"
        self.record = CheckBox(text="Record to file", value=True)
        self.folder = FileEdit(label="Folder", mode="d", value=Path.cwd())
        self.file = FileEdit(label="File (optional)", mode="w", filter="*.h5", value="")
        self.file.tooltip = "empty: a new file named by the date and time in the folder"
        self.display_rate = FloatSpinBox(label="Display rate (Hz)", min=0.5, max=60.0, value=10.0)
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop")
        self.event_label = LineEdit(label="Event", value="needling start")
        self.mark_button = PushButton(text="Mark event")
        self.mark_start_button = PushButton(text="Needling start")
        self.mark_end_button = PushButton(text="Needling end")
        self.colour_max = FloatSpinBox(label="Colour max", min=0.0, max=1e9, value=0.0)
        self.colour_max.tooltip = "upper colour limit of the live map, in its unit"
        self.fix_colours_button = PushButton(text="Set colour max")
        self.refit_colours_button = PushButton(text="Fit colours to the next seconds")
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
                self.beta,
                self.pixel_um,
                self.magnification,
                self.record,
                self.folder,
                self.file,
                self.display_rate,
                self.start_button,
                self.stop_button,
                self.event_label,
                self.mark_button,
                self.mark_start_button,
                self.mark_end_button,
                self.colour_max,
                self.fix_colours_button,
                self.refit_colours_button,
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
        self.fix_colours_button.clicked.connect(self._guarded(self.set_colour_max))
        self.refit_colours_button.clicked.connect(self._guarded(self.refit_colours))
        self._kind_changed()
        self._update_enabled()
        fit_to_dock(self)

    def _set_status(self, text: str) -> None:
        show_status(self.status, text)

    # ------------------------------------------------------------------ camera
    def _device_choices(self, _widget: Any = None) -> list[tuple[str, int]]:
        kind = self.camera_kind.value
        if not takes(kind, "device"):
            return []
        try:
            return devices(kind, chosen_file(self.producer.value))
        except (LsciError, ValueError) as exc:
            self._set_status(f"no devices: {exc}")
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
        self._set_status(f"connected to {self.camera.name}")
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
        self._set_status("not connected")
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
    def recording_path(self) -> Path | None:
        """Where the next run records: the chosen file, else a new dated file in the folder;
        None for live view only."""
        if not self.record.value:
            return None
        path = chosen_file(self.file.value)
        if path is not None:
            return path
        folder = Path(self.folder.value) if str(self.folder.value) else Path.cwd()
        if not folder.is_dir():
            raise ValueError(f"the folder {folder} does not exist: choose another")
        return session_file(folder)

    def start(self) -> AcquisitionRun:
        """Apply the settings and start acquiring (and recording when asked).

        Raises
        ------
        ValueError
            When no camera is connected, or the folder to record to does not exist.
        lsci.recording.RecordingError, lsci.drivers.base.CameraError
            When the file cannot be created or the camera cannot start.
        """
        camera = self._require_camera()
        if self.run is not None and self.summary is None:
            raise ValueError("already acquiring: stop first")
        self.apply_settings()
        path = self.recording_path()
        run = AcquisitionRun(
            camera,
            path,
            display_rate_hz=float(self.display_rate.value),
            beta=float(self.beta.value),
            pixel_size_um=float(self.pixel_um.value) or None,
            magnification=float(self.magnification.value) or None,
        )
        live = run.pipeline.live_settings
        assert live is not None
        analysis = LiveAnalysis(
            live, fit_limits=perfusion_limits, pixel_scale=scale_from_metadata(run.metadata)
        )
        self._use_rois(analysis)
        analysis.events.updated.connect(self._show_update)
        analysis.events.marked.connect(self._on_event)
        signals = run.pipeline.events
        signals.stats_updated.connect(self._on_stats)
        signals.error.connect(self._on_error)
        signals.finished.connect(self._on_finished)
        analysis.attach(run.pipeline)
        self.run, self.analysis, self.summary, self.events = run, analysis, None, []
        self.live_maps, self.last_update = 0, None
        self.signals.started.emit(analysis)
        try:
            run.start()
        except BaseException:
            analysis.close()
            raise
        where = f" to {path.name}" if path else " (live only)"
        self._set_status(f"acquiring{where}; {live.perfusion_model.label}")
        self._update_enabled()
        return run

    def _use_rois(self, analysis: LiveAnalysis) -> None:
        """Named ROIs of the viewer; the one named "healthy skin" is the reference."""
        layer = roi_layer(self.viewer)
        rois = named_rois(layer)
        reference = REFERENCE_NAME if REFERENCE_NAME in rois else None
        analysis.set_rois(rois, reference)

    def rois_changed(self) -> None:
        """Use the current named ROIs in the live analysis (the bedside calls this)."""
        if self.analysis is not None:
            try:
                self._use_rois(self.analysis)
            except ValueError as exc:
                notify_error(exc)

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
        if self.analysis is not None:
            self.analysis.close()
        self._finish(summary)
        return summary

    def mark(self, label: str | None = None) -> None:
        """Mark an event now (``label`` or the text in :attr:`event_label`)."""
        if self.run is None or self.summary is not None:
            raise ValueError("start acquiring before marking events")
        self.run.mark(self.event_label.value if label is None else label)

    # ------------------------------------------------------------------ colour scale
    def set_colour_max(self, upper: float | None = None) -> None:
        """Fix the live colour scale from 0 to ``upper`` (or the value in :attr:`colour_max`)."""
        if self.analysis is None:
            raise ValueError("start acquiring first: the colour scale is the live map's")
        value = float(self.colour_max.value if upper is None else upper)
        limits = self.analysis.set_limits(0.0, value)
        self._apply_limits(limits.lower, limits.upper)

    def refit_colours(self) -> None:
        """Fit the live colour scale once more, to the maps of the next seconds."""
        if self.analysis is None:
            raise ValueError("start acquiring first: the colour scale is the live map's")
        self.analysis.refit_limits()

    def _apply_limits(self, lower: float, upper: float) -> None:
        layer = live_layer(self.viewer)
        if layer is not None:
            layer.contrast_limits = (lower, upper)

    # ------------------------------------------------------------------ signals
    # The pipeline and the analysis emit from their threads; ensure_main_thread (and
    # NewestOnly, for live maps) queues each call to the Qt main thread, where touching
    # widgets and layers is allowed.
    def _on_update(self, update: LiveUpdate) -> None:
        # Maps still queued when the run ended are not shown: the recording's layers are.
        if self.analysis is None or self.summary is not None:
            return
        self.live_maps += 1
        self.last_update = update
        limits = (update.limits.lower, update.limits.upper)
        pixel = scale_from_metadata(self.run.metadata) if self.run is not None else None
        name = f"{LIVE_LAYER} [{update.unit}]"
        metadata = {"lsci_live": True, "unit": update.unit, "frame_id": update.frame_id}
        layer = live_layer(self.viewer)
        if layer is not None:
            layer.data = update.perfusion
            layer.contrast_limits = limits
            layer.metadata = metadata
            layer.name = name
        else:
            # Micrometres on the skin, as the reader places a recording's layers.
            scale = (1.0, 1.0) if pixel is None else (pixel.pixel_size_mm * 1e3,) * 2
            layer = self.viewer.add_image(
                update.perfusion,
                name=name,
                colormap=PERFUSION_COLORMAP,
                contrast_limits=limits,
                scale=scale,
                units=("um", "um") if pixel is not None else ("pixel", "pixel"),
                metadata=metadata,
            )
            layer.colorbar.visible = True
            self.viewer.canvas.overlays.scale_bar.visible = True
        if not self.colour_max.value or update.limits.source != "user":
            self.colour_max.value = round(update.limits.upper, 6)
        self._show_outline(update, layer)
        self.viewer.canvas.overlays.text.visible = True
        self.viewer.canvas.overlays.text.text = live_caption(update)

    def _show_outline(self, update: LiveUpdate, live: Any) -> None:
        delineation = update.delineation
        if delineation is None:
            if OUTLINE_LAYER in self.viewer.layers:
                self.viewer.layers[OUTLINE_LAYER].visible = False
            return
        mask = delineation.mask.astype(np.uint8)
        if OUTLINE_LAYER in self.viewer.layers:
            outline = self.viewer.layers[OUTLINE_LAYER]
            outline.data = mask
            outline.visible = True
        else:
            outline = self.viewer.add_labels(
                mask,
                name=OUTLINE_LAYER,
                scale=live.scale,
                units=live.units,
                opacity=1.0,
                blending="translucent",
                colormap=DirectLabelColormap(
                    color_dict={0: "transparent", 1: "cyan", None: "transparent"}
                ),
            )
            outline.contour = 2

    @ensure_main_thread
    def _on_stats(self, stats: PipelineStats) -> None:
        text = (
            f"{stats.frame_rate_hz:.1f} fps · {stats.frames_recorded} recorded · dropped: "
            f"{stats.frames_dropped_camera} camera, {stats.frames_dropped_pipeline} pipeline"
        )
        show_status(self.stats, text)

    @ensure_main_thread
    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self._set_status(f"marked {event.label!r} at {event.time_s:.1f} s")

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
        self._set_status(
            f"stopped after {summary.duration_s:.1f} s, {stats.frames_recorded} frames{where}"
        )
        if summary.path is not None and summary.error is None and stats.frames_recorded:
            layers = put_layers(self.viewer, recording_layers(summary.path))
            # The raw speckle would cover the perfusion map: it stays in the list, hidden.
            for layer in layers:
                if layer.metadata.get("lsci_product") is None:
                    layer.visible = False
        self._update_enabled()
        self.signals.finished.emit(summary)

    # ------------------------------------------------------------------ helpers
    def _update_enabled(self) -> None:
        connected = self.camera is not None
        running = self.run is not None and self.summary is None
        self.start_button.enabled = connected and not running
        self.stop_button.enabled = running
        for widget in (
            self.mark_button,
            self.mark_start_button,
            self.mark_end_button,
            self.fix_colours_button,
            self.refit_colours_button,
        ):
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


def live_layer(viewer: Any) -> Any:
    """The viewer's live map layer (named :data:`LIVE_LAYER` and its unit), None before one."""
    return next((layer for layer in viewer.layers if layer.metadata.get("lsci_live")), None)


def live_caption(update: LiveUpdate) -> str:
    """The line over the live map: time, unit, hypoperfused area and the colour scale."""
    text = f"live · t = {update.time_s:.1f} s · {update.unit}"
    delineation = update.delineation
    if delineation is not None:
        area = delineation.area_mm2
        size = f"{area:.1f} mm²" if area is not None else f"{delineation.area_px} px"
        text += f" · hypoperfused {size} (< {delineation.threshold.fraction} × healthy skin)"
    source = update.limits.source
    text += " · colours " + ("fitting…" if source == "settling" else f"fixed ({source})")
    return text


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
