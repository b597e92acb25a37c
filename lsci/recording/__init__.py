"""lsci recordings: one HDF5 file per acquisition (see docs/format.md).

Write with :class:`RecordingWriter` while the camera acquires, read with
:func:`open_recording`, add events, calibrations and derived products afterwards, copy a crashed
recording into a clean file with :func:`repair_copy` (or keep the readable frames of a damaged
one with :func:`salvage_copy`), and convert from and to TIFF, PNG and CSV
with :mod:`lsci.recording.convert`.
"""

from lsci.recording.annotations import add_event, save_calibration, store_calibration
from lsci.recording.calibration import Calibration, load_calibration
from lsci.recording.derived import DerivedInfo, SavedDerived, find_derived, save_derived
from lsci.recording.errors import (
    CorruptRecordingError,
    DerivedProductExistsError,
    RecordingError,
    RecordingExistsError,
    RecordingFormatError,
    RecordingStateError,
    RecordingWarning,
    RecordingWriteError,
)
from lsci.recording.events import Event
from lsci.recording.layout import FORMAT_VERSION
from lsci.recording.metadata import AcquisitionMetadata
from lsci.recording.reader import (
    DerivedProduct,
    FrameStack,
    Recording,
    is_recording_file,
    open_recording,
)
from lsci.recording.repair import RepairReport, repair_copy, salvage_copy
from lsci.recording.writer import RecordingWriter

__all__ = [
    "FORMAT_VERSION",
    "AcquisitionMetadata",
    "Calibration",
    "CorruptRecordingError",
    "DerivedInfo",
    "DerivedProduct",
    "DerivedProductExistsError",
    "Event",
    "FrameStack",
    "Recording",
    "RecordingError",
    "RecordingExistsError",
    "RecordingFormatError",
    "RecordingStateError",
    "RecordingWarning",
    "RecordingWriteError",
    "RecordingWriter",
    "RepairReport",
    "SavedDerived",
    "add_event",
    "find_derived",
    "is_recording_file",
    "load_calibration",
    "open_recording",
    "repair_copy",
    "salvage_copy",
    "save_calibration",
    "save_derived",
    "store_calibration",
]
