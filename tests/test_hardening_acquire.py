"""Acquisition under hostile input, signals and a full disk.

Each test here once failed: a long ``--mark-at`` label killed the recording when it was due,
SIGHUP left a crashed file and its disk-space reserve, a full disk was reported as more frames
than the file held, ``--duration nan`` recorded forever, an absurd simulated sensor was
allocated, frame-id gaps across 2**63 counted as nothing, the start of a recording was the
moment its writer was created instead of its first frame, messages named Python parameters on
the command line and called a file held by another program a crash, and ``lsci demo``
replaced the recordings in an existing folder.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lsci.acquisition import AcquisitionPipeline, recording_metadata
from lsci.cli import main
from lsci.demo import DemoFolderNotEmptyError, run_demo
from lsci.drivers.simulated import MAX_SENSOR_PX, SimulatedCamera, SpeckleScene
from lsci.recording import (
    AcquisitionMetadata,
    Event,
    RecordingStateError,
    RecordingWriteError,
    RecordingWriter,
    open_recording,
)
from lsci.recording.derived import save_derived
from tests.helpers.children import LSCI_CODE
from tests.helpers.tmpfs import mounted_tmpfs
from tests.test_acquire_cli import ACQUIRE, stop_mid_run

pytestmark = pytest.mark.serial

SHAPE = (32, 32)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


def open_camera(fps: float = 200.0) -> SimulatedCamera:
    camera = SimulatedCamera(
        SpeckleScene.skin(SHAPE, needling_time_s=None), mode="replay", replay_frames=4
    )
    camera.open()
    camera.set("frame_rate_hz", fps)
    camera.set("exposure_s", 0.001)
    return camera


def make_writer(
    camera: SimulatedCamera, path: Path, cls: type[RecordingWriter] = RecordingWriter
) -> RecordingWriter:
    return cls(
        path,
        recording_metadata(camera),
        frame_shape=camera.frame_shape,
        dtype=camera.frame_dtype,
        flush_interval_s=0.1,
    )


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error")]


def helpers_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- item 2: event labels, and events that fail ---------------------------------------------


@pytest.mark.parametrize(
    "label",
    ["x" * 200, "é" * 65, "a\0b"],
    ids=["200 bytes", "130 bytes of 2-byte characters", "NUL"],
)
def test_a_mark_label_the_file_cannot_hold_is_refused_before_recording(
    tmp_path: Path, label: str
) -> None:
    out = tmp_path / "m.h5"
    args = ["acquire", "--camera", "sim", "--sim-shape", "32x32", "--duration", "3"]
    result = CliRunner().invoke(main, [*args, "--mark-at", f"1:{label}", "--out", str(out)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    [line] = error_lines(result.output)
    assert "--mark-at" in line
    assert "allowed are 1 to 128 bytes" in line
    assert list(tmp_path.iterdir()) == []


def test_a_label_of_exactly_128_bytes_is_marked(tmp_path: Path) -> None:
    out = tmp_path / "m.h5"
    label = "é" * 64
    args = ["acquire", "--camera", "sim", "--sim-shape", "32x32", "--duration", "1.5"]
    result = CliRunner().invoke(main, [*args, "--mark-at", f"0.5:{label}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open_recording(out) as rec:
        assert rec.closed_cleanly
        assert [e.label for e in rec.events] == [label]


def test_an_invalid_label_through_the_api_raises_and_recording_goes_on(tmp_path: Path) -> None:
    camera = open_camera()
    path = tmp_path / "api.h5"
    try:
        pipeline = AcquisitionPipeline(camera, make_writer(camera, path))
        pipeline.start()
        time.sleep(0.2)
        with pytest.raises(ValueError, match="1 to 128"):
            pipeline.mark_event("x" * 200)
        pipeline.mark_event("after the refused one")
        time.sleep(0.2)
        summary = pipeline.stop()
    finally:
        camera.close()
    assert summary.error is None
    assert [e.label for e in summary.events] == ["after the refused one"]
    with open_recording(path) as rec:
        assert rec.closed_cleanly
        assert len(rec) == summary.stats.frames_recorded == summary.stats.frames_received
        assert [e.label for e in rec.events] == ["after the refused one"]
    assert helpers_left(tmp_path) == []


class EventFaultWriter(RecordingWriter):
    """A writer that fails to store one event label (no real part fails on cue)."""

    def add_event(self, label: str, *, host_time_ns: int | None = None) -> Event:
        if label == "bad":
            raise ValueError("this event cannot be stored")
        return super().add_event(label, host_time_ns=host_time_ns)


def test_an_event_that_cannot_be_stored_is_a_problem_not_the_end(tmp_path: Path) -> None:
    camera = open_camera()
    path = tmp_path / "events.h5"
    reported: list[str] = []
    try:
        pipeline = AcquisitionPipeline(camera, make_writer(camera, path, EventFaultWriter))
        pipeline.events.problem.connect(reported.append)
        pipeline.start()
        time.sleep(0.2)
        pipeline.mark_event("before")
        pipeline.mark_event("bad")
        time.sleep(0.3)
        pipeline.mark_event("after")
        time.sleep(0.3)
        summary = pipeline.stop()
    finally:
        camera.close()
    assert summary.error is None
    assert summary.problems == ("event 'bad' was not stored: this event cannot be stored",)
    assert reported == list(summary.problems)
    assert [e.label for e in summary.events] == ["before", "after"]
    with open_recording(path) as rec:
        assert rec.closed_cleanly
        assert len(rec) == summary.stats.frames_received
        assert [e.label for e in rec.events] == ["before", "after"]
        # Recording went on after the failed event: frames arrived after "after".
        assert rec.events[1].frame_index < len(rec)


# -- item 16: SIGHUP ------------------------------------------------------------------------


def test_sighup_closes_the_recording_like_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "hup.h5"
    args = ["--camera", "sim", "--sim-shape", "32x32", "--fps", "100", "--out", str(out)]
    code, stderr = stop_mid_run(args, signal.SIGHUP)
    assert code == 0, stderr
    assert "stopped by SIGHUP" in stderr
    assert "Traceback" not in stderr
    with open_recording(out) as rec:
        assert rec.closed_cleanly
        assert len(rec) > 50
    assert helpers_left(tmp_path) == []


def test_a_hangup_the_caller_ignores_does_not_stop_the_recording(tmp_path: Path) -> None:
    """``nohup lsci acquire`` records on when the terminal closes (SIGHUP ignored)."""
    out = tmp_path / "nohup.h5"
    args = ["--camera", "sim", "--sim-shape", "32x32", "--fps", "100", "--duration", "3"]
    nohup = ["nohup", sys.executable, "-c", LSCI_CODE, "acquire"]
    code, stderr = stop_mid_run([*args, "--out", str(out)], signal.SIGHUP, command=nohup)
    assert code == 0, stderr
    assert "stopped by the end of --duration" in stderr
    with open_recording(out) as rec:
        assert rec.closed_cleanly
        assert len(rec) > 250  # 3 s at 100 frames/s, well past the hangup at 1.5 s


# -- item 18 and 12: numbers and sizes refused when the options are parsed ------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--duration", "nan"),
        ("--duration", "inf"),
        ("--duration", "-1"),
        ("--duration", "0"),
        ("--fps", "nan"),
        ("--exposure-ms", "inf"),
        ("--sim-shape", "100000x100000"),
        ("--sim-shape", f"{MAX_SENSOR_PX + 1}x16"),
        ("--sim-shape", "8x8"),
        ("--sim-shape", "64"),
    ],
)
def test_absurd_numbers_are_refused_in_one_line_before_recording(
    tmp_path: Path, option: str, value: str
) -> None:
    out = tmp_path / "never.h5"
    started = time.monotonic()
    result = CliRunner().invoke(
        main, ["acquire", "--camera", "sim", option, value, "--out", str(out)]
    )
    assert time.monotonic() - started < 30
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    [line] = error_lines(result.output)
    assert option in line
    assert list(tmp_path.iterdir()) == []


def test_an_absurd_simulated_sensor_is_refused_before_it_is_allocated() -> None:
    with pytest.raises(ValueError, match=f"from 16 to {MAX_SENSOR_PX}"):
        SpeckleScene.skin((100_000, 100_000))
    with pytest.raises(ValueError, match="from 16 to"):
        SpeckleScene.skin((8, 8))


# -- item 19: frame ids near 2**64 ------------------------------------------------------------


def test_dropped_frames_are_counted_across_2_to_the_63_and_up_to_2_to_the_64(
    tmp_path: Path,
) -> None:
    # A gap wider than 2**63, one across 2**63, one just below 2**64, and a step back (a
    # camera counter that wrapped or was reset: not a loss).
    ids = [0, 2**63 + 1, 2**63 + 3, 2**64 - 3, 2**64 - 1, 2]
    expected = sum(b - a - 1 for a, b in itertools.pairwise(ids) if b > a)
    assert expected == 2**64 - 5
    path = tmp_path / "ids.h5"
    frames = np.zeros((len(ids), *SHAPE), np.uint8)
    with RecordingWriter(path, AcquisitionMetadata(), frame_shape=SHAPE, dtype=np.uint8) as w:
        w.append_many(frames[:2], frame_ids=np.array(ids[:2], dtype=np.uint64))
        for frame, frame_id in zip(frames[2:], ids[2:], strict=True):
            w.append(frame, frame_id=frame_id)
        assert w.dropped_frames == expected
    with open_recording(path) as rec:
        assert rec.frame_ids.tolist() == ids
        assert rec.dropped_frames == expected


# -- item 24: the start is the first frame --------------------------------------------------


def test_the_recording_starts_at_its_first_frame_not_at_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "late.h5"
    with RecordingWriter(path, AcquisitionMetadata(), frame_shape=SHAPE, dtype=np.uint8) as w:
        early = w.add_event("before the first frame")
        time.sleep(0.3)  # the camera takes its time to deliver
        first_ns = time.time_ns()
        w.append(np.zeros(SHAPE, np.uint8), frame_id=0, host_timestamp_ns=first_ns)
        w.append(np.zeros(SHAPE, np.uint8), frame_id=1, host_timestamp_ns=first_ns + 10**7)
        late = w.add_event("after", host_time_ns=first_ns + 5 * 10**6)
        assert w.start_host_time_ns == first_ns // 1000 * 1000
    with open_recording(path) as rec:
        start = rec.start_host_time_ns
        assert start == first_ns // 1000 * 1000
        assert rec.metadata.start_time_utc is not None
        assert rec.metadata.start_time_utc.endswith(f"{first_ns // 1000 % 10**6:06d}Z")
        times = {e.label: e.time_s for e in rec.events}
    # The event before the first frame happened about 0.3 s before the start.
    assert times["before the first frame"] == (early.host_time_ns - start) / 1e9
    assert -1.0 < times["before the first frame"] < -0.25
    assert times["after"] == pytest.approx(0.005, abs=1e-6)
    assert late.time_s == times["after"]


def test_a_slow_camera_start_does_not_shift_event_times(tmp_path: Path) -> None:
    camera = open_camera()
    path = tmp_path / "slow-start.h5"
    try:
        writer = make_writer(camera, path)
        time.sleep(0.5)  # time between creating the file and the camera's first frame
        pipeline = AcquisitionPipeline(camera, writer)
        pipeline.start()
        time.sleep(0.3)
        pipeline.mark_event("needling")
        time.sleep(0.2)
        summary = pipeline.stop()
    finally:
        camera.close()
    with open_recording(path) as rec:
        first = int(rec.host_timestamps_ns[0])
        assert 0 <= first - rec.start_host_time_ns < 1000
        [event] = rec.events
    assert event.time_s == (event.host_time_ns - rec.start_host_time_ns) / 1e9
    assert 0.2 < event.time_s < 0.45
    assert summary.events == (event,)


# -- item 8: a real full disk --------------------------------------------------------------


def fill(writer: RecordingWriter, frame: np.ndarray) -> None:
    """Append frames (host stamps 10**18 + id) until the disk is full."""
    for frame_id in range(10_000):
        writer.append(frame, frame_id=frame_id, host_timestamp_ns=10**18 + frame_id)


@pytest.mark.parametrize("flush_interval_s", [0.5, 0.005], ids=["before a flush", "flushing"])
def test_a_full_disk_loses_only_unflushed_frames_and_says_so(
    tmp_path: Path, flush_interval_s: float
) -> None:
    with mounted_tmpfs(tmp_path / "disk", "6m") as disk:
        path = disk / "full.h5"
        frame = np.full((128, 128), 7, np.uint8)
        writer = RecordingWriter(
            path,
            AcquisitionMetadata(),
            frame_shape=(128, 128),
            dtype=np.uint8,
            flush_interval_s=flush_interval_s,
        )
        with pytest.raises(RecordingWriteError, match="No space left"):
            fill(writer, frame)
        appended, committed = writer.frames_written, writer.frames_committed
        writer.close()
        assert writer.frames_lost == appended - committed
        with open_recording(path) as rec:
            assert rec.closed_cleanly
            assert len(rec) == committed == writer.frames_committed
            [event] = rec.events
        assert event.label.startswith(f"write error, {appended - committed} frames not stored")
        assert "No space left on device" in event.label
        assert event.frame_index == committed
        assert event.host_time_ns == 10**18 + committed  # the first frame not stored
        assert helpers_left(disk) == []


def test_acquire_on_a_full_disk_reports_what_the_file_holds(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "disk", "8m") as disk:
        out = disk / "full.h5"
        args = ["--camera", "sim", "--sim-shape", "128x128", "--fps", "200", "--duration", "20"]
        result = subprocess.run(
            [*ACQUIRE, *args, "--out", str(out)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert "No space left on device" in last
        with open_recording(out) as rec:
            assert rec.closed_cleanly
            stored = len(rec)
            events = rec.events
        assert f"the first {stored} frames are in {out}" in last
        assert f"recorded {stored} frames" in result.stderr
        [loss] = [e for e in events if e.label.startswith("write error")]
        lost = int(loss.label.split()[2])
        assert loss.frame_index == stored
        # The lost frames are counted as dropped by the pipeline.
        dropped = int(result.stderr.split(" by the camera, ")[1].split()[0])
        assert dropped >= lost
        assert helpers_left(disk) == []


# -- item 17: messages in the words of the interface used -----------------------------------


def test_the_command_line_names_its_option_where_python_names_a_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("harvesters.core", reason="the camera extra (harvesters) is not installed")
    from lsci.drivers.genicam import GenICamCamera, ProducerNotFoundError

    monkeypatch.setenv("GENICAM_GENTL64_PATH", str(tmp_path))  # a folder without producers
    result = CliRunner().invoke(
        main, ["acquire", "--camera", "genicam", "--out", str(tmp_path / "g.h5")]
    )
    assert result.exit_code == 1
    [line] = error_lines(result.output)
    assert line.endswith("or name it with --cti PATH")
    assert "producer=" not in result.output
    with pytest.raises(ProducerNotFoundError, match="pass producer=PATH"):
        GenICamCamera(0).open()


def _hold(path: Path, code: str) -> subprocess.Popen[str]:
    """Run ``code`` (with ``path`` bound) in another process until it prints 'ready'."""
    process = subprocess.Popen(
        [sys.executable, "-c", f"import pathlib; path = pathlib.Path({str(path)!r})\n{code}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


_WRITE = """
import time, numpy as np
from lsci.recording import AcquisitionMetadata, RecordingWriter
writer = RecordingWriter(path, AcquisitionMetadata(), frame_shape=(16, 16), dtype=np.uint8)
writer.append(np.zeros((16, 16), np.uint8), frame_id=0)
writer.flush()
print("ready", flush=True)
time.sleep(60)
"""
_READ = """
import time, h5py
handle = h5py.File(path, "r")
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("holder", "expected"),
    [
        (_READ, "is open in another program (a viewer or reader)"),
        (_WRITE, "is still being written by another program"),
    ],
    ids=["a reader", "a live writer"],
)
def test_a_file_held_by_another_program_is_not_called_a_crash(
    tmp_path: Path, holder: str, expected: str
) -> None:
    path = tmp_path / "held.h5"
    if holder is _READ:
        with RecordingWriter(
            path, AcquisitionMetadata(), frame_shape=(16, 16), dtype=np.uint8
        ) as w:
            w.append(np.zeros((16, 16), np.uint8), frame_id=0)
    process = _hold(path, holder)
    try:
        with pytest.raises(RecordingStateError) as caught:
            save_derived(path, "k", np.ones((4, 4)), algorithm="test", parameters={})
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
    assert expected in str(caught.value)
    assert "crash" not in str(caught.value)
    # Once the writer is gone without closing, the file says so.
    if holder is _WRITE:
        with pytest.raises(RecordingStateError, match="stopped without closing it"):
            save_derived(path, "k", np.ones((4, 4)), algorithm="test", parameters={})


# -- item 23: the demo does not replace files without being asked ---------------------------


def test_the_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    earlier = tmp_path / "needling_session.h5"
    earlier.write_bytes(b"an earlier recording")
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    [line] = error_lines(result.output)
    assert "is not empty" in line
    assert line.endswith("or pass --overwrite")
    assert earlier.read_bytes() == b"an earlier recording"
    assert [p.name for p in tmp_path.iterdir()] == ["needling_session.h5"]
    with pytest.raises(DemoFolderNotEmptyError, match="pass overwrite=True"):
        run_demo(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["needling_session.h5"]
