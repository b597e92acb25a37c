"""Calibration objects (dark frame, β, gain...) stored as groups under ``/calibrations``.

The storage is generic: a calibration is a name, some arrays and some scalar or string
attributes (:func:`save_calibration`, :attr:`lsci.recording.Recording.calibrations`). The
calibration types of :mod:`lsci.calibration` describe themselves in that form
(``to_arrays_attrs`` / ``from_arrays_attrs``) and know nothing of files; this module stores and
loads them (:func:`store_calibration`, :func:`load_calibration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from numbers import Real
from typing import Any, Protocol, TypeVar

import h5py
import numpy as np

from lsci._version import __version__
from lsci.calibration.stored import BetaCalibration, CalibrationError, CameraNoise, DarkFrame
from lsci.recording._h5 import check_name, decode_attrs
from lsci.recording.errors import RecordingError
from lsci.recording.metadata import format_utc

#: A calibration type of :mod:`lsci.calibration`.
CalibrationT = TypeVar("CalibrationT", BetaCalibration, DarkFrame, CameraNoise)

#: Attributes the writer adds to every calibration group.
_RESERVED_ATTRS = ("created_utc", "lsci_version")


@dataclass(frozen=True)
class Calibration:
    """One stored calibration, loaded into memory.

    Attributes
    ----------
    name : str
        Its name (the group name under ``/calibrations``).
    arrays : dict of str to numpy.ndarray
        The arrays, by dataset name.
    attrs : dict
        The user attributes (str, int, float, bool or 1-D numeric arrays).
    created_utc : str
        When it was saved.
    lsci_version : str
        The lsci version that saved it.
    """

    name: str
    arrays: dict[str, np.ndarray] = field(repr=False)
    attrs: dict[str, Any]
    created_utc: str
    lsci_version: str


def check_calibration(
    name: object, arrays: object, attrs: object
) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """Validate a calibration before anything is written.

    Raises
    ------
    TypeError, ValueError
        When the name, an array or an attribute cannot be stored.
    """
    name = check_name("calibration", name)
    if not isinstance(arrays, Mapping) or not arrays:
        raise TypeError(f"arrays must be a non-empty dict of name to ndarray, got {arrays!r}")
    checked: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        check_name("calibration array", key)
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"calibration array {key!r} has dtype {array.dtype}: allowed are bool, integer "
                "and floating-point arrays"
            )
        checked[key] = array
    attrs = {} if attrs is None else attrs
    if not isinstance(attrs, Mapping):
        raise TypeError(f"attrs must be a dict, got {attrs!r}")
    clean: dict[str, Any] = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key or key in _RESERVED_ATTRS:
            raise ValueError(
                f"calibration attribute name {key!r} is invalid (reserved: {_RESERVED_ATTRS})"
            )
        clean[key] = _check_attr_value(key, value)
    return name, checked, clean


def _check_attr_value(key: str, value: object) -> Any:
    if isinstance(value, str | bool | np.bool_):
        return value
    if isinstance(value, Real):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        array = np.asarray(value)
        if array.ndim == 1 and array.dtype.kind in "biuf":
            return array
    raise TypeError(
        f"calibration attribute {key!r}={value!r} cannot be stored: allowed are str, bool, "
        "int, float and 1-D numeric sequences"
    )


def write_calibration(
    parent: h5py.Group,
    name: str,
    arrays: dict[str, np.ndarray],
    attrs: dict[str, Any],
    *,
    overwrite: bool,
    checksum: bool = True,
) -> None:
    """Write a validated calibration as a group under ``parent`` (the ``/calibrations`` group).

    Raises
    ------
    RecordingError
        When the name exists and ``overwrite`` is false.
    """
    if name in parent:
        if not overwrite:
            raise RecordingError(
                parent.file.filename,
                f"a calibration named {name!r} exists; pass overwrite=True to replace it",
            )
        del parent[name]
    group = parent.create_group(name)
    for key, array in arrays.items():
        # Checksums need a chunked layout; scalars cannot be chunked.
        filtered = checksum and array.ndim > 0 and array.size > 0
        group.create_dataset(
            key, data=array, fletcher32=filtered, chunks=True if filtered else None
        )
    for key, value in attrs.items():
        group.attrs[key] = value
    group.attrs["created_utc"] = format_utc(datetime.now(UTC))
    group.attrs["lsci_version"] = __version__


def read_calibration(group: h5py.Group) -> Calibration:
    """Load one calibration group into a :class:`Calibration`."""
    attrs = decode_attrs(group.attrs)
    created = str(attrs.pop("created_utc", ""))
    version = str(attrs.pop("lsci_version", ""))
    arrays = {
        key: np.asarray(item[()]) for key, item in group.items() if isinstance(item, h5py.Dataset)
    }
    return Calibration(
        name=group.name.rsplit("/", 1)[-1],
        arrays=arrays,
        attrs=attrs,
        created_utc=created,
        lsci_version=version,
    )


class _HasCalibrations(Protocol):
    @property
    def calibrations(self) -> Mapping[str, Calibration]: ...


def load_calibration(
    recording: _HasCalibrations, kind: type[CalibrationT], name: str | None = None
) -> CalibrationT:
    """Load a calibration of type ``kind`` from an open recording.

    Parameters
    ----------
    recording : lsci.recording.Recording
        The open recording.
    kind : type
        :class:`~lsci.calibration.BetaCalibration`, :class:`~lsci.calibration.DarkFrame` or
        :class:`~lsci.calibration.CameraNoise`.
    name : str, optional
        Calibration name; default ``kind.default_name``.

    Raises
    ------
    lsci.calibration.CalibrationError
        If the recording holds no calibration of that name, or one of another kind.

    Examples
    --------
    >>> with open_recording("run.h5") as rec:  # doctest: +SKIP
    ...     beta = load_calibration(rec, BetaCalibration)
    """
    key = kind.default_name if name is None else name
    stored = recording.calibrations
    if key not in stored:
        raise CalibrationError(
            f"the recording has no calibration named {key!r} (it has {sorted(stored)})"
        )
    found = stored[key]
    return kind.from_arrays_attrs(found.arrays, found.attrs, source=f"calibration {key!r}")
