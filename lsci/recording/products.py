"""Derived products in their own files beside a sealed recording.

A recording is sealed once acquisition closes it: nothing later opens it for writing. What is
computed from it afterwards lives in a folder beside it, ``session.lsci/`` for ``session.h5``,
one HDF5 file per *product set*: the maps one processing run made (contrast, perfusion, ...)
with the settings that made them. A product set is written under a hidden temporary name that
is created exclusively, and renamed to its final name only when every map is in it, so

- a reader never sees a half-written product set,
- an interrupted run (signal, ``kill -9``, full disk) leaves nothing to repair: at most a
  ``.partial`` file that readers ignore and the next run removes,
- runs with other settings coexist (the file name carries a digest of the settings), never mix,
  and deleting one file gives its space back.

The layout of a product-set file is given in ``docs/format.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from lsci._version import __version__
from lsci.recording import layout
from lsci.recording._h5 import check_name, decode, describe_os_error, write_error
from lsci.recording.derived import canonical_parameters, write_provenance
from lsci.recording.errors import RecordingError, RecordingFormatError
from lsci.recording.metadata import format_utc
from lsci.recording.sidecar import create_temporary, make_folder, publish, sidecar_folder

__all__ = [
    "PRODUCTS_FORMAT_NAME",
    "PRODUCTS_FORMAT_VERSION",
    "ProductSet",
    "ProductSetWriter",
    "find_product_sets",
    "product_folder",
]

#: Root attribute ``lsci_format`` of a product-set file.
PRODUCTS_FORMAT_NAME = "lsci-products"
#: Version of the product-set layout this module writes.
PRODUCTS_FORMAT_VERSION = 1


#: The folder holding a recording's product sets: ``session.lsci`` for ``session.h5``.
product_folder = sidecar_folder


def set_name(algorithm: str, parameters: Mapping[str, Any]) -> str:
    """File stem of a product set: readable settings plus a digest of all of them.

    The readable part names the main settings (``spatial-w7-avg8``); the digest makes two runs
    with any differing setting land in different files.
    """
    canonical = canonical_parameters(parameters)
    digest = hashlib.sha256(f"{algorithm}\n{canonical}".encode()).hexdigest()[:10]
    short = [str(parameters.get("mode", algorithm))]
    for key, tag in (("window", "w"), ("frames", "n"), ("average", "avg")):
        if key in parameters:
            short.append(f"{tag}{parameters[key]}")
    if "model" in parameters:
        short.append(str(parameters["model"]))
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(short))
    return f"{readable}-{digest}"


@dataclass(frozen=True)
class ProductSet:
    """A finished product set: where it is and how it was made.

    Attributes
    ----------
    path : Path
        The product-set file.
    recording : str
        File name of the recording it was computed from.
    algorithm : str
        What computed it.
    parameters : dict
        Every setting that changes the result.
    lsci_version, created_utc : str
        Who wrote it and when.
    products : tuple of str
        Names of its datasets (``"contrast"``, ``"perfusion"``, ...).
    """

    path: Path
    recording: str
    algorithm: str
    parameters: dict[str, Any]
    lsci_version: str
    created_utc: str
    products: tuple[str, ...]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ProductSet:
        """Read a product set's description; :class:`RecordingFormatError` if it is not one."""
        path = Path(path)
        try:
            with h5py.File(path, "r") as handle:
                attrs = {key: decode(value) for key, value in handle.attrs.items()}
                if attrs.get("lsci_format") != PRODUCTS_FORMAT_NAME:
                    raise RecordingFormatError(path, "not an lsci product set")
                version = attrs.get("format_version")
                if not isinstance(version, int | np.integer) or version > PRODUCTS_FORMAT_VERSION:
                    raise RecordingFormatError(
                        path, f"product-set format version {version!r} is newer than this lsci"
                    )
                products = tuple(
                    name for name, item in handle.items() if isinstance(item, h5py.Dataset)
                )
                parameters = json.loads(str(attrs.get("parameters", "{}")))
        except OSError as exc:
            raise RecordingFormatError(path, describe_os_error(exc)) from None
        except (json.JSONDecodeError, RecursionError):
            raise RecordingFormatError(path, "its parameters are not valid JSON") from None
        if not isinstance(parameters, dict):
            raise RecordingFormatError(path, "its parameters are not a JSON object")
        return cls(
            path=path,
            recording=str(attrs.get("recording", "")),
            algorithm=str(attrs.get("algorithm", "")),
            parameters=parameters,
            lsci_version=str(attrs.get("lsci_version", "")),
            created_utc=str(attrs.get("created_utc", "")),
            products=products,
        )


def find_product_sets(recording: str | os.PathLike[str]) -> list[ProductSet]:
    """The finished product sets of a recording, oldest first.

    Temporary files of runs in progress or interrupted are not listed; files that are not
    product sets of this recording are skipped.
    """
    folder = product_folder(recording)
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = []
    for path in sorted(folder.glob("*.h5")):
        if path.name.startswith(".") or path.is_symlink() or not path.is_file():
            continue
        try:
            info = ProductSet.read(path)
        except RecordingFormatError:
            continue
        if info.recording == Path(recording).name:
            found.append(info)
    return sorted(found, key=lambda s: (s.created_utc, s.path.name))


class ProductSetWriter:
    """Write one product set map by map; publish it by an atomic rename on success.

    Parameters
    ----------
    recording : str or Path
        The recording the products are computed from (never opened for writing).
    shapes : dict of str to tuple of int
        The products and their full shapes (first axis: maps).
    algorithm : str
        What computes them.
    parameters : dict
        Every setting that changes the result (JSON-representable).
    attributes : dict of str to dict, optional
        Per-product attributes (unit, model, ...).
    dtype : numpy dtype
        Data type of the products. Default float32.
    overwrite : bool
        Recompute even when a finished set with these settings exists.
    checksum : bool
        Fletcher-32 checksums on the chunks.

    Attributes
    ----------
    path : Path
        The final file name.
    complete : bool
        True when a finished set with these settings already exists (and ``overwrite`` is
        false): nothing needs to be computed.

    Examples
    --------
    >>> with ProductSetWriter("run.h5", {"contrast": (10, 64, 64)}, algorithm="demo",
    ...                       parameters={"window": 7}) as out:  # doctest: +SKIP
    ...     if not out.complete:
    ...         out.write("contrast", 0, maps)
    """

    def __init__(
        self,
        recording: str | os.PathLike[str],
        shapes: Mapping[str, tuple[int, ...]],
        *,
        algorithm: str,
        parameters: Mapping[str, Any],
        attributes: Mapping[str, Mapping[str, Any]] | None = None,
        dtype: npt.DTypeLike = np.float32,
        overwrite: bool = False,
        checksum: bool = True,
    ) -> None:
        self.recording = Path(recording)
        self._shapes = {check_name("product", n): tuple(s) for n, s in shapes.items()}
        self._algorithm = algorithm
        self._parameters = canonical_parameters(parameters)
        self._attributes = {k: dict(v) for k, v in (attributes or {}).items()}
        self._dtype = np.dtype(dtype)
        self._checksum = checksum
        self.folder = product_folder(self.recording)
        self.path = self.folder / (set_name(algorithm, parameters) + ".h5")
        self.complete = self.path.is_file() and not overwrite and self._matches(self.path)
        self._temporary: Path | None = None
        self._handle: h5py.File | None = None

    def _matches(self, path: Path) -> bool:
        try:
            info = ProductSet.read(path)
        except RecordingFormatError:
            return False
        return (
            info.algorithm == self._algorithm
            and canonical_parameters(info.parameters) == self._parameters
            and set(info.products) == set(self._shapes)
        )

    def __enter__(self) -> ProductSetWriter:
        if self.complete:
            return self
        make_folder(self.recording)
        self._temporary = create_temporary(self.folder)
        try:
            self._handle = h5py.File(self._temporary, "w", libver="latest")
            self._write_layout(self._handle)
        except OSError as exc:
            self._discard()
            raise write_error(self._temporary, exc, "creating a product set") from None
        return self

    def _write_layout(self, handle: h5py.File) -> None:
        handle.attrs["lsci_format"] = PRODUCTS_FORMAT_NAME
        handle.attrs["format_version"] = np.int64(PRODUCTS_FORMAT_VERSION)
        handle.attrs["recording"] = self.recording.name
        handle.attrs["algorithm"] = self._algorithm
        handle.attrs["parameters"] = self._parameters
        handle.attrs["lsci_version"] = __version__
        handle.attrs["created_utc"] = format_utc(datetime.now(UTC))
        for name, shape in self._shapes.items():
            dataset = handle.create_dataset(
                name,
                shape=shape,
                dtype=self._dtype,
                chunks=(1, *shape[1:]) if len(shape) >= 2 else True,
                fletcher32=self._checksum,
                fillvalue=np.nan if self._dtype.kind == "f" else 0,
            )
            # Each dataset also carries its own provenance, as products inside a recording do,
            # so one reader serves both.
            write_provenance(dataset, self._algorithm, self._parameters, "/" + layout.FRAMES)
            dataset.attrs[layout.DERIVED_COMPLETE] = np.int8(1)
            for key, value in self._attributes.get(name, {}).items():
                dataset.attrs[key] = value

    def write(self, name: str, first: int, data: npt.ArrayLike) -> None:
        """Write ``data`` into product ``name`` starting at map ``first``."""
        if self._handle is None:
            raise RecordingError(self.path, "the product set is not open for writing")
        if name not in self._shapes:
            raise ValueError(f"{name!r} is not one of this set's products {list(self._shapes)}")
        array = np.asarray(data)
        dataset = self._handle[name]
        if array.shape[1:] != dataset.shape[1:] or first + len(array) > dataset.shape[0]:
            raise ValueError(
                f"maps of shape {array.shape} at {first} do not fit {name!r} of shape "
                f"{dataset.shape}"
            )
        try:
            dataset[first : first + len(array)] = array
        except OSError as exc:
            raise write_error(self.path, exc, f"writing product {name!r}") from None

    def _publish(self) -> None:
        assert self._handle is not None
        assert self._temporary is not None
        try:
            self._handle.close()
            self._handle = None
            publish(self._temporary, self.path)
            self._temporary = None
        except OSError as exc:
            self._discard()
            raise write_error(self.path, exc, "publishing the product set") from None
        self.complete = True

    def _discard(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
            self._handle = None
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                self._temporary.unlink()
            self._temporary = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is None:
            return
        if exc_type is not None:
            self._discard()
            return
        self._publish()
