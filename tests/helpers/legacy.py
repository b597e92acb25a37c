"""Recordings as lsci wrote them before product sets: derived products inside ``/derived``.

lsci still reads them (``docs/format.md``); nothing in lsci writes them any more, so tests make
them here, with plain h5py, the way older versions did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt


def write_legacy_product(
    path: Path,
    name: str,
    data: npt.ArrayLike,
    *,
    algorithm: str = "spatial_contrast",
    parameters: dict[str, Any] | None = None,
    complete: bool = True,
) -> None:
    """Store ``data`` as ``/derived/<name>`` of the closed recording ``path``, with provenance."""
    array = np.asarray(data)
    params = parameters or {}
    with h5py.File(path, "r+") as handle:
        group = handle.require_group("derived")
        dataset = group.create_dataset(
            name,
            data=array,
            chunks=(1, *array.shape[1:]) if array.ndim >= 3 else True,
            fletcher32=True,
        )
        dataset.attrs["algorithm"] = algorithm
        dataset.attrs["parameters"] = json.dumps(params, sort_keys=True)
        dataset.attrs["source"] = "/raw/frames"
        dataset.attrs["lsci_version"] = "0.1.0"
        dataset.attrs["created_utc"] = "2026-01-01T00:00:00.000000Z"
        dataset.attrs["complete"] = np.int8(1 if complete else 0)
        for key, value in params.items():
            if isinstance(value, str | int | float | bool):
                dataset.attrs[key] = value
