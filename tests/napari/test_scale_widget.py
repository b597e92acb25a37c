"""The Scale widget: a ruler drawn in napari gives the recording's scale, stored beside it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from lsci.analysis.scale import recording_scale
from lsci.recording import open_recording
from napari_lsci._sample_data import write_needling_recording
from napari_lsci._scale_widget import RULER_LAYER, ScaleWidget

pytestmark = pytest.mark.napari


def test_a_drawn_ruler_stores_the_scale_beside_the_recording(
    make_napari_viewer, tmp_path: Path
) -> None:
    path = write_needling_recording(tmp_path / "needling.h5")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    viewer = make_napari_viewer()
    [raw] = viewer.open(str(path), plugin="lsci")
    widget = ScaleWidget(viewer)
    widget.reset_choices()
    widget.layer.value = raw
    with pytest.raises(ValueError, match="draw a line"):
        widget.save()
    ruler = widget.draw()
    assert ruler.mode == "add_line"
    # A 100-pixel line along a row, drawn in world coordinates (the layer's scale applies).
    start = raw.data_to_world([0, 10, 20])[1:]
    end = raw.data_to_world([0, 10, 120])[1:]
    ruler.add_lines(np.array([start, end]))
    widget.distance_mm.value = 5.0
    scale = widget.save()
    assert scale.pixel_size_mm == pytest.approx(0.05)
    assert "0.05 mm per pixel" in widget.status.value
    with open_recording(path) as rec:
        stored = recording_scale(rec)
    assert stored is not None
    assert stored.method == "ruler"
    assert stored.pixel_size_mm == pytest.approx(0.05)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert RULER_LAYER in viewer.layers
