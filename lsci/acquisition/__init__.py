"""The live pipeline: a camera thread fills a ring buffer; a recorder and live maps consume it.

:class:`AcquisitionPipeline` records every frame of a :class:`~lsci.drivers.base.Camera` to a
:class:`~lsci.recording.RecordingWriter` while computing live contrast or flow-index maps, and
reports through the psygnal signals of :class:`PipelineSignals` (no Qt needed).
"""

from lsci.acquisition.engine import (
    AcquisitionPipeline,
    PipelineState,
    PipelineStateError,
    default_ring_frames,
    recording_metadata,
)
from lsci.acquisition.live import LiveSettings, live_map
from lsci.acquisition.ring import FrameRing
from lsci.acquisition.signals import PipelineSignals
from lsci.acquisition.stats import FrameDrop, PipelineStats, PipelineSummary

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
