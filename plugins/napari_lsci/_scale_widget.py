"""Scale widget: measure a recording's pixel size on the skin with a ruler drawn in the viewer.

The user draws a line over something of known length (a ruler, two skin marks) and types that
length; :func:`lsci.analysis.scale.save_scale` stores the scale beside the recording, where
`lsci compare`, the bedside and the study read it. Nothing is computed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton

from lsci.analysis.scale import PixelScale, save_scale
from napari_lsci._ui import fit_to_dock, image_layers, notify_error

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["RULER_LAYER", "ScaleWidget"]

#: Name of the Shapes layer the ruler is drawn in.
RULER_LAYER = "ruler"


class ScaleWidget(Container):
    """Store a recording's scale from a line of known length drawn over its frames.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.

    Attributes
    ----------
    layer : magicgui ComboBox
        Layers read from recordings.
    distance_mm : magicgui FloatSpinBox
        The drawn line's length on the skin, millimetres.
    draw_button, save_button : magicgui PushButton
        Call :meth:`draw` and :meth:`save`.
    status : magicgui Label
        The stored scale, or what is missing.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.layer = ComboBox(label="Recording layer", choices=self._layer_choices)
        self.distance_mm = FloatSpinBox(
            label="Length (mm)", value=10.0, min=0.01, max=1000.0, step=0.5
        )
        self.draw_button = PushButton(text="Draw ruler")
        self.save_button = PushButton(text="Save scale")
        self.status = Label(value="Draw a line over a ruler, give its length, save.")
        self.extend([self.layer, self.distance_mm, self.draw_button, self.save_button, self.status])
        self.draw_button.clicked.connect(self.draw)
        self.save_button.clicked.connect(self._save_clicked)
        fit_to_dock(self)

    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in image_layers(self.viewer)
            if layer.metadata.get("lsci_path")
        ]

    def draw(self) -> Any:
        """Add (or select) the ruler layer in line-drawing mode."""
        if RULER_LAYER not in self.viewer.layers:
            self.viewer.add_shapes(
                name=RULER_LAYER, shape_type="line", edge_color="yellow", edge_width=2
            )
        ruler = self.viewer.layers[RULER_LAYER]
        self.viewer.layers.selection.active = ruler
        ruler.mode = "add_line"
        return ruler

    def ruler_points(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The last drawn line's ends as ``(row, col)`` pixels of the recording's frames.

        Raises
        ------
        ValueError
            When no recording layer is chosen or no line is drawn.
        """
        layer = self.layer.value
        if layer is None:
            raise ValueError("choose the recording layer the ruler is drawn on")
        if RULER_LAYER not in self.viewer.layers or not self.viewer.layers[RULER_LAYER].data:
            raise ValueError("draw a line over the ruler first (Draw ruler)")
        ruler = self.viewer.layers[RULER_LAYER]
        ends = []
        for vertex in np.asarray(ruler.data[-1])[[0, -1]]:
            world = ruler.data_to_world(vertex)
            # The line is drawn in the displayed plane: complete it with the frame shown.
            point = list(self.viewer.dims.point)
            point[-len(world) :] = list(world)
            pixel = layer.world_to_data(point)
            ends.append((float(pixel[-2]), float(pixel[-1])))
        return ends[0], ends[1]

    def save(self) -> PixelScale:
        """Store the scale measured by the ruler beside the chosen recording."""
        p0, p1 = self.ruler_points()
        path = Path(self.layer.value.metadata["lsci_path"])
        scale = save_scale(path, p0, p1, float(self.distance_mm.value))
        self.status.value = (
            f"{scale.pixel_size_mm:.4g} mm per pixel, stored beside {path.name} ({scale.source})"
        )
        return scale

    def _save_clicked(self) -> None:
        try:
            self.save()
        except Exception as exc:  # shown to the user as one line, never a traceback
            self.status.value = str(exc)
            notify_error(exc)
