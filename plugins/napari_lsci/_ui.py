"""Small pieces the widgets share: adding layers, error notifications, image-layer choices, and
keeping a dock within the screen."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from magicgui.widgets import Container as MagicContainer
from magicgui.widgets import Label as MagicLabel
from napari.layers import Image, Layer
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QAbstractScrollArea,
    QComboBox,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QWidget,
)
from superqt.utils import ensure_main_thread

from lsci.errors import LsciError

__all__ = [
    "NewestOnly",
    "chosen_file",
    "fit_to_dock",
    "image_layers",
    "notify_error",
    "put_layers",
    "show_status",
]

#: Characters a combo box or text field asks room for; longer entries scroll or elide.
_FIELD_CHARS = 12


def chosen_file(value: Any) -> Path | None:
    """The file a FileEdit names, ``None`` when it is empty.

    An empty FileEdit reports the working directory (or ``.``): a folder is never a file
    choice here.
    """
    if value is None or str(value) in ("", "."):
        return None
    path = Path(value)
    return None if path.is_dir() else path


def notify_error(exc: BaseException) -> None:
    """Show lsci's message as a napari error notification.

    lsci's own errors and invalid parameters (``ValueError``/``TypeError``, ``KeyError``) carry
    a message written for the user, which is shown as it is; anything else is prefixed with its
    type so it can be reported.
    """
    if isinstance(exc, LsciError | ValueError | TypeError):
        message = str(exc)
    elif isinstance(exc, KeyError):
        message = str(exc.args[0]) if exc.args else repr(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
    show_error(message)


def put_layers(viewer: Any, layer_data: Iterable[tuple[Any, dict[str, Any], str]]) -> list[Layer]:
    """Add layer data tuples to the viewer, replacing the data of same-named layers.

    Replacing keeps the user's display settings and position in the layer list when a map is
    recomputed.
    """
    layers: list[Layer] = []
    for data, kwargs, layer_type in layer_data:
        name = kwargs.get("name")
        if name is not None and name in viewer.layers:
            layer = viewer.layers[name]
            layer.data = data
            for key in ("scale", "translate", "metadata", "contrast_limits"):
                if key in kwargs:
                    setattr(layer, key, kwargs[key])
        else:
            layer = viewer.add_layer(Layer.create(data, kwargs, layer_type))
        layers.append(layer)
    return layers


def image_layers(viewer: Any) -> list[Image]:
    """The viewer's image layers, in layer-list order."""
    return [layer for layer in viewer.layers if isinstance(layer, Image)]


def fit_to_dock(widget: Any) -> Any:
    """Keep a widget's text from setting its dock's width.

    Message labels (magicgui ``Label`` widgets) wrap their text and take the width the layout
    gives them, so a long status or error message no longer widens the dock and pushes the
    window off the screen; other labels wrap. Combo boxes and text fields ask for room for a
    few characters only, and tables for none: they show the rest when opened or scrolled.
    Applied to the widget (a magicgui widget or a Qt widget) and all its children, once,
    after they are built.
    """
    native: QWidget = getattr(widget, "native", widget)
    messages = {id(w.native) for w in _magicgui_labels(widget)}
    for label in native.findChildren(QLabel):
        label.setWordWrap(True)
        if id(label) in messages:
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setMinimumWidth(0)
    for combo in native.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(_FIELD_CHARS)
    for field in native.findChildren(QLineEdit):
        field.setMinimumWidth(0)
        field.setSizePolicy(QSizePolicy.Policy.Ignored, field.sizePolicy().verticalPolicy())
    for table in native.findChildren(QAbstractScrollArea):
        table.setSizePolicy(QSizePolicy.Policy.Ignored, table.sizePolicy().verticalPolicy())
        table.setMinimumWidth(0)
    return widget


def _magicgui_labels(widget: Any) -> list[Any]:
    """The magicgui ``Label`` widgets in a magicgui container tree."""
    if isinstance(widget, MagicLabel):
        return [widget]
    if isinstance(widget, MagicContainer):
        return [label for child in widget for label in _magicgui_labels(child)]
    return []


def show_status(label: Any, text: str) -> None:
    """Show ``text`` in a magicgui Label, wrapped, with the whole text as its tooltip.

    A status that arrives after its widget was closed (an acquisition's last statistics) is
    dropped: Qt has deleted the label.
    """
    try:
        label.value = text
        label.tooltip = text
    except RuntimeError as exc:
        if "has been deleted" not in str(exc):
            raise


class NewestOnly:
    """Hand values from any thread to a GUI-thread callback, the newest only.

    A value arriving while the previous one still waits for the GUI thread replaces it, so a
    busy GUI shows the newest live map a little later instead of falling further and further
    behind a queue of old ones.

    Parameters
    ----------
    callback : callable
        Called in the GUI thread with the newest value.
    """

    def __init__(self, callback: Callable[[Any], None]) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._value: Any = None
        self._queued = False

    def __call__(self, value: Any) -> None:
        with self._lock:
            self._value = value
            if self._queued:
                return
            self._queued = True
        self._deliver()

    @ensure_main_thread
    def _deliver(self) -> None:
        with self._lock:
            value, self._value, self._queued = self._value, None, False
        try:
            self._callback(value)
        except RuntimeError as exc:
            # A value that arrives after its widget was closed has nowhere to go.
            if "has been deleted" not in str(exc):
                raise
