"""Crash-safe writing of a recording while the camera acquires (HDF5 in SWMR mode).

Why it is built this way
------------------------
* All datasets are created before SWMR mode starts (HDF5 forbids new objects afterwards), and
  SWMR mode starts with the first frame or event, so calibrations can still be added before.
* ``/raw/frames`` grows in blocks of frames (fewer resizes on the hot path); the 1-D per-frame
  datasets (ids and timestamps) are resized together only at a flush, after the frames they
  describe were written. Their common length is the committed frame count: a reader, or a
  file whose writer was killed, never sees ids without frames or frames without ids.
* ``h5py.File.flush`` only hands data to the operating system; a periodic ``os.fsync`` on the
  file descriptor makes it durable against power loss.
* A background thread flushes when frames stop arriving, so a stall never leaves frames
  unflushed for longer than the flush interval.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import h5py
import hdf5plugin
import numpy as np
import numpy.typing as npt

from lsci._version import __version__
from lsci.recording import layout
from lsci.recording._h5 import H5_WRITE_ERRORS, WRITING, describe_os_error, write_error
from lsci.recording.atomic import check_target, create_exclusive, hold, in_use, publish
from lsci.recording.calibration import check_calibration, write_calibration
from lsci.recording.errors import (
    RecordingError,
    RecordingStateError,
    RecordingWriteError,
)
from lsci.recording.events import (
    Event,
    check_label,
    create_event_datasets,
    restate_event_times,
    write_event,
)
from lsci.recording.metadata import AcquisitionMetadata, format_utc, utc_to_ns

Compression = Literal["blosc-lz4"]
#: HDF5 file-format bounds: 1.10 is the oldest format with SWMR, readable by MATLAB R2019b+.
LIBVER = ("v110", "latest")
#: HDF5 files that could not be closed after a write error (kept alive: see ``close``).
_ABANDONED: list[object] = []
#: Disk space kept free beside a file being written, released when the disk fills up.
RESERVE_BYTES = 4 * 1024 * 1024
_T = TypeVar("_T")
COMPRESSIONS: tuple[str, ...] = ("blosc-lz4",)


def compression_filter(compression: str | None) -> Any:
    """The h5py ``compression`` argument for a compression name (``None``: no compression)."""
    if compression is None:
        return None
    if compression == "blosc-lz4":
        return hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE)
    raise ValueError(f"compression={compression!r} is invalid: allowed None or {COMPRESSIONS}")


class RecordingWriter:
    """Append camera frames to a new recording file, crash-safely.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to create (``.h5`` by convention).
    metadata : AcquisitionMetadata
        Acquisition settings. When ``start_time_utc`` is ``None``, the recording starts at the
        host timestamp of its first frame (to the microsecond): ``start_host_time_ns`` and
        ``start_time_utc`` are provisionally the writer's creation until that frame arrives,
        and the ``time_s`` of events added before it are then restated against the start
        (negative: they happened before the first frame).
    frame_shape : tuple of int
        ``(height, width)`` of every frame.
    dtype : numpy dtype
        ``uint8`` or ``uint16``, as the camera delivers the frames (never converted).
    compression : {None, "blosc-lz4"}
        Lossless Blosc LZ4 with bit-shuffle on the frames; off by default.
    checksum : bool
        Fletcher-32 checksum on every chunk (default on) so corruption on disk is detected.
    flush_interval_s : float
        Longest time frames wait in memory before they are flushed to the file (> 0).
    fsync_interval_s : float or None
        Time between ``os.fsync`` calls (0: at every flush; ``None``: only at close).
    overwrite : bool
        Replace an existing file instead of raising :class:`RecordingExistsError`.
    block_frames : int
        Number of frames by which ``/raw/frames`` grows at a time.

    Raises
    ------
    TypeError, ValueError
        When a parameter is invalid.
    RecordingExistsError
        When ``path`` exists and ``overwrite`` is false.
    RecordingWriteError
        When the file cannot be created (permission, missing folder, disk full).

    Notes
    -----
    The writer is thread-safe: one thread may append while another adds events. Any write
    failure (disk full, I/O error) is raised as :class:`RecordingWriteError`; the writer then
    stops writing, and what was flushed before stays readable. Closing it then stores an event
    ``"write error, N frames not stored: <cause>"`` after the last stored frame, and
    :attr:`frames_lost` counts the N frames appended after the last successful flush.

    Examples
    --------
    >>> meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=200.0)
    >>> with RecordingWriter("run.h5", meta, frame_shape=(1024, 1280), dtype="uint8") as w:
    ...     w.append(frame, frame_id=0)  # doctest: +SKIP
    ...     w.add_event("needling start")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: AcquisitionMetadata,
        *,
        frame_shape: Sequence[int],
        dtype: npt.DTypeLike,
        compression: Compression | None = None,
        checksum: bool = True,
        flush_interval_s: float = 0.5,
        fsync_interval_s: float | None = 1.0,
        overwrite: bool = False,
        block_frames: int = 64,
    ) -> None:
        if not isinstance(metadata, AcquisitionMetadata):
            raise TypeError(f"metadata must be an AcquisitionMetadata, got {type(metadata)}")
        self.frame_shape = _check_shape(frame_shape)
        self.dtype = np.dtype(dtype)
        if self.dtype not in layout.FRAME_DTYPES:
            raise ValueError(f"dtype={self.dtype} is invalid: allowed uint8 and uint16")
        if metadata.bit_depth is not None and metadata.bit_depth > 8 * self.dtype.itemsize:
            raise ValueError(
                f"metadata.bit_depth={metadata.bit_depth} does not fit dtype={self.dtype}"
            )
        compression_args = compression_filter(compression)
        self.flush_interval_s = _check_interval("flush_interval_s", flush_interval_s, zero=False)
        self.fsync_interval_s = (
            None
            if fsync_interval_s is None
            else _check_interval("fsync_interval_s", fsync_interval_s, zero=True)
        )
        if isinstance(block_frames, bool) or not isinstance(block_frames, int) or block_frames < 1:
            raise ValueError(f"block_frames={block_frames!r} is invalid: allowed integers >= 1")
        self.path = Path(path)
        check_target(self.path, overwrite=overwrite)
        # Without a given start, the recording starts at its first frame (see _anchor_start);
        # until then the start is provisionally now.
        self._start_at_first_frame = metadata.start_time_utc is None
        start_utc = (
            _utc_of(time.time_ns()) if metadata.start_time_utc is None else metadata.start_time_utc
        )
        self.start_host_time_ns = utc_to_ns(start_utc)
        self.metadata = replace(metadata, start_time_utc=start_utc)
        self._block = block_frames
        self._lock = threading.RLock()
        self._pending_ids: list[int] = []
        self._pending_camera: list[int] = []
        self._pending_host: list[int] = []
        self._written = 0
        self._committed = 0
        self._dropped = 0
        self._lost = 0
        self._last_id: int | None = None
        self._calibrations: list[tuple[str, dict[str, np.ndarray], dict[str, Any], bool]] = []
        self._closed = False
        self._failure: RecordingWriteError | None = None
        self._last_flush = time.monotonic()
        self._last_fsync = self._last_flush
        self._unsynced = False
        self._hold: int | None = None
        self._reserve = self._make_reserve()
        try:
            self._file = self._create(compression_args, checksum, overwrite)
        except BaseException:
            self._release_reserve()
            raise
        # Our own descriptor for fsync: valid until we close it, whatever HDF5 does meanwhile.
        self._fd = os.dup(self._file.id.get_vfd_handle())
        written = os.fstat(self._fd)
        self._identity = (written.st_dev, written.st_ino)
        WRITING.add(self.path.resolve())
        self._stop = threading.Event()
        self._flusher = threading.Thread(
            target=self._background, name=f"lsci-flush-{self.path.name}", daemon=True
        )
        self._flusher.start()

    # ----------------------------------------------------------------- creation
    def _create(self, compression_args: Any, checksum: bool, overwrite: bool) -> h5py.File:
        """Build the complete file under a temporary name, reopen it in SWMR mode, publish it.

        A file open for writing without SWMR cannot be opened at all after a crash, so the
        file never exists under its real name in that state: it is built and closed under a
        random name created exclusively in the target folder (a planted symbolic link cannot
        redirect it), reopened in SWMR-write mode, and only then renamed to its real name.
        """
        try:
            partial, descriptor = create_exclusive(self.path.parent, ".partial")
            os.close(descriptor)
        except OSError as exc:
            raise RecordingWriteError(
                self.path, f"cannot create the file: {describe_os_error(exc)}"
            ) from None
        opened: h5py.File | None = None
        try:
            handle = h5py.File(partial, "w", libver=LIBVER)
            try:
                self._build(handle, compression_args, checksum)
            finally:
                handle.close()
            access = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
            access.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
            flags = h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE
            opened = h5py.File(h5py.h5f.open(os.fsencode(partial), flags, fapl=access))
            self._hold = hold(partial)
            if overwrite:
                check_target(self.path, overwrite=True)  # not replacing a file in use
            publish(partial, self.path, overwrite=overwrite)
        except H5_WRITE_ERRORS as exc:
            self._abandon_partial(opened, partial)
            raise write_error(self.path, exc, "creating the recording") from None
        except BaseException:
            self._abandon_partial(opened, partial)
            raise
        self._frames: h5py.Dataset = opened[layout.FRAMES]
        self._file_space = self._frames.id.get_space()
        self._memory_space = (1, h5py.h5s.create_simple((1, *self.frame_shape)))
        self._per_frame: list[h5py.Dataset] = [opened[name] for name in layout.PER_FRAME]
        self._raw_attrs = opened[layout.RAW].attrs
        self._acquisition_attrs = opened[layout.ACQUISITION].attrs
        return opened

    def _abandon_partial(self, opened: h5py.File | None, partial: Path) -> None:
        if opened is not None:
            opened.close()
        if self._hold is not None:
            os.close(self._hold)
            self._hold = None
        partial.unlink(missing_ok=True)

    def _build(self, handle: h5py.File, compression_args: Any, checksum: bool) -> None:
        handle.attrs["lsci_format"] = layout.FORMAT_NAME
        handle.attrs["format_version"] = np.int64(layout.FORMAT_VERSION)
        handle.attrs["lsci_version"] = __version__
        acquisition = handle.create_group(layout.ACQUISITION)
        for key, value in self.metadata.to_attrs().items():
            acquisition.attrs[key] = value
        acquisition.attrs["start_host_time_ns"] = np.int64(self.start_host_time_ns)
        raw = handle.create_group(layout.RAW)
        height, width = self.frame_shape
        frames = raw.create_dataset(
            "frames",
            shape=(0, height, width),
            maxshape=(None, height, width),
            chunks=(1, height, width),
            dtype=self.dtype,
            compression=compression_args,
            fletcher32=checksum,
        )
        frames.attrs["unit"] = "counts"
        for name in layout.PER_FRAME:
            handle.create_dataset(
                name,
                shape=(0,),
                maxshape=(None,),
                chunks=(layout.INDEX_CHUNK,),
                dtype=layout.PER_FRAME_DTYPES[name],
                fletcher32=checksum,
            )
        handle[layout.CAMERA_TIMESTAMP].attrs["missing_value"] = np.int64(
            layout.NO_CAMERA_TIMESTAMP
        )
        raw.attrs["dropped_frames"] = np.uint64(0)
        raw.attrs["closed_cleanly"] = np.uint8(0)
        create_event_datasets(handle)
        handle.create_group(layout.CALIBRATIONS)
        handle.create_group(layout.DERIVED)

    # ----------------------------------------------------------------- properties
    @property
    def frames_written(self) -> int:
        """Frames appended so far (flushed or not)."""
        return self._written

    @property
    def frames_committed(self) -> int:
        """Frames flushed to the file: what a reader, or a crash, would see."""
        return self._committed

    @property
    def frames_lost(self) -> int:
        """Frames appended but not stored because writing failed (known once closed): they
        came after the last successful flush. The file records them as an event."""
        return self._lost

    @property
    def dropped_frames(self) -> int:
        """Frames missing according to gaps in the frame ids so far."""
        return self._dropped

    # ----------------------------------------------------------------- appending
    def append(
        self,
        frame: np.ndarray,
        *,
        frame_id: int,
        camera_timestamp_ns: int | None = None,
        host_timestamp_ns: int | None = None,
    ) -> None:
        """Append one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            2-D array of exactly ``frame_shape`` and ``dtype``.
        frame_id : int
            The camera's frame counter (>= 0); gaps count as dropped frames.
        camera_timestamp_ns : int, optional
            The camera's timestamp in nanoseconds; ``None`` when the camera has none.
        host_timestamp_ns : int, optional
            Host time of arrival, ns since the Unix epoch; ``None``: now (``time.time_ns()``).

        Raises
        ------
        TypeError, ValueError
            When the frame or a stamp is invalid.
        RecordingWriteError
            When writing fails (the writer then refuses further frames).
        RecordingStateError
            When the writer is closed.
        """
        self._check_frame(frame)
        ids = [_check_count("frame_id", frame_id, _UINT64_MAX)]
        camera = [_camera_stamp(camera_timestamp_ns)]
        host = [
            time.time_ns()
            if host_timestamp_ns is None
            else _check_count("host_timestamp_ns", host_timestamp_ns)
        ]
        with self._lock:
            self._ensure_writable()
            index = self._written
            self._guarded(lambda: self._write_frames(index, frame[np.newaxis]), "writing a frame")
            self._queue(ids, camera, host)

    def append_many(
        self,
        frames: np.ndarray,
        *,
        frame_ids: npt.ArrayLike,
        camera_timestamps_ns: npt.ArrayLike | None = None,
        host_timestamps_ns: npt.ArrayLike | None = None,
    ) -> None:
        """Append a batch of frames in one write.

        Parameters
        ----------
        frames : numpy.ndarray
            3-D array ``(n, height, width)`` of the writer's dtype.
        frame_ids : array_like of int
            ``n`` camera frame counters.
        camera_timestamps_ns : array_like of int, optional
            ``n`` camera timestamps (``-1`` for a frame without one); ``None`` when the camera
            has none.
        host_timestamps_ns : array_like of int, optional
            ``n`` host times (ns since the Unix epoch); ``None``: now, for every frame.

        Raises
        ------
        TypeError, ValueError, RecordingWriteError, RecordingStateError
            As :meth:`append`.
        """
        if not isinstance(frames, np.ndarray) or frames.ndim != 3:
            raise TypeError(f"frames must be a 3-D ndarray (n, height, width), got {frames!r:.80}")
        count = frames.shape[0]
        for frame in frames[:1]:
            self._check_frame(frame)
        if frames.shape[1:] != self.frame_shape:
            raise ValueError(f"frames shape {frames.shape} does not match {self.frame_shape}")
        ids = _check_counts("frame_ids", frame_ids, count, maximum=_UINT64_MAX)
        camera = (
            [layout.NO_CAMERA_TIMESTAMP] * count
            if camera_timestamps_ns is None
            else _check_counts(
                "camera_timestamps_ns", camera_timestamps_ns, count, layout.NO_CAMERA_TIMESTAMP
            )
        )
        host = (
            [time.time_ns()] * count
            if host_timestamps_ns is None
            else _check_counts("host_timestamps_ns", host_timestamps_ns, count)
        )
        if count == 0:
            return
        with self._lock:
            self._ensure_writable()
            index = self._written
            self._guarded(lambda: self._write_frames(index, frames), "writing frames")
            self._queue(ids, camera, host)

    def _check_frame(self, frame: object) -> None:
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"frame must be a numpy.ndarray, got {type(frame)}")
        if frame.dtype != self.dtype:
            raise ValueError(
                f"frame dtype {frame.dtype} does not match the recording's {self.dtype}; frames "
                "are stored exactly as the camera delivers them, never converted"
            )
        if frame.shape != self.frame_shape:
            raise ValueError(f"frame shape {frame.shape} does not match {self.frame_shape}")

    def _write_frames(self, index: int, frames: np.ndarray) -> None:
        count = frames.shape[0]
        if self._frames.shape[0] < index + count:
            self._frames.resize(index + count + self._block - 1, axis=0)
            self._file_space = self._frames.id.get_space()
        # The low-level write skips h5py's per-call selection parsing: a measurable share of
        # the time per frame at hundreds of frames per second.
        if self._memory_space[0] != count:
            self._memory_space = (count, h5py.h5s.create_simple(frames.shape))
        self._file_space.select_hyperslab((index, 0, 0), frames.shape)
        self._frames.id.write(self._memory_space[1], self._file_space, np.ascontiguousarray(frames))

    def _queue(self, ids: list[int], camera: list[int], host: list[int]) -> None:
        if self._start_at_first_frame and self._written == 0 and host:
            self._guarded(lambda: self._anchor_start(host[0]), "setting the start time")
        for frame_id in ids:
            if self._last_id is not None and frame_id > self._last_id + 1:
                self._dropped += frame_id - self._last_id - 1
            self._last_id = frame_id
        self._pending_ids.extend(ids)
        self._pending_camera.extend(camera)
        self._pending_host.extend(host)
        self._written += len(ids)
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self._guarded(self._flush_locked, "flushing")

    def _anchor_start(self, first_host_ns: int) -> None:
        """Start the recording at its first frame, not when the writer was created.

        Cameras can take seconds to deliver their first frame after the file was created;
        every ``time_s`` (of events, and of frames read back) counts from this start.
        """
        self._start_at_first_frame = False
        start_utc = _utc_of(first_host_ns)
        start_ns = utc_to_ns(start_utc)
        self._acquisition_attrs.modify("start_time_utc", start_utc)
        self._acquisition_attrs.modify("start_host_time_ns", np.int64(start_ns))
        self.start_host_time_ns = start_ns
        self.metadata = replace(self.metadata, start_time_utc=start_utc)
        restate_event_times(self._file, start_ns)

    # ----------------------------------------------------------------- events, calibrations
    def add_event(self, label: str, *, host_time_ns: int | None = None) -> Event:
        """Mark a moment during acquisition, e.g. ``"needling start"``; flushed at once.

        Parameters
        ----------
        label : str
            1 to 128 UTF-8 bytes.
        host_time_ns : int, optional
            When, on the host clock (ns since the Unix epoch); ``None``: now.

        Returns
        -------
        Event
            With ``time_s`` since the start and ``frame_index`` = frames with an earlier host
            timestamp (for ``host_time_ns=None``: the frames appended so far).

        Raises
        ------
        TypeError, ValueError, RecordingWriteError, RecordingStateError
            When the label is invalid or the event cannot be written.
        """
        encoded = check_label(label)
        moment = (
            time.time_ns() if host_time_ns is None else _check_count("host_time_ns", host_time_ns)
        )
        with self._lock:
            self._ensure_writable()
            if host_time_ns is None:
                index = self._written
            else:
                stamps = np.concatenate(
                    [
                        self._per_frame[2][: self._committed],
                        np.asarray(self._pending_host, dtype=np.int64),
                    ]
                )
                index = int(np.count_nonzero(stamps < moment))

            def write() -> Event:
                event = write_event(self._file, encoded, moment, self.start_host_time_ns, index)
                self._flush_locked()
                return event

            return self._guarded(write, "adding an event")

    def save_calibration(
        self,
        name: str,
        arrays: dict[str, np.ndarray],
        attrs: dict[str, Any] | None = None,
        *,
        overwrite: bool = False,
    ) -> None:
        """Store a calibration (dark frame, β...) in ``/calibrations/<name>`` at close.

        HDF5 cannot add objects to a file in SWMR mode, so the calibration is kept in memory
        and written when the writer closes; it is lost if the process dies first. For
        durability at once, save it on the closed file with
        :func:`lsci.recording.save_calibration`.

        Parameters
        ----------
        name : str
            Calibration name.
        arrays : dict of str to numpy.ndarray
            Arrays (bool, integer or float); copied now.
        attrs : dict, optional
            Scalar, string or 1-D numeric attributes.
        overwrite : bool
            Replace a calibration of the same name saved earlier to this writer.

        Raises
        ------
        TypeError, ValueError
            When the calibration is invalid.
        RecordingError
            When the name was already saved and ``overwrite`` is false, or the writer is
            closed.
        """
        name, checked, clean = check_calibration(name, arrays, attrs)
        copies = {key: array.copy() for key, array in checked.items()}
        with self._lock:
            self._ensure_writable()
            queued = [entry for entry in self._calibrations if entry[0] != name]
            if len(queued) != len(self._calibrations) and not overwrite:
                raise RecordingError(
                    self.path,
                    f"a calibration named {name!r} was already saved; pass overwrite=True",
                )
            self._calibrations = [*queued, (name, copies, clean, overwrite)]

    # ----------------------------------------------------------------- flushing
    def flush(self, *, fsync: bool = False) -> None:
        """Flush appended frames to the file now (and ``os.fsync`` it when ``fsync``)."""
        with self._lock:
            self._ensure_writable()
            self._guarded(lambda: self._flush_locked(force_fsync=fsync), "flushing")

    def _flush_locked(self, *, force_fsync: bool = False) -> None:
        start, end = self._committed, self._written
        if end > start:
            pending = (self._pending_ids, self._pending_camera, self._pending_host)
            for dataset, values in zip(self._per_frame, pending, strict=True):
                dataset.resize(end, axis=0)
                dataset[start:end] = np.asarray(values, dtype=dataset.dtype)
            # Saturates: a counter reset and gaps after it can add up past 2**64.
            self._raw_attrs.modify("dropped_frames", np.uint64(min(self._dropped, _UINT64_MAX)))
        self._file.flush()
        self._committed = end
        for values in (self._pending_ids, self._pending_camera, self._pending_host):
            values.clear()
        self._last_flush = time.monotonic()
        self._unsynced = True
        if force_fsync or self.fsync_interval_s == 0:
            os.fsync(self._fd)
            self._last_fsync = time.monotonic()
            self._unsynced = False

    def _background(self) -> None:
        """Flush when frames stop arriving, and fsync periodically without blocking appends.

        ``os.fsync`` can take most of a second while the disk catches up; it runs here, outside
        the writer's lock, on a duplicate of the file descriptor, so acquisition goes on.
        """
        intervals = [self.flush_interval_s]
        if self.fsync_interval_s:
            intervals.append(self.fsync_interval_s)
        period = min(0.25, *intervals) / 2
        while not self._stop.wait(period):
            with self._lock:
                if self._closed or self._failure is not None:
                    return
                now = time.monotonic()
                if now - self._last_flush >= self.flush_interval_s and (
                    self._written > self._committed
                ):
                    try:
                        self._guarded(self._flush_locked, "flushing")
                    except RecordingWriteError:
                        return
                sync = (
                    bool(self.fsync_interval_s)
                    and self._unsynced
                    and now - self._last_fsync >= (self.fsync_interval_s or 0.0)
                )
                if sync:
                    self._unsynced = False
                    self._last_fsync = now
            if sync:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    with self._lock:
                        self._failure = write_error(self.path, exc, "fsync")
                    return

    def _guarded(self, action: Callable[[], _T], doing: str) -> _T:
        """Run a write; on an OS error, remember it, stop writing, and raise it clearly.

        A failed flush is one of :data:`H5_WRITE_ERRORS` too: left unhandled in the flushing
        thread, appends went on into a file HDF5 had half written, and closing it later crashed
        the interpreter.
        """
        try:
            return action()
        except H5_WRITE_ERRORS as exc:
            self._failure = write_error(self.path, exc, doing)
            raise self._failure from None

    def _ensure_writable(self) -> None:
        if self._closed:
            raise RecordingStateError(self.path, "the writer is closed")
        if self._failure is not None:
            raise RecordingWriteError(
                self.path, f"writing stopped after an earlier error: {self._failure.problem}"
            )

    # ----------------------------------------------------------------- closing
    def close(self) -> None:
        """Flush everything, trim ``/raw/frames`` to the frame count, fsync and close.

        Raises
        ------
        RecordingWriteError
            When the final flush fails (the file keeps what was flushed before). After an
            earlier write error, close releases what it can and does not raise again.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            failed_before = self._failure is not None
            loss: tuple[bytes, int] | None = None
            if failed_before:
                # Frames after the last good flush may not have reached the disk: drop them,
                # and give HDF5 room to write the metadata it still holds (see _make_reserve).
                assert self._failure is not None
                self._lost = self._written - self._committed
                loss = self._loss_event(self._failure.problem)
                self._written = self._committed
                for values in (self._pending_ids, self._pending_camera, self._pending_host):
                    values.clear()
                self._release_reserve()
                self._failure = None
            if loss is not None:
                self._record_loss(*loss)
            with contextlib.suppress(RecordingWriteError):
                self._guarded(self._finish, "closing")
            try:
                self._file.close()
            except H5_WRITE_ERRORS as exc:
                self._failure = self._failure or write_error(self.path, exc, "closing")
            if self._failure is not None:
                # HDF5 could not release the file; freeing its handles now would crash the
                # interpreter, so they live until the process ends. The file on disk keeps
                # its last flushed state.
                _ABANDONED.append(self._file)
        self._flusher.join()
        os.close(self._fd)
        if self._hold is not None:
            os.close(self._hold)
            self._hold = None
        self._release_reserve()
        WRITING.discard(self.path.resolve())
        if self._failure is None and not self._still_named():
            self._failure = RecordingWriteError(
                self.path,
                "this name no longer points at the recording that was being written: the file "
                "was replaced, moved or deleted meanwhile, and the frames written to it are not "
                "under this name",
            )
        if self._failure is not None:
            if not failed_before:
                raise self._failure
            return
        if self._calibrations and not failed_before:
            self._write_calibrations()

    def _record_loss(self, label: bytes, moment: int) -> None:
        """After a write error: drop the frames past the last flush, then store the event.

        Shrinking ``/raw/frames`` first makes HDF5 discard the chunks it still holds for
        those frames; writing them out could need more room than the reserve gives back.
        """

        def record() -> None:
            self._frames.resize(self._committed, axis=0)
            write_event(self._file, label, moment, self.start_host_time_ns, self._committed)

        with contextlib.suppress(RecordingWriteError):
            self._guarded(record, "recording the write error")

    def _loss_event(self, problem: str) -> tuple[bytes, int]:
        """The event that records a write failure: label and host time (of the first frame
        not stored, or now when every appended frame was stored)."""
        moment = self._pending_host[0] if self._pending_host else time.time_ns()
        text = f"write error, {self._lost} frames not stored: {problem}"
        encoded = text.encode("utf-8")[: layout.EVENT_LABEL_BYTES]
        return encoded.decode("utf-8", errors="ignore").encode("utf-8"), moment

    def _still_named(self) -> bool:
        try:
            current = os.stat(self.path)
        except OSError:
            return False
        return (current.st_dev, current.st_ino) == self._identity

    def _make_reserve(self) -> Path:
        """Set aside a little disk space beside the file, given back if the disk fills up.

        When a write fails because the disk is full, HDF5 still holds metadata it could not
        write and cannot close the file. Deleting this reserve lets it flush that metadata and
        close the file in a consistent state. The reserve is held with an advisory lock while
        the writer lives, so the reserve of a writer that was killed is recognised (not held)
        and removed by the next writer in the folder.
        """
        _remove_stale_reserves(self.path.parent)
        try:
            reserve, descriptor = create_exclusive(self.path.parent, _RESERVE_SUFFIX)
        except OSError as exc:
            raise RecordingWriteError(
                self.path, f"cannot create the file: {describe_os_error(exc)}"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            os.posix_fallocate(descriptor, 0, RESERVE_BYTES)
        except OSError as exc:
            os.close(descriptor)
            with contextlib.suppress(OSError):
                reserve.unlink(missing_ok=True)
            raise RecordingWriteError(
                self.path, f"cannot create the file: {describe_os_error(exc)}"
            ) from None
        self._reserve_fd: int | None = descriptor
        return reserve

    def _release_reserve(self) -> None:
        with contextlib.suppress(OSError):
            self._reserve.unlink(missing_ok=True)
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)  # the space is freed when the last descriptor closes
            self._reserve_fd = None

    def _write_calibrations(self) -> None:
        try:
            with h5py.File(self.path, "r+") as handle:
                parent = handle[layout.CALIBRATIONS]
                for name, arrays, attrs, overwrite in self._calibrations:
                    write_calibration(parent, name, arrays, attrs, overwrite=overwrite)
                handle.flush()
                os.fsync(handle.id.get_vfd_handle())
        except H5_WRITE_ERRORS as exc:
            raise write_error(self.path, exc, "saving calibrations") from None
        self._calibrations.clear()

    def _finish(self) -> None:
        self._flush_locked()
        for dataset in (self._frames, *self._per_frame):
            dataset.resize(self._committed, axis=0)
        self._raw_attrs.modify("closed_cleanly", np.uint8(1))
        self._flush_locked(force_fsync=True)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except RecordingError:
            if exc is None:
                raise

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"RecordingWriter({str(self.path)!r}, {self._written} frames "
            f"{self.frame_shape} {self.dtype}, {state})"
        )


_RESERVE_SUFFIX = ".reserve"
_RESERVE_NAME = re.compile(r"\.lsci-[0-9a-f]{32}\.reserve")


def _remove_stale_reserves(folder: Path) -> None:
    """Delete the disk-space reserves that writers killed in ``folder`` left behind."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            stale = (
                _RESERVE_NAME.fullmatch(entry.name)
                and entry.is_file(follow_symlinks=False)
                and not in_use(entry.path)
            )
            if stale:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise TypeError(f"frame_shape must be (height, width), got {shape!r}") from None
    if len(values) != 2 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(f"frame_shape={shape!r} is invalid: allowed two positive integers")
    return int(values[0]), int(values[1])


def _check_interval(name: str, value: object, *, zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        allowed = ">= 0" if zero else "> 0"
        raise ValueError(f"{name}={value!r} is invalid: allowed finite values {allowed}")
    return float(value)


def _utc_of(host_time_ns: int) -> str:
    """The canonical UTC time string of a host time, truncated to the microsecond."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=host_time_ns // 1000)
    return format_utc(moment)


_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


def _check_count(name: str, value: object, maximum: int = _INT64_MAX) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not 0 <= int(value) <= maximum
    ):
        raise ValueError(f"{name}={value!r} is invalid: allowed integers 0 to {maximum}")
    return int(value)


def _camera_stamp(value: object) -> int:
    if value is None:
        return layout.NO_CAMERA_TIMESTAMP
    return _check_count("camera_timestamp_ns", value)


def _check_counts(
    name: str, values: npt.ArrayLike, count: int, minimum: int = 0, maximum: int = _INT64_MAX
) -> list[int]:
    array = np.asarray(values)
    if array.shape != (count,) or (count and array.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be {count} integers, got shape {array.shape} {array.dtype}")
    if count and not (minimum <= int(array.min()) and int(array.max()) <= maximum):
        raise ValueError(f"{name} is invalid: allowed integers {minimum} to {maximum}")
    return [int(v) for v in array]
