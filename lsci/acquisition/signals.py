"""The pipeline's signals, and the relay thread that emits them so listeners never block it.

Every signal is emitted from one relay thread, never from the camera, recorder or live
thread: a slow listener (a viewer, a logger) delays only the notifications after it. The relay
keeps every ``started``, ``event_marked``, ``frames_dropped``, ``problem`` and ``error``
notification, at most ``backlog`` pending ``frame_acquired`` notifications (older ones are
discarded and counted), only the newest pending live map, and emits ``stats_updated`` every
statistics interval. ``finished`` is always the last signal.

Qt users connect with psygnal's ``thread=`` option, or through a Qt signal, to handle them in
the GUI thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup, SignalInstance

from lsci.acquisition.stats import FrameDrop, PipelineStats, PipelineSummary
from lsci.drivers.base import FrameInfo
from lsci.recording import Event

__all__ = ["PipelineSignals"]

_log = logging.getLogger(__name__)

#: Longest time a ``frame_acquired`` notification waits before the relay emits it, in seconds.
FRAME_PERIOD_S = 0.02


class PipelineSignals(SignalGroup):
    """What an :class:`~lsci.acquisition.AcquisitionPipeline` tells its listeners.

    Signals
    -------
    started()
        The camera is acquiring.
    frame_acquired(FrameInfo)
        A frame arrived from the camera (id and time stamps; pixels are not passed).
    live_map_ready(numpy.ndarray, FrameInfo)
        A live map (K, or a perfusion model of it: see ``LiveSettings``) of the frame
        described; the array is new for every map and belongs to the listeners.
    stats_updated(PipelineStats)
        Periodic statistics.
    frames_dropped(FrameDrop)
        The pipeline lost delivered frames (never silent; also stored as a recording event).
    event_marked(Event)
        An event was stored, with its frame index.
    problem(str)
        Something failed without stopping the acquisition (an event that could not be
        stored); the message.
    error(BaseException)
        A thread failed; the pipeline stops and finishes.
    finished(PipelineSummary)
        The recording is closed; the last signal.
    """

    started = Signal()
    frame_acquired = Signal(FrameInfo)
    live_map_ready = Signal(np.ndarray, FrameInfo)
    stats_updated = Signal(PipelineStats)
    frames_dropped = Signal(FrameDrop)
    event_marked = Signal(Event)
    problem = Signal(str)
    error = Signal(BaseException)
    finished = Signal(PipelineSummary)


class Relay:
    """Queues notifications from the pipeline's threads and emits them on its own thread."""

    def __init__(
        self,
        signals: PipelineSignals,
        stats: Callable[[], PipelineStats],
        *,
        backlog: int,
        stats_interval_s: float,
    ) -> None:
        self._signals = signals
        self._stats = stats
        self._interval_s = stats_interval_s
        self._cond = threading.Condition()
        self._ordered: collections.deque[tuple[SignalInstance, tuple[Any, ...]]] = (
            collections.deque()
        )
        self._frames: collections.deque[FrameInfo] = collections.deque(maxlen=backlog)
        self._live: tuple[np.ndarray, FrameInfo] | None = None
        self._summary: PipelineSummary | None = None
        self.discarded = 0
        self._thread = threading.Thread(target=self._run, name="lsci-pipeline-relay", daemon=True)

    def start(self) -> None:
        """Start the relay thread."""
        self._thread.start()

    def post(self, signal: SignalInstance, *args: Any) -> None:
        """Queue a notification that is always delivered, in order."""
        with self._cond:
            self._ordered.append((signal, args))
            self._cond.notify()

    def frame(self, info: FrameInfo) -> None:
        """Queue ``frame_acquired``; the oldest pending one is discarded when listeners lag.

        The relay is not woken for every frame (that would cost the camera thread a thread
        switch per frame): it emits pending frames every :data:`FRAME_PERIOD_S`.
        """
        with self._cond:
            if len(self._frames) == self._frames.maxlen:
                self.discarded += 1
            self._frames.append(info)

    def live(self, image: np.ndarray, info: FrameInfo) -> None:
        """Queue ``live_map_ready``, replacing a live map not emitted yet."""
        with self._cond:
            self._live = (image, info)
            self._cond.notify()

    def finish(self, summary: PipelineSummary) -> None:
        """Emit what is pending, then ``finished``, and end the thread; wait for it unless
        called from a listener (on the relay thread itself)."""
        with self._cond:
            self._summary = summary
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        next_stats = time.monotonic() + self._interval_s
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: bool(self._ordered or self._live or self._summary),
                    max(0.0, min(next_stats - time.monotonic(), FRAME_PERIOD_S)),
                )
                ordered, self._ordered = self._ordered, collections.deque()
                frames = list(self._frames)
                self._frames.clear()
                live, self._live = self._live, None
                summary = self._summary
            for signal, args in ordered:
                self._emit(signal, *args)
            for info in frames:
                self._emit(self._signals.frame_acquired, info)
            if live is not None:
                self._emit(self._signals.live_map_ready, *live)
            if summary is not None:
                self._emit(self._signals.stats_updated, summary.stats)
                self._emit(self._signals.finished, summary)
                return
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self._interval_s
                self._emit(self._signals.stats_updated, self._stats())

    @staticmethod
    def _emit(signal: SignalInstance, *args: Any) -> None:
        try:
            signal.emit(*args)
        except Exception:
            # A failing listener must not stop the others, nor the acquisition.
            _log.exception("a listener of %s failed", signal.name)
