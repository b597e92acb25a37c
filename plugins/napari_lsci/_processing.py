"""What the Process widget runs (Qt-free): lsci processing of a file or of an in-memory stack."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lsci.processing.process import (
    ProcessingSettings,
    maps_per_chunk_for,
    plan_chunks,
    process_chunk,
    process_recording,
)
from lsci.recording import open_recording
from napari_lsci._display import product_style, unit_of
from napari_lsci._reader import LayerData, recording_layers

__all__ = ["beta_calibrations", "process_file", "process_stack", "stack_maps"]

Progress = Callable[[int, int], None]
#: Memory budget of one chunk of an in-memory stack (raw frames as float32 plus its maps).
_CHUNK_BYTES = 256 << 20


def beta_calibrations(path: str | Path) -> dict[str, float]:
    """The β values stored in a recording's calibrations, by calibration name.

    A calibration counts when it has a numeric ``beta`` attribute in (0, 1] (as
    :class:`lsci.calibration.BetaCalibration` stores it).
    """
    found: dict[str, float] = {}
    with open_recording(path) as recording:
        for name, calibration in recording.calibrations.items():
            value = calibration.attrs.get("beta")
            if isinstance(value, int | float | np.floating) and 0 < float(value) <= 1:
                found[name] = float(value)
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
    """Process a recording into its ``contrast`` and ``perfusion`` products and return their layers.

    Parameters
    ----------
    path : str or pathlib.Path
        A closed recording.
    settings : ProcessingSettings
        What to compute.
    overwrite : bool
        Replace stored products computed with other settings.
    progress : callable, optional
        ``progress(maps_done, maps_total)``, called from the computing thread.

    Returns
    -------
    list of tuple
        Layer data tuples of the stored products (see :func:`recording_layers`).

    Raises
    ------
    lsci.recording.RecordingError, ValueError
        As :func:`lsci.processing.process.process_recording`.
    """
    result = process_recording(path, settings, overwrite=overwrite, progress=progress)
    return recording_layers(path, raw=False, products=result.products)


def stack_maps(
    frames: Any, settings: ProcessingSettings, *, progress: Progress | None = None
) -> dict[str, np.ndarray]:
    """Contrast (and perfusion) maps of an in-memory stack of raw frames, chunk by chunk.

    Parameters
    ----------
    frames : (T, H, W) array_like
        Raw frames; a lazy array is read one chunk at a time.
    settings : ProcessingSettings
        What to compute.
    progress : callable, optional
        ``progress(maps_done, maps_total)`` after each chunk.

    Returns
    -------
    dict
        ``"contrast"`` and, unless the model is ``'none'``, ``"perfusion"``: (maps, H, W)
        float32.

    Raises
    ------
    ValueError
        When the data is not a 3-D stack or too short for one map.
    """
    shape = tuple(getattr(frames, "shape", np.shape(frames)))
    if len(shape) != 3:
        raise ValueError(
            f"the layer has shape {shape}: processing needs a (frames, height, width) stack of "
            "raw frames"
        )
    n_maps = settings.n_maps(shape[0])
    if n_maps == 0:
        raise ValueError(
            f"{shape[0]} frames are too few for one map ({settings.frames_per_map} frames per map)"
        )
    per_chunk = maps_per_chunk_for(shape[1:], settings, memory_bytes=_CHUNK_BYTES)
    parts: dict[str, list[np.ndarray]] = {"contrast": [], "perfusion": []}
    for chunk in plan_chunks(shape[0], settings, maps_per_chunk=per_chunk):
        raw = np.asarray(frames[chunk.frame_start : chunk.frame_stop])
        result = process_chunk(raw, chunk, settings)
        parts["contrast"].append(result.contrast)
        if result.perfusion is not None:
            parts["perfusion"].append(result.perfusion)
        if progress is not None:
            progress(chunk.stop_map, n_maps)
    return {name: np.concatenate(maps) for name, maps in parts.items() if maps}


def process_stack(
    frames: Any,
    settings: ProcessingSettings,
    *,
    name: str,
    scale: tuple[float, ...] | None = None,
    progress: Progress | None = None,
) -> list[LayerData]:
    """Layer data tuples of the maps of an in-memory stack (see :func:`stack_maps`).

    Parameters
    ----------
    frames : (T, H, W) array_like
        Raw frames.
    settings : ProcessingSettings
        What to compute.
    name : str
        Name of the source layer; the new layers are called ``"<name> perfusion [unit]"``.
    scale : tuple of float, optional
        Scale of the source layer: maps keep its pixel size and sit on its frame axis.
    progress : callable, optional
        As in :func:`stack_maps`.
    """
    maps = stack_maps(frames, settings, progress=progress)
    parameters: Mapping[str, Any] = settings.parameters()
    pixel = tuple(scale[-2:]) if scale is not None else (1.0, 1.0)
    layers: list[LayerData] = []
    for product, data in maps.items():
        unit = unit_of(product, parameters)
        kwargs: dict[str, Any] = {
            "name": f"{name} {product}" + (f" [{unit}]" if unit else ""),
            "scale": (float(settings.frames_between_maps), *pixel),
            "metadata": {
                "lsci_product": product,
                "unit": unit,
                "provenance": {
                    "algorithm": f"lsci.processing.process {settings.mode}",
                    "parameters": parameters,
                },
            },
        }
        kwargs |= product_style(product, parameters, data[:: max(1, math.ceil(len(data) / 8))])
        layers.append((data, kwargs, "image"))
    return layers
