"""The live pipeline: a camera thread fills a ring buffer; a recorder and live maps consume it.

:class:`AcquisitionPipeline` records every frame of a :class:`~lsci.drivers.base.Camera` to a
:class:`~lsci.recording.RecordingWriter` while computing live contrast or flow-index maps, and
reports through the psygnal signals of :class:`PipelineSignals` (no Qt needed).
"""

from lsci.pipeline.engine import (
    AcquisitionPipeline,
    PipelineState,
    PipelineStateError,
    default_ring_frames,
    recording_metadata,
)
from lsci.pipeline.live import LiveSettings, live_map
from lsci.pipeline.ring import FrameRing
from lsci.pipeline.signals import PipelineSignals
from lsci.pipeline.stats import FrameDrop, PipelineStats, PipelineSummary

__all__ = [
    "AcquisitionPipeline",
    "FrameDrop",
    "FrameRing",
    "LiveSettings",
    "PipelineSignals",
    "PipelineState",
    "PipelineStateError",
    "PipelineStats",
    "PipelineSummary",
    "default_ring_frames",
    "live_map",
    "recording_metadata",
]
