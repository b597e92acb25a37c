"""The registry of contrast modes: each entry computes its definition, and the engine follows it."""

from __future__ import annotations

import numpy as np
import pytest

from lsci.core.contrast import spatial_contrast, spatiotemporal_contrast, temporal_contrast
from lsci.core.modes import MODES, get_mode
from lsci.processing import ProcessingSettings, process_frames

FRAMES = np.random.default_rng(2).exponential(200, (12, 20, 18)).astype(np.uint16)
WINDOWS = {"window": 5, "frames_window": 4, "step": 4, "ddof": 0, "edges": "valid"}


def test_each_mode_computes_its_definition() -> None:
    expected = {
        "spatial": spatial_contrast(FRAMES, 5, edges="valid"),
        "temporal": temporal_contrast(FRAMES, 4, step=4),
        "spatiotemporal": spatiotemporal_contrast(FRAMES, 5, 4, step=4, edges="valid"),
    }
    assert set(expected) == set(MODES)
    for name, mode in MODES.items():
        np.testing.assert_array_equal(mode.compute(FRAMES, **WINDOWS), expected[name])


@pytest.mark.parametrize("name", list(MODES))
def test_the_engine_sizes_maps_from_the_mode(name: str) -> None:
    settings = ProcessingSettings(mode=name, window=5, frames_window=4, edges="valid")
    result = process_frames(FRAMES, settings)
    mode = MODES[name]
    assert result.contrast.shape == (
        settings.n_maps(len(FRAMES)),
        *settings.map_shape(FRAMES.shape),
    )
    assert result.contrast.shape[0] == (3 if mode.temporal else 12)
    cropped = result.contrast.shape[1:] == (16, 14)
    assert cropped == mode.spatial
    parameters = settings.parameters()
    assert ("window" in parameters) == mode.spatial
    assert ("frames_window" in parameters) == mode.temporal


def test_unknown_mode_names_the_choices() -> None:
    with pytest.raises(ValueError, match="spatial, temporal, spatiotemporal"):
        get_mode("fourier")
    with pytest.raises(ValueError, match="mode='fourier'"):
        ProcessingSettings(mode="fourier")
