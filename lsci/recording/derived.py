"""Derived products (contrast, perfusion, comparisons) stored under ``/derived`` with provenance.

Each product is one dataset ``/derived/<name>`` whose attributes say how it was made. Saving
again under the same name with the same provenance is recognised and writes nothing; different
provenance never overwrites silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from lsci._version import __version__
from lsci.recording import layout
from lsci.recording._h5 import (
    H5_WRITE_ERRORS,
    check_name,
    check_root,
    decode,
    open_for_editing,
    open_for_reading,
    write_error,
)
from lsci.recording.errors import DerivedProductExistsError, RecordingFormatError
from lsci.recording.metadata import format_utc
from lsci.recording.writer import compression_filter

#: Attributes written on every product; parameter names may not use them.
RESERVED_ATTRS = ("algorithm", "parameters", "source", "lsci_version", "created_utc")


@dataclass(frozen=True)
class DerivedInfo:
    """Provenance of one derived product.

    Attributes
    ----------
    name : str
        Dataset name under ``/derived``.
    algorithm : str
        What computed it, e.g. ``"spatial_contrast"``.
    parameters : dict
        The parameters, as stored (JSON).
    source : str
        HDF5 path of the dataset it was computed from, e.g. ``"/raw/frames"``.
    lsci_version : str
        The lsci version that saved it.
    created_utc : str
        When it was saved.
    shape : tuple of int
        Shape of the data.
    dtype : numpy.dtype
        Data type.
    complete : bool
        ``False`` while a product written piece by piece is unfinished (attribute
        ``complete = 0``); products written at once are complete.
    """

    name: str
    algorithm: str
    parameters: dict[str, Any]
    source: str
    lsci_version: str
    created_utc: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    complete: bool = True


@dataclass(frozen=True)
class SavedDerived:
    """What :func:`save_derived` did.

    Attributes
    ----------
    info : DerivedInfo
        The stored product (the existing one when nothing was written).
    written : bool
        ``False`` when an identical product (same algorithm, parameters, source, shape and
        dtype) was already there and was kept.
    """

    info: DerivedInfo
    written: bool


def canonical_parameters(parameters: Mapping[str, Any]) -> str:
    """Parameters as canonical JSON text (sorted keys), the form stored and compared.

    Raises
    ------
    TypeError, ValueError
        When ``parameters`` is not a dict of JSON-representable values (NaN is not).
    """
    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a dict, got {parameters!r}")
    for key in parameters:
        if not isinstance(key, str) or key in RESERVED_ATTRS:
            raise ValueError(f"parameter name {key!r} is invalid (reserved: {RESERVED_ATTRS})")
    try:
        return json.dumps(parameters, sort_keys=True, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"parameters cannot be stored as JSON: {exc}") from None


def _json_default(value: object) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{value!r} of type {type(value).__name__} is not JSON-representable")


def read_info(dataset: h5py.Dataset) -> DerivedInfo:
    """The provenance of a stored product.

    Raises
    ------
    RecordingFormatError
        When its provenance attributes are missing or unreadable.
    """
    attrs = dataset.attrs
    try:
        parameters = json.loads(decode(attrs["parameters"]))
        return DerivedInfo(
            name=dataset.name.rsplit("/", 1)[-1],
            algorithm=str(decode(attrs["algorithm"])),
            parameters=parameters,
            source=str(decode(attrs["source"])),
            lsci_version=str(decode(attrs.get("lsci_version", ""))),
            created_utc=str(decode(attrs.get("created_utc", ""))),
            shape=tuple(dataset.shape),
            dtype=dataset.dtype,
            complete=bool(decode(attrs.get(layout.DERIVED_COMPLETE, 1))),
        )
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, RecursionError):
            detail = "its parameters are nested too deeply to read"
        raise RecordingFormatError(
            dataset.file.filename, f"derived product {dataset.name} has bad provenance: {detail}"
        ) from None


def save_derived(
    target: str | Path | h5py.File,
    name: str,
    data: npt.ArrayLike,
    *,
    algorithm: str,
    parameters: Mapping[str, Any],
    source: str = "/" + layout.FRAMES,
    overwrite: bool = False,
    compression: str | None = None,
    checksum: bool = True,
) -> SavedDerived:
    """Store a derived product with its provenance in ``/derived/<name>``.

    Parameters
    ----------
    target : str, pathlib.Path or h5py.File
        A closed recording's path, or a recording open for writing.
    name : str
        Product name, e.g. ``"contrast"``.
    data : array_like
        Numeric array (bool, integer or float), at least 1-D.
    algorithm : str
        What computed it.
    parameters : dict
        Every parameter that changes the result (window, ddof, model, β...), JSON-representable.
        Stored as canonical JSON text in the ``parameters`` attribute; scalar ones are also
        copied to attributes of the same name for readers without a JSON parser.
    source : str
        HDF5 path of the input dataset; it must exist in the file.
    overwrite : bool
        Replace a product of the same name whose provenance differs.
    compression : {None, "blosc-lz4"}
        Lossless compression.
    checksum : bool
        Fletcher-32 checksums on the chunks.

    Returns
    -------
    SavedDerived
        ``written`` is false when the identical product already existed (nothing written).

    Raises
    ------
    TypeError, ValueError
        When a parameter is invalid.
    DerivedProductExistsError
        When ``name`` exists with a different provenance and ``overwrite`` is false.
    RecordingError
        When the file cannot be modified.

    Notes
    -----
    Replacing a product does not shrink the file (an HDF5 limitation); ``h5repack`` reclaims
    the space.

    Examples
    --------
    >>> save_derived("run.h5", "contrast", k, algorithm="spatial_contrast",
    ...              parameters={"window": 7, "ddof": 0})  # doctest: +SKIP
    """
    name = check_name("derived product", name)
    if not isinstance(algorithm, str) or not algorithm:
        raise ValueError(f"algorithm={algorithm!r} is invalid: give a non-empty name")
    parameters_json = canonical_parameters(parameters)
    array = np.asarray(data)
    if array.dtype.kind not in "biuf" or array.ndim == 0 or array.size == 0:
        raise ValueError(
            f"data of shape {array.shape} and dtype {array.dtype} is invalid: allowed non-empty "
            "bool, integer or float arrays of at least 1 dimension"
        )
    compression_args = compression_filter(compression)
    if isinstance(target, h5py.File):
        return _save(
            target,
            name,
            array,
            algorithm,
            parameters_json,
            source,
            overwrite,
            compression_args,
            checksum,
        )
    with open_for_editing(target) as handle:
        try:
            return _save(
                handle,
                name,
                array,
                algorithm,
                parameters_json,
                source,
                overwrite,
                compression_args,
                checksum,
            )
        except H5_WRITE_ERRORS as exc:
            raise write_error(target, exc, f"saving derived product {name!r}") from None


def _save(
    handle: h5py.File,
    name: str,
    array: np.ndarray,
    algorithm: str,
    parameters_json: str,
    source: str,
    overwrite: bool,
    compression_args: Any,
    checksum: bool,
) -> SavedDerived:
    path = handle.filename
    source = "/" + source.lstrip("/")
    if not isinstance(handle.get(source), h5py.Dataset):
        raise ValueError(f"source={source!r} is invalid: no such dataset in {path}")
    group = handle.require_group(layout.DERIVED)
    if name in group:
        existing = read_info(group[name])
        if same_provenance(existing, algorithm, parameters_json, source, array.shape, array.dtype):
            return SavedDerived(existing, written=False)
        if not overwrite:
            raise provenance_conflict(path, existing)
        del group[name]
    chunks = (1, *array.shape[1:]) if array.ndim >= 3 else True
    filtered = checksum or compression_args is not None
    dataset = group.create_dataset(
        name,
        data=array,
        chunks=chunks if filtered else None,
        compression=compression_args,
        fletcher32=checksum,
    )
    write_provenance(dataset, algorithm, parameters_json, source)
    return SavedDerived(read_info(dataset), written=True)


def same_provenance(
    info: DerivedInfo,
    algorithm: str,
    parameters_json: str,
    source: str,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
) -> bool:
    """Whether a stored product was made the same way (canonical parameters) with this layout."""
    return (
        info.algorithm == algorithm
        and canonical_parameters(info.parameters) == parameters_json
        and info.source == source
        and info.shape == tuple(shape)
        and info.dtype == dtype
    )


def provenance_conflict(path: str | Path, existing: DerivedInfo) -> DerivedProductExistsError:
    """The error for a product that exists with a different provenance."""
    return DerivedProductExistsError(
        path,
        f"derived product {existing.name!r} exists with different provenance (algorithm "
        f"{existing.algorithm!r}, parameters {json.dumps(existing.parameters)}, source "
        f"{existing.source!r}, shape {existing.shape}); pass overwrite=True to replace "
        "it or save under another name",
    )


def write_provenance(
    dataset: h5py.Dataset, algorithm: str, parameters_json: str, source: str
) -> None:
    """Write the provenance attributes of a product (see docs/format.md)."""
    dataset.attrs["algorithm"] = algorithm
    dataset.attrs["parameters"] = parameters_json
    dataset.attrs["source"] = source
    dataset.attrs["lsci_version"] = __version__
    dataset.attrs["created_utc"] = format_utc(datetime.now(UTC))
    for key, value in json.loads(parameters_json).items():
        if isinstance(value, str | int | float | bool):
            dataset.attrs[key] = value


def find_derived(
    target: str | Path | h5py.File,
    *,
    algorithm: str,
    parameters: Mapping[str, Any],
    source: str = "/" + layout.FRAMES,
) -> DerivedInfo | None:
    """Find a stored product made with exactly this algorithm, parameters and source.

    Use it to skip a computation whose result is already in the file.

    Returns
    -------
    DerivedInfo or None
        The first match in name order, or ``None``.
    """
    wanted = canonical_parameters(parameters)
    source = "/" + source.lstrip("/")

    def search(handle: h5py.File) -> DerivedInfo | None:
        group = handle.get(layout.DERIVED)
        if group is None:
            return None
        for key in sorted(group):
            try:
                info = read_info(group[key])
            except RecordingFormatError:
                continue  # unreadable provenance cannot match
            if (
                info.algorithm == algorithm
                and info.source == source
                and canonical_parameters(info.parameters) == wanted
            ):
                return info
        return None

    if isinstance(target, h5py.File):
        return search(target)
    with open_for_reading(target) as handle:
        check_root(handle, target)
        return search(handle)
