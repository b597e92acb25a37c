"""Compare widget: before/after perfusion side by side, % change, and a live ROI table.

Windows around the events of a recording are compared by the comparison engine
(:func:`lsci.analysis.compare_recordings.compare_events`) with ``lsci compare``'s defaults, and
polygons and rectangles are rasterised by :func:`lsci.analysis.roi.polygon_mask`, so the widget
reports the numbers the command line and the Python API report. The hypoperfused area and its
outline come from the same engine result (:attr:`lsci.analysis.compare.Comparison.areas`),
recomputed by the engine whenever the reference region changes.
"""

from __future__ import annotations

import dataclasses
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
    PushButton,
    RadioButtons,
    Table,
)
from superqt.utils import create_worker

from lsci.analysis.compare import Comparison
from lsci.analysis.roi import polygon_mask
from lsci.analysis.time_windows import DEFAULT_WINDOW_S
from lsci.viz.display import HYPOPERFUSED_COLOUR
from napari_lsci._compare import (
    TABLE_COLUMNS,
    CompareInputs,
    area_outlines,
    area_text,
    compute_comparison,
    events_comparison,
    export_figure,
    stack_mean,
    table_rows,
    with_rois,
)
from napari_lsci._display import (
    CHANGE_COLORMAP,
    PERFUSION_COLORMAP,
    RAW_COLORMAP,
    robust_limits,
    symmetric_limits,
)
from napari_lsci._rois import REFERENCE_NAME, ensure_roi_layer, roi_layer, shape_names
from napari_lsci._ui import chosen_file, image_layers, notify_error

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["CompareWidget"]

LAYERS = "two layers"
EVENTS = "events of one recording"
AREA_LAYER = "hypoperfused area"
#: Gap between the before, after and change panels, in pixels of the maps.
_GAP_PX = 8


class CompareWidget(Container):
    """Compare perfusion before and after a treatment.

    Choose the two maps (two image layers, or two time windows of one recording around its
    events, e.g. the 10 s before "needling start" and after "needling end"), then
    :meth:`compute`: the before map, the registered after map (each on its mean-intensity
    underlay) and the percent-change map appear side by side. Draw named regions on the before
    panel, in the viewer's named-ROI layer (:mod:`napari_lsci._rois`, shared with the bedside
    workspace): the first is named ``lesion``, the second ``healthy skin``, the reference. The
    table follows every edit. Export the table (:meth:`export_csv`) and a figure
    (:meth:`export_figure`).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.

    Attributes
    ----------
    source : magicgui RadioButtons
        ``"two layers"`` or ``"events of one recording"``.
    before_layer, after_layer, before_intensity, after_intensity : magicgui ComboBox
        The layers compared (maps or stacks) and their optional mean-intensity images.
    recording_layer, start_label, end_label, seconds : magicgui widgets
        The recording (a layer read from it), the events and the window length.
    register : magicgui CheckBox
        Align the after map onto the before map first.
    compute_button, status, table : magicgui widgets
        Start, outcome, ROI table.
    areas : magicgui Label
        The hypoperfused area before and after (outlined in the ``hypoperfused area`` layer:
        before on the before and change panels, after on the after panel).
    csv_path, export_csv_button, figure_path, export_figure_button : magicgui widgets
        Exports.
    comparison : lsci.analysis.compare.Comparison or None
        The current result, with the table of the current ROIs.
    masks : dict of str to bool ndarray
        The regions of that table, the reference included.
    inputs : CompareInputs or None
        What it was computed from.
    worker : worker or None
        The computation in progress (or last run).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.source = RadioButtons(label="Compare", choices=[LAYERS, EVENTS], value=LAYERS)
        self.before_layer = ComboBox(label="Before", choices=self._map_choices)
        self.after_layer = ComboBox(label="After", choices=self._map_choices)
        self.before_intensity = ComboBox(
            label="Before intensity", choices=self._map_choices, nullable=True
        )
        self.after_intensity = ComboBox(
            label="After intensity", choices=self._map_choices, nullable=True
        )
        self.recording_layer = ComboBox(label="Recording", choices=self._recording_choices)
        self.start_label = ComboBox(label="Before event", choices=self._event_labels)
        self.end_label = ComboBox(label="After event", choices=self._event_labels)
        self.seconds = FloatSpinBox(label="Window (s)", min=0.1, max=3600.0, value=DEFAULT_WINDOW_S)
        self.register = CheckBox(text="Register after onto before", value=True)
        self.compute_button = PushButton(text="Compare")
        self.status = Label(value="")
        self.areas = Label(value="")
        self.table = Table(value={"data": [], "index": [], "columns": list(TABLE_COLUMNS)})
        self.csv_path = FileEdit(label="Table file", mode="w", filter="*.csv", value="")
        self.export_csv_button = PushButton(text="Export table (CSV)")
        self.figure_path = FileEdit(label="Figure file", mode="w", filter="*.png", value="")
        self.export_figure_button = PushButton(text="Export figure (PNG)")
        self.comparison: Comparison | None = None
        self.masks: dict[str, np.ndarray] = {}
        self.inputs: CompareInputs | None = None
        self.worker: Any = None
        self._roi_layer: Any = None  # the named-ROI layer whose edits update the table
        self._panel_scale: tuple[float, ...] = (1.0, 1.0)  # world units per map pixel
        self.extend(
            [
                self.source,
                self.before_layer,
                self.after_layer,
                self.before_intensity,
                self.after_intensity,
                self.recording_layer,
                self.start_label,
                self.end_label,
                self.seconds,
                self.register,
                self.compute_button,
                self.status,
                self.areas,
                self.table,
                self.csv_path,
                self.export_csv_button,
                self.figure_path,
                self.export_figure_button,
            ]
        )
        self.source.changed.connect(self._update_visible)
        self.recording_layer.changed.connect(self._recording_changed)
        self.compute_button.clicked.connect(self.compute)
        self.export_csv_button.clicked.connect(self._export_csv_clicked)
        self.export_figure_button.clicked.connect(self._export_figure_clicked)
        self.reset_choices()

    # ------------------------------------------------------------------ choices
    def _map_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in image_layers(self.viewer) if layer.ndim in (2, 3)]

    def _recording_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in image_layers(self.viewer)
            if layer.metadata.get("lsci_path") and layer.metadata.get("events")
        ]

    def _event_labels(self, _widget: Any = None) -> list[str]:
        layer = self.recording_layer.value if hasattr(self, "recording_layer") else None
        if layer is None:
            return []
        return list(dict.fromkeys(e["label"] for e in layer.metadata.get("events", [])))

    def reset_choices(self, *_args: Any) -> None:
        """Refresh the layer lists; pre-select a before/after pair and needling events."""
        super().reset_choices()
        self._preselect_pair()
        self._recording_changed()
        self._update_visible()

    def _preselect_pair(self) -> None:
        by_role: dict[tuple[str, str], Any] = {}
        for layer in image_layers(self.viewer):
            meta = layer.metadata
            if "lsci_pair" in meta and "lsci_role" in meta:
                by_role.setdefault((meta["lsci_pair"], meta["lsci_role"]), layer)
        pairs = (
            (self.before_layer, ("before", "perfusion")),
            (self.after_layer, ("after", "perfusion")),
            (self.before_intensity, ("before", "intensity")),
            (self.after_intensity, ("after", "intensity")),
        )
        for widget, key in pairs:
            if key in by_role:
                widget.value = by_role[key]

    def _recording_changed(self, _value: Any = None) -> None:
        self.start_label.reset_choices()
        self.end_label.reset_choices()
        labels = list(self.start_label.choices)
        for widget, wanted in ((self.start_label, "start"), (self.end_label, "end")):
            match = [label for label in labels if wanted in label.lower()]
            if match:
                widget.value = match[0]

    def _update_visible(self, _value: Any = None) -> None:
        layers = self.source.value == LAYERS
        for widget in (
            self.before_layer,
            self.after_layer,
            self.before_intensity,
            self.after_intensity,
        ):
            widget.visible = layers
        for widget in (self.recording_layer, self.start_label, self.end_label, self.seconds):
            widget.visible = not layers

    # ------------------------------------------------------------------ computing
    def selected_inputs(self) -> CompareInputs | tuple[Path, str, str, float]:
        """The layers' data, or the recording and events to average (read in the worker).

        Raises
        ------
        ValueError
            When a choice is missing.
        """
        if self.source.value == LAYERS:
            before, after = self.before_layer.value, self.after_layer.value
            if before is None or after is None:
                raise ValueError("choose a before and an after layer to compare")
            if before is after:
                raise ValueError("the before and after layers are the same layer: choose two maps")
            raw = [layer.name for layer in (before, after) if _is_raw_frames(layer)]
            if raw:
                raise ValueError(
                    f"{raw[0]} holds raw camera frames, not a perfusion map: compare the "
                    "recording by its events, or process it first"
                )
            # Layer data may be lazy: it is read in the worker (see _compute).
            return CompareInputs(
                before=before.data,
                after=after.data,
                before_intensity=None
                if self.before_intensity.value is None
                else self.before_intensity.value.data,
                after_intensity=None
                if self.after_intensity.value is None
                else self.after_intensity.value.data,
                unit=str(before.metadata.get("unit", "")),
                description=f"{before.name} vs {after.name}",
            )
        layer = self.recording_layer.value
        if layer is None or not self.start_label.value or not self.end_label.value:
            raise ValueError(
                "choose a recording layer with events, and the events that bound the treatment"
            )
        return (
            Path(layer.metadata["lsci_path"]),
            str(self.start_label.value),
            str(self.end_label.value),
            float(self.seconds.value),
        )

    def compute(self) -> Any:
        """Compute the comparison in a worker thread, then show it.

        Returns
        -------
        worker or None
            ``None`` when the choices are incomplete (the reason is shown as a notification).
        """
        try:
            selected = self.selected_inputs()
        except Exception as exc:
            notify_error(exc)
            return None
        self.status.value = "comparing…"
        self.compute_button.enabled = False
        self.worker = create_worker(
            _compute,
            selected,
            bool(self.register.value),
            _connect={
                "returned": self._show,
                "errored": self._failed,
                "finished": self._finished,
            },
        )
        return self.worker

    def _failed(self, exc: BaseException) -> None:
        self.status.value = "failed: " + (str(exc).splitlines()[0] if str(exc) else "error")
        notify_error(exc)

    def _finished(self) -> None:
        self.compute_button.enabled = True

    def _show(self, result: tuple[CompareInputs, Comparison]) -> None:
        inputs, comparison = result
        self.inputs = inputs
        self.comparison = comparison
        self._show_layers(inputs, comparison)
        registration = comparison.registration
        moved = (
            ""
            if registration is None
            else f"; after shifted by ({registration.shift_px[0]:+.1f}, "
            f"{registration.shift_px[1]:+.1f}) px"
        )
        self.status.value = inputs.description + moved
        self.update_table()

    def _show_layers(self, inputs: CompareInputs, comparison: Comparison) -> None:
        viewer = self.viewer
        width = comparison.before.shape[1]
        step = width + _GAP_PX
        for layer in (
            (self.before_layer.value, self.after_layer.value) if self.source.value == LAYERS else ()
        ):
            if layer is not None:
                layer.visible = False
        for widget in (self.before_intensity, self.after_intensity):
            if self.source.value == LAYERS and widget.value is not None:
                widget.value.visible = False
        upper = robust_limits(
            np.concatenate([comparison.before.ravel(), comparison.after.ravel()])
        )[1]
        unit = f" [{inputs.unit}]" if inputs.unit else ""
        # The panels take the pixel size of a named-ROI layer already there (the bedside's), so
        # its regions, in map pixels, lie on the before panel.
        existing = roi_layer(viewer)
        scale = (1.0, 1.0) if existing is None else tuple(float(v) for v in existing.scale[-2:])
        self._panel_scale = scale
        panels = (
            ("before", comparison.before, inputs.before_intensity, 0),
            ("after", comparison.after, inputs.after_intensity, step),
        )
        for name, image, intensity, offset in panels:
            if intensity is not None:
                _put_image(
                    viewer,
                    f"compare: {name} intensity",
                    intensity,
                    colormap=RAW_COLORMAP,
                    contrast_limits=robust_limits(intensity),
                    scale=scale,
                    translate=(0, offset * scale[1]),
                )
            _put_image(
                viewer,
                f"compare: {name} perfusion{unit}",
                image,
                colormap=PERFUSION_COLORMAP,
                contrast_limits=(0.0, upper),
                scale=scale,
                translate=(0, offset * scale[1]),
                opacity=0.7 if intensity is not None else 1.0,
                blending="translucent" if intensity is not None else "translucent_no_depth",
                metadata={"unit": inputs.unit},
            )
        change = _put_image(
            viewer,
            "compare: change [%]",
            comparison.percent_change,
            colormap=CHANGE_COLORMAP,
            contrast_limits=symmetric_limits(comparison.percent_change),
            scale=scale,
            translate=(0, 2 * step * scale[1]),
            metadata={"unit": "%"},
        )
        change.colorbar.visible = True
        self._titles(step, scale, registered=comparison.registration is not None)
        rois = ensure_roi_layer(viewer, like=viewer.layers[f"compare: before perfusion{unit}"])
        if rois is not self._roi_layer:
            rois.events.data.connect(self.update_table)
            self._roi_layer = rois
        viewer.layers.move(viewer.layers.index(rois), len(viewer.layers) - 1)
        viewer.layers.selection.active = rois
        viewer.reset_view()

    def _titles(self, step: int, scale: tuple[float, ...], *, registered: bool) -> None:
        coords = np.array([[-4.0, step * i + 4.0] for i in range(3)])
        text = {
            "string": ["before", "after (registered)" if registered else "after", "change %"],
            "color": "white",
            "size": 10,
            "anchor": "lower_left",
        }
        if "compare: titles" in self.viewer.layers:
            titles = self.viewer.layers["compare: titles"]
            titles.data = coords
            titles.scale = scale
            titles.text = text
            return
        self.viewer.add_points(
            coords,
            name="compare: titles",
            size=0.1,
            scale=scale,
            text=text,
            face_color="transparent",
            border_width=0,
        )

    # ------------------------------------------------------------------ ROI table
    def roi_masks(self) -> tuple[dict[str, np.ndarray], str | None]:
        """The named regions as masks on the before map, and the reference's name.

        Polygons and rectangles are rasterised by :func:`lsci.analysis.roi.polygon_mask` (the
        rule ``lsci compare --roi`` uses), other shapes by napari. The region named
        ``healthy skin`` is the reference, as in the bedside workspace.
        """
        assert self.comparison is not None
        layer = roi_layer(self.viewer)
        if layer is None:
            return {}, None
        masks = _shape_masks(layer, self.comparison.before.shape)
        rois = {name: mask for name, mask in zip(shape_names(layer), masks, strict=True) if name}
        return rois, REFERENCE_NAME if REFERENCE_NAME in rois else None

    def update_table(self, _event: Any = None) -> None:
        """Recompute the ROI statistics for the current shapes and show them."""
        if self.comparison is None:
            return
        try:
            rois, reference = self.roi_masks()
            self.comparison, self.masks = with_rois(self.comparison, rois, reference)
        except ValueError as exc:
            notify_error(exc)
            return
        self._show_areas()
        rows = table_rows(self.comparison)
        # All three keys: magicgui reads a dict without "index" as {column: values}.
        self.table.value = {
            "data": rows,
            "index": [str(i + 1) for i in range(len(rows))],
            "columns": list(TABLE_COLUMNS),
        }

    def _show_areas(self) -> None:
        """The engine's hypoperfused areas: numbers in the widget, outlines in a Shapes layer."""
        assert self.comparison is not None
        self.areas.value = area_text(self.comparison)
        step = self.comparison.before.shape[1] + _GAP_PX
        outlines = area_outlines(self.comparison, step)
        if AREA_LAYER in self.viewer.layers:
            layer = self.viewer.layers[AREA_LAYER]
            layer.data = []
            layer.scale = self._panel_scale
        else:
            layer = self.viewer.add_shapes(
                name=AREA_LAYER,
                scale=self._panel_scale,
                edge_color=HYPOPERFUSED_COLOUR,
                face_color="transparent",
                edge_width=1.5,
            )
        if outlines:
            layer.add_polygons(outlines, edge_color=HYPOPERFUSED_COLOUR, edge_width=1.5)
        # Keep the regions on top, their layer active.
        rois = roi_layer(self.viewer)
        if rois is not None:
            self.viewer.layers.move(self.viewer.layers.index(rois), len(self.viewer.layers) - 1)
            self.viewer.layers.selection.active = rois

    # ------------------------------------------------------------------ export
    def export_csv(self, path: str | Path) -> Path:
        """Write the ROI table (all columns of :meth:`lsci.analysis.compare.Comparison.to_csv`)."""
        comparison = self._require_comparison()
        comparison.to_csv(path)
        return Path(path)

    def export_figure(self, path: str | Path) -> Path:
        """Write the figure ``lsci compare`` writes: before, after, % change and ROI bars (PNG)."""
        comparison = self._require_comparison()
        assert self.inputs is not None
        return export_figure(
            comparison, path, masks=self.masks, unit=self.inputs.unit, title=self.inputs.description
        )

    def _require_comparison(self) -> Comparison:
        if self.comparison is None:
            raise ValueError("nothing to export yet: compare first")
        return self.comparison

    def _export_csv_clicked(self) -> None:
        self._export(self.csv_path.value, self.export_csv)

    def _export_figure_clicked(self) -> None:
        self._export(self.figure_path.value, self.export_figure)

    def _export(self, path: Any, export: Any) -> None:
        try:
            if chosen_file(path) is None:
                raise ValueError("choose the file to export to")
            written = export(path)
        except Exception as exc:
            notify_error(exc)
            return
        self.status.value = f"wrote {written}"


def _compute(
    selected: CompareInputs | tuple[Path, str, str, float], register: bool
) -> tuple[CompareInputs, Comparison]:
    if isinstance(selected, CompareInputs):
        inputs = dataclasses.replace(
            selected,
            before=stack_mean(selected.before),
            after=stack_mean(selected.after),
            before_intensity=stack_mean(selected.before_intensity),
            after_intensity=stack_mean(selected.after_intensity),
        )
    else:
        path, start, end, seconds = selected
        return events_comparison(
            path, start_label=start, end_label=end, seconds=seconds, register=register
        )
    return inputs, compute_comparison(inputs, register=register)


def _shape_masks(layer: Any, shape: tuple[int, ...]) -> list[np.ndarray]:
    """One mask per shape of a Shapes layer, in the coordinates of a map of ``shape``."""
    if not len(layer.data):
        return []
    drawn = None
    masks = []
    for index, (kind, vertices) in enumerate(zip(layer.shape_type, layer.data, strict=True)):
        if kind in ("polygon", "rectangle"):
            masks.append(polygon_mask(np.asarray(vertices)[:, -2:], (shape[0], shape[1])))
        else:
            drawn = layer.to_masks(mask_shape=shape) if drawn is None else drawn
            masks.append(np.asarray(drawn[index], dtype=bool))
    return masks


def _put_image(viewer: Any, name: str, data: np.ndarray, **kwargs: Any) -> Any:
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        for key, value in kwargs.items():
            setattr(layer, key, value)
        return layer
    return viewer.add_image(data, name=name, **kwargs)


def _is_raw_frames(layer: Any) -> bool:
    """Whether a layer shows a recording's raw frames (the reader marks them)."""
    meta = layer.metadata
    return "lsci_product" in meta and meta["lsci_product"] is None
