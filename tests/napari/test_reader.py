"""The plugin's manifest, reader, writer and sample data, with a real viewer under Xvfb."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install 'lsci[napari]')")
pytest.importorskip("qtpy", reason="no Qt binding installed (pip install 'lsci[napari]')")

import tifffile
from matplotlib.image import imread
from npe2 import PluginManifest

from lsci.recording import open_recording
from lsci.viz.figures import map_figure
from napari_lsci._arrays import RecordingArray
from napari_lsci._reader import get_reader, read_recording
from napari_lsci._sample_data import before_after_pair, ischemic_skin
from napari_lsci._writer import write_map
from tests.helpers.legacy import write_legacy_product

from .support import N_FRAMES, SHAPE, write_small_recording

pytestmark = pytest.mark.napari


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return write_small_recording(tmp_path / "run.h5")


def test_manifest_validates_with_its_imports() -> None:
    # What `npe2 validate lsci --imports` does: schema, then every python_name imported.
    manifest = PluginManifest.from_distribution("lsci")
    manifest.validate_imports()
    contributions = manifest.contributions
    assert [r.command for r in contributions.readers] == ["lsci.get_reader"]
    assert [w.command for w in contributions.writers] == ["lsci.write_map"]
    assert {s.key for s in contributions.sample_data} == {"ischemic_skin", "before_after"}


def test_reader_declines_files_that_are_not_recordings(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["x"] = np.zeros(3)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    assert get_reader(str(other)) is None
    assert get_reader(str(text)) is None
    assert get_reader(str(tmp_path / "missing.h5")) is None
    assert get_reader(str(tmp_path / "image.tif")) is None


def test_reader_gives_lazy_raw_frames_and_derived_maps(recording: Path) -> None:
    reader = get_reader(str(recording))
    assert reader is read_recording
    layers = {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in reader(str(recording))}
    assert set(layers) == {
        "run raw [ADU]",
        "run contrast [K]",
        "run perfusion [1/K² (a.u.)]",
    }
    raw, raw_kwargs, kind = layers["run raw [ADU]"]
    assert kind == "image"
    assert isinstance(raw, RecordingArray)
    assert raw.shape == (N_FRAMES, *SHAPE)
    with open_recording(recording) as rec:
        np.testing.assert_array_equal(raw[3], rec.frames[3])
        np.testing.assert_array_equal(raw[2:5, 1:4, :], rec.frames[2:5, 1:4, :])
        perfusion = rec.product("perfusion").read()
    # Known optics: 5 µm pixels at magnification 0.5 are 10 µm on the skin.
    assert raw_kwargs["scale"] == (1.0, 10.0, 10.0)
    assert raw_kwargs["units"] == ("", "um", "um")
    assert [e["label"] for e in raw_kwargs["metadata"]["events"]] == [
        "needling start",
        "needling end",
    ]
    assert [e["frame_index"] for e in raw_kwargs["metadata"]["events"]] == [4, 8]
    data, kwargs, _ = layers["run perfusion [1/K² (a.u.)]"]
    np.testing.assert_array_equal(np.asarray(data), perfusion)
    # Two raw frames per map (average=2): maps sit on the raw frame axis.
    assert kwargs["scale"] == (2, 10.0, 10.0)
    assert kwargs["colormap"] == "inferno"
    lower, upper = kwargs["contrast_limits"]
    assert lower == 0.0
    assert np.percentile(perfusion, 90) < upper <= perfusion.max()
    assert kwargs["metadata"]["provenance"]["parameters"]["window"] == 5


def test_viewer_opens_a_recording_through_the_plugin(make_napari_viewer, recording: Path) -> None:
    viewer = make_napari_viewer()
    added = viewer.open(str(recording), plugin="lsci")
    assert [layer.name for layer in added] == [
        "run raw [ADU]",
        "run contrast [K]",
        "run perfusion [1/K² (a.u.)]",
    ]
    assert viewer.dims.ndim == 3
    assert str(added[2].units[1]) == "micrometer"
    viewer.dims.set_point(0, 6)
    raw = viewer.layers["run raw [ADU]"]
    with open_recording(recording) as rec:
        np.testing.assert_array_equal(raw.data[6], rec.frames[6])
        perfusion = rec.product("perfusion").read()
    # napari's save goes through the plugin's writer.
    [written] = added[2].save(str(recording.with_name("perfusion.tif")), plugin="lsci")
    np.testing.assert_array_equal(tifffile.imread(written), perfusion)


def test_writer_exports_values_as_tiff_and_a_figure_with_colour_bar_as_png(
    tmp_path: Path,
) -> None:
    data = np.linspace(0.0, 2.0, 12 * 16, dtype=np.float64).reshape(12, 16)
    meta = {
        "name": "perfusion",
        "colormap": "inferno",
        "contrast_limits": (0.0, 2.0),
        "metadata": {"unit": "1/τc (1/s)"},
    }
    [tif] = write_map(str(tmp_path / "map.tif"), data, meta)
    stored = tifffile.imread(tif)
    assert stored.dtype == np.float32
    with tifffile.TiffFile(tif) as handle:
        assert json.loads(handle.pages[0].description)["unit"] == "1/τc (1/s)"
    np.testing.assert_allclose(stored, data.astype(np.float32))
    [png] = write_map(str(tmp_path / "map.png"), data, meta)
    # The figure lsci writes for a map: title, colour map and limits, and a colour bar with
    # the unit.
    reference = map_figure(
        data, tmp_path / "reference.png", title="perfusion", label="1/τc (1/s)",
        cmap="inferno", limits=(0.0, 2.0),
    )  # fmt: skip
    image = imread(png)
    np.testing.assert_array_equal(image, imread(reference))
    assert image.shape[0] > 10 * data.shape[0]
    with pytest.raises(ValueError, match="2-D map"):
        write_map(str(tmp_path / "stack.png"), np.zeros((2, 3, 4)), meta)
    with pytest.raises(ValueError, match="suffix"):
        write_map(str(tmp_path / "map.jpg"), data, meta)


def test_sample_data_is_simulated_locally() -> None:
    (raw, _, _), (perfusion, kwargs, _) = ischemic_skin()
    assert raw.ndim == 3
    assert raw.dtype == np.uint16
    assert perfusion.shape == raw.shape[1:]
    assert kwargs["colormap"] == "inferno"
    centre = perfusion[54:74, 54:74].mean()
    corner = perfusion[100:120, 5:25].mean()
    # The ischemic disc has a fifth of the healthy flow.
    assert centre < 0.4 * corner
    pair = before_after_pair()
    roles = [(kw["metadata"]["lsci_pair"], kw["metadata"]["lsci_role"]) for _, kw, _ in pair]
    assert roles == [
        ("before", "intensity"),
        ("before", "perfusion"),
        ("after", "intensity"),
        ("after", "perfusion"),
    ]


def _layers_of(path: Path) -> dict[str, tuple[object, dict, str]]:
    reader = get_reader(str(path))
    assert reader is read_recording
    return {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in reader(str(path))}


def test_reader_opens_growing_and_crashed_recordings(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    helper = root / "tests" / "helpers" / "write_recording.py"
    path = tmp_path / "live.h5"
    process = subprocess.Popen(
        [sys.executable, str(helper), str(path), "stream"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    assert process.stdout is not None
    try:
        while not process.stdout.readline().startswith("committed"):
            pass
        [(data, kwargs, _)] = _layers_of(path).values()
        assert kwargs["metadata"]["complete"] is False
        assert np.asarray(data[0]).shape == data.shape[1:]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    [(data, kwargs, _)] = _layers_of(path).values()
    with open_recording(path) as rec:
        assert data.shape == rec.frames.shape
        np.testing.assert_array_equal(np.asarray(data[-1]), rec.frames[-1])


def test_incomplete_products_are_marked_in_the_layer(recording: Path) -> None:
    # Products of older lsci versions, inside the recording, could be left unfinished.
    maps = np.ones((N_FRAMES, *SHAPE), np.float32)
    write_legacy_product(recording, "old", maps, parameters={"window": 5}, complete=False)
    layers = _layers_of(recording)
    [incomplete] = [kwargs for _, kwargs, _ in layers.values() if "(incomplete)" in kwargs["name"]]
    assert incomplete["metadata"]["lsci_product"] == "old"
    assert incomplete["metadata"]["complete"] is False
    others = [kwargs for _, kwargs, _ in layers.values() if kwargs is not incomplete]
    assert all(kwargs["metadata"]["complete"] is True for kwargs in others)
