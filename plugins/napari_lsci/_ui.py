"""Small pieces the widgets share: adding layers, error notifications, image-layer choices."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from napari.layers import Image, Layer
from napari.utils.notifications import show_error

from lsci.errors import LsciError

__all__ = ["chosen_file", "image_layers", "notify_error", "put_layers"]


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
