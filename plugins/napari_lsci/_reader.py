"""napari reader for lsci recordings: raw frames and derived maps as lazy image layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsci.recording import Recording, is_recording_file, open_recording
from napari_lsci._arrays import RecordingArray
from napari_lsci._display import (
    RAW_COLORMAP,
    frames_between_maps,
    object_pixel_um,
    product_style,
    robust_limits,
    unit_of,
)

__all__ = ["get_reader", "is_recording", "read_recording", "recording_layers"]

LayerData = tuple[Any, dict[str, Any], str]
#: Maps read to choose contrast limits: enough for robust percentiles, cheap on big files.
_SAMPLE_MAPS = 8
_SUFFIXES = (".h5", ".hdf5")


def is_recording(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file carrying the lsci recording marker (never raises).

    Recordings still being written, or whose writer crashed, are claimed too: they open as
    :func:`lsci.recording.open_recording` opens them.
    """
    path = Path(path)
    return path.suffix.lower() in _SUFFIXES and is_recording_file(path)


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader hook: :func:`read_recording` for lsci recordings, ``None`` otherwise.

    Parameters
    ----------
    path : str or list of str
        What napari was asked to open.

    Returns
    -------
    callable or None
        ``None`` for other files (another plugin may read them), including HDF5 files that are
        not lsci recordings.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or not all(is_recording(p) for p in paths):
        return None
    return read_recording


def read_recording(path: str | Sequence[str]) -> list[LayerData]:
    """All layers of one or more recordings (see :func:`recording_layers`)."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    layers: list[LayerData] = []
    for item in paths:
        layers += recording_layers(item)
    return layers


def recording_layers(
    path: str | Path, *, raw: bool = True, products: Sequence[str] | None = None
) -> list[LayerData]:
    """Layer data tuples for a recording: raw frames first, then its derived maps.

    World axis 0 is the raw frame index: each derived map is placed at the first frame it was
    computed from, so the frame slider shows matching raw frames and maps. With known optics
    (sensor pixel size and magnification) the two image axes are in micrometres on the skin,
    so napari's scale bar shows real lengths.

    Parameters
    ----------
    path : str or pathlib.Path
        The recording.
    raw : bool
        Include the raw frames.
    products : sequence of str, optional
        Only these derived products, by the names :attr:`lsci.recording.Recording.derived`
        gives them (default: all of them: those of every product set beside the recording,
        ``"<set>/<product>"``, and those older lsci versions stored inside it).

    Returns
    -------
    list of tuple
        ``(data, kwargs, "image")``; ``data`` reads lazily from the file. Each layer's
        metadata holds ``lsci_path``, ``lsci_product`` (``None`` for raw frames), ``unit``,
        ``complete`` (``False`` for a product whose computation did not finish, also named
        "(incomplete)"; for raw frames, whether the writer closed the file), ``events`` (a
        list of dicts with label, time_s and frame_index) and ``provenance``.

    Raises
    ------
    lsci.recording.RecordingError
        When the file cannot be read as a recording.
    """
    path = Path(path)
    layers: list[LayerData] = []
    with open_recording(path) as recording:
        pixel_um = object_pixel_um(recording.metadata)
        events = [
            {"label": e.label, "time_s": e.time_s, "frame_index": e.frame_index}
            for e in recording.events
        ]
        common = _common_kwargs(pixel_um)
        n_frames = len(recording)
        if raw and n_frames:
            layers.append(_raw_layer(recording, common, events))
        derived = recording.derived
        plain_names = [name.rsplit("/", 1)[-1] for name in derived]
        for name, product in derived.items():
            if products is not None and name not in products:
                continue
            info = product.info
            if len(info.shape) not in (2, 3) or info.dtype.kind not in "biuf":
                continue
            sample = _sample(product, info.shape)
            # A product set's product is "<set>/<product>": style and unit go by the product.
            plain = name.rsplit("/", 1)[-1]
            unit = unit_of(plain, info.parameters)
            kwargs = dict(common)
            if len(info.shape) == 3:
                kwargs["scale"] = (frames_between_maps(info, n_frames), *common["scale"])
                if "units" in common:
                    kwargs["units"] = ("", *common["units"])
            else:
                kwargs.pop("axis_labels")
            kwargs |= product_style(plain, info.parameters, sample)
            # The product's plain name, with its set's name when another set has it too.
            label = (
                plain if plain_names.count(plain) == 1 else f"{plain} ({name[: -len(plain) - 1]})"
            )
            kwargs["name"] = (
                f"{path.stem} {label}"
                + (f" [{unit}]" if unit else "")
                + ("" if info.complete else " (incomplete)")
            )
            kwargs["metadata"] = {
                "lsci_path": str(path),
                "lsci_product": name,
                "unit": unit,
                "complete": info.complete,
                "events": events,
                "provenance": {
                    "algorithm": info.algorithm,
                    "parameters": dict(info.parameters),
                    "source": info.source,
                    "lsci_version": info.lsci_version,
                    "created_utc": info.created_utc,
                },
            }
            layers.append((RecordingArray(path, name), kwargs, "image"))
    return layers


def _common_kwargs(pixel_um: float | None) -> dict[str, Any]:
    """Image-axis scale (and units, when the pixel size on the skin is known) of every layer."""
    if pixel_um is None:
        return {"scale": (1.0, 1.0), "axis_labels": ("frame", "y", "x")}
    return {
        "scale": (pixel_um, pixel_um),
        "units": ("um", "um"),
        "axis_labels": ("frame", "y", "x"),
    }


def _raw_layer(
    recording: Recording, common: dict[str, Any], events: list[dict[str, Any]]
) -> LayerData:
    first = recording.frames[0]
    lower, upper = robust_limits(first, low=0.5, high=99.5)
    meta = recording.metadata
    kwargs = dict(common)
    kwargs["scale"] = (1.0, *common["scale"])
    if "units" in common:
        kwargs["units"] = ("", *common["units"])
    kwargs |= {
        "name": f"{recording.path.stem} raw [ADU]",
        "colormap": RAW_COLORMAP,
        "contrast_limits": (lower, upper),
        "metadata": {
            "lsci_path": str(recording.path),
            "lsci_product": None,
            "unit": "ADU",
            "complete": recording.closed_cleanly,
            "events": events,
            "provenance": {
                "exposure_s": meta.exposure_s,
                "frame_rate_hz": meta.frame_rate_hz,
                "achieved_fps": recording.achieved_fps,
                "dropped_frames": recording.dropped_frames,
                "camera_model": meta.camera_model,
            },
        },
    }
    return RecordingArray(recording.path), kwargs, "image"


def _sample(product: Any, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 2:
        return np.asarray(product[()])
    picks = np.unique(np.linspace(0, shape[0] - 1, min(shape[0], _SAMPLE_MAPS)).astype(int))
    return np.stack([np.asarray(product[int(i)]) for i in picks])
