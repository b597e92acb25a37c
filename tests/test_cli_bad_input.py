"""Every ``lsci`` command given bad input answers with one error line, no traceback, status != 0.

Bad input is what users bring by mistake: a missing file, a folder, a file that is not a
recording, numbers that make no sense. Each case runs the real command in this process on
real files; the test fails on any Python traceback, on more or fewer than one error line, and
on exit status 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from lsci.cli import main
from lsci.recording import AcquisitionMetadata, RecordingWriter

SHAPE = (16, 16)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A recording, a folder, a text file, an empty file and a non-lsci HDF5 file."""
    import h5py

    root = tmp_path_factory.mktemp("bad-input")
    recording = root / "rec.h5"
    frames = np.random.default_rng(0).integers(0, 255, (12, *SHAPE), dtype=np.uint8)
    meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=50.0)
    with RecordingWriter(recording, meta, frame_shape=SHAPE, dtype=np.uint8) as writer:
        writer.append_many(frames, frame_ids=np.arange(len(frames)))
        writer.add_event("needling", host_time_ns=None)
    (root / "folder").mkdir()
    (root / "text.h5").write_text("not a recording\n")
    (root / "empty.h5").write_bytes(b"")
    with h5py.File(root / "other.h5", "w") as handle:
        handle["x"] = np.arange(3)
    (root / "not.tif").write_text("not a TIFF\n")
    return {
        "rec": recording,
        "missing": root / "missing.h5",
        "folder": root / "folder",
        "text": root / "text.h5",
        "empty": root / "empty.h5",
        "other": root / "other.h5",
        "tif": root / "not.tif",
        "root": root,
    }


#: Bad files any command reading a recording is given.
BAD_FILES = ("missing", "folder", "text", "empty", "other")

#: (command line with {name} placeholders for the files above) per case; {out} is a fresh
#: path in a fresh folder.
CASES: list[Any] = [
    *(f"info {{{bad}}}" for bad in BAD_FILES),
    *(f"view {{{bad}}}" for bad in BAD_FILES),
    *(f"export {{{bad}}} --out {{out}}/x.tif" for bad in BAD_FILES),
    *(f"process {{{bad}}}" for bad in BAD_FILES),
    *(f"repair {{{bad}}} --out {{out}}/x.h5" for bad in BAD_FILES),
    *(f"compare {{{bad}}} --before needling --out {{out}}/c" for bad in BAD_FILES),
    *(f"scale {{{bad}}}" for bad in BAD_FILES),
    *(f"study add {{out}} {{{bad}}} --subject S01 --site nose --visit V1" for bad in BAD_FILES),
    "import {missing} --fps 50 --exposure-ms 5 --out {out}/x.h5",
    "import {folder} --fps 50 --exposure-ms 5 --out {out}/x.h5",
    "import {tif} --fps 50 --exposure-ms 5 --out {out}/x.h5",
    "import {text} --fps 50 --exposure-ms 5 --out {out}/x.h5",
    "import {tif} --fps nan --exposure-ms 5 --out {out}/x.h5",
    "import {tif} --fps 50 --exposure-ms -1 --out {out}/x.h5",
    "export {rec} --what nothing --out {out}/x.tif",
    "export {rec} --vmin nan --format png --out {out}/x.png",
    "export {rec} --start 100 --out {out}/x.tif",
    "export {rec} --out {folder}",
    "export {rec} --out {rec} --overwrite",
    "repair {rec} --out {rec} --overwrite",
    "repair {rec} --out {folder}",
    "compare {rec} --before nothing --out {out}/c",
    "compare {rec} --before needling --window-s nan --out {out}/c",
    "compare {rec} --before needling --window-s -2 --out {out}/c",
    "scale {rec} --points 1,2,3 --distance-mm 5",
    "scale {rec} --points 0,0,0,10 --distance-mm nan",
    "scale {rec} --points 0,0,0,10 --distance-mm -1",
    "acquire --camera sim --out {out}/x.h5 --duration nan",
    "acquire --camera sim --out {out}/x.h5 --fps -5",
    "acquire --camera sim --out {out}/x.h5 --sim-shape 100000x100000",
    "acquire --camera sim --out {out}/x.h5 --sim-shape axb",
    "acquire --camera sim --out {out}/x.h5 --mark-at 5",
    "acquire --camera sim --out {out}/x.h5 --mark-at nan:label",
    "acquire --camera sim --out {folder}",
    "acquire --camera sim --out {missing}/x.h5",
    "acquire --camera sim --out {rec}",
    "acquire --camera sim --cti {missing} --out {out}/x.h5",
    "acquire --camera nothing --out {out}/x.h5",
    "cameras --camera nothing",
    "cameras --cti {missing}",
    "demo --out {rec}",
    "study init {rec}",
    "study list {folder}",
    "study list {missing}",
    "study trend {folder} --subject S01 --out {out}/t",
    "study export {folder} --out {out}/export",
]


#: Processing parameters are checked before anything is read or written (issue 13, item 6).
CASES += [
    "process {rec} --window 0",
    "process {rec} --window 4",
    "process {rec} --average 0",
    "process {rec} --beta 2",
    "process {rec} --exposure-ms 0",
    "process {rec} --scheduler nonsense",
    "compare {rec} --before needling --window 0 --out {out}/c",
]


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_error_line(case: str, files: dict[str, Path], tmp_path: Path) -> None:
    names = {name: str(path) for name, path in files.items()}
    args = [part.format(out=tmp_path, **names) for part in case.split()]
    before = sorted(p.name for p in files["root"].iterdir())
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0, result.output
    # An unexpected exception is kept by the runner; an expected failure is a SystemExit.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    errors = _error_lines(result.output)
    assert len(errors) == 1, result.output
    # Nothing new beside the inputs; the inputs themselves are untouched.
    assert sorted(p.name for p in files["root"].iterdir()) == before
