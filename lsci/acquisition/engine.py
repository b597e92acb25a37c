"""The acquisition engine: camera thread, recorder thread, live thread, and their life cycle.

Threads and who owns what:

- The **camera thread** reads every frame with :meth:`~lsci.drivers.base.Camera.read_into`
  straight into a slot of the :class:`~lsci.acquisition.ring.FrameRing` (the only copy of the
  pixels on the hot path is the driver's, into that slot).
- The **recorder thread** appends committed slots, in order and in runs, to the
  :class:`~lsci.recording.RecordingWriter`, then releases them. It owns the writer: it also
  stores events and closes the file, so the file is complete whenever the recorder ends,
  whether the acquisition was stopped or failed.
- The **live thread** copies the newest frames (a sequence lock, never holding up the
  camera) and computes a live map of them at the rate the machine affords
  (:mod:`lsci.acquisition.live`).
- The **relay thread** (:mod:`lsci.acquisition.signals`) emits every signal.

When the recorder falls behind and the ring is full, the camera thread does not wait: it
reads the frame into the ring's spare slot and the frame is dropped. Waiting would only move
the loss into the camera's transport buffers, where it would show up as anonymous gaps in
the ids, blamed on the camera; overwriting the oldest unrecorded slot instead would race with
the recorder writing it. Dropped frames are counted (``frames_dropped_pipeline``), emitted as
``frames_dropped`` and stored in the recording as an event ``"pipeline drop: N frames (ids
A-B)"`` at the place of the gap. Gaps the camera itself left in its ids are counted as
``frames_dropped_camera`` (and by the writer in ``/raw`` attribute ``dropped_frames``, which
counts every gap in the stored ids, pipeline drops included).

An error in any thread (a disconnected camera, a full disk, a failing live computation) stops
the acquisition: the camera thread stops the camera and hands the frames it still delivers to
the recorder, the recorder stores what it can and closes the file, ``error`` is emitted, and
:meth:`AcquisitionPipeline.stop` raises the error (or returns it in the summary). Frames the
recorder appended after the file's last successful flush are then not in the file: they are
counted as dropped by the pipeline, not as recorded, and the file stores an event that says
how many. An event that cannot be stored is not such an error: it is reported (signal
``problem``, :attr:`PipelineSummary.problems`) and recording goes on.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from types import TracebackType
from typing import Final, Self

import numba
import numpy as np

from lsci.acquisition.live import LiveSettings, live_map
from lsci.acquisition.ring import FrameRing
from lsci.acquisition.signals import PipelineSignals, Relay
from lsci.acquisition.stats import FrameDrop, PipelineStats, PipelineSummary
from lsci.drivers import pixel_formats
from lsci.drivers.base import (
    Camera,
    CameraState,
    FrameInfo,
    FrameTimeoutError,
    Roi,
    UnsupportedFeatureError,
)
from lsci.errors import LsciError
from lsci.recording import AcquisitionMetadata, Event, RecordingWriteError, RecordingWriter
from lsci.recording.events import check_label

__all__ = [
    "AcquisitionPipeline",
    "PipelineState",
    "PipelineStateError",
    "default_ring_frames",
    "recording_metadata",
]

#: Memory the ring takes by default.
RING_BYTES: Final = 256 * 2**20
#: Bytes of frames the recorder appends in one call at most. h5py holds the interpreter lock
#: while it writes, so a long write would keep the camera thread from fetching frames.
_BATCH_BYTES: Final = 4 * 2**20
#: How long the recorder lets frames gather before it writes a batch smaller than the limit.
_GATHER_S: Final = 0.01
#: How often idle threads look at their stop flags, in seconds.
_POLL_S: Final = 0.1


class PipelineState(enum.Enum):
    """The life cycle of an :class:`AcquisitionPipeline`: idle → running → finished."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    FINISHED = "finished"


class PipelineStateError(LsciError):
    """The operation needs another pipeline state (e.g. marking an event before start)."""


def default_ring_frames(frame_shape: tuple[int, int], dtype: np.dtype[np.generic]) -> int:
    """Ring slots for :data:`RING_BYTES` of frames, between 8 and 4096."""
    frame_bytes = frame_shape[0] * frame_shape[1] * np.dtype(dtype).itemsize
    return int(min(max(RING_BYTES // frame_bytes, 8), 4096))


def recording_metadata(
    camera: Camera, *, producer: str | None = None, notes: str = ""
) -> AcquisitionMetadata:
    """The acquisition metadata of an open camera's current settings.

    Settings the camera lacks are left unknown (None).

    Parameters
    ----------
    camera
        An open camera.
    producer
        The GenTL producer file, if any.
    notes
        Free text.
    """

    def setting(name: str) -> object:
        try:
            return camera.get(name)
        except UnsupportedFeatureError:
            return None

    exposure, gain, rate = (setting(n) for n in ("exposure_s", "gain", "frame_rate_hz"))
    pixel_format = str(camera.get("pixel_format"))
    roi = camera.get("roi")
    assert isinstance(roi, Roi)
    try:
        bit_depth = pixel_formats.bit_depth(pixel_format)
    except ValueError:
        bit_depth = 8 * camera.frame_dtype.itemsize
    # GenICam cameras describe their device; other cameras only have a name.
    device = getattr(camera, "description", None)
    return AcquisitionMetadata(
        exposure_s=exposure if isinstance(exposure, float) else None,
        gain=gain if isinstance(gain, float) else None,
        frame_rate_hz=rate if isinstance(rate, float) else None,
        pixel_format=pixel_format,
        bit_depth=bit_depth,
        roi=roi,
        camera_vendor=getattr(device, "vendor", None),
        camera_model=str(getattr(device, "model", camera.name)),
        camera_serial=getattr(device, "serial_number", None),
        producer=producer,
        notes=notes,
    )


class AcquisitionPipeline:
    """Record every frame of a camera while computing live maps, with signals for listeners.

    Parameters
    ----------
    camera
        An open camera, configured; the pipeline starts and stops it (it stays open).
    writer
        The recording to append to, of the camera's frame shape and dtype; the pipeline
        closes it when the acquisition ends. None acquires without recording (live view).
    ring_frames
        Slots in the ring buffer (>= 2); by default :func:`default_ring_frames`. More slots
        ride out longer stalls of the disk.
    live
        Live processing settings; None for no live maps.
    read_timeout_s
        How long one camera read waits (> 0); also the longest delay of a stop request.
    stats_interval_s
        Time between ``stats_updated`` signals (> 0).
    signal_backlog
        Pending ``frame_acquired`` notifications kept for slow listeners (>= 1).

    Raises
    ------
    PipelineStateError
        When the camera is not open.
    ValueError
        When a parameter is invalid or the writer does not match the camera's frames.

    Examples
    --------
    >>> camera.open()  # doctest: +SKIP
    >>> writer = RecordingWriter("run.h5", recording_metadata(camera),
    ...                          frame_shape=camera.frame_shape, dtype=camera.frame_dtype)
    >>> pipeline = AcquisitionPipeline(camera, writer)  # doctest: +SKIP
    >>> pipeline.events.live_map_ready.connect(show)  # doctest: +SKIP
    >>> pipeline.start()  # doctest: +SKIP
    >>> pipeline.mark_event("needling start")  # doctest: +SKIP
    >>> summary = pipeline.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        camera: Camera,
        writer: RecordingWriter | None = None,
        *,
        ring_frames: int | None = None,
        live: LiveSettings | None = None,
        read_timeout_s: float = 0.2,
        stats_interval_s: float = 0.5,
        signal_backlog: int = 1024,
    ) -> None:
        if camera.state is not CameraState.OPEN:
            raise PipelineStateError(
                f"the camera {camera.name} is {camera.state.value}; open it (and do not start "
                "it) before creating the pipeline"
            )
        shape, dtype = camera.frame_shape, camera.frame_dtype
        if writer is not None and (writer.frame_shape != shape or writer.dtype != dtype):
            raise ValueError(
                f"writer frames are {writer.frame_shape} {writer.dtype}; the camera delivers "
                f"{shape} {dtype}"
            )
        if ring_frames is not None and (
            isinstance(ring_frames, bool) or not isinstance(ring_frames, int) or ring_frames < 2
        ):
            raise ValueError(f"ring_frames={ring_frames!r} is invalid: allowed integers >= 2")
        capacity = default_ring_frames(shape, dtype) if ring_frames is None else ring_frames
        for name, value in (
            ("read_timeout_s", read_timeout_s),
            ("stats_interval_s", stats_interval_s),
        ):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} is invalid: allowed finite seconds > 0")
        if (
            isinstance(signal_backlog, bool)
            or not isinstance(signal_backlog, int)
            or signal_backlog < 1
        ):
            raise ValueError(f"signal_backlog={signal_backlog!r} is invalid: allowed integers >= 1")
        self.camera = camera
        self.writer = writer
        self.live_settings = live
        self.events = PipelineSignals()
        self._ring = FrameRing(capacity, shape, dtype)
        self._frame_bytes = self._ring.frames[0].nbytes
        self._batch_frames = max(1, _BATCH_BYTES // self._frame_bytes)
        self._read_timeout_s = float(read_timeout_s)
        self._relay = Relay(
            self.events, self.stats, backlog=signal_backlog, stats_interval_s=stats_interval_s
        )
        self._state = PipelineState.IDLE
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._recording_failed = False
        # Host time stamps of frames are monotonic; the recording's are since the Unix epoch.
        self._epoch_offset_ns = 0
        self._start_s = 0.0
        self._end_s: float | None = None
        # Counters: each written by one thread only.
        self._received = 0
        self._recorded = 0
        self._dropped_camera = 0
        self._dropped_full = 0  # the ring was full (camera thread)
        self._dropped_unrecorded = 0  # in the ring when recording failed (recorder thread)
        self._live_maps = 0
        self._last_id: int | None = None
        self._run: list[int] | None = None  # [count, first id, last id, host epoch ns]
        self._pending: list[tuple[int, str]] = []  # events waiting for their frames
        self._marks_closed = False
        self._stored: list[Event] = []
        self._problems: list[str] = []
        self._drops: list[FrameDrop] = []
        self._rate_sample = (0.0, 0, 0)
        self._rates = (0.0, 0.0)
        self._summary: PipelineSummary | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle -------------------------------------------------------------------------
    @property
    def state(self) -> PipelineState:
        """The current state."""
        return self._state

    def start(self) -> None:
        """Start the camera and the threads; ``started`` is emitted.

        Raises
        ------
        PipelineStateError
            When the pipeline was started before.
        CameraError
            When the camera cannot start; the recording is then closed without frames.
        """
        if self._state is not PipelineState.IDLE:
            raise PipelineStateError(f"the pipeline is {self._state.value}; it runs only once")
        try:
            if self.live_settings is not None:
                # Compiling (or loading) the kernels holds the interpreter for a while: do it
                # now, not while the camera thread must keep up with the camera.
                live_map(self._ring.spare, self.live_settings)
            self._epoch_offset_ns = time.time_ns() - time.monotonic_ns()
            self.camera.start()
        except BaseException:
            self._state = PipelineState.FINISHED
            if self.writer is not None:
                self.writer.close()
            raise
        self._start_s = time.monotonic()
        self._rate_sample = (self._start_s, 0, 0)
        self._state = PipelineState.RUNNING
        targets = [("camera", self._acquire), ("recorder", self._record)]
        if self.live_settings is not None:
            targets.append(("live", self._live))
        self._threads = [
            threading.Thread(target=target, name=f"lsci-pipeline-{name}", daemon=True)
            for name, target in targets
        ]
        self._relay.start()
        self._relay.post(self.events.started)
        for thread in self._threads:
            thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until recording has ended on its own (after an error) or was stopped.

        Returns
        -------
        bool
            True when it has ended, False when ``timeout_s`` passed first.
        """
        return self._done.wait(timeout_s)

    def stop(self, *, raise_on_error: bool = True) -> PipelineSummary:
        """Stop the camera, record the frames it still delivers, close the recording.

        Calling it again returns the same summary.

        Parameters
        ----------
        raise_on_error
            Raise the error that ended the acquisition early, if any, after the cleanup;
            otherwise return it in :attr:`PipelineSummary.error`.

        Returns
        -------
        PipelineSummary
            Final statistics, events and drops.

        Raises
        ------
        PipelineStateError
            When the pipeline was never started.
        Exception
            The error that stopped the acquisition (e.g.
            :class:`~lsci.drivers.base.CameraDisconnectedError` or
            :class:`~lsci.recording.RecordingWriteError`), when ``raise_on_error``.
        """
        if self._state is PipelineState.IDLE or (
            self._state is PipelineState.FINISHED and self._summary is None
        ):
            raise PipelineStateError("the pipeline was not started")
        if self._summary is None:
            self._state = PipelineState.STOPPING
            self._stop_requested.set()
            for thread in self._threads:
                thread.join()
            stats = self.stats()
            end = self._end_s if self._end_s is not None else time.monotonic()
            duration = end - self._start_s
            self._summary = PipelineSummary(
                stats=stats,
                duration_s=duration,
                mean_frame_rate_hz=stats.frames_received / duration if duration > 0 else 0.0,
                path=None if self.writer is None else self.writer.path,
                events=tuple(self._stored),
                drops=tuple(self._drops),
                error=self._error,
                problems=tuple(self._problems),
            )
            self._state = PipelineState.FINISHED
            self._relay.finish(self._summary)
        if raise_on_error and self._summary.error is not None:
            raise self._summary.error
        return self._summary

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(raise_on_error=exc is None)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            first = self._error is None
            if first:
                self._error = error
        if first:
            self._relay.post(self.events.error, error)
        self._stop_requested.set()

    # -- events -----------------------------------------------------------------------------
    def mark_event(self, label: str) -> None:
        """Mark this moment, e.g. ``"needling start"``.

        The event is stored once the frames before it are recorded, with the index of the
        first frame that arrived after it; ``event_marked`` is emitted then.

        Raises
        ------
        TypeError, ValueError
            When the label is not 1 to 128 bytes of UTF-8 text.
        PipelineStateError
            When the pipeline is not running.
        """
        check_label(label)
        moment = time.time_ns()
        with self._lock:
            if self._state is not PipelineState.RUNNING or self._marks_closed:
                raise PipelineStateError(
                    f"cannot mark {label!r}: the pipeline is {self._state.value}"
                )
            self._pending.append((moment, label))

    # -- statistics -------------------------------------------------------------------------
    def stats(self) -> PipelineStats:
        """The statistics now; rates cover the last statistics interval."""
        now = time.monotonic() if self._end_s is None else self._end_s
        received, recorded = self._received, self._recorded
        then, received_then, recorded_then = self._rate_sample
        if now - then >= 0.25:
            self._rates = (
                (received - received_then) / (now - then),
                (recorded - recorded_then) * self._frame_bytes / (now - then),
            )
            self._rate_sample = (now, received, recorded)
        return PipelineStats(
            frames_received=received,
            frames_recorded=recorded,
            frames_dropped_camera=self._dropped_camera,
            frames_dropped_pipeline=self._dropped_full + self._dropped_unrecorded,
            frame_rate_hz=self._rates[0],
            queue_depth=self._ring.occupancy,
            ring_capacity=self._ring.capacity,
            live_maps=self._live_maps,
            disk_write_bytes_per_s=self._rates[1],
            bytes_recorded=recorded * self._frame_bytes,
            elapsed_s=now - self._start_s if self._start_s else 0.0,
            signals_dropped=self._relay.discarded,
        )

    # -- the camera thread ------------------------------------------------------------------
    def _acquire(self) -> None:
        ring = self._ring
        try:
            while not self._stop_requested.is_set():
                seq = ring.reserve()
                target = ring.spare if seq is None else ring.frames[seq % ring.capacity]
                try:
                    info = self.camera.read_into(target, self._read_timeout_s)
                except FrameTimeoutError:
                    if seq is not None:
                        ring.cancel()
                    continue
                except BaseException:
                    if seq is not None:
                        ring.cancel()
                    raise
                self._accept(info, seq)
        except BaseException as error:
            self._fail(error)
        self._drain_camera()

    def _accept(self, info: FrameInfo, seq: int | None) -> None:
        if self._last_id is not None and info.frame_id > self._last_id + 1:
            self._dropped_camera += info.frame_id - self._last_id - 1
        self._last_id = info.frame_id
        self._received += 1
        if seq is None:
            self._dropped_full += 1
            if self._run is None:
                self._run = [0, info.frame_id, info.frame_id, info.host_timestamp_ns]
            self._run[0] += 1
            self._run[2] = info.frame_id
        else:
            self._end_drop_run()
            self._ring.commit(info)
        self._relay.frame(info)

    def _end_drop_run(self) -> None:
        if self._run is None:
            return
        count, first, last, host = self._run
        self._run = None
        drop = FrameDrop(count, first, last, host + self._epoch_offset_ns)
        self._drops.append(drop)
        with self._lock:
            self._pending.append((drop.host_time_ns, drop.label))
        self._relay.post(self.events.frames_dropped, drop)

    def _drain_camera(self) -> None:
        """Stop the camera and hand the frames it still delivers to the recorder, waiting for
        room: the camera no longer produces, so nothing is lost by waiting."""
        ring = self._ring
        try:
            if self.camera.state is CameraState.ACQUIRING:
                for frame in self.camera.stop():
                    seq = None
                    while seq is None and not (self._recording_failed or self._done.is_set()):
                        seq = ring.reserve(timeout_s=_POLL_S)
                    if seq is not None:
                        np.copyto(ring.frames[seq % ring.capacity], frame.data)
                    self._accept(frame.info, seq)
            self._end_drop_run()
        except BaseException as error:
            self._fail(error)
        finally:
            self._end_s = time.monotonic()
            ring.close()

    # -- the recorder thread ----------------------------------------------------------------
    def _record(self) -> None:
        ring = self._ring
        try:
            while True:
                first, end, closed = ring.wait_unreleased(_POLL_S)
                if 0 < end - first < self._batch_frames and not closed:
                    # Let a batch gather: fewer, larger writes, and fewer thread switches
                    # competing with the camera thread for the interpreter.
                    time.sleep(_GATHER_S)
                    first, end, closed = ring.wait_unreleased(0.0)
                if first == end:
                    if closed:
                        break
                    continue
                slot = first % ring.capacity
                count = min(end - first, ring.capacity - slot, self._batch_frames)
                if not self._recording_failed:
                    try:
                        self._write(slot, count)
                    except BaseException as error:
                        self._recording_failed = True
                        self._fail(error)
                if self._recording_failed:
                    # Nothing can be stored any more: free the slots so the camera thread can
                    # drain the camera, and count every frame not stored as lost.
                    self._dropped_unrecorded += count
                ring.release(first + count)
            with self._lock:
                self._marks_closed = True
            if not self._recording_failed:
                self._store_events(None)
        except BaseException as error:
            self._fail(error)
        finally:
            self._close_writer()
            self._count_unstored()
            self._done.set()

    def _write(self, slot: int, count: int) -> None:
        ring = self._ring
        end = slot + count
        host = ring.host_timestamp_ns[slot:end] + self._epoch_offset_ns
        writer = self.writer
        if writer is not None:
            stamps = ring.camera_timestamp_ns[slot:end]
            known = stamps >= 0
            if known.all() or not known.any():
                writer.append_many(
                    ring.frames[slot:end],
                    frame_ids=ring.frame_id[slot:end],
                    camera_timestamps_ns=stamps if known.all() else None,
                    host_timestamps_ns=host,
                )
            else:
                for i in range(slot, end):
                    writer.append(
                        ring.frames[i],
                        frame_id=int(ring.frame_id[i]),
                        camera_timestamp_ns=int(stamps[i - slot]) if known[i - slot] else None,
                        host_timestamp_ns=int(host[i - slot]),
                    )
        self._store_events(host)
        self._recorded += count

    def _store_events(self, host: np.ndarray | None) -> None:
        """Store the pending events that precede the last recorded frame (all when ``host``
        is None, at the end); the rest wait for later frames with later time stamps.

        An event that cannot be stored is a problem reported (signal ``problem``, summary),
        never the end of the acquisition; only a failure to write the file ends it.
        """
        with self._lock:
            due = sorted(e for e in self._pending if host is None or e[0] <= host[-1])
            self._pending = [e for e in self._pending if e not in due]
        for moment, label in due:
            try:
                event = self._store_event(moment, label, host)
            except RecordingWriteError:
                raise
            except Exception as error:
                self._problem(f"event {label!r} was not stored: {error}")
                continue
            self._stored.append(event)
            self._relay.post(self.events.event_marked, event)

    def _store_event(self, moment: int, label: str, host: np.ndarray | None) -> Event:
        if self.writer is not None:
            return self.writer.add_event(label, host_time_ns=moment)
        earlier = 0 if host is None else int(np.count_nonzero(host < moment))
        start_ns = round(self._start_s * 1e9) + self._epoch_offset_ns
        return Event(label, moment, (moment - start_ns) / 1e9, self._recorded + earlier)

    def _problem(self, text: str) -> None:
        with self._lock:
            self._problems.append(text)
        self._relay.post(self.events.problem, text)

    def _close_writer(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.close()
        except BaseException as error:
            self._fail(error)

    def _count_unstored(self) -> None:
        """After a write failure, frames appended after the file's last successful flush
        are not in it: count them as lost by the pipeline, not as recorded."""
        if self.writer is None:
            return
        unstored = self._recorded - self.writer.frames_committed
        if unstored > 0:
            self._dropped_unrecorded += unstored
            self._recorded -= unstored

    # -- the live thread --------------------------------------------------------------------
    def _live(self) -> None:
        settings = self.live_settings
        assert settings is not None
        ring = self._ring
        frames = np.empty((settings.average, *ring.spare.shape), dtype=ring.spare.dtype)
        period_s = 0.0 if settings.max_rate_hz is None else 1.0 / settings.max_rate_hz
        seen = -1
        try:
            # For this thread only: the camera and recorder threads keep a core.
            numba.set_num_threads(settings.thread_count(numba.get_num_threads()))
            while not self._stop_requested.is_set():
                newest = ring.wait_newer(seen, _POLL_S)
                if newest == seen:
                    continue
                info = ring.infos[newest % ring.capacity]
                count = ring.copy_newest(newest, frames)
                if info is None or count == 0:
                    continue  # the slot was reused while copying: take the newest again
                seen = newest
                began = time.monotonic()
                self._relay.live(live_map(frames[settings.average - count :], settings), info)
                self._live_maps += 1
                rest_s = period_s - (time.monotonic() - began)
                if rest_s > 0:
                    self._stop_requested.wait(rest_s)
        except BaseException as error:
            self._fail(error)
