"""A closed recording is sealed: events and calibrations added later go beside it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from lsci.recording import (
    AcquisitionMetadata,
    RecordingWriter,
    add_event,
    open_recording,
    save_calibration,
)
from lsci.recording.annotations import annotations_path

pytestmark = pytest.mark.serial

SHAPE = (8, 10)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "visit.h5"
    meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=10.0)
    with RecordingWriter(path, meta, frame_shape=SHAPE, dtype=np.uint8) as writer:
        for i in range(20):
            writer.append(
                np.full(SHAPE, i, np.uint8), frame_id=i, host_timestamp_ns=10**18 + i * 10**8
            )
        writer.add_event("needling start")
    return path


def test_added_events_and_calibrations_leave_the_recording_byte_identical(
    recording: Path,
) -> None:
    before = _sha256(recording)
    event = add_event(recording, "needling end", frame_index=12)
    save_calibration(recording, "dark_frame", {"mean": np.zeros(SHAPE)}, {"exposure_s": 0.005})
    assert _sha256(recording) == before
    assert annotations_path(recording) == recording.with_name("visit.lsci") / "annotations.h5"
    with open_recording(recording) as rec:
        assert [e.label for e in rec.events] == ["needling start", "needling end"]
        assert rec.events[1] == event
        assert event.frame_index == 12
        assert rec.calibrations["dark_frame"].attrs == {"exposure_s": 0.005}
    # Plain h5py reads the annotations; the recording opens read-only as it always did.
    with h5py.File(annotations_path(recording), "r") as handle:
        assert handle.attrs["recording"] == "visit.h5"
        assert handle["events/label"][0].decode() == "needling end"
    with h5py.File(recording, "r") as handle:
        assert "dark_frame" not in handle.get("calibrations", {})


def test_concurrent_additions_from_two_processes_lose_nothing(recording: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from lsci.recording import add_event
        for i in range(15):
            add_event(sys.argv[1], f"{sys.argv[2]} {i}", time_s=0.1 * i)
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(recording), name])
        for name in ("left", "right")
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0
    with open_recording(recording) as rec:
        labels = {e.label for e in rec.events}
    assert labels == {"needling start"} | {f"{n} {i}" for n in ("left", "right") for i in range(15)}
    assert not list(recording.with_name("visit.lsci").glob(".*.partial"))
