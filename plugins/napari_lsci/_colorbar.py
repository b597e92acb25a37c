"""A colour bar with its unit, and as % of healthy skin: an image (for videos) and a widget.

napari's layer colour bar shows the values without a title; this one says what they are: the
calibrated unit on the left axis and, once a healthy reference region is known, the same
colours as % of healthy skin on the right axis. The colormap is lsci's
(:mod:`lsci.viz.display`), so it matches the layer and the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy

from lsci.viz.display import PERFUSION_COLORMAP

__all__ = ["ColourBar", "ColourBarWidget", "colourbar_rgb"]

#: Healthy skin's level changes a little from map to map: the % axis is redrawn only when it
#: moved by more than this fraction.
_REDRAW_FRACTION = 0.02


@dataclass(frozen=True)
class ColourBar:
    """What a colour bar shows.

    Attributes
    ----------
    lower, upper : float
        Colour limits in the map's unit.
    unit : str
        What the map shows, with its unit, e.g. ``"1/τc (1/s)"``.
    reference_level : float or None
        The value that is 100 % of healthy skin (None: no % axis).
    colormap : str
        A matplotlib colormap name.
    """

    lower: float
    upper: float
    unit: str
    reference_level: float | None = None
    colormap: str = PERFUSION_COLORMAP

    @property
    def title(self) -> str:
        """The unit axis' title, e.g. ``"perfusion 1/τc (1/s)"``."""
        return f"perfusion {self.unit}" if self.unit else "perfusion"

    @property
    def percent_title(self) -> str | None:
        """The % axis' title, None without a (positive) reference."""
        level = self.reference_level
        return None if level is None or not level > 0 else "% of healthy skin"

    def close_to(self, other: ColourBar | None) -> bool:
        """Whether ``other`` draws the same (limits and unit equal, reference within 2 %)."""
        if other is None or (self.lower, self.upper, self.unit, self.colormap) != (
            other.lower,
            other.upper,
            other.unit,
            other.colormap,
        ):
            return False
        a, b = self.reference_level, other.reference_level
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=_REDRAW_FRACTION)


def colourbar_rgb(bar: ColourBar, *, width_px: int = 150, height_px: int = 360) -> npt.NDArray:
    """The colour bar as an RGB image, ``(height_px, width_px, 3)`` uint8.

    Left axis: the map's unit; right axis (with a reference): % of healthy skin.
    """
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0.42, 0.04, 0.16, 0.92))
    gradient = np.linspace(0.0, 1.0, 256)[:, None]
    axes.imshow(
        gradient,
        aspect="auto",
        cmap=bar.colormap,
        origin="lower",
        extent=(0.0, 1.0, bar.lower, bar.upper),
    )
    axes.set_xticks([])
    axes.tick_params(labelsize=7)
    axes.yaxis.set_label_position("left")
    axes.set_ylabel(bar.title, fontsize=8)
    if bar.percent_title is not None and bar.reference_level is not None:
        level = bar.reference_level
        right = axes.secondary_yaxis(
            "right", functions=(lambda v: 100.0 * v / level, lambda p: p * level / 100.0)
        )
        right.tick_params(labelsize=7)
        right.set_ylabel(bar.percent_title, fontsize=8)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[:, :, :3])


class ColourBarWidget(QLabel):
    """The colour bar of the live or recorded perfusion map, in a dock.

    Its tooltip and accessible name state the unit and the limits, and :attr:`bar` what it
    shows.
    """

    def __init__(self, parent: object = None) -> None:
        super().__init__(parent)  # type: ignore[arg-type]
        self.bar: ColourBar | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(170)
        self.setText("colour bar: waiting for a map")

    def show_bar(self, bar: ColourBar) -> None:
        """Draw ``bar`` (nothing is redrawn when it looks the same as the one shown)."""
        if bar.close_to(self.bar):
            return
        self.bar = bar
        image = colourbar_rgb(bar, width_px=220, height_px=170)
        height, width, _ = image.shape
        qimage = QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888)
        self.setPixmap(QPixmap.fromImage(qimage.copy()))
        text = f"{bar.title}: {bar.lower:.4g} to {bar.upper:.4g}"
        if bar.reference_level is not None:
            text += f"; 100 % of healthy skin = {bar.reference_level:.4g}"
        self.setToolTip(text)
        self.setAccessibleName(text)
