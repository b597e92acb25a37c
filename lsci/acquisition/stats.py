"""Value types the pipeline reports: statistics, dropped-frame runs and the final summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lsci.recording import Event

__all__ = ["FrameDrop", "PipelineStats", "PipelineSummary"]


@dataclass(frozen=True)
class PipelineStats:
    """Counts and rates of a running (or finished) acquisition.

    Attributes
    ----------
    frames_received
        Frames the camera delivered to the pipeline (including those dropped for lack of room
        and those drained at the stop).
    frames_recorded
        Frames appended to the recording (or consumed, without one). Once the recording is
        closed, the frames in the file: when writing failed, those appended after its last
        successful flush are not stored and count as dropped by the pipeline instead.
    frames_dropped_camera
        Frames the camera numbered but never delivered (gaps in the frame ids).
    frames_dropped_pipeline
        Delivered frames the pipeline lost: the ring was full, or recording had failed (frames
        not stored after the failure included).
    frame_rate_hz
        Frames received per second over the last statistics interval.
    queue_depth
        Frames in the ring waiting to be recorded.
    ring_capacity
        Slots in the ring.
    live_maps
        Live maps computed.
    disk_write_bytes_per_s
        Raw frame bytes recorded per second over the last statistics interval.
    bytes_recorded
        Raw frame bytes recorded in all.
    elapsed_s
        Seconds since the start.
    signals_dropped
        ``frame_acquired`` notifications discarded because listeners fell behind.
    """

    frames_received: int = 0
    frames_recorded: int = 0
    frames_dropped_camera: int = 0
    frames_dropped_pipeline: int = 0
    frame_rate_hz: float = 0.0
    queue_depth: int = 0
    ring_capacity: int = 0
    live_maps: int = 0
    disk_write_bytes_per_s: float = 0.0
    bytes_recorded: int = 0
    elapsed_s: float = 0.0
    signals_dropped: int = 0


@dataclass(frozen=True)
class FrameDrop:
    """A run of consecutive delivered frames the pipeline lost.

    Attributes
    ----------
    count
        Frames lost.
    first_frame_id, last_frame_id
        The camera ids of the first and last of them.
    host_time_ns
        When the first arrived, in nanoseconds since the Unix epoch (the recording's clock).
    """

    count: int
    first_frame_id: int
    last_frame_id: int
    host_time_ns: int

    @property
    def label(self) -> str:
        """The event label the recording stores for this drop."""
        return (
            f"pipeline drop: {self.count} frames (ids {self.first_frame_id}-{self.last_frame_id})"
        )


@dataclass(frozen=True)
class PipelineSummary:
    """How an acquisition ended.

    Attributes
    ----------
    stats
        The final statistics.
    duration_s
        Seconds from start to the end of recording.
    mean_frame_rate_hz
        Frames received per second over the whole acquisition.
    path
        The recording, None without one.
    events
        Events stored, in order (marks and pipeline drops).
    drops
        Runs of frames the pipeline lost.
    error
        What stopped the acquisition early, None after a requested stop.
    problems
        What went wrong without stopping the acquisition (an event that could not be
        stored), one message each.
    """

    stats: PipelineStats
    duration_s: float
    mean_frame_rate_hz: float
    path: Path | None
    events: tuple[Event, ...]
    drops: tuple[FrameDrop, ...]
    error: BaseException | None
    problems: tuple[str, ...] = ()
