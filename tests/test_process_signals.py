"""``lsci process`` killed, interrupted or out of disk space: the recording is never touched.

Real processes, real signals, a real full disk (a small tmpfs; needs root, skipped otherwise).
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from lsci.cli import main
from lsci.recording import AcquisitionMetadata, RecordingWriter, add_event
from lsci.recording.products import find_product_sets, product_folder
from tests.helpers.children import LSCI, LSCI_CODE, python_child, read_until
from tests.helpers.tmpfs import mounted_tmpfs

pytestmark = pytest.mark.serial

SHAPE = (128, 160)
#: Frames of the recording the runs are stopped on: writing its maps takes a good part of a
#: second, so a signal sent when the first part file appears lands while they are written.
N_LONG = 1500


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recording(path: Path, n_frames: int, shape: tuple[int, int] = SHAPE) -> Path:
    """Speckle-like frames at 100 frames/s, with needling marks a third and two thirds in."""
    rng = np.random.default_rng(0)
    pool = np.clip(rng.exponential(40, size=(8, *shape)), 1, 255).astype(np.uint8)
    meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=100.0, bit_depth=8)
    start_ns = 10**18
    with RecordingWriter(path, meta, frame_shape=shape, dtype=np.uint8) as writer:
        for i in range(n_frames):
            writer.append(pool[i % len(pool)], frame_id=i, host_timestamp_ns=start_ns + i * 10**7)
        for label, at in (("needling start", n_frames // 3), ("needling end", 2 * n_frames // 3)):
            writer.add_event(label, host_time_ns=start_ns + at * 10**7)
    return path


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _recording(tmp_path_factory.mktemp("long") / "long.h5", N_LONG)


def _wait_for_a_part_file(path: Path, process: subprocess.Popen[str]) -> None:
    """Return once the run's temporary product set holds its first part file."""
    deadline = time.monotonic() + 60
    while not any(product_folder(path).glob(".*/part-*")):
        assert process.poll() is None, "the run ended before it wrote a part file"
        assert time.monotonic() < deadline, "no part file written within 60 s"
        time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL, signal.SIGINT])
@pytest.mark.parametrize("moment", ["starting", "planned", "computing"])
def test_a_killed_run_leaves_the_recording_unchanged_and_a_rerun_completes(
    tmp_path: Path, long_recording: Path, sig: signal.Signals, moment: str
) -> None:
    path = tmp_path / "rec.h5"
    shutil.copyfile(long_recording, path)
    before = _sha256(path)
    args = ["process", str(path), "--average", "1", "--products", "contrast,perfusion"]
    with subprocess.Popen(
        [*LSCI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        if moment == "starting":
            time.sleep(0.3)  # still starting Python: no handler yet, nothing written yet
        else:
            # The cost line is printed once the run is planned, just before it starts.
            assert "writes" in process.stdout.readline()
            if moment == "computing":
                _wait_for_a_part_file(path, process)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finished = process.returncode == 0
    if moment != "starting":
        # Planned or writing maps: the signal stops the run. (While Python starts, an interrupt
        # can be lost: one raised in an import-lock callback is ignored, and the run completes.)
        assert not finished, stderr
    started = process.returncode != -sig
    assert _sha256(path) == before
    with h5py.File(path, "r") as handle:  # plain h5py, no SWMR: never opened for writing
        assert handle["raw/frames"].shape[0] == N_LONG
    if not finished:
        assert find_product_sets(path) == []
        if sig != signal.SIGKILL and started:
            # Handled: one line, the conventional status, and nothing left behind.
            assert process.returncode == 128 + sig, stderr
            assert "Traceback" not in stderr
            assert f"stopped by {sig.name}" in stderr
            assert not list(product_folder(path).glob(".*"))
    rerun = CliRunner().invoke(main, args)
    assert rerun.exit_code == 0, rerun.output
    assert len(find_product_sets(path)) == 1
    assert _sha256(path) == before


@pytest.mark.slow
def test_a_hangup_the_caller_ignores_does_not_stop_the_run(
    tmp_path: Path, long_recording: Path
) -> None:
    """``nohup lsci process`` goes on when the terminal closes (SIGHUP ignored by its caller)."""
    path = tmp_path / "rec.h5"
    shutil.copyfile(long_recording, path)
    args = ["process", str(path), "--average", "1", "--products", "contrast,perfusion"]
    with subprocess.Popen(
        ["nohup", sys.executable, "-c", LSCI_CODE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert "writes" in process.stdout.readline()
        _wait_for_a_part_file(path, process)
        process.send_signal(signal.SIGHUP)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert len(find_product_sets(path)) == 1


#: ``lsci`` whose product sets take a second to publish, saying when they start: a signal
#: can then be sent at that moment, which a run otherwise passes in a few milliseconds.
SLOW_PUBLISH = python_child(
    "import sys, time\n"
    "import lsci.recording.products as products\n"
    "publish = products.publish_folder\n"
    "def slow(temporary, final):\n"
    "    print('publishing', file=sys.stderr, flush=True)\n"
    "    time.sleep(1.0)\n"
    "    publish(temporary, final)\n"
    "products.publish_folder = slow\n" + LSCI_CODE
)


def _stop_while_publishing(args: list[str], signals: list[signal.Signals]) -> tuple[int, str]:
    with subprocess.Popen(
        [*SLOW_PUBLISH, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stderr is not None
        read_until(process.stderr, "publishing", "the run never published")
        for sig in signals:
            process.send_signal(sig)
            time.sleep(0.2)
        rest = process.stderr.read()
        process.wait(timeout=60)
    return process.returncode, rest


@pytest.mark.slow
def test_a_signal_while_the_last_set_is_published_is_reported(tmp_path: Path) -> None:
    """Too late to stop anything: the set is complete, and the status says the run was
    stopped, as the caller asked."""
    path = _recording(tmp_path / "rec.h5", 64)
    code, stderr = _stop_while_publishing(["process", str(path)], [signal.SIGTERM])
    assert code == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM once every recording was done" in stderr
    assert "Traceback" not in stderr
    assert len(find_product_sets(path)) == 1


@pytest.mark.slow
def test_repeated_signals_while_an_overwrite_publishes_keep_a_complete_set(
    tmp_path: Path,
) -> None:
    """Publishing replaces the old set by moving it aside first; signals then must not
    interrupt it, or neither set would be left."""
    path = _recording(tmp_path / "rec.h5", 64)
    assert CliRunner().invoke(main, ["process", str(path)]).exit_code == 0
    args = ["process", str(path), "--overwrite"]
    code, stderr = _stop_while_publishing(args, [signal.SIGTERM, signal.SIGTERM, signal.SIGINT])
    assert code == 128 + signal.SIGTERM, stderr
    assert "SIGTERM: already stopping" in stderr
    assert "Traceback" not in stderr
    assert len(find_product_sets(path)) == 1
    assert not list(product_folder(path).glob(".*"))


@pytest.mark.parametrize("command", ["process", "info", "export"])
def test_ctrl_c_while_lsci_starts_is_one_line(tmp_path: Path, command: str) -> None:
    """Ctrl-C while the program loads its modules: one line, status 130, no traceback."""
    path = _recording(tmp_path / "rec.h5", 16)
    args = [command, str(path)]
    if command == "export":
        args += ["--what", "raw", "--out", str(tmp_path / "x.tif")]
    with subprocess.Popen(
        [*LSCI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        time.sleep(0.15)  # past the child's signal set-up, while its modules load
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr
    if process.returncode != 0:  # not already finished
        assert process.returncode == 130, stderr
        assert "stopped by SIGINT" in stderr


FILL_THE_DISK_MID_RUN = """
import os
import shutil
import sys
from lsci.errors import LsciError
from lsci.processing import ProcessingSettings, process_recording

path, filler = sys.argv[1], sys.argv[2]

def fill(done, total):
    # Another program fills the disk while the maps are being written, to 1 MB of free space.
    if done < total and not os.path.exists(filler):
        with open(filler, "wb") as out:
            try:
                out.write(b"x" * (shutil.disk_usage(filler.rsplit("/", 1)[0]).free - (1 << 20)))
            except OSError:
                pass  # the maps written meanwhile took some of it: the disk is full anyway

try:
    process_recording(path, ProcessingSettings(average=2, exposure_s=0.005),
                      products=["perfusion"], memory_bytes=1 << 20, progress=fill)
except LsciError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.slow
def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    source = _recording(tmp_path / "rec.h5", 200)
    with mounted_tmpfs(tmp_path / "small", size="24m") as disk:
        path = disk / "rec.h5"
        shutil.copyfile(source, path)  # 4 MB of frames; maps of every frame need 32 MB
        before = _sha256(path)
        args = ["process", str(path), "--average", "1", "--products", "contrast,perfusion"]
        result = subprocess.run(
            [*LSCI, *args], capture_output=True, text=True, timeout=300, check=False
        )
        # Refused before anything is written, in one line.
        assert result.returncode == 1, result.stderr
        assert (
            "not enough disk space for the product set: it needs 41.2 MB (32.8 MB of maps and "
            "8.4 MB of working room)" in result.stderr
        )
        assert "Traceback" not in result.stderr
        assert not list(product_folder(path).iterdir())
        # The disk fills up while a set is being written: an error, not a crash (a negative
        # status would be a signal such as SIGSEGV), and nothing is left behind.
        filler = disk / "filler"
        result = subprocess.run(
            [sys.executable, "-c", FILL_THE_DISK_MID_RUN, str(path), str(filler)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "No space left on device" in result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert _sha256(path) == before
        assert find_product_sets(path) == []
        assert not list(product_folder(path).iterdir())
        # Once there is room again, what fits is written: the default stores half the raw
        # bytes.
        filler.unlink()
        again = CliRunner().invoke(main, ["process", str(path)])
        assert again.exit_code == 0, again.output
        assert len(find_product_sets(path)) == 1


@pytest.mark.slow
def test_process_export_compare_and_events_never_change_the_recording(tmp_path: Path) -> None:
    path = _recording(tmp_path / "rec.h5", 90, shape=(48, 64))
    before = _sha256(path)
    runner = CliRunner()
    commands = [
        ["process", str(path)],
        ["process", str(path), "--average", "1", "--products", "contrast,perfusion"],
        ["export", str(path), "--what", "perfusion", "--out", str(tmp_path / "p.tif")],
        ["export", str(path), "--what", "raw", "--out", str(tmp_path / "raw.tif")],
        [
            "compare",
            str(path),
            "--before",
            "needling start",
            "--after",
            "needling end",
            "--window-s",
            "0.2",
            "--registration",
            "none",
            "--out",
            str(tmp_path / "compare"),
        ],
    ]
    for args in commands:
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        assert _sha256(path) == before, args
    add_event(path, "reviewed", frame_index=10)
    assert _sha256(path) == before
    with h5py.File(path, "r") as handle:
        assert "derived" not in handle or len(handle["derived"]) == 0
