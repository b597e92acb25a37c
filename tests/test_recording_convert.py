"""TIFF import and TIFF/PNG/CSV export round trips on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from matplotlib import image as mpl_image

from lsci.recording import (
    AcquisitionMetadata,
    RecordingExistsError,
    RecordingFormatError,
    open_recording,
    save_derived,
)
from lsci.recording.convert import export, import_tiff

META = AcquisitionMetadata(
    frame_rate_hz=40.0,
    exposure_s=0.01,
    start_time_utc="2026-03-01T10:00:00Z",
    notes="from the old rig",
)


def _stack(dtype: type = np.uint16) -> np.ndarray:
    return np.random.default_rng(4).integers(0, 1000, (6, 9, 11)).astype(dtype)


@pytest.mark.parametrize("style", ["pages", "imagej", "single_page_stack"])
def test_tiff_import_copies_frames_exactly(tmp_path: Path, style: str) -> None:
    stack = _stack()
    tiff = tmp_path / "in.tif"
    if style == "pages":
        with tifffile.TiffWriter(tiff) as tw:
            for frame in stack:
                tw.write(frame, contiguous=True)
    elif style == "imagej":
        tifffile.imwrite(tiff, stack, imagej=True)
    else:
        tifffile.imwrite(tiff, stack)
    out = import_tiff(tiff, tmp_path / "out.h5", META)
    with open_recording(out) as rec:
        np.testing.assert_array_equal(rec.frames[:], stack)
        assert rec.frame_ids.tolist() == list(range(6))
        assert rec.camera_timestamps_ns.tolist() == [-1] * 6
        assert rec.achieved_fps == pytest.approx(40.0)
        assert rec.host_timestamps_ns[0] == rec.start_host_time_ns
        assert rec.metadata.notes == "from the old rig\nImported from in.tif."
        assert rec.metadata.exposure_s == 0.01


def test_tiff_import_of_a_single_8_bit_image(tmp_path: Path) -> None:
    image = _stack(np.uint8)[0]
    tifffile.imwrite(tmp_path / "one.tif", image)
    out = import_tiff(
        tmp_path / "one.tif",
        tmp_path / "one.h5",
        AcquisitionMetadata(frame_rate_hz=1.0),
        compression="blosc-lz4",
    )
    with open_recording(out) as rec:
        assert len(rec) == 1
        np.testing.assert_array_equal(rec.frames[0], image)
        assert rec.compression == "blosc-lz4"


def test_tiff_import_refuses_what_it_cannot_store(tmp_path: Path) -> None:
    floats = tmp_path / "float.tif"
    tifffile.imwrite(floats, np.ones((2, 4, 4), np.float32), photometric="minisblack")
    with pytest.raises(RecordingFormatError, match="float32"):
        import_tiff(floats, tmp_path / "a.h5", META)
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.ones((2, 4, 4, 3), np.uint8), photometric="rgb")
    with pytest.raises(RecordingFormatError, match="colour"):
        import_tiff(rgb, tmp_path / "b.h5", META)
    text = tmp_path / "text.tif"
    text.write_text("hello")
    with pytest.raises(RecordingFormatError, match="not a readable TIFF"):
        import_tiff(text, tmp_path / "c.h5", META)
    with pytest.raises(RecordingFormatError, match="no such TIFF"):
        import_tiff(tmp_path / "none.tif", tmp_path / "d.h5", META)
    with pytest.raises(ValueError, match="frame_rate_hz"):
        import_tiff(floats, tmp_path / "e.h5", AcquisitionMetadata())
    assert not any(p.suffix == ".h5" for p in tmp_path.iterdir())


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    tiff = tmp_path / "in.tif"
    tifffile.imwrite(tiff, _stack())
    path = import_tiff(tiff, tmp_path / "rec.h5", META)
    save_derived(path, "map", np.array([[0.0, 0.5], [1.0, np.nan]]), algorithm="a", parameters={})
    save_derived(path, "trace", np.array([1.5, 2.5, 3.0]), algorithm="b", parameters={})
    return path


def test_png_scaling_is_linear_from_vmin_to_vmax(recording: Path, tmp_path: Path) -> None:
    [png] = export(recording, tmp_path / "map.png", what="map", fmt="png")
    pixels = mpl_image.imread(png)
    gray = pixels[..., 0]
    assert gray[0, 0] == 0.0
    assert gray[1, 0] == 1.0
    assert gray[0, 1] == pytest.approx(0.5, abs=1 / 255)
    assert pixels[1, 1, 3] == 0.0  # NaN is transparent
    [fixed] = export(recording, tmp_path / "fixed.png", what="map", fmt="png", vmin=0.5, vmax=1.0)
    assert mpl_image.imread(fixed)[0, 1, 0] == 0.0


def test_stack_exports_one_file_per_frame(recording: Path, tmp_path: Path) -> None:
    pngs = export(recording, tmp_path / "raw.png", fmt="png", start=2, stop=4)
    assert [p.name for p in pngs] == ["raw_000002.png", "raw_000003.png"]
    csvs = export(recording, tmp_path / "raw.csv", fmt="csv", start=5)
    with open_recording(recording) as rec:
        np.testing.assert_array_equal(
            np.loadtxt(csvs[0], delimiter=",", dtype=np.int64), rec.frames[5]
        )
    with pytest.raises(RecordingExistsError):
        export(recording, tmp_path / "raw.csv", fmt="csv", start=5)


def test_timestamps_and_1d_products_export_as_csv(recording: Path, tmp_path: Path) -> None:
    [table] = export(recording, tmp_path / "t.csv", what="timestamps", fmt="csv")
    lines = table.read_text().splitlines()
    assert lines[0] == "frame_index,frame_id,camera_timestamp_ns,host_timestamp_ns,time_s"
    assert len(lines) == 7
    assert lines[2].split(",")[4] == "0.025000000"
    [trace] = export(recording, tmp_path / "trace.csv", what="trace", fmt="csv")
    assert np.loadtxt(trace).tolist() == [1.5, 2.5, 3.0]
    [tif] = export(recording, tmp_path / "map.tif", what="map")
    np.testing.assert_array_equal(tifffile.imread(tif), [[0.0, 0.5], [1.0, np.nan]])
    with pytest.raises(ValueError, match="CSV only"):
        export(recording, tmp_path / "trace.tif", what="trace")
    with pytest.raises(ValueError, match="fmt"):
        export(recording, tmp_path / "x", fmt="jpeg")
