"""Names, dtypes and constants of the recording format, in one place (see docs/format.md)."""

from __future__ import annotations

from typing import Final

import numpy as np

#: Value of the root attribute ``lsci_format`` that marks a file as an lsci recording.
FORMAT_NAME: Final = "lsci-recording"
#: Version of the layout this module writes; readers accept this version and older.
FORMAT_VERSION: Final = 1

RAW: Final = "raw"
FRAMES: Final = "raw/frames"
FRAME_ID: Final = "raw/frame_id"
CAMERA_TIMESTAMP: Final = "raw/camera_timestamp_ns"
HOST_TIMESTAMP: Final = "raw/host_timestamp_ns"
#: The per-frame 1-D datasets; their common length is the number of committed frames.
PER_FRAME: Final = (FRAME_ID, CAMERA_TIMESTAMP, HOST_TIMESTAMP)

ACQUISITION: Final = "acquisition"
EVENTS: Final = "events"
EVENT_HOST_TIME: Final = "events/host_time_ns"
EVENT_TIME: Final = "events/time_s"
EVENT_FRAME_INDEX: Final = "events/frame_index"
EVENT_LABEL: Final = "events/label"
CALIBRATIONS: Final = "calibrations"
DERIVED: Final = "derived"
#: Attribute of a derived product: 1 once all of it is written, 0 while (or if) it is not.
DERIVED_COMPLETE: Final = "complete"

#: Camera timestamp stored for frames whose camera gives none.
NO_CAMERA_TIMESTAMP: Final = -1
#: Event labels are fixed-length UTF-8 strings (readable by MATLAB's h5read as char arrays).
EVENT_LABEL_BYTES: Final = 128
EVENT_LABEL_DTYPE: Final = np.dtype("S128")

FRAME_DTYPES: Final = (np.dtype(np.uint8), np.dtype(np.uint16))
PER_FRAME_DTYPES: Final = {
    FRAME_ID: np.dtype(np.uint64),
    CAMERA_TIMESTAMP: np.dtype(np.int64),
    HOST_TIMESTAMP: np.dtype(np.int64),
}
#: Chunk length (elements) of the 1-D per-frame and event datasets.
INDEX_CHUNK: Final = 4096
EVENT_CHUNK: Final = 64
