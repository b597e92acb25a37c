"""TIFF import reads every page or refuses with the reason, and never leaves a partial file.

The TIFF files are written with tifffile the ways real tools write them: page by page
(``append=True``), several writes of different sizes or types, RGB, and cut short.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner, Result

from lsci.cli import main
from lsci.recording import AcquisitionMetadata, RecordingFormatError, open_recording
from lsci.recording.convert import import_tiff
from tests.helpers.tmpfs import mounted_tmpfs

META = AcquisitionMetadata(frame_rate_hz=50.0, exposure_s=0.004)


def _stack(
    count: int = 7, shape: tuple[int, int] = (12, 10), dtype: type = np.uint16
) -> np.ndarray:
    return np.random.default_rng(8).integers(0, 250, (count, *shape)).astype(dtype)


def _import(tiff: Path, out: Path, *extra: str) -> Result:
    args = ["import", str(tiff), "--fps", "50", "--exposure-ms", "4", "--out", str(out), *extra]
    return CliRunner().invoke(main, args)


def _one_line_failure(result: Result, fragment: str) -> None:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert fragment in lines[-1], result.output
    assert "Traceback" not in result.output


def test_pages_appended_one_by_one_all_become_frames(tmp_path: Path) -> None:
    stack = _stack()
    tiff = tmp_path / "appended.tif"
    for frame in stack:
        tifffile.imwrite(tiff, frame, append=True)
    out = tmp_path / "rec.h5"
    result = _import(tiff, out, "--pixel-size-um", "5.5")
    assert result.exit_code == 0, result.output
    assert "Imported 7 frames of 12×10 uint16" in result.output
    with open_recording(out) as rec:
        np.testing.assert_array_equal(rec.frames[:], stack)
        assert rec.metadata.exposure_s == pytest.approx(0.004)
        assert rec.metadata.frame_rate_hz == 50.0
        assert rec.metadata.pixel_size_um == 5.5
        assert rec.achieved_fps == pytest.approx(50.0)


def _mixed_size(path: Path) -> None:
    tifffile.imwrite(path, _stack(3), append=True, photometric="minisblack")
    tifffile.imwrite(path, _stack(2, (6, 5)), append=True, photometric="minisblack")


def _mixed_type(path: Path) -> None:
    tifffile.imwrite(path, _stack(3), append=True, photometric="minisblack")
    tifffile.imwrite(path, _stack(2, dtype=np.uint8), append=True, photometric="minisblack")


def _rgb(path: Path) -> None:
    tifffile.imwrite(path, np.ones((32, 32, 3), np.uint8), photometric="rgb")


def _rgba_stack(path: Path) -> None:
    tifffile.imwrite(path, np.ones((4, 16, 16, 4), np.uint8), photometric="rgb")


def _truncated_data(path: Path) -> None:
    for frame in _stack(6):
        tifffile.imwrite(path, frame, append=True)
    data = path.read_bytes()
    path.write_bytes(data[:-50])


def _truncated_chain(path: Path) -> None:
    for frame in _stack(6):
        tifffile.imwrite(path, frame, append=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


REFUSED = {
    "mixed size": (_mixed_size, "page 3 is 6×5 uint16 but page 0 is 12×10 uint16"),
    "mixed type": (_mixed_type, "page 3 is 12×10 uint8 but page 0 is 12×10 uint16"),
    "rgb": (_rgb, "colour"),
    "rgba stack": (_rgba_stack, "colour"),
    "truncated data": (_truncated_data, "page 5 cannot be read (truncated"),
    "truncated page chain": (_truncated_chain, "damaged (truncated?)"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unimportable_tiffs_are_refused_with_the_reason(tmp_path: Path, case: str) -> None:
    make, reason = REFUSED[case]
    tiff = tmp_path / "in.tif"
    make(tiff)
    out = tmp_path / "rec.h5"
    with pytest.raises(RecordingFormatError, match=r"in\.tif") as caught:
        import_tiff(tiff, out, META)
    assert reason in str(caught.value)
    _one_line_failure(_import(tiff, out), reason)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_import_onto_its_source_and_bad_numbers_are_refused(tmp_path: Path) -> None:
    tiff = tmp_path / "in.tif"
    tifffile.imwrite(tiff, _stack(2))
    before = tiff.read_bytes()
    _one_line_failure(_import(tiff, tiff, "--overwrite"), "is the input")
    assert tiff.read_bytes() == before
    for option, value in (("--fps", "nan"), ("--fps", "0"), ("--exposure-ms", "-1")):
        args = ["import", str(tiff), "--fps", "50", "--exposure-ms", "4", option, value]
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "x.h5")])
        assert result.exit_code == 2, result.output
        assert "finite number > 0" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_import_on_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    tiff = tmp_path / "big.tif"
    tifffile.imwrite(tiff, _stack(60, (128, 128)))  # 1.9 MiB of frames
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk:
        result = _import(tiff, disk / "rec.h5")
        _one_line_failure(result, "No space left on device")
        assert list(disk.iterdir()) == []
