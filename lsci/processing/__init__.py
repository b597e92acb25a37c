"""The processing engine: raw frames to contrast and perfusion maps, calibrations applied.

One engine for every caller (the command line, the napari plugin, the comparison engine, the
demo): :func:`process_frames` for a stack the caller holds, :func:`process_recording` for a
whole recording (stored as a product set beside it, the recording only read), and
:func:`lsci.processing.distributed.process_recording_distributed` for the same on a Dask
cluster. All of them plan chunks (:mod:`lsci.processing.chunks`) and apply the calibrations
through :func:`lsci.processing.calibrations.resolve`, so they give the same numbers.
"""

from lsci.processing.calibrations import Calibrations
from lsci.processing.frames import ProcessedMaps, iter_maps, process_frames
from lsci.processing.recordings import ProcessingResult, process_recording
from lsci.processing.settings import ProcessingSettings

__all__ = [
    "Calibrations",
    "ProcessedMaps",
    "ProcessingResult",
    "ProcessingSettings",
    "iter_maps",
    "process_frames",
    "process_recording",
]
