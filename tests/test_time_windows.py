"""Time-window averaging of map stacks and recordings, event windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from lsci.analysis.time_windows import (
    event_windows,
    frame_times_s,
    recording_window_mean,
    window_mean,
)


def test_window_mean_against_numpy() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((40, 6, 7)).astype(np.float32)
    maps[rng.random(maps.shape) < 0.1] = np.nan
    maps[:, 0, 0] = np.nan  # a pixel never valid
    times = np.arange(40) * 0.5
    mask = np.ones((6, 7), bool)
    mask[2, 3] = False
    result = window_mean(maps, times, (5.0, 15.0), mask=mask)
    assert result.dtype == np.float32
    chosen = maps[(times >= 5.0) & (times < 15.0)].astype(np.float64)
    assert chosen.shape[0] == 20
    expected = np.full((6, 7), np.nan)
    for r in range(6):
        for c in range(7):
            values = chosen[:, r, c]
            values = values[np.isfinite(values)]
            if values.size and mask[r, c]:
                expected[r, c] = values.mean()
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert np.isnan(result[0, 0])
    assert np.isnan(result[2, 3])


def test_window_mean_per_frame_mask_and_out() -> None:
    maps = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 3.0)])
    mask = np.ones((2, 2, 2), bool)
    mask[1, 0, 0] = False
    out = np.empty((2, 2))
    result = window_mean(maps, [0.0, 1.0], (0.0, 2.0), mask=mask, out=out)
    assert result is out
    np.testing.assert_array_equal(result, [[1.0, 2.0], [2.0, 2.0]])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones((4, 4)), [0.0], (0, 1)), "maps"),
        ((np.ones((2, 3, 3)), [0.0], (0, 1)), "timestamps_s"),
        ((np.ones((2, 3, 3)), [0.0, np.nan], (0, 1)), "timestamps_s"),
        ((np.ones((2, 3, 3)), [0.0, 1.0], (1, 1)), "window_s"),
        ((np.ones((2, 3, 3)), [0.0, 1.0], (0,)), "window_s"),
        ((np.ones((2, 3, 3)), [0.0, 1.0], (5, 6)), "no map lies"),
        ((np.ones((2, 3, 3), complex), [0.0, 1.0], (0, 2)), "real numbers"),
    ],
)
def test_window_mean_errors(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        window_mean(*args)


def test_window_mean_bad_mask_and_out() -> None:
    maps = np.ones((2, 3, 3))
    with pytest.raises(ValueError, match="mask"):
        window_mean(maps, [0.0, 1.0], (0, 2), mask=np.ones((4, 4), bool))
    with pytest.raises(TypeError, match="out"):
        window_mean(maps, [0.0, 1.0], (0, 2), out=np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="out"):
        window_mean(maps, [0.0, 1.0], (0, 2), out=np.empty((4, 4)))


@dataclass(frozen=True)
class FakeEvent:
    label: str
    time_s: float


def test_event_windows() -> None:
    events = [FakeEvent("start", 0.0), FakeEvent("needling", 30.0), FakeEvent("needling", 50.0)]
    before, after = event_windows(events, "needling")
    assert before == (20.0, 30.0)
    assert after == (30.0, 40.0)
    before, after = event_windows(events, " needling ", gap_s=2.0, before_s=5, occurrence=-1)
    assert before == (43.0, 48.0)
    assert after == (52.0, 62.0)
    assert event_windows([(12.0, "x")], "x", after_s=1.0)[1] == (12.0, 13.0)


def test_event_windows_errors() -> None:
    events = [FakeEvent("start", 0.0)]
    with pytest.raises(ValueError, match=r"no event labelled 'needling'.*\['start'\]"):
        event_windows(events, "needling")
    with pytest.raises(ValueError, match="occurrence=1"):
        event_windows(events, "start", occurrence=1)
    with pytest.raises(ValueError, match="before_s"):
        event_windows(events, "start", before_s=0)
    with pytest.raises(ValueError, match="after_s"):
        event_windows(events, "start", after_s=float("nan"))
    with pytest.raises(ValueError, match="gap_s"):
        event_windows(events, "start", gap_s=-1)


class FakeRecording:
    """The attributes of lsci.recording.Recording that the window functions use."""

    def __init__(
        self, frames: np.ndarray, times_s: np.ndarray, events: tuple[FakeEvent, ...] = ()
    ) -> None:
        self.frames = frames
        self.events = events
        self.start_host_time_ns = 1_700_000_000_000_000_000
        self.host_timestamps_ns = self.start_host_time_ns + np.round(times_s * 1e9).astype(np.int64)


def test_frame_times_and_recording_window_mean() -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 4096, (30, 5, 6), dtype=np.uint16)
    times = np.arange(30) * 0.1
    rec = FakeRecording(frames, times)
    np.testing.assert_allclose(frame_times_s(rec), times, atol=1e-9)

    def to_maps(batch: np.ndarray) -> np.ndarray:
        return batch.astype(np.float32) / 100.0

    result = recording_window_mean(rec, (0.95, 2.55), to_maps, batch_frames=4)
    chosen = frames[10:26].astype(np.float64) / 100.0
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, chosen.mean(axis=0), rtol=1e-6)

    # One map per batch (as temporal contrast gives): each batch counts once.
    per_batch = recording_window_mean(
        rec, (0.95, 2.55), lambda b: b.astype(np.float64).mean(axis=0) / 100.0, batch_frames=8
    )
    expected = (chosen[:8].mean(axis=0) + chosen[8:].mean(axis=0)) / 2
    np.testing.assert_allclose(per_batch, expected, rtol=1e-12)

    mask = np.ones((5, 6), bool)
    mask[0, 0] = False
    assert np.isnan(recording_window_mean(rec, (0, 1), to_maps, mask=mask)[0, 0])


def test_recording_window_mean_errors() -> None:
    rec = FakeRecording(np.zeros((5, 4, 4), np.uint8), np.arange(5.0))

    def identity(batch: np.ndarray) -> np.ndarray:
        return batch.astype(np.float32)

    with pytest.raises(ValueError, match="no frame"):
        recording_window_mean(rec, (10, 20), identity)
    with pytest.raises(ValueError, match="batch_frames"):
        recording_window_mean(rec, (0, 2), identity, batch_frames=0)
    with pytest.raises(ValueError, match="to_maps"):
        recording_window_mean(rec, (0, 2), lambda b: b[:, :2])
    with pytest.raises(ValueError, match="mask"):
        recording_window_mean(rec, (0, 2), identity, mask=np.ones((3, 3), bool))
