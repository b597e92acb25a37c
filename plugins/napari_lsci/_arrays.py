"""Lazy array views of a recording file that napari can slice like NumPy arrays.

Each read opens the file, reads the slice and closes it again: napari then holds no HDF5
handle between reads, so a product set on screen can be replaced by a new run (and a file being
recorded is read as it grows).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lsci.recording import RecordingWarning, open_recording

__all__ = ["RecordingArray"]


class RecordingArray:
    """The raw frames, or one derived product, of a recording, read on demand.

    Parameters
    ----------
    path : str or pathlib.Path
        The recording.
    product : str, optional
        Name of a derived product as :attr:`lsci.recording.Recording.derived` lists it
        (``"<set>/perfusion"``, or a plain name for the newest); ``None`` for the raw frames.

    Attributes
    ----------
    shape, dtype, ndim, size
        As for a NumPy array, fixed when the view is made.

    Raises
    ------
    lsci.recording.RecordingError
        When the file is not a readable recording.
    KeyError
        When ``product`` is not stored in it.
    """

    def __init__(self, path: str | Path, product: str | None = None) -> None:
        self.path = Path(path)
        self.product = product
        with open_recording(self.path) as recording:
            source = self._source(recording)
            self.shape: tuple[int, ...] = tuple(source.shape)
            self.dtype: np.dtype[Any] = np.dtype(source.dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))

    def _source(self, recording: Any) -> Any:
        if self.product is None:
            return recording.frames
        with warnings.catch_warnings():
            # Unusable products were reported when the layers were made; not at every read.
            warnings.simplefilter("ignore", RecordingWarning)
            return recording.product(self.product)

    def __getitem__(self, key: Any) -> np.ndarray:
        with open_recording(self.path) as recording:
            return np.asarray(self._source(recording)[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[:]
        return data if dtype is None else data.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        what = "frames" if self.product is None else repr(self.product)
        return f"RecordingArray({self.path.name}, {what}, shape={self.shape}, dtype={self.dtype})"
