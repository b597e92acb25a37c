"""Writing large derived products piece by piece, while other processes read the recording.

:func:`lsci.recording.save_derived` stores an array that is already in memory. Processing a
long recording produces its maps chunk by chunk instead: :class:`DerivedSink` creates the
product datasets with their provenance first, marked ``complete = 0``, fills them while the
file is in SWMR mode (so Dask workers or a viewer in other processes can read the raw frames
meanwhile), and marks them ``complete = 1`` only once every chunk is written. An interrupted run
therefore leaves products that say they are incomplete; running again with the same parameters
redoes them, and a finished product with the same provenance is recognised and kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from lsci.recording import layout
from lsci.recording._h5 import check_name, open_for_editing, write_error
from lsci.recording.derived import (
    canonical_parameters,
    provenance_conflict,
    read_info,
    same_provenance,
    write_provenance,
)
from lsci.recording.errors import RecordingStateError
from lsci.recording.writer import LIBVER

__all__ = ["DerivedSink"]


class DerivedSink:
    """Fill derived products ``/derived/<name>`` chunk by chunk.

    Parameters
    ----------
    path : str or Path
        A closed lsci recording.
    shapes : dict of str to tuple of int
        The products to write and their full shapes (first axis: maps).
    algorithm : str
        What computes them.
    parameters : dict
        Every parameter that changes the result (JSON-representable).
    source : str
        HDF5 path of the input dataset.
    dtype : numpy dtype
        Data type of every product. Default float32.
    overwrite : bool
        Replace finished products of the same names whose provenance differs.
    checksum : bool
        Fletcher-32 checksums on the chunks.

    Attributes
    ----------
    complete : bool
        True when every product already existed, finished, with this provenance: nothing needs
        to be computed.

    Raises
    ------
    DerivedProductExistsError
        When a finished product of one of these names has a different provenance and
        ``overwrite`` is false.

    Examples
    --------
    >>> with DerivedSink("run.h5", {"contrast": (10, 64, 64)}, algorithm="demo",
    ...                  parameters={"window": 7}) as sink:  # doctest: +SKIP
    ...     if not sink.complete:
    ...         sink.write("contrast", 0, maps)
    """

    def __init__(
        self,
        path: str | Path,
        shapes: Mapping[str, tuple[int, ...]],
        *,
        algorithm: str,
        parameters: Mapping[str, Any],
        source: str = "/" + layout.FRAMES,
        dtype: npt.DTypeLike = np.float32,
        overwrite: bool = False,
        checksum: bool = True,
    ) -> None:
        self.path = Path(path)
        self._shapes = {check_name("derived product", n): tuple(s) for n, s in shapes.items()}
        self._algorithm = algorithm
        self._parameters = canonical_parameters(parameters)
        self._source = "/" + source.lstrip("/")
        self._dtype = np.dtype(dtype)
        self._overwrite = overwrite
        self._checksum = checksum
        self._handle: h5py.File | None = None
        self.complete = False

    def __enter__(self) -> DerivedSink:
        with open_for_editing(self.path) as handle:
            try:
                self.complete = self._prepare(handle)
            except OSError as exc:
                raise write_error(self.path, exc, "creating derived products") from None
        if not self.complete:
            try:
                self._handle = h5py.File(self.path, "r+", libver=LIBVER)
                self._handle.swmr_mode = True
            except OSError as exc:
                raise write_error(self.path, exc, "opening for writing derived products") from None
        return self

    def _prepare(self, handle: h5py.File) -> bool:
        """Create (or recognise) every product; True when all are finished already."""
        if not isinstance(handle.get(self._source), h5py.Dataset):
            raise ValueError(f"source={self._source!r} is invalid: no such dataset in {self.path}")
        group = handle.require_group(layout.DERIVED)
        finished = []
        for name, shape in self._shapes.items():
            if name in group:
                info = read_info(group[name])
                same = same_provenance(
                    info, self._algorithm, self._parameters, self._source, shape, self._dtype
                )
                if same and info.complete:
                    finished.append(name)
                    continue
                if info.complete and not same and not self._overwrite:
                    raise provenance_conflict(self.path, info)
                del group[name]  # unfinished (interrupted run) or to be replaced
            self._create(group, name, shape)
        return len(finished) == len(self._shapes)

    def _create(self, group: h5py.Group, name: str, shape: tuple[int, ...]) -> None:
        dataset = group.create_dataset(
            name,
            shape=shape,
            dtype=self._dtype,
            chunks=(1, *shape[1:]) if len(shape) >= 2 else True,
            fletcher32=self._checksum,
            fillvalue=np.nan if self._dtype.kind == "f" else 0,
        )
        write_provenance(dataset, self._algorithm, self._parameters, self._source)
        dataset.attrs[layout.DERIVED_COMPLETE] = np.int8(0)

    def read_frames(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Raw frames ``[start, stop)`` of the source dataset, read through this sink's handle."""
        handle = self._require_open()
        return np.asarray(handle[self._source][start:stop])

    def write(self, name: str, first: int, data: npt.ArrayLike) -> None:
        """Write ``data`` into product ``name`` starting at map ``first``; flushes it."""
        handle = self._require_open()
        if name not in self._shapes:
            raise ValueError(f"{name!r} is not one of this sink's products {list(self._shapes)}")
        array = np.asarray(data)
        dataset = handle[layout.DERIVED][name]
        if array.shape[1:] != dataset.shape[1:] or first + len(array) > dataset.shape[0]:
            raise ValueError(
                f"maps of shape {array.shape} at {first} do not fit {name!r} of shape "
                f"{dataset.shape}"
            )
        try:
            dataset[first : first + len(array)] = array
            dataset.flush()
        except OSError as exc:
            raise write_error(self.path, exc, f"writing derived product {name!r}") from None

    def _require_open(self) -> h5py.File:
        if self._handle is None:
            raise RecordingStateError(self.path, "the derived-product sink is not open")
        return self._handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        if exc_type is not None:
            return  # the products stay marked incomplete; a rerun redoes them
        with open_for_editing(self.path) as handle:
            for name in self._shapes:
                handle[layout.DERIVED][name].attrs[layout.DERIVED_COMPLETE] = np.int8(1)
        self.complete = True
