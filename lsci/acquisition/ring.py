"""A preallocated ring of frame slots between the camera thread and its consumers.

One allocation holds ``capacity`` slots plus one spare slot; per-slot frame ids and time
stamps sit in parallel arrays, so a run of slots is a view the recorder writes in one call.

Frames are numbered by a sequence count ``seq`` (0, 1, 2, ... in arrival order); frame ``seq``
lives in slot ``seq % capacity``. The camera thread (the only producer) reserves the next slot,
fills it and commits it; the recorder (the only consumer that frees slots) releases frames in
order once they are on disk. A slot is never reused before it is released, so the camera never
overwrites a frame the recorder has not written: when the ring is full the camera thread reads
into the spare slot instead and the pipeline counts that frame as dropped.

Readers that only look (live processing) copy the newest frames and check afterwards, with
:meth:`FrameRing.still_valid` or :meth:`FrameRing.copy_newest`, that their slots were not
reused meanwhile (a sequence lock): they never hold up the camera.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from lsci.drivers.base import FrameInfo

__all__ = ["FrameRing"]


class FrameRing:
    """Frame slots with sequence counts, shared by one producer and one releasing consumer.

    Parameters
    ----------
    capacity
        Number of slots (>= 2).
    frame_shape
        ``(height, width)`` of every frame.
    dtype
        ``uint8`` or ``uint16``.

    Attributes
    ----------
    frames
        The slots, shape ``(capacity, height, width)``.
    spare
        The slot the camera writes into when the ring is full; its frame is dropped.
    frame_id, camera_timestamp_ns, host_timestamp_ns
        Per-slot values (``camera_timestamp_ns`` is -1 where the camera gave none;
        ``host_timestamp_ns`` is :func:`time.monotonic_ns`).
    infos
        Per-slot :class:`~lsci.drivers.base.FrameInfo`, None before a slot is first filled.
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, int], dtype: npt.DTypeLike) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 2:
            raise ValueError(f"capacity={capacity!r} is invalid: allowed integers >= 2")
        self.capacity = capacity
        storage = np.empty((capacity + 1, *frame_shape), dtype=dtype)
        self.frames = storage[:capacity]
        self.spare = storage[capacity]
        self.frame_id = np.zeros(capacity, dtype=np.uint64)
        self.camera_timestamp_ns = np.full(capacity, -1, dtype=np.int64)
        self.host_timestamp_ns = np.zeros(capacity, dtype=np.int64)
        self.infos: list[FrameInfo | None] = [None] * capacity
        self._cond = threading.Condition()
        self._committed = 0  # frames committed: the next seq to commit
        self._writing = 0  # frames whose slot the producer has started to fill
        self._released = 0  # frames released by the consumer
        self._closed = False

    # -- producer -------------------------------------------------------------------------
    def reserve(self, timeout_s: float = 0.0) -> int | None:
        """The sequence count of the next frame if its slot is free (waiting up to ``timeout_s``).

        Returns None when the ring stays full. Call :meth:`commit` after filling
        ``frames[seq % capacity]``, or :meth:`cancel` to give the reservation back.
        """
        with self._cond:
            if self._committed - self._released >= self.capacity and timeout_s > 0:
                self._cond.wait_for(
                    lambda: self._committed - self._released < self.capacity, timeout_s
                )
            if self._committed - self._released >= self.capacity:
                return None
            self._writing = self._committed + 1
            return self._committed

    def cancel(self) -> None:
        """Give back a reservation whose slot was not filled."""
        with self._cond:
            self._writing = self._committed

    def commit(self, info: FrameInfo) -> int:
        """Record ``info`` for the reserved slot, just filled, and hand it to the consumers."""
        with self._cond:
            seq = self._committed
            slot = seq % self.capacity
            self.frame_id[slot] = info.frame_id
            stamp = info.camera_timestamp_ns
            self.camera_timestamp_ns[slot] = -1 if stamp is None else stamp
            self.host_timestamp_ns[slot] = info.host_timestamp_ns
            self.infos[slot] = info
            self._committed = seq + 1
            self._cond.notify_all()
            return seq

    def close(self) -> None:
        """No more frames will come: wake the consumers so they can finish."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- consumers ------------------------------------------------------------------------
    def wait_unreleased(self, timeout_s: float) -> tuple[int, int, bool]:
        """Wait until frames wait to be released, the ring closes, or ``timeout_s`` passes.

        Returns
        -------
        tuple
            ``(first, end, closed)``: the sequence counts ``first <= seq < end`` wait to be
            released; ``closed`` tells that no frame will follow them.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._committed > self._released or self._closed, timeout_s)
            return self._released, self._committed, self._closed

    def release(self, end: int) -> None:
        """Free every slot of frames before sequence count ``end``."""
        with self._cond:
            if not self._released <= end <= self._committed:
                raise ValueError(
                    f"end={end} is invalid: allowed {self._released} to {self._committed}"
                )
            self._released = end
            self._cond.notify_all()

    def wait_newer(self, seen: int, timeout_s: float) -> int:
        """Wait until a frame newer than sequence count ``seen`` is committed; the newest seq.

        Returns ``seen`` when none arrived within ``timeout_s`` or the ring closed.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._committed - 1 > seen or self._closed, timeout_s)
            return max(self._committed - 1, seen)

    def still_valid(self, seq: int) -> bool:
        """Whether slot of frame ``seq`` still holds it: the producer has not started reusing it."""
        with self._cond:
            return self._writing <= seq + self.capacity and seq < self._committed

    def copy_newest(self, newest: int, out: np.ndarray) -> int:
        """Copy frames up to sequence count ``newest`` into ``out``, oldest first; how many hold.

        ``out`` has shape ``(n, height, width)``; frame ``newest`` goes to ``out[-1]``, the one
        before it to ``out[-2]``, and so on. Slots reused by the camera while they were copied
        (a sequence lock, as :meth:`still_valid`) and frames before the first one do not count.

        Returns
        -------
        int
            ``c``: ``out[n - c:]`` holds the ``c`` consecutive frames ending at ``newest``
            (0 when even frame ``newest`` was overwritten).
        """
        n = min(out.shape[0], newest + 1)
        first = newest - n + 1
        for seq in range(first, newest + 1):
            np.copyto(out[out.shape[0] - 1 - (newest - seq)], self.frames[seq % self.capacity])
        with self._cond:
            # Slots are reused in sequence order: the frames from the oldest one not yet
            # reused on are intact.
            oldest = max(first, self._writing - self.capacity)
            if newest >= self._committed:
                return 0
        return max(0, int(newest - oldest + 1))

    @property
    def occupancy(self) -> int:
        """Frames committed but not yet released."""
        return self._committed - self._released

    @property
    def committed(self) -> int:
        """Frames committed so far."""
        return self._committed
