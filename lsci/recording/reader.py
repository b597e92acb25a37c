"""Reading recordings: closed, still growing (SWMR), or left behind by a crashed writer."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from lsci.recording import layout
from lsci.recording._h5 import (
    check_root,
    decode,
    decode_attrs,
    describe_os_error,
    has_recording_marker,
    open_for_reading,
)
from lsci.recording.annotations import read_annotations
from lsci.recording.calibration import Calibration, read_calibration
from lsci.recording.chunk_io import planes_buffer_bytes, read_planes
from lsci.recording.derived import DerivedInfo, read_info
from lsci.recording.errors import (
    CorruptRecordingError,
    RecordingFormatError,
    RecordingWarning,
)
from lsci.recording.events import Event, read_events
from lsci.recording.metadata import AcquisitionMetadata
from lsci.recording.products import ProductArray, ProductFiles, ProductSet, find_product_sets

Index = int | slice | tuple[Any, ...]


def _is_checksum_error(exc: OSError) -> bool:
    text = str(exc).lower()
    return "checksum" in text or "filter" in text or "data error" in text


#: Raised by h5py and NumPy when a file's structure is not what lsci wrote (a group where a
#: dataset belongs, nesting deep enough to exhaust the stack, sizes that exhaust memory).
_STRUCTURE_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, RecursionError, MemoryError)
#: HDF5 filters that do not shrink data: with only these, stored bytes are at least the data's.
_NON_SHRINKING_FILTERS = {h5py.h5z.FILTER_FLETCHER32, h5py.h5z.FILTER_SHUFFLE}


@contextlib.contextmanager
def malformed(path: Path, what: str) -> Iterator[None]:
    """Turn the errors of an unexpected file structure into :class:`RecordingFormatError`."""
    try:
        yield
    except _STRUCTURE_ERRORS as exc:
        detail = str(exc) or type(exc).__name__
        raise RecordingFormatError(path, f"{what}: {detail}") from None


def _least_bytes_per_row(dataset: h5py.Dataset) -> int:
    """Fewest bytes the file needs per index of the first axis (1 when data is compressed)."""
    plist = dataset.id.get_create_plist()
    codes = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
    if codes <= _NON_SHRINKING_FILTERS:
        return int(np.prod(dataset.shape[1:], dtype=object)) * int(dataset.dtype.itemsize)
    return 1


def _check_declared_size(dataset: h5py.Dataset, file_bytes: int) -> None:
    """Refuse a dataset declaring more data than its file can hold (a crafted size).

    Contiguous, uncompressed data must fit in the file; chunked data must not declare more
    chunks than the file has bytes (unwritten chunks read as fill values).
    """
    shape = tuple(int(n) for n in dataset.shape)
    if dataset.chunks is None:
        needed = int(np.prod(shape, dtype=object)) * dataset.dtype.itemsize
        if dataset.id.get_storage_size() == 0:
            needed = 0  # never written: reads as its fill value
    else:
        needed = 1
        for size, chunk in zip(shape, dataset.chunks, strict=True):
            needed *= -(-size // chunk)
    if needed > file_bytes:
        raise RecordingFormatError(
            dataset.file.filename,
            f"{dataset.name} declares shape {shape}, more than the file of {file_bytes} bytes "
            "can hold",
        )


class FrameStack:
    """Lazy, read-only view of the committed raw frames: slicing reads only what is asked.

    ``stack[i]`` is one frame, ``stack[a:b]`` a 3-D array, ``stack[a:b, y0:y1, x0:x1]`` a crop.
    It has ``shape``, ``dtype`` and ``ndim``, so napari and dask can use it as an array.
    """

    def __init__(self, recording: Recording) -> None:
        self._recording = recording

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(frames, height, width)``."""
        return (len(self._recording), *self._recording.frame_shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """``uint8`` or ``uint16``, as the camera delivered the frames."""
        return self._recording.dtype

    @property
    def ndim(self) -> int:
        """Always 3."""
        return 3

    @property
    def size(self) -> int:
        """Number of pixel values in the whole stack."""
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self._recording)

    def __getitem__(self, index_key: Index) -> np.ndarray:
        key: Any = index_key
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):
            if not key:
                key = slice(None)
            else:
                key, rest = key[0], key[1:]
        count = len(self._recording)
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            index = int(key) + count if key < 0 else int(key)
            if not 0 <= index < count:
                raise IndexError(f"frame index {int(key)} out of range for {count} frames")
            first, selection = index, (index, *rest)
            frames = range(index, index + 1)
        elif isinstance(key, slice):
            frames = range(*key.indices(count))
            if frames.step < 0:
                # HDF5 reads forwards only: read the same frames ascending, then reverse.
                ascending = self[(slice(frames[-1], frames[0] + 1, -frames.step), *rest)]
                return ascending[::-1] if frames else ascending
            first, selection = frames.start, (slice(frames.start, frames.stop, frames.step), *rest)
        else:
            raise TypeError(f"frames can be indexed by int and slice, got {key!r}")
        if not frames:
            return np.empty((0, *self._recording.frame_shape), self.dtype)[(slice(None), *rest)]
        return self._recording._read_frames(selection, frames, first)

    def read(self, start: int, stop: int, *, buffer: np.ndarray | None = None) -> np.ndarray:
        """Frames ``[start, stop)``, as ``stack[start:stop]``, read into ``buffer`` when it can be.

        ``buffer`` is a 1-D uint8 array of at least :meth:`buffer_bytes` ``(stop − start)``
        bytes, reused from one read to the next (fresh memory costs a page fault per 4 kB);
        the frames returned are then a view of it.
        """
        count = len(self._recording)
        if not 0 <= start < stop <= count:
            raise IndexError(f"frames [{start}, {stop}) are not in [0, {count})")
        frames = self._recording._read_direct(start, stop, buffer)
        return frames if frames is not None else self[start:stop]

    def buffer_bytes(self, n_frames: int) -> int:
        """Size of a :meth:`read` buffer for ``n_frames`` frames."""
        return self._recording._buffer_bytes(n_frames)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        return f"FrameStack(shape={self.shape}, dtype={self.dtype})"


class DerivedProduct:
    """A stored derived product: provenance in :attr:`info`, data read lazily by slicing.

    Parameters
    ----------
    data : h5py.Dataset or ProductArray
        A product inside a recording (``/derived/<name>``, older lsci versions) or a product
        of a product set beside it (its part files read as one array).
    path : Path
        The file (or product set) it is read from, for messages.
    name : str, optional
        Its name as :attr:`Recording.derived` lists it (default: the dataset's name).
    """

    def __init__(
        self, data: h5py.Dataset | ProductArray, path: Path, name: str | None = None
    ) -> None:
        self._data = data
        self._path = path
        dataset = data.first if isinstance(data, ProductArray) else data
        info = read_info(dataset)
        self.info: DerivedInfo = dataclasses.replace(
            info, name=name or info.name, shape=tuple(data.shape)
        )
        self.attrs: dict[str, Any] = decode_attrs(dataset.attrs)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the data."""
        return self.info.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """Data type."""
        return self.info.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.info.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self._data[key])
        except OSError as exc:
            if _is_checksum_error(exc):
                raise CorruptRecordingError(
                    self._path,
                    f"derived product {self.info.name!r} fails its checksum: the file is damaged",
                ) from None
            raise

    def read(self) -> np.ndarray:
        """The whole product as an array."""
        return self[()]

    def __repr__(self) -> str:
        return f"DerivedProduct({self.info.name!r}, {self.info.algorithm!r}, shape={self.shape})"


class Recording:
    """A recording opened read-only by :func:`open_recording`.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    format_version : int
        Format version of the file.
    lsci_version : str
        lsci version that wrote it.
    metadata : AcquisitionMetadata
        Acquisition settings.
    start_host_time_ns : int
        Start of the recording on the host clock (ns since the Unix epoch); event times are
        relative to it.
    frame_shape : tuple of int
        ``(height, width)``.
    dtype : numpy.dtype
        ``uint8`` or ``uint16``.
    frames : FrameStack
        Lazy frames: ``rec.frames[10:20]`` reads ten frames.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._product_files: dict[Path, ProductFiles] = {}
        self._file = open_for_reading(self.path)
        try:
            with malformed(self.path, "malformed recording"):
                self._load()
        except BaseException:
            self._file.close()
            raise
        self.frames = FrameStack(self)

    def _load(self) -> None:
        handle, path = self._file, self.path
        self.format_version = check_root(handle, path)
        self.lsci_version = str(decode(handle.attrs.get("lsci_version", "")))
        missing = [name for name in (layout.FRAMES, *layout.PER_FRAME) if name not in handle]
        if missing:
            raise RecordingFormatError(
                path, f"malformed recording: missing dataset(s) {', '.join(missing)}"
            )
        frames = handle[layout.FRAMES]
        if not isinstance(frames, h5py.Dataset) or frames.ndim != 3 or 0 in frames.shape[1:]:
            raise RecordingFormatError(
                path,
                f"malformed recording: /{layout.FRAMES} must be a 3-D dataset "
                f"(frames, height, width), found shape {getattr(frames, 'shape', None)}",
            )
        if frames.dtype not in layout.FRAME_DTYPES:
            raise RecordingFormatError(
                path,
                f"malformed recording: /{layout.FRAMES} has dtype {frames.dtype}, "
                "expected uint8 or uint16",
            )
        self._frames = frames
        self._per_frame: list[h5py.Dataset] = []
        for name in layout.PER_FRAME:
            dataset = handle[name]
            expected = layout.PER_FRAME_DTYPES[name]
            if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1:
                raise RecordingFormatError(path, f"malformed recording: /{name} must be 1-D")
            if dataset.dtype != expected:
                raise RecordingFormatError(
                    path,
                    f"malformed recording: /{name} has dtype {dataset.dtype}, expected {expected}",
                )
            self._per_frame.append(dataset)
        self.frame_shape: tuple[int, int] = (int(frames.shape[1]), int(frames.shape[2]))
        self.dtype: np.dtype[Any] = frames.dtype
        acquisition = handle.get(layout.ACQUISITION)
        attrs = decode_attrs(acquisition.attrs) if acquisition is not None else {}
        self.metadata = AcquisitionMetadata.from_attrs(attrs)
        self._count = self._committed_count()
        start = attrs.get("start_host_time_ns")
        if isinstance(start, int):
            self.start_host_time_ns = start
        else:
            self.start_host_time_ns = int(self.host_timestamps_ns[0]) if self._count else 0

    def _committed_count(self) -> int:
        count = int(min(self._frames.shape[0], *(d.shape[0] for d in self._per_frame)))
        file_bytes = self._file_bytes()
        needed = count * sum(
            _least_bytes_per_row(dataset) for dataset in (self._frames, *self._per_frame)
        )
        if needed > file_bytes:
            raise RecordingFormatError(
                self.path,
                f"malformed recording: it declares {count} frames, which need at least "
                f"{needed} bytes, but the file has {file_bytes}",
            )
        return count

    # ----------------------------------------------------------------- growing files
    def refresh(self) -> int:
        """See frames a writer flushed since the file was opened (a no-op on closed files).

        Returns
        -------
        int
            The frame count now.
        """
        if self._file.swmr_mode:
            for dataset in (self._frames, *self._per_frame):
                dataset.refresh()
        with malformed(self.path, "malformed recording"):
            self._count = self._committed_count()
        return self._count

    @property
    def closed_cleanly(self) -> bool:
        """``True`` when the writer closed the file; ``False`` while writing or after a crash."""
        return bool(self._file[layout.RAW].attrs.get("closed_cleanly", 1))

    # ----------------------------------------------------------------- per-frame data
    def __len__(self) -> int:
        return self._count

    def _read_1d(self, index: int) -> np.ndarray:
        dataset = self._per_frame[index]
        try:
            return np.asarray(dataset[: self._count])
        except OSError as exc:
            if _is_checksum_error(exc):
                raise CorruptRecordingError(
                    self.path, f"{dataset.name} fails its checksum: the file is damaged"
                ) from None
            raise

    @property
    def frame_ids(self) -> np.ndarray:
        """Camera frame counters (uint64), one per frame."""
        return self._read_1d(0)

    @property
    def camera_timestamps_ns(self) -> np.ndarray:
        """Camera timestamps (int64 ns), ``-1`` where the camera gave none."""
        return self._read_1d(1)

    @property
    def host_timestamps_ns(self) -> np.ndarray:
        """Host arrival times (int64 ns since the Unix epoch)."""
        return self._read_1d(2)

    @property
    def dropped_frames(self) -> int:
        """Frames missing according to gaps in the frame ids (ids going backwards not counted)."""
        ids = self.frame_ids  # uint64: a cast to int64 would turn gaps across 2**63 negative
        forward = ids[1:] > ids[:-1]
        gaps = ids[1:][forward] - ids[:-1][forward] - np.uint64(1)
        return sum(int(gap) for gap in gaps[gaps > 0])

    @property
    def duration_s(self) -> float:
        """Time from the first to the last frame on the host clock (0 for < 2 frames)."""
        if self._count < 2:
            return 0.0
        stamps = self.host_timestamps_ns
        return float(stamps[-1] - stamps[0]) / 1e9

    @property
    def achieved_fps(self) -> float | None:
        """Frames per second actually stored, from the host timestamps (``None``: < 2 frames)."""
        duration = self.duration_s
        return (self._count - 1) / duration if duration > 0 else None

    def _read_direct(self, start: int, stop: int, buffer: np.ndarray | None) -> np.ndarray | None:
        return read_planes(self._frames, start, stop, out=buffer)

    def _buffer_bytes(self, n_frames: int) -> int:
        return planes_buffer_bytes(self._frames, n_frames)

    def _read_frames(self, selection: tuple[Any, ...], frames: range, first: int) -> np.ndarray:
        if len(selection) == 1 and isinstance(selection[0], slice) and frames.step == 1:
            whole = read_planes(self._frames, frames.start, frames.stop)
            if whole is not None:
                return whole
        try:
            return np.asarray(self._frames[selection])
        except MemoryError:
            raise RecordingFormatError(
                self.path,
                f"frames from {first} do not fit in memory (frame size {self.frame_shape})",
            ) from None
        except OSError as exc:
            if not _is_checksum_error(exc):
                raise RecordingFormatError(
                    self.path, f"reading frames failed: {describe_os_error(exc)}"
                ) from None
        for index in frames:
            try:
                self._frames[index]
            except OSError:
                raise CorruptRecordingError(
                    self.path,
                    f"frame {index} fails its checksum: the file is damaged and that frame "
                    "cannot be trusted",
                ) from None
        raise CorruptRecordingError(self.path, f"frames from {first} fail their checksum")

    # ----------------------------------------------------------------- other groups
    @property
    def events(self) -> tuple[Event, ...]:
        """Event markers: those recorded during acquisition, then those added later beside the
        recording, each in stored order."""
        added, _ = read_annotations(self.path)
        with malformed(self.path, "malformed events"):
            return (*read_events(self._file), *added)

    @property
    def calibrations(self) -> Mapping[str, Calibration]:
        """Calibrations by name, loaded on access: those stored during acquisition, and those
        added later beside the recording (a later one of the same name takes precedence)."""
        _, added = read_annotations(self.path)
        with malformed(self.path, "malformed calibrations"):
            group = self._file.get(layout.CALIBRATIONS)
            if group is None:
                return dict(added)
            if not isinstance(group, h5py.Group):
                raise TypeError(f"/{layout.CALIBRATIONS} is not a group")
            stored = {
                name: read_calibration(item)
                for name, item in group.items()
                if isinstance(item, h5py.Group)
            }
        return {**stored, **added}

    @property
    def product_sets(self) -> list[ProductSet]:
        """The finished product sets beside the recording (``session.lsci/``), oldest first."""
        return find_product_sets(self.path)

    @property
    def derived(self) -> Mapping[str, DerivedProduct]:
        """Every derived product, with provenance; data read lazily.

        Products of a product set beside the recording are named ``"<set>/<product>"``
        (for example ``"spatial-w7-avg8-inverse_tau-3f2a9c01de/perfusion"``); products that
        older lsci versions stored inside the recording keep their plain names. Use
        :meth:`product` to find a product by its plain name. A product whose provenance or
        layout is unreadable is left out with a :class:`RecordingWarning` (see
        :attr:`unreadable_derived`), so the others stay usable.
        """
        products, problems = self._derived()
        for problem in problems.values():
            warnings.warn(problem, RecordingWarning, stacklevel=2)
        return products

    def product(self, name: str) -> DerivedProduct:
        """A derived product by its full name, or by its plain name from the newest set.

        Raises
        ------
        KeyError
            When no product has that name; the message lists the ones there are.
        """
        products = self.derived
        if name in products:
            return products[name]
        matching = [key for key in products if key.rsplit("/", 1)[-1] == name]
        if not matching:
            raise KeyError(
                f"no derived product {name!r}; there are: {', '.join(products) or 'none'}"
            )
        return products[matching[-1]]

    @property
    def unreadable_derived(self) -> Mapping[str, str]:
        """Derived products that cannot be used, by name, with the reason."""
        return self._derived()[1]

    def _derived(self) -> tuple[dict[str, DerivedProduct], dict[str, str]]:
        products: dict[str, DerivedProduct] = {}
        problems: dict[str, str] = {}
        with malformed(self.path, "malformed derived products"):
            group = self._file.get(layout.DERIVED)
            if group is not None and not isinstance(group, h5py.Group):
                raise TypeError(f"/{layout.DERIVED} is not a group")
            items = [] if group is None else list(group.items())
        for name, item in items:
            if not isinstance(item, h5py.Dataset):
                continue
            try:
                product = DerivedProduct(item, self.path)
                _check_declared_size(item, self._file_bytes())
            except RecordingFormatError as exc:
                problems[name] = exc.problem
                continue
            products[name] = product
        for product_set in self.product_sets:
            files = self._product_files.get(product_set.path)
            if files is None or files.product_set != product_set:
                if files is not None:
                    files.close()  # replaced by a rerun since it was opened
                try:
                    files = product_set.open()
                except RecordingFormatError as exc:
                    problems[product_set.name] = exc.problem
                    continue
                self._product_files[product_set.path] = files
            for name in product_set.products:
                key = f"{product_set.name}/{name}"
                try:
                    products[key] = DerivedProduct(files.array(name), product_set.path, key)
                except RecordingFormatError as exc:
                    problems[key] = exc.problem
        return products, problems

    def _file_bytes(self) -> int:
        return os.fstat(self._file.id.get_vfd_handle()).st_size

    @property
    def compression(self) -> str | None:
        """``"blosc-lz4"`` when the frames are Blosc-compressed, else ``None``."""
        plist = self._frames.id.get_create_plist()
        codes = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
        return "blosc-lz4" if 32001 in codes else None

    @property
    def checksum(self) -> bool:
        """Whether the frames carry Fletcher-32 checksums."""
        return bool(self._frames.fletcher32)

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close the file (and the product sets read through it)."""
        for handle in self._product_files.values():
            handle.close()
        self._product_files.clear()
        self._file.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return not bool(self._file.id.valid)

    def __enter__(self) -> Recording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Recording({str(self.path)!r}, {self._count} frames {self.frame_shape} {self.dtype})"
        )


def is_recording_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an HDF5 file carrying the lsci recording marker; never raises.

    Files still being written and files whose writer crashed count, as for
    :func:`open_recording`; whether the file is otherwise readable is left to it.
    """
    return has_recording_marker(Path(path))


def open_recording(path: str | os.PathLike[str]) -> Recording:
    """Open a recording read-only.

    Works on closed files, on files still being written (call :meth:`Recording.refresh` to see
    new frames) and on files whose writer crashed (every flushed frame is there).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5`` file.

    Returns
    -------
    Recording
        Use it as a context manager, or call ``close()``.

    Raises
    ------
    RecordingError
        One clear error naming the file and the problem: missing, not HDF5, truncated, not an
        lsci recording, a newer format version, malformed datasets
        (:class:`RecordingFormatError`).

    Examples
    --------
    >>> with open_recording("run.h5") as rec:  # doctest: +SKIP
    ...     first_ten = rec.frames[:10]
    ...     print(len(rec), rec.metadata.exposure_s, rec.events)
    """
    try:
        return Recording(path)
    except OSError as exc:
        raise RecordingFormatError(path, f"unreadable: {describe_os_error(exc)}") from None
