"""Derived products in their own files beside a sealed recording.

A recording is sealed once acquisition closes it: nothing later opens it for writing. What is
computed from it afterwards lives in a folder beside it, ``session.lsci/`` for ``session.h5``,
one sub-folder per *product set*: the maps one processing run made (contrast, perfusion, ...)
with the settings that made them. A set holds one or more *part* files, each with the maps
``[first_map, first_map + n)`` of every product, so that several processes (the workers of a
Dask cluster) can write one set at once without sharing an HDF5 file. A set is written in a
hidden temporary folder created exclusively, and renamed to its final name only when every
part is complete and on disk, so

- a reader never sees a half-written product set,
- an interrupted run (signal, ``kill -9``, full disk) leaves nothing to repair: at most a
  hidden ``.partial`` folder that readers ignore and a later run removes,
- runs with other settings coexist (the folder name carries a digest of the settings), never
  mix, and deleting a set's folder gives its space back.

The layout is specified in ``docs/format.md``; :class:`ProductArray` presents the parts of one
product as one array.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from lsci._version import __version__
from lsci.recording import layout
from lsci.recording._h5 import (
    H5_WRITE_ERRORS,
    check_name,
    decode,
    describe_os_error,
    write_error,
)
from lsci.recording.atomic import sync_file
from lsci.recording.chunk_io import write_planes
from lsci.recording.derived import canonical_parameters, write_provenance
from lsci.recording.errors import RecordingError, RecordingFormatError, RecordingWriteError
from lsci.recording.metadata import format_utc
from lsci.recording.sidecar import (
    create_temporary_folder,
    make_folder,
    publish_folder,
    remove_tree,
    sidecar_folder,
)

__all__ = [
    "PRODUCTS_FORMAT_NAME",
    "PRODUCTS_FORMAT_VERSION",
    "PartWriter",
    "ProductArray",
    "ProductSet",
    "ProductSetWriter",
    "SetLayout",
    "find_product_sets",
    "product_folder",
]

#: Root attribute ``lsci_format`` of every part file of a product set.
PRODUCTS_FORMAT_NAME = "lsci-products"
#: Version of the product-set layout this module writes.
PRODUCTS_FORMAT_VERSION = 1
#: Part files are ``part-<first map, 9 digits>.h5``: sorted by name, they are in map order.
PART_PREFIX = "part-"
PART_SUFFIX = ".h5"

#: Space kept free while a part is written (see :class:`PartWriter`), and left free besides the
#: maps before a set is started.
RESERVE_BYTES = 4 << 20

#: The folder holding a recording's product sets: ``session.lsci`` for ``session.h5``.
product_folder = sidecar_folder


def set_name(algorithm: str, parameters: Mapping[str, Any], storage: Mapping[str, Any]) -> str:
    """Folder name of a product set: readable settings plus a digest of everything.

    The readable part names the main settings (``spatial-w7-avg8-inverse_tau``); the digest
    covers every setting and how the maps are stored (which products, which dtype), so two
    runs that differ in anything land in different sets.
    """
    canonical = canonical_parameters(parameters)
    stored = json.dumps(dict(storage), sort_keys=True)
    digest = hashlib.sha256(f"{algorithm}\n{canonical}\n{stored}".encode()).hexdigest()[:10]
    short = [str(parameters.get("mode", algorithm))]
    for key, tag in (("window", "w"), ("frames_window", "n"), ("average", "avg")):
        if key in parameters:
            short.append(f"{tag}{parameters[key]}")
    if "model" in parameters:
        short.append(str(parameters["model"]))
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(short))
    return f"{readable}-{digest}"


@dataclass(frozen=True)
class SetLayout:
    """What every part of one product set carries: its provenance and its products.

    Small and picklable, so that a worker process can write a part from it.
    """

    recording: str
    algorithm: str
    parameters: str
    shapes: dict[str, tuple[int, ...]]
    dtype: str
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    checksum: bool = True
    created_utc: str = ""

    @property
    def maps(self) -> int:
        """Maps in the whole set (the first axis of every product)."""
        return next(iter(self.shapes.values()))[0]


class PartWriter:
    """Write one part file of a product set: maps ``[first_map, first_map + n_maps)``.

    Parameters
    ----------
    folder : Path
        The set's temporary folder.
    set_layout : SetLayout
        The set's provenance and products.
    first_map, n_maps : int
        Which maps this part holds.

    Raises
    ------
    RecordingWriteError
        When the file cannot be created or written (disk full, ...).
    """

    def __init__(self, folder: Path, set_layout: SetLayout, first_map: int, n_maps: int) -> None:
        total = set_layout.maps
        if not (first_map >= 0 and n_maps >= 1 and first_map + n_maps <= total):
            raise ValueError(f"maps [{first_map}, {first_map + n_maps}) are not in [0, {total})")
        self.layout = set_layout
        self.first_map = first_map
        self.n_maps = n_maps
        self.path = Path(folder) / f"{PART_PREFIX}{first_map:09d}{PART_SUFFIX}"
        self._written = dict.fromkeys(set_layout.shapes, 0)
        self._handle: h5py.File | None = None
        self._chunk_buffer: npt.NDArray[np.uint8] | None = None  # reused for every map
        self._flushed = 0  # bytes of the file whose writeback has been started
        self._reserve = self._make_reserve()
        try:
            # "x": created exclusively, so a part is never written twice or through a link.
            # No chunk cache: every map goes to the file as it is written, so a full disk is
            # reported by the write that meets it, and the file can then still be closed.
            self._handle = h5py.File(self.path, "x", libver="latest", rdcc_nbytes=0)
            self._create(self._handle)
        except H5_WRITE_ERRORS as exc:
            self.discard()
            raise write_error(self.path, exc, "creating a product file") from None

    def _make_reserve(self) -> Path | None:
        """Hold some disk space while the part is written.

        When the disk fills, HDF5 can neither write nor close the file, and the library may
        crash the interpreter when it tries again at exit. Freeing this reserve lets it close
        the file, which is then deleted (:meth:`discard`).
        """
        reserve = self.path.with_name(f".{self.path.stem}.reserve")
        try:
            descriptor = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
        except OSError as exc:
            raise write_error(reserve, exc, "creating a product file") from None
        try:
            os.posix_fallocate(descriptor, 0, RESERVE_BYTES)
        except OSError as exc:
            reserve.unlink(missing_ok=True)
            raise write_error(reserve, exc, "creating a product file") from None
        finally:
            os.close(descriptor)
        return reserve

    def _release_reserve(self) -> None:
        if self._reserve is not None:
            self._reserve.unlink(missing_ok=True)
            self._reserve = None

    def _create(self, handle: h5py.File) -> None:
        lay = self.layout
        handle.attrs["lsci_format"] = PRODUCTS_FORMAT_NAME
        handle.attrs["format_version"] = np.int64(PRODUCTS_FORMAT_VERSION)
        handle.attrs["recording"] = lay.recording
        handle.attrs["algorithm"] = lay.algorithm
        handle.attrs["parameters"] = lay.parameters
        handle.attrs["lsci_version"] = __version__
        handle.attrs["created_utc"] = lay.created_utc
        handle.attrs["maps"] = np.int64(lay.maps)
        handle.attrs["first_map"] = np.int64(self.first_map)
        for name, shape in lay.shapes.items():
            part_shape = (self.n_maps, *shape[1:])
            dataset = handle.create_dataset(
                name,
                shape=part_shape,
                dtype=np.dtype(lay.dtype),
                chunks=(1, *part_shape[1:]) if len(part_shape) >= 2 else True,
                fletcher32=lay.checksum,
                fillvalue=np.nan,
            )
            # Each dataset carries its provenance, as products inside a recording do, so one
            # reader serves both.
            write_provenance(dataset, lay.algorithm, lay.parameters, "/" + layout.FRAMES)
            for key, value in lay.attributes.get(name, {}).items():
                dataset.attrs[key] = value

    def write(self, name: str, first: int, data: npt.ArrayLike) -> None:
        """Write maps ``data`` of product ``name``, the first being map ``first`` of the set."""
        if self._handle is None:
            raise RecordingError(self.path, "the product file is not open for writing")
        if name not in self._written:
            raise ValueError(f"{name!r} is not one of this set's products {list(self._written)}")
        array = np.asarray(data)
        dataset = self._handle[name]
        start = first - self.first_map
        if array.shape[1:] != dataset.shape[1:] or start < 0 or start + len(array) > self.n_maps:
            raise ValueError(
                f"maps of shape {array.shape} at {first} do not fit {name!r} of shape "
                f"{dataset.shape} from map {self.first_map}"
            )
        try:
            self._chunk_buffer = write_planes(dataset, start, array, self._chunk_buffer)
            self._start_writeback()
        except H5_WRITE_ERRORS as exc:
            self.discard()
            raise write_error(self.path, exc, f"writing product {name!r}") from None
        self._written[name] += len(array)

    def _start_writeback(self) -> None:
        """Start writing the bytes added since the last call to disk, without waiting, and drop
        the pages already written from the page cache.

        The part is made durable when it is closed (fsync); started early, the disk writes while
        the next maps are computed and that fsync has little left to wait for. The new pages
        are still being written and stay; those of earlier calls are on disk by now and are
        dropped (over the whole file: the kernel skips what is not cached), so the next maps
        reuse their memory instead of taking memory never touched (on a virtual machine that
        returns free memory to its host, touching it again costs as much as the copy).
        Products are read back rarely, and then from disk rather than evicting the raw frames.
        """
        assert self._handle is not None
        descriptor = self._handle.id.get_vfd_handle()
        size = os.fstat(descriptor).st_size
        if size > self._flushed:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            self._flushed = size

    def close(self) -> None:
        """Close the file and make it durable; every map must have been written."""
        if self._handle is None:
            return
        missing = [name for name, count in self._written.items() if count != self.n_maps]
        if missing:
            self.discard()
            raise RecordingError(
                self.path, f"product(s) {', '.join(missing)} did not get all {self.n_maps} maps"
            )
        handle, self._handle = self._handle, None
        try:
            handle.close()
            self._release_reserve()
            sync_file(self.path)
        except H5_WRITE_ERRORS as exc:
            # On a full disk HDF5 cannot write the metadata it holds and the file stays open;
            # discard frees the reserve, which lets it close, then deletes the part.
            self._handle = handle if handle.id.valid else None
            self.discard()
            raise write_error(self.path, exc, "closing a product file") from None

    def discard(self) -> None:
        """Close and delete the file (an interrupted part)."""
        self._release_reserve()  # room for HDF5 to close the file on a full disk
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
            self._handle = None
        with contextlib.suppress(OSError):
            self.path.unlink()


def write_part(
    folder: str | os.PathLike[str],
    set_layout: SetLayout,
    first_map: int,
    maps: Mapping[str, npt.ArrayLike],
) -> Path:
    """Write one complete part file of maps already computed (what a cluster worker does).

    Returns
    -------
    Path
        The part file.
    """
    arrays = {name: np.asarray(data) for name, data in maps.items()}
    n_maps = len(next(iter(arrays.values())))
    part = PartWriter(Path(folder), set_layout, first_map, n_maps)
    try:
        for name, array in arrays.items():
            part.write(name, first_map, array)
        part.close()
    except BaseException:
        part.discard()
        raise
    return part.path


@dataclass(frozen=True)
class ProductSet:
    """A finished product set: where it is and how it was made.

    Attributes
    ----------
    path : Path
        The product set's folder.
    recording : str
        File name of the recording it was computed from.
    algorithm : str
        What computed it.
    parameters : dict
        Every setting that changes the result.
    lsci_version, created_utc : str
        Who wrote it and when.
    products : tuple of str
        Its products (``"contrast"``, ``"perfusion"``, ...).
    maps : int
        Maps in each product.
    parts : tuple of Path
        Its part files, in map order.
    """

    path: Path
    recording: str
    algorithm: str
    parameters: dict[str, Any]
    lsci_version: str
    created_utc: str
    products: tuple[str, ...]
    maps: int
    parts: tuple[Path, ...]

    @property
    def name(self) -> str:
        """The set's folder name (readable settings and a digest)."""
        return self.path.name

    @property
    def size_bytes(self) -> int:
        """Bytes its files take on disk."""
        total = 0
        for part in self.parts:
            with contextlib.suppress(OSError):
                total += part.stat().st_size
        return total

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ProductSet:
        """Read a product set's description; :class:`RecordingFormatError` if it is not one."""
        path = Path(path)
        parts = tuple(
            sorted(p for p in path.glob(f"{PART_PREFIX}*{PART_SUFFIX}") if not p.is_symlink())
        )
        if not parts:
            raise RecordingFormatError(path, "not an lsci product set (no part files)")
        try:
            with h5py.File(parts[0], "r") as handle:
                attrs = {key: decode(value) for key, value in handle.attrs.items()}
                if attrs.get("lsci_format") != PRODUCTS_FORMAT_NAME:
                    raise RecordingFormatError(path, "not an lsci product set")
                version = attrs.get("format_version")
                if not isinstance(version, int) or version > PRODUCTS_FORMAT_VERSION:
                    raise RecordingFormatError(
                        path, f"product-set format version {version!r} is newer than this lsci"
                    )
                products = tuple(
                    name for name, item in handle.items() if isinstance(item, h5py.Dataset)
                )
                parameters = json.loads(str(attrs.get("parameters", "{}")))
        except OSError as exc:
            raise RecordingFormatError(parts[0], describe_os_error(exc)) from None
        except (json.JSONDecodeError, RecursionError):
            raise RecordingFormatError(path, "its parameters are not valid JSON") from None
        if not isinstance(parameters, dict):
            raise RecordingFormatError(path, "its parameters are not a JSON object")
        maps = attrs.get("maps")
        if not isinstance(maps, int) or maps < 1:
            raise RecordingFormatError(path, f"invalid map count {maps!r}")
        return cls(
            path=path,
            recording=str(attrs.get("recording", "")),
            algorithm=str(attrs.get("algorithm", "")),
            parameters=parameters,
            lsci_version=str(attrs.get("lsci_version", "")),
            created_utc=str(attrs.get("created_utc", "")),
            products=products,
            maps=maps,
            parts=parts,
        )

    def open(self) -> ProductFiles:
        """Open its part files for reading (close the result, or use it in a ``with``)."""
        return ProductFiles(self)


class ProductFiles:
    """The open part files of one product set; :meth:`array` gives one product."""

    def __init__(self, product_set: ProductSet) -> None:
        self.product_set = product_set
        self._handles: list[h5py.File] = []
        try:
            for part in product_set.parts:
                self._handles.append(h5py.File(part, "r"))
        except OSError as exc:
            self.close()
            raise RecordingFormatError(part, describe_os_error(exc)) from None

    def array(self, name: str) -> ProductArray:
        """Product ``name`` over all parts.

        Raises
        ------
        RecordingFormatError
            When a part lacks it, or the parts do not cover every map exactly once.
        """
        pieces: list[tuple[int, h5py.Dataset]] = []
        for handle in self._handles:
            dataset = handle.get(name)
            first = decode(handle.attrs.get("first_map"))
            if not isinstance(dataset, h5py.Dataset) or not isinstance(first, int):
                raise RecordingFormatError(
                    handle.filename, f"part without product {name!r} or its first_map"
                )
            pieces.append((first, dataset))
        return ProductArray(self.product_set.path, pieces, self.product_set.maps)

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles.clear()

    def __enter__(self) -> ProductFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProductArray:
    """One product of a set, its parts read as one lazy array (slicing reads what is asked).

    Parameters
    ----------
    path : Path
        The set's folder, for messages.
    pieces : sequence of (first_map, h5py.Dataset)
        The product's dataset in each part.
    maps : int
        Maps in the whole product.

    Raises
    ------
    RecordingFormatError
        When the pieces do not cover maps ``[0, maps)`` exactly once, or disagree in shape or
        dtype.
    """

    def __init__(self, path: Path, pieces: Sequence[tuple[int, h5py.Dataset]], maps: int) -> None:
        self.path = path
        self.pieces = sorted(pieces, key=lambda piece: piece[0])
        first = self.pieces[0][1]
        expected = 0
        for start, dataset in self.pieces:
            if (
                start != expected
                or dataset.shape[1:] != first.shape[1:]
                or dataset.dtype != first.dtype
            ):
                raise RecordingFormatError(
                    path, f"its part files do not fit together at map {expected}"
                )
            expected += dataset.shape[0]
        if expected != maps:
            raise RecordingFormatError(path, f"its parts hold {expected} of {maps} maps")
        self.shape: tuple[int, ...] = (maps, *first.shape[1:])
        self.dtype: np.dtype[Any] = first.dtype
        self.ndim = len(self.shape)

    @property
    def first(self) -> h5py.Dataset:
        """The first part's dataset (its attributes describe the product)."""
        return self.pieces[0][1]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if len(self.pieces) == 1:
            return np.asarray(self.first[key])
        if not isinstance(key, tuple):
            key = (key,)
        if key and key[0] is Ellipsis:
            key = (slice(None), *key) if len(key) < self.ndim + 1 else key[1:]
        head, rest = (key[0], key[1:]) if key else (slice(None), ())
        if isinstance(head, int | np.integer) and not isinstance(head, bool):
            index = int(head) + self.shape[0] if head < 0 else int(head)
            if not 0 <= index < self.shape[0]:
                raise IndexError(f"map {int(head)} out of range for {self.shape[0]} maps")
            for start, dataset in self.pieces:
                if index < start + dataset.shape[0]:
                    return np.asarray(dataset[(index - start, *rest)])
        if not isinstance(head, slice):
            return np.asarray(self[(slice(None), *rest)][head])
        wanted = range(*head.indices(self.shape[0]))
        if wanted.step < 0:
            ascending = self[(slice(wanted[-1], wanted[0] + 1, -wanted.step), *rest)]
            return ascending[::-1] if len(wanted) else ascending
        blocks = []
        for start, dataset in self.pieces:
            stop = start + dataset.shape[0]
            first = wanted.start
            if first < start:  # the first wanted map at or after this part's start
                first += -(-(start - first) // wanted.step) * wanted.step
            end = min(stop, wanted.stop)
            if first >= end:
                continue
            local = slice(first - start, end - start, wanted.step)
            blocks.append(np.asarray(dataset[(local, *rest)]))
        if not blocks:
            return np.asarray(self.first[(slice(0, 0), *rest)])
        return np.concatenate(blocks)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[()] if len(self.pieces) == 1 else self[:]
        return data if dtype is None else np.asarray(data, dtype=dtype)


def find_product_sets(recording: str | os.PathLike[str]) -> list[ProductSet]:
    """The finished product sets of a recording, oldest first.

    Temporary folders of runs in progress or interrupted are not listed; folders that are not
    product sets of this recording are skipped.
    """
    folder = product_folder(recording)
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_symlink() or not path.is_dir():
            continue
        try:
            info = ProductSet.read(path)
        except RecordingFormatError:
            continue
        if info.recording == Path(recording).name:
            found.append(info)
    return sorted(found, key=lambda s: (s.created_utc, s.path.name))


class ProductSetWriter:
    """Write one product set; publish it by an atomic rename on success.

    The maps go either into one part written map by map (:meth:`write`), or into part files
    that other processes write into :attr:`temporary` with :func:`write_part` and
    :attr:`layout`. On leaving the ``with`` block without an error, the set is published if
    its parts hold every map; with an error (or a signal turned into one) the temporary
    folder is removed.

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
        Per-product attributes (unit, model, calibrations, ...).
    dtype : numpy dtype
        Floating-point type the products are stored in. Default float32.
    overwrite : bool
        Recompute even when a finished set with these settings exists (it is replaced).
    checksum : bool
        Fletcher-32 checksums on the chunks.

    Attributes
    ----------
    path : Path
        The set's final folder.
    complete : bool
        True when a finished set with these settings already exists (and ``overwrite`` is
        false): nothing needs to be computed.
    temporary : Path or None
        The temporary folder while the set is being written.

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
        shapes = {check_name("product", n): tuple(int(v) for v in s) for n, s in shapes.items()}
        if (
            not shapes
            or len({s[0] for s in shapes.values()}) != 1
            or min(s[0] for s in shapes.values()) < 1
        ):
            raise ValueError(f"products {shapes} must have the same number (≥ 1) of maps")
        storage_dtype = np.dtype(dtype)
        if storage_dtype.kind != "f":
            raise ValueError(f"dtype={storage_dtype} is not a floating-point type")
        self.layout = SetLayout(
            recording=self.recording.name,
            algorithm=algorithm,
            parameters=canonical_parameters(parameters),
            shapes=shapes,
            dtype=storage_dtype.name,
            attributes={k: dict(v) for k, v in (attributes or {}).items()},
            checksum=checksum,
            created_utc=format_utc(datetime.now(UTC)),
        )
        storage = {"products": sorted(shapes), "dtype": storage_dtype.name}
        self.folder = product_folder(self.recording)
        self.path = self.folder / set_name(algorithm, parameters, storage)
        self.complete = not overwrite and self._matches(self.path)
        self.temporary: Path | None = None
        self._part: PartWriter | None = None

    def _matches(self, path: Path) -> bool:
        if not path.is_dir() or path.is_symlink():
            return False
        try:
            info = ProductSet.read(path)
            with info.open() as files:
                arrays = {name: files.array(name) for name in info.products}
                dtypes = {array.dtype.name for array in arrays.values()}
        except RecordingFormatError:
            return False
        return (
            info.algorithm == self.layout.algorithm
            and canonical_parameters(info.parameters) == self.layout.parameters
            and {n: a.shape for n, a in arrays.items()} == self.layout.shapes
            and dtypes == {self.layout.dtype}
        )

    def __enter__(self) -> ProductSetWriter:
        if self.complete:
            return self
        folder = make_folder(self.recording)
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_dir()):
            # Found now, not when the finished set cannot be renamed to it.
            kind = "a symbolic link" if self.path.is_symlink() else "a file"
            raise RecordingWriteError(
                self.path, f"is {kind}, where this product set's folder goes: move it away"
            )
        itemsize = np.dtype(self.layout.dtype).itemsize
        needed = sum(int(np.prod(shape)) * itemsize for shape in self.layout.shapes.values())
        free = shutil.disk_usage(folder).free
        room = 2 * RESERVE_BYTES  # what HDF5 may need to close its files on a full disk
        if free < needed + room:
            raise RecordingWriteError(
                folder,
                f"not enough disk space for the product set: it needs "
                f"{(needed + room) / 1e6:,.1f} MB ({needed / 1e6:,.1f} MB of maps and "
                f"{room / 1e6:,.1f} MB of working room), {free / 1e6:,.1f} MB are free",
            )
        self.temporary = create_temporary_folder(self.folder)
        return self

    def write(self, name: str, first: int, data: npt.ArrayLike) -> None:
        """Write maps ``data`` of product ``name`` from map ``first`` (into one part file)."""
        if self.temporary is None:
            raise RecordingError(self.path, "the product set is not open for writing")
        if self._part is None:
            self._part = PartWriter(self.temporary, self.layout, 0, self.layout.maps)
        self._part.write(name, first, data)

    def _publish(self) -> None:
        assert self.temporary is not None
        if self._part is not None:
            self._part.close()
            self._part = None
        try:
            info = ProductSet.read(self.temporary)
            with info.open() as files:
                for name in info.products:
                    files.array(name)  # checks that the parts cover every map once
        except RecordingFormatError as exc:
            raise RecordingError(
                self.path, f"the product set is incomplete: {exc.problem}"
            ) from None
        try:
            publish_folder(self.temporary, self.path)
        except OSError as exc:
            raise write_error(self.path, exc, "publishing the product set") from None
        self.temporary = None
        self.complete = True

    def discard(self) -> None:
        """Remove everything written so far."""
        if self._part is not None:
            self._part.discard()
            self._part = None
        if self.temporary is not None:
            remove_tree(self.temporary)
            self.temporary = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.temporary is None:
            return
        if exc_type is not None:
            self.discard()
            return
        try:
            self._publish()
        except BaseException:
            self.discard()
            raise
