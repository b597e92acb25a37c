"""What the Process widget runs (Qt-free): the processing engine on a file or an in-memory stack.

The maps come from :mod:`lsci.processing` (:func:`lsci.processing.process_recording` for a
recording, :func:`lsci.processing.process_frames` for a layer's frames); this module only turns
them into layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lsci.calibration import BetaCalibration, CalibrationError
from lsci.processing import ProcessingSettings, process_frames, process_recording
from lsci.recording import load_calibration, open_recording
from napari_lsci._display import product_style
from napari_lsci._reader import LayerData, recording_layers

__all__ = ["beta_calibrations", "process_file", "process_stack"]

Progress = Callable[[int, int], None]


def beta_calibrations(path: str | Path) -> dict[str, float]:
    """The β values of the :class:`lsci.calibration.BetaCalibration` stored with a recording,
    by calibration name (calibrations of other kinds are left out)."""
    found: dict[str, float] = {}
    with open_recording(path) as recording:
        for name in recording.calibrations:
            try:
                found[name] = load_calibration(recording, BetaCalibration, name).beta
            except CalibrationError:
                continue
    return found


def exposure_of(path: str | Path) -> float | None:
    """The exposure time a recording's metadata gives, seconds (``None`` when unknown)."""
    with open_recording(path) as recording:
        return recording.metadata.exposure_s


def process_file(
    path: str | Path,
    settings: ProcessingSettings,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> list[LayerData]:
    """Process a recording into a product set beside it and return the layers of its maps.

    Parameters
    ----------
    path : str or pathlib.Path
        A recording (only read).
    settings : ProcessingSettings
        What to compute.
    overwrite : bool
        Recompute a product set stored with the same settings.
    progress : callable, optional
        ``progress(maps_done, maps_total)``, called from the computing thread.

    Returns
    -------
    list of tuple
        Layer data tuples of the stored products (see :func:`recording_layers`).

    Raises
    ------
    lsci.recording.RecordingError, ValueError
        As :func:`lsci.processing.process_recording`.
    """
    result = process_recording(path, settings, overwrite=overwrite, progress=progress)
    return recording_layers(path, raw=False, products=result.products)


def process_stack(
    frames: Any,
    settings: ProcessingSettings,
    *,
    name: str,
    scale: tuple[float, ...] | None = None,
    progress: Progress | None = None,
) -> list[LayerData]:
    """Layer data tuples of the maps of a stack of raw frames held in a layer.

    Parameters
    ----------
    frames : (T, H, W) array_like
        Raw frames; a lazy array is read one chunk at a time.
    settings : ProcessingSettings
        What to compute.
    name : str
        Name of the source layer; the new layers are called ``"<name> perfusion [unit]"``.
    scale : tuple of float, optional
        Scale of the source layer: maps keep its pixel size and sit on its frame axis.
    progress : callable, optional
        ``progress(maps_done, maps_total)`` after each chunk.

    Raises
    ------
    ValueError
        When the data is not a 3-D stack or too short for one map
        (:func:`lsci.processing.process_frames`).
    """
    result = process_frames(frames, settings, progress=progress)
    parameters: Mapping[str, Any] = result.parameters()
    model = result.settings.perfusion_model
    maps = {"contrast": (result.contrast, "K")}
    if result.perfusion is not None:
        maps["perfusion"] = (result.perfusion, model.label)
    pixel = tuple(scale[-2:]) if scale is not None else (1.0, 1.0)
    layers: list[LayerData] = []
    for product, (data, unit) in maps.items():
        kwargs: dict[str, Any] = {
            "name": f"{name} {product}" + (f" [{unit}]" if unit else ""),
            "scale": (float(settings.frames_between_maps), *pixel),
            "metadata": {
                "lsci_product": product,
                "unit": unit,
                "provenance": {
                    "algorithm": result.settings.algorithm,
                    "parameters": parameters,
                },
            },
        }
        kwargs |= product_style(product, parameters, data[:: max(1, math.ceil(len(data) / 8))])
        layers.append((data, kwargs, "image"))
    return layers
