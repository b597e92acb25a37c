"""Camera drivers for lsci: one abstract camera interface, a GenICam driver and a simulator.

:mod:`lsci.drivers.base` defines :class:`Camera`, its value types and errors;
:mod:`lsci.drivers.pixel_formats` unpacks camera pixel formats; :mod:`lsci.drivers.genicam`
(needing the ``camera`` extra) drives GenICam cameras through a GenTL producer.
"""

from .base import (
    AcquisitionStats,
    Camera,
    CameraDisconnectedError,
    CameraError,
    CameraState,
    Capability,
    Frame,
    FrameInfo,
    FrameTimeoutError,
    IncompatibleStateError,
    Range,
    Roi,
    RoiLimits,
    TriggerMode,
    UnsupportedFeatureError,
)

__all__ = [
    "AcquisitionStats",
    "Camera",
    "CameraDisconnectedError",
    "CameraError",
    "CameraState",
    "Capability",
    "Frame",
    "FrameInfo",
    "FrameTimeoutError",
    "IncompatibleStateError",
    "Range",
    "Roi",
    "RoiLimits",
    "TriggerMode",
    "UnsupportedFeatureError",
]
