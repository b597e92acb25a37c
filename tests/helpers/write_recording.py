"""Write a recording until killed, reporting each flush on stdout (used by the crash tests).

Usage: python write_recording.py PATH MODE, where MODE is ``stream`` (append frames forever),
``idle`` (create the file, then wait without appending) or ``fill`` (append until writing
fails, e.g. on a full disk, then close and exit normally). Every frame's pixels encode its
frame id (see :func:`expected_frame`), so a test can check each recovered frame.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from lsci.recording import AcquisitionMetadata, RecordingWriteError, RecordingWriter

SHAPE = (48, 64)


def expected_frame(frame_id: int) -> np.ndarray:
    """The frame the writer stores for ``frame_id``: a ramp offset by the id."""
    ramp = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint64).reshape(SHAPE)
    return ((ramp + 7 * frame_id) % 4096).astype(np.uint16)


def main(path: str, mode: str) -> None:
    """Write to ``path`` until killed."""
    meta = AcquisitionMetadata(exposure_s=0.001, frame_rate_hz=500.0, bit_depth=12)
    writer = RecordingWriter(
        path,
        meta,
        frame_shape=SHAPE,
        dtype=np.uint16,
        flush_interval_s=0.02,
        fsync_interval_s=0.1,
        block_frames=16,
    )
    print("created", flush=True)
    if mode == "idle":
        while True:
            time.sleep(1)
    if mode == "fill":
        fill(writer)
        return
    reported = 0
    frame_id = 0
    while True:
        writer.append(expected_frame(frame_id), frame_id=frame_id, camera_timestamp_ns=frame_id)
        if frame_id == 40:
            writer.add_event("needling start")
        frame_id += 1
        if writer.frames_committed > reported:
            reported = writer.frames_committed
            print(f"committed {reported}", flush=True)
        time.sleep(0.0005)


def fill(writer: RecordingWriter) -> None:
    """Append until writing fails; report each committed count, the error, and the close."""
    frame_id = 0
    try:
        while True:
            writer.append(expected_frame(frame_id), frame_id=frame_id)
            frame_id += 1
            if frame_id % 10 == 0:
                writer.flush()
                print(f"committed {writer.frames_committed}", flush=True)
    except RecordingWriteError as exc:
        print(f"error: {exc}", flush=True)
    writer.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
