"""The bedside workspace: a needling case in about ten actions, on a laptop screen.

One dock holds what a clinician needs during the procedure: big Start / Stop and Needling
start / end buttons, the colour bar of the live map in its calibrated unit and as % of healthy
skin, the live hypoperfused area, the before/after result and one Export button. Beside it
(tabs) sit the Acquire, Process, Compare and Events widgets; below the image, the ROI traces
over time with the event marks.

The workflow it supports:

1. Start: the camera connects if needed and records to a new dated file in the chosen
   folder (no file name to type); the live map appears with a colour scale fixed after its
   first seconds.
2. Draw the lesion, then healthy skin, as rectangles or polygons in the named-ROI layer: the
   live outline, area and traces follow.
3. Needling start, Needling end, Stop: the recording is compared before / after by the
   comparison engine (:func:`lsci.analysis.compare_recordings.compare_events`, as
   ``lsci compare`` does with the same regions), hypoperfused area before and after included.
4. Export: the files ``lsci compare`` writes (figure, table, JSON, PDF report, the regions as
   GeoJSON, by its own writer), the ROI traces (CSV) and a video of the live map (AVI), in a
   folder beside the recording.

Every widget fits a 1366 × 768 screen (:func:`open_bedside` sizes the window to the screen and
puts the tall widgets in scroll areas); long text wraps and carries a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import create_worker, ensure_main_thread

from lsci.analysis.compare_recordings import RecordingComparison, compare_events
from lsci.analysis.delineation import AreaComparison
from lsci.analysis.live import LiveAnalysis, LiveUpdate, Trace
from lsci.analysis.time_windows import DEFAULT_WINDOW_S
from lsci.cli import compare as cli_compare
from lsci.recording import Event, open_recording
from lsci.viz.display import CHANGE_COLORMAP, PERFUSION_COLORMAP, symmetric_limits
from napari_lsci._acquire_widget import AcquireWidget, live_layer
from napari_lsci._colorbar import ColourBar, ColourBarWidget
from napari_lsci._compare import TABLE_COLUMNS, area_text, table_rows
from napari_lsci._display import robust_limits
from napari_lsci._rois import REFERENCE_NAME, ROI_LAYER, ensure_roi_layer, named_rois, roi_layer
from napari_lsci._traces import TracesWidget, recording_traces, write_traces_csv
from napari_lsci._ui import NewestOnly, fit_to_dock, notify_error
from napari_lsci._video import LiveVideo

if TYPE_CHECKING:
    import napari.viewer

__all__ = [
    "NEEDLING_END",
    "NEEDLING_START",
    "REPORT_FILES",
    "BedsideLayout",
    "BedsideResult",
    "BedsideWidget",
    "open_bedside",
    "recording_time_axis",
]

NEEDLING_START = "needling start"
NEEDLING_END = "needling end"
#: Files the export writes into the report folder, by what they hold: those of ``lsci compare``
#: (:mod:`lsci.cli.compare`), then the live session's.
REPORT_FILES = {
    "figure": cli_compare.FIGURE,
    "table": cli_compare.TABLE,
    "numbers": cli_compare.NUMBERS,
    "report": cli_compare.REPORT,
    "rois": cli_compare.ROIS,
    "traces": "roi_traces.csv",
    "video": "live_perfusion.avi",
}
#: The result's panels; the perfusion panels' names end with their unit (`` [1/τc (1/s)]``).
RESULT_LAYERS = ("bedside: before", "bedside: after (registered)", "bedside: change [%]")
RESULT_OUTLINES = "bedside: hypoperfused before (cyan) / after (magenta)"
#: Gap between the before, after and change panels, in pixels of the maps.
_GAP_PX = 8
_BIG_BUTTON_PX = 44


class BedsideResult:
    """A before/after comparison as the bedside shows and exports it.

    Attributes
    ----------
    comparison : RecordingComparison
        From the comparison engine: what ``lsci compare`` computes with the same regions,
        the hypoperfused areas included.
    rois : dict of str to (K, 2) ndarray
        The named regions compared.
    reference : str or None
        The healthy reference region's name.
    """

    def __init__(
        self, comparison: RecordingComparison, rois: Mapping[str, np.ndarray], reference: str | None
    ) -> None:
        self.comparison = comparison
        self.rois = dict(rois)
        self.reference = reference

    @property
    def areas(self) -> AreaComparison | None:
        """The hypoperfused area before and after (None without a reference region)."""
        return self.comparison.comparison.areas

    def summary(self) -> str:
        """A few lines: the areas (as the Compare widget states them) and each region's change."""
        lines = [area_text(self.comparison.comparison)]
        for row in self.comparison.comparison.rois:
            lines.append(
                f"{row.name}: {row.before_mean:.4g} → {row.after_mean:.4g} "
                f"({row.percent_change:+.1f} %)"
            )
        return "\n".join(lines)


def compare_case(
    path: str | Path,
    rois: Mapping[str, np.ndarray],
    *,
    window_s: float = DEFAULT_WINDOW_S,
    before_label: str = NEEDLING_START,
    after_label: str = NEEDLING_END,
) -> BedsideResult:
    """The before/after result of a recorded case, as ``lsci compare`` computes it.

    Parameters
    ----------
    path : str or Path
        The recording, with its needling events.
    rois : mapping of str to (K, 2) polygon
        Named regions on the map; the one named ``"healthy skin"`` is the reference.
    window_s : float
        Seconds before ``before_label`` and after ``after_label``.

    Raises
    ------
    ValueError, lsci.errors.LsciError
        As :func:`lsci.analysis.compare_recordings.compare_events` (a missing event, a window
        without frames, an unreliable registration).
    """
    reference = REFERENCE_NAME if REFERENCE_NAME in rois else None
    result = compare_events(
        path,
        before_label,
        after_label,
        window_s=window_s,
        settings=cli_compare.settings_for(Path(path), None, None),
        rois=dict(rois),
        reference=reference,
    )
    return BedsideResult(result, rois, reference)


def export_case(
    result: BedsideResult,
    folder: str | Path,
    *,
    trace_rows: list[dict[str, Any]] | None = None,
    video: LiveVideo | None = None,
) -> list[Path]:
    """Write the case's report files (:data:`REPORT_FILES`) into ``folder``.

    The comparison's files are written by ``lsci compare``'s own writer, so they are those
    ``lsci compare`` writes for the same recording and regions; traces and video are added
    when given (and not empty). Each file is written under a temporary name and published
    when complete.

    Raises
    ------
    lsci.recording.RecordingError
        When a file cannot be written.
    """
    out = Path(folder)
    written = cli_compare.write_outputs(
        result.comparison,
        out,
        rois=result.rois or None,
        reference=result.reference,
        inputs=(Path(result.comparison.sources[0]),),
    )
    if trace_rows:
        written.append(write_traces_csv(trace_rows, out / REPORT_FILES["traces"], overwrite=True))
    if video is not None and video.frames:
        written.append(video.write(out / REPORT_FILES["video"], overwrite=True))
    return written


class BedsideWidget(QWidget):
    """The bedside dock: run the case, see the live area and the before/after result, export.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.
    acquire : AcquireWidget, optional
        The Acquire widget that drives the camera (its settings are in its own dock); a new
        one by default.

    Attributes
    ----------
    start_button, stop_button, needling_start_button, needling_end_button : QPushButton
        The big buttons.
    roi_name : QComboBox
        Name the next drawn region gets (editable).
    draw_button : QPushButton
        Selects the named-ROI layer in rectangle mode.
    colour_bar : ColourBarWidget
        The live (or result) colour bar with its unit and % of healthy skin.
    live_label, status : QLabel
        Live area, last outcome (wrapped; full text as tooltip).
    result_text : QPlainTextEdit
        The before/after result (read-only, scrolls when long).
    window_s : QDoubleSpinBox
        Seconds compared before needling start and after needling end.
    compare_button, export_button : QPushButton
        Compare the last recording again (e.g. after changing regions), export the case.
    table : QTableWidget
        The before/after table of the regions.
    traces : TracesWidget
        ROI traces over time with event marks (docked below the image by
        :func:`open_bedside`).
    video : LiveVideo
        Frames of the live map for the video export.
    result : BedsideResult or None
        The last before/after result.
    recording : Path or None
        The recording the result comes from (the last one acquired, or the one opened).
    """

    def __init__(self, viewer: napari.viewer.Viewer, acquire: AcquireWidget | None = None):
        super().__init__()
        self.viewer = viewer
        self.acquire = AcquireWidget(viewer) if acquire is None else acquire
        self.analysis: LiveAnalysis | None = None
        self.result: BedsideResult | None = None
        self.recording: Path | None = None
        self.worker: Any = None
        self.trace_worker: Any = None
        self.video = LiveVideo()
        self.traces = TracesWidget()
        self.marks: list[Event] = []
        self._show_update = NewestOnly(self._on_update)

        self.start_button = _big_button("Start", "start acquiring and recording")
        self.stop_button = _big_button("Stop", "stop, save the recording and compare")
        self.needling_start_button = _big_button("Needling start", "mark: needling starts now")
        self.needling_end_button = _big_button("Needling end", "mark: needling ended now")
        self.roi_name = QComboBox()
        self.roi_name.setEditable(True)
        self.roi_name.addItems(["lesion", REFERENCE_NAME])
        self.roi_name.setToolTip("name of the next region drawn; 'healthy skin' is the reference")
        self.draw_button = QPushButton("Draw ROI")
        self.draw_button.setToolTip("draw a rectangle on the map; it gets the name on the left")
        self.colour_bar = ColourBarWidget()
        self.live_label = _text_label("live: waiting for the camera", lines=4)
        self.window_s = QDoubleSpinBox()
        self.window_s.setRange(0.1, 3600.0)
        self.window_s.setValue(DEFAULT_WINDOW_S)
        self.window_s.setSuffix(" s")
        self.window_s.setToolTip("seconds compared before needling start and after needling end")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("compare before / after again (e.g. with other regions)")
        self.export_button = _big_button("Export", "report, figure, table, areas, traces, video")
        self.result_text = QPlainTextEdit("result: after Needling end and Stop")
        self.result_text.setReadOnly(True)
        self.result_text.setFixedHeight(7 * self.result_text.fontMetrics().lineSpacing() + 12)
        self.result_text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.setMinimumHeight(110)
        self.status = _text_label("", lines=2)

        buttons = QGridLayout()
        buttons.addWidget(self.start_button, 0, 0)
        buttons.addWidget(self.stop_button, 0, 1)
        buttons.addWidget(self.needling_start_button, 1, 0)
        buttons.addWidget(self.needling_end_button, 1, 1)
        rois = QHBoxLayout()
        rois.addWidget(self.roi_name, 1)
        rois.addWidget(self.draw_button)
        result = QGridLayout()
        result.addWidget(QLabel("Window"), 0, 0)
        result.addWidget(self.window_s, 0, 1)
        result.addWidget(self.compare_button, 1, 0, 1, 2)
        result.addWidget(self.export_button, 0, 2, 2, 1)
        # What a case needs during the procedure comes first and fits a laptop's screen; the
        # result's details follow (the dock scrolls).
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addLayout(rois)
        layout.addWidget(self.colour_bar)
        layout.addWidget(self.live_label)
        layout.addLayout(result)
        layout.addWidget(self.status)
        layout.addWidget(self.result_text)
        layout.addWidget(self.table)
        layout.addStretch(1)
        fit_to_dock(self)

        self.start_button.clicked.connect(self._guarded(self.start))
        self.stop_button.clicked.connect(self._guarded(self.stop))
        self.needling_start_button.clicked.connect(
            self._guarded(lambda: self.acquire.mark(NEEDLING_START))
        )
        self.needling_end_button.clicked.connect(
            self._guarded(lambda: self.acquire.mark(NEEDLING_END))
        )
        self.draw_button.clicked.connect(self._guarded(self.draw_roi))
        self.compare_button.clicked.connect(self._guarded(self.compare))
        self.export_button.clicked.connect(self._guarded(self.export))
        self.acquire.signals.started.connect(self._run_started)
        self.acquire.signals.finished.connect(self._run_finished)
        self._update_enabled()

    # ------------------------------------------------------------------ actions
    def start(self) -> None:
        """Connect the camera chosen in Acquire (if needed) and start recording."""
        if self.acquire.camera is None:
            self.acquire.connect_camera()
        self.acquire.start()

    def stop(self) -> None:
        """Stop the run; its recording is then compared (see :meth:`compare`)."""
        self.acquire.stop()

    def draw_roi(self) -> Any:
        """Select the named-ROI layer in rectangle mode; the next shape gets :attr:`roi_name`."""
        layer = self._roi_layer()
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        return layer

    def add_roi(self, name: str, vertices: Any, shape_type: str = "rectangle") -> None:
        """Add a named region, as drawing it does (``(row, col)`` vertices in map pixels)."""
        layer = self._roi_layer()
        self.roi_name.setCurrentText(name)
        layer.add(np.asarray(vertices, dtype=float), shape_type=shape_type)

    def _roi_layer(self) -> Any:
        fresh = ROI_LAYER not in self.viewer.layers
        layer = ensure_roi_layer(self.viewer, like=self._map_layer())
        if fresh:
            layer.events.data.connect(self._rois_changed)
        return layer

    def _map_layer(self) -> Any:
        live = live_layer(self.viewer)
        if live is not None:
            return live
        for layer in self.viewer.layers:
            if layer.metadata.get("lsci_path") and layer.ndim >= 2:
                return layer
        return None

    def _rois_changed(self, _event: Any = None) -> None:
        from napari_lsci._rois import name_new_shapes

        layer = self.viewer.layers[ROI_LAYER]
        name_new_shapes(layer, self.roi_name.currentText().strip() or None)
        # The next default name is offered for the next shape.
        names = set(named_rois(layer))
        for name in ("lesion", REFERENCE_NAME):
            if name not in names:
                self.roi_name.setCurrentText(name)
                break
        else:
            self.roi_name.setCurrentText(f"ROI {len(names) + 1}")
        self.acquire.rois_changed()
        if self.analysis is None:
            self.trace_recording()

    def trace_recording(self) -> Any:
        """Draw the traces of the named regions over the reviewed recording's processed
        perfusion maps (:func:`napari_lsci._traces.recording_traces`), in a worker thread.

        Returns
        -------
        worker or None
            None without a recording or regions.
        """
        path = self.recording_path()
        rois = named_rois(roi_layer(self.viewer))
        if path is None or not rois:
            return None
        reference = REFERENCE_NAME if REFERENCE_NAME in rois else None
        worker = create_worker(recording_traces, path, rois, reference)
        # Only the newest worker's traces are shown: an older one (fewer regions) can finish
        # after it.
        worker.returned.connect(lambda traces: self._show_recording_traces(traces, worker))
        worker.errored.connect(notify_error)
        self.trace_worker = worker
        worker.start()
        return worker

    def _show_recording_traces(
        self, traces: tuple[dict[str, Trace], list[Event]] | None, worker: Any
    ) -> None:
        if worker is not self.trace_worker:
            return
        if traces is None:
            self._set_status("process the recording (Process tab) to see its ROI traces")
            return
        self.marks = traces[1]
        unit = next(iter(traces[0].values())).unit if traces[0] else ""
        self.traces.plot(traces[0], self.marks, unit=unit, force=True)

    def recording_path(self) -> Path | None:
        """The recording to compare: the last one acquired, else one opened in the viewer."""
        summary = self.acquire.summary
        if summary is not None and summary.path is not None:
            return Path(summary.path)
        for layer in self.viewer.layers:
            path = layer.metadata.get("lsci_path")
            if path:
                return Path(path)
        return None

    def compare(self) -> Any:
        """Compare before / after on the recording, in a worker thread; the result is shown.

        Returns
        -------
        worker

        Raises
        ------
        ValueError
            When there is no recording yet.
        """
        path = self.recording_path()
        if path is None:
            raise ValueError("record a case (or open a recording) before comparing")
        layer = roi_layer(self.viewer)
        rois = named_rois(layer)
        self.recording = path
        self._set_status(f"comparing {path.name}…")
        self.compare_button.setEnabled(False)
        self.worker = create_worker(
            compare_case,
            path,
            rois,
            window_s=float(self.window_s.value()),
            _connect={
                "returned": self._show_result,
                "errored": self._compare_failed,
                "finished": lambda: self.compare_button.setEnabled(True),
            },
        )
        return self.worker

    def export(self) -> list[Path]:
        """Write the report files into ``<recording> report`` beside the recording.

        Raises
        ------
        ValueError
            When there is no result yet.
        """
        if self.result is None or self.recording is None:
            raise ValueError("nothing to export yet: record a case with needling start and end")
        folder = self.recording.with_name(f"{self.recording.stem} report")
        rows = self.analysis.trace_rows() if self.analysis is not None else None
        written = export_case(self.result, folder, trace_rows=rows, video=self.video)
        self._set_status(f"wrote {len(written)} files to {folder}")
        return written

    # ------------------------------------------------------------------ live
    def _run_started(self, analysis: LiveAnalysis) -> None:
        self.analysis = analysis
        self.result = None
        self.marks = []
        self.video.clear()
        # The video is composed on the analysis thread, off the GUI thread.
        analysis.events.updated.connect(self.video.add)
        analysis.events.marked.connect(self.video.mark)
        analysis.events.updated.connect(self._show_update)
        analysis.events.marked.connect(self._on_mark)
        self._set_status("acquiring: draw the lesion and healthy skin, then mark the needling")
        self._update_enabled()

    def _on_update(self, update: LiveUpdate) -> None:
        if self.analysis is None:
            return
        self.colour_bar.show_bar(
            ColourBar(update.limits.lower, update.limits.upper, update.unit, update.reference_level)
        )
        self.live_label.setText(_live_text(update))
        self.live_label.setToolTip(self.live_label.text())
        self.traces.plot(self.analysis.traces(), self.marks, unit=update.unit)

    @ensure_main_thread
    def _on_mark(self, event: Event) -> None:
        self.marks.append(event)
        self._set_status(f"marked {event.label!r} at {event.time_s:.1f} s")

    def _run_finished(self, summary: Any) -> None:
        self._update_enabled()
        if self.analysis is not None:
            self.traces.plot(
                self.analysis.traces(), self.marks, unit=self.analysis.unit, force=True
            )
        if summary.path is not None and summary.stats.frames_recorded:
            recording_time_axis(self.viewer, summary.path)
        labels = {event.label for event in summary.events}
        if summary.path is not None and {NEEDLING_START, NEEDLING_END} <= labels:
            self._guarded(self.compare)()
        elif summary.path is not None:
            self._set_status(
                f"saved {Path(summary.path).name}; mark needling start and end to compare"
            )

    # ------------------------------------------------------------------ result
    def _compare_failed(self, exc: BaseException) -> None:
        self._set_status("comparison failed: " + (str(exc).splitlines()[0] if str(exc) else ""))
        notify_error(exc)

    def _show_result(self, result: BedsideResult) -> None:
        self.result = result
        comparison = result.comparison.comparison
        rows = table_rows(comparison)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(str(value)))
        self.table.resizeColumnsToContents()
        text = f"{result.comparison.description}\n{result.summary()}"
        self.result_text.setPlainText(text)
        self._show_result_layers(result)
        self._set_status("compared: Export writes the report beside the recording")
        self._update_enabled()

    def _show_result_layers(self, result: BedsideResult) -> None:
        """Before, registered after and % change side by side, with the outlines."""
        viewer = self.viewer
        comparison = result.comparison.comparison
        unit = result.comparison.label
        # Micrometres on the skin, as the reader places a recording's layers.
        scale = result.comparison.scale
        pixel = 1.0 if scale is None else scale.pixel_size_mm * 1e3
        units = ("um", "um") if scale is not None else ("pixel", "pixel")
        step = (comparison.before.shape[1] + _GAP_PX) * pixel
        upper = robust_limits(np.concatenate([comparison.before.ravel(), comparison.after.ravel()]))
        limits = (0.0, upper[1])
        for layer in viewer.layers:
            if "lsci_bedside" not in layer.metadata and layer.name not in (
                RESULT_OUTLINES,
                ROI_LAYER,
            ):
                layer.visible = False
        panels = (
            (f"{RESULT_LAYERS[0]} [{unit}]", comparison.before, PERFUSION_COLORMAP, limits, unit),
            (f"{RESULT_LAYERS[1]} [{unit}]", comparison.after, PERFUSION_COLORMAP, limits, unit),
            (
                RESULT_LAYERS[2],
                comparison.percent_change,
                CHANGE_COLORMAP,
                symmetric_limits(comparison.percent_change),
                "%",
            ),
        )
        for index, (name, data, colormap, clim, layer_unit) in enumerate(panels):
            kwargs = {
                "name": name,
                "colormap": colormap,
                "contrast_limits": clim,
                "scale": (pixel, pixel),
                "translate": (0.0, index * step),
                "metadata": {"unit": layer_unit, "lsci_bedside": RESULT_LAYERS[index]},
            }
            layer = next(
                (
                    layer
                    for layer in viewer.layers
                    if layer.metadata.get("lsci_bedside") == RESULT_LAYERS[index]
                ),
                None,
            )
            if layer is not None:
                layer.data = data
                for key, value in kwargs.items():
                    setattr(layer, key, value)
                layer.visible = True
            else:
                layer = viewer.add_image(data, units=units, **kwargs)
            layer.colorbar.visible = index != 1
        if result.areas is not None:
            mask = result.areas.before.mask.astype(np.uint8) + 2 * result.areas.after.mask.astype(
                np.uint8
            )
            colours = DirectLabelColormap(
                color_dict={
                    0: "transparent",
                    1: "cyan",
                    2: "magenta",
                    3: "white",
                    None: "transparent",
                }
            )
            if RESULT_OUTLINES in viewer.layers:
                outline = viewer.layers[RESULT_OUTLINES]
                outline.data = mask
                outline.visible = True
            else:
                outline = viewer.add_labels(
                    mask, name=RESULT_OUTLINES, scale=(pixel, pixel), units=units, colormap=colours
                )
                outline.contour = 2
        if ROI_LAYER in viewer.layers:
            roi_layer = viewer.layers[ROI_LAYER]
            viewer.layers.move(viewer.layers.index(roi_layer), len(viewer.layers) - 1)
            roi_layer.visible = True
        self.colour_bar.show_bar(
            ColourBar(
                limits[0],
                limits[1],
                unit,
                None if result.areas is None else result.areas.before.threshold.reference_value,
            )
        )
        viewer.reset_view()

    # ------------------------------------------------------------------ helpers
    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)

    def _update_enabled(self) -> None:
        running = self.acquire.run is not None and self.acquire.summary is None
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.needling_start_button.setEnabled(running)
        self.needling_end_button.setEnabled(running)
        self.export_button.setEnabled(self.result is not None)

    def _guarded(self, action: Any) -> Any:
        def call(*_args: Any) -> None:
            try:
                action()
            except Exception as exc:
                self._set_status(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                notify_error(exc)

        return call


def _live_text(update: LiveUpdate) -> str:
    text = f"t = {update.time_s:.1f} s · {update.unit}"
    delineation = update.delineation
    if delineation is None:
        return text + " · draw 'healthy skin' for the hypoperfused area"
    area = delineation.area_mm2
    size = f"{area:.1f} mm²" if area is not None else f"{delineation.area_px} px (no scale)"
    text += f"\nhypoperfused: {size}"
    for name, value in update.roi_means.items():
        percent = update.percent_of_reference(value)
        if math.isfinite(percent) and name != REFERENCE_NAME:
            text += f" · {name} {percent:.0f} % of healthy"
    return text


def recording_time_axis(viewer: Any, path: str | Path) -> np.ndarray:
    """Show the frame slider of a recording in seconds, from its first frame, and go there.

    The slider's number shows the time of the frame shown (seconds since the recording's
    first frame, from the frames' time stamps; the frame number is in its tooltip), and the
    canvas caption repeats it with the events. The last recording given is the one shown.

    Returns
    -------
    ndarray
        The time of each frame, seconds.
    """
    with open_recording(path) as recording:
        stamps = np.asarray(recording.host_timestamps_ns, dtype=np.int64)
        events = [(e.frame_index, e.label) for e in recording.events]
    times = (stamps - stamps[0]) / 1e9 if stamps.size else np.zeros(0)
    key = id(viewer)
    first = key not in _TIME_AXES
    _TIME_AXES[key] = (times, events)
    if first:
        # After napari's own update of the slider's numbers (on a new step or a new range).
        viewer.dims.events.current_step.connect(
            lambda _event: QTimer.singleShot(0, lambda: _show_time(viewer))
        )
        viewer.dims.events.range.connect(
            lambda _event: QTimer.singleShot(0, lambda: _show_time(viewer))
        )
    if viewer.dims.ndim >= 3 and times.size:
        viewer.dims.set_current_step(0, 0)
    _show_time(viewer)
    return times


#: The recording whose time each viewer's slider shows: frame times, events.
_TIME_AXES: dict[int, tuple[np.ndarray, list[tuple[int, str]]]] = {}


def _show_time(viewer: Any) -> None:
    times, events = _TIME_AXES[id(viewer)]
    if viewer.dims.ndim < 3 or not times.size:
        return
    frame = int(min(max(viewer.dims.current_step[0], 0), times.size - 1))
    now = float(times[frame])
    marks = " · ".join(
        f"{label} {times[min(index, times.size - 1)]:.1f} s" for index, label in events
    )
    viewer.canvas.overlays.text.visible = True
    viewer.canvas.overlays.text.text = f"t = {now:.2f} s of {times[-1]:.1f} s" + (
        f" · {marks}" if marks else ""
    )
    slider = _time_slider(viewer)
    if slider is not None:
        slider.curslice_label.setText(f"{now:.1f} s")
        slider.curslice_label.setToolTip(f"frame {frame}")
        slider.totslice_label.setText(f"{times[-1]:.1f} s")


def _time_slider(viewer: Any) -> Any:
    """napari's slider of the first axis, when its Qt widgets can be reached."""
    try:
        return viewer.window._qt_viewer.dims.slider_widgets[0]
    except (AttributeError, IndexError):
        return None


def _big_button(text: str, tooltip: str) -> QPushButton:
    button = QPushButton(text)
    button.setMinimumHeight(_BIG_BUTTON_PX)
    font = QFont(button.font())
    font.setPointSizeF(font.pointSizeF() * 1.25)
    font.setBold(True)
    button.setFont(font)
    button.setToolTip(tooltip)
    button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    return button


def _text_label(text: str, *, lines: int) -> QLabel:
    """A label that wraps its text in the dock's width, with room for ``lines`` lines (a
    scroll area does not ask a wrapping label for its height, so the room is reserved)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    label.setFixedHeight(lines * label.fontMetrics().lineSpacing() + 4)
    label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setToolTip(text)
    return label


class _DockScroll(QScrollArea):
    """A vertical scroll area exactly as wide as its widget's layout needs beside a scroll bar.

    A tall widget never makes the window taller, and, its text wrapping, never wider: the
    dock is as wide as the widest layout it holds.
    """

    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(widget)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        inner = self.widget()
        if inner is None:
            return hint
        needed = (
            inner.minimumSizeHint().width()
            + self.verticalScrollBar().sizeHint().width()
            + 2 * self.frameWidth()
        )
        return QSize(max(hint.width(), needed), hint.height())


def _scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a :class:`_DockScroll`."""
    return _DockScroll(widget)


def dock_companions(viewer: Any, bedside: BedsideWidget, *, dock_bedside: bool) -> dict[str, Any]:
    """Dock the bedside's companions: Acquire, Process, Compare and Events as tabs beside it
    (in scroll areas), and the ROI traces below the image.

    Returns
    -------
    dict
        Each docked widget by its display name.
    """
    from napari_lsci._compare_widget import CompareWidget
    from napari_lsci._events_widget import EventsWidget
    from napari_lsci._process_widget import ProcessWidget

    window = viewer.window
    docked: dict[str, Any] = {}
    if dock_bedside:
        window.add_dock_widget(_scrolled(bedside), name="lsci: bedside", area="right")
    docked["lsci: bedside"] = bedside
    widgets = {
        "Acquire": bedside.acquire,
        "Process": ProcessWidget(viewer),
        "Compare before/after": CompareWidget(viewer),
        "Events": EventsWidget(viewer),
    }
    for name, widget in widgets.items():
        fit_to_dock(widget)
        window.add_dock_widget(_scrolled(widget.native), name=name, area="right", tabify=True)
        docked[name] = widget
    window.add_dock_widget(bedside.traces, name="ROI traces", area="bottom")
    docked["ROI traces"] = bedside.traces
    # Qt shows the last tab added; the bedside is the one to see first.
    QTimer.singleShot(0, lambda: _raise_dock(window, "lsci: bedside"))
    return docked


def _raise_dock(window: Any, name: str) -> None:
    for dock in window._qt_window.findChildren(QWidget):
        # napari names a plugin's dock "<name> (<plugin>)".
        if dock.windowTitle().startswith(name) and isinstance(dock, QDockWidget):
            dock.raise_()


def fit_window_to_screen(viewer: Any) -> None:
    """Make the window exactly the screen's available area (a laptop's 1366 × 768 included),
    with a caption (time, events, area) small enough to fit over its canvas."""
    qt_window = viewer.window._qt_window
    screen = qt_window.screen().availableGeometry()
    qt_window.setGeometry(screen)
    viewer.canvas.overlays.text.font_size = 9


def open_bedside(viewer: Any) -> dict[str, Any]:
    """The bedside layout in a viewer: the bedside dock, its companions, the window fitted.

    Returns
    -------
    dict
        ``"viewer"`` and each docked widget by display name.
    """
    bedside = BedsideWidget(viewer)
    docked = dock_companions(viewer, bedside, dock_bedside=True)
    fit_window_to_screen(viewer)
    return {"viewer": viewer, **docked}


class BedsideLayout(_DockScroll):
    """The "lsci: bedside" entry of napari's Plugins menu: the bedside dock (napari docks this)
    with its companions docked beside it, and the window fitted to the screen.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.

    Attributes
    ----------
    bedside : BedsideWidget
        The bedside widget inside.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        # napari hands plugins a proxy of the viewer; the layout sizes the window itself.
        viewer = getattr(viewer, "__wrapped__", viewer)
        bedside = BedsideWidget(viewer)
        super().__init__(bedside)
        self.bedside = bedside
        dock_companions(viewer, self.bedside, dock_bedside=False)
        QTimer.singleShot(0, lambda: fit_window_to_screen(viewer))
