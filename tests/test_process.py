"""Offline processing: chunk plans, chunked results equal whole-stack results, provenance."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsci.core.contrast import spatial_contrast, spatiotemporal_contrast, temporal_contrast
from lsci.core.perfusion import inverse_correlation_time, speckle_flow_index
from lsci.processing import ProcessingSettings, process_recording
from lsci.processing.chunks import plan_chunks
from lsci.recording import (
    AcquisitionMetadata,
    RecordingWriter,
    open_recording,
    store_calibration,
)
from lsci.recording.products import find_product_sets, product_folder

FRAME_SHAPE = (24, 20)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_recording(path: Path, n_frames: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = np.clip(rng.exponential(40, size=(n_frames, *FRAME_SHAPE)), 1, 255).astype(np.uint8)
    meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=100.0, bit_depth=8)
    with RecordingWriter(path, meta, frame_shape=FRAME_SHAPE, dtype=np.uint8) as writer:
        for i, frame in enumerate(frames):
            writer.append(frame, frame_id=i)
    return frames


@given(
    n_frames=st.integers(0, 200),
    frames_window=st.integers(2, 30),
    step=st.integers(1, 30),
    per_chunk=st.integers(1, 20),
)
def test_plan_covers_every_map_once_with_the_frames_it_needs(
    n_frames: int, frames_window: int, step: int, per_chunk: int
) -> None:
    settings = ProcessingSettings(mode="temporal", frames_window=frames_window, step=step)
    chunks = plan_chunks(n_frames, settings, maps_per_chunk=per_chunk)
    expected_maps = max(0, (n_frames - frames_window) // step + 1)
    maps = [m for c in chunks for m in range(c.first_map, c.stop_map)]
    assert maps == list(range(expected_maps))
    for c in chunks:
        assert c.frame_start == c.first_map * step
        assert c.frame_stop == (c.stop_map - 1) * step + frames_window <= n_frames


@pytest.mark.parametrize(
    ("settings", "reference"),
    [
        (
            ProcessingSettings(mode="spatial", window=5),
            lambda f: spatial_contrast(f, 5),
        ),
        (
            ProcessingSettings(mode="spatial", window=7, average=4, edges="valid", ddof=1),
            lambda f: (
                spatial_contrast(f, 7, edges="valid", ddof=1).reshape(-1, 4, 18, 14).mean(axis=1)
            ),
        ),
        (
            ProcessingSettings(mode="temporal", frames_window=10, step=3),
            lambda f: temporal_contrast(f, 10, step=3),
        ),
        (
            ProcessingSettings(mode="spatiotemporal", window=3, frames_window=5),
            lambda f: spatiotemporal_contrast(f, 3, 5),
        ),
    ],
)
def test_chunked_processing_equals_whole_stack(
    tmp_path: Path, settings: ProcessingSettings, reference: object
) -> None:
    path = tmp_path / "rec.h5"
    frames = write_recording(path)
    # A budget of a few frames forces many chunks (and overlapping temporal windows).
    result = process_recording(path, settings, memory_bytes=8 * frames[0].nbytes * 4)
    expected_k = reference(frames)  # type: ignore[operator]
    with open_recording(path) as rec:
        k = rec.product("contrast")[...]
        sfi = rec.product("perfusion")[...]
    assert result.maps == len(expected_k)
    np.testing.assert_allclose(k, expected_k, rtol=1e-6)
    np.testing.assert_allclose(sfi, speckle_flow_index(expected_k), rtol=1e-5)


def test_tau_model_uses_exposure_and_beta(tmp_path: Path) -> None:
    path = tmp_path / "rec.h5"
    frames = write_recording(path, n_frames=12)
    settings = ProcessingSettings(model="inverse_tau", exposure_s=0.005, beta=0.8)
    process_recording(path, settings)
    with open_recording(path) as rec:
        rate = rec.product("perfusion")[...]
    expected = inverse_correlation_time(spatial_contrast(frames, 7), 0.005, beta=0.8)
    np.testing.assert_allclose(rate, expected, rtol=1e-6)


def test_rerun_is_recognised_and_other_settings_coexist(tmp_path: Path) -> None:
    path = tmp_path / "rec.h5"
    write_recording(path, n_frames=10)
    before = _sha256(path)
    first = process_recording(path, ProcessingSettings(window=5))
    again = process_recording(path, ProcessingSettings(window=5))
    assert not first.reused
    assert again.reused
    assert again.product_set == first.product_set
    other = process_recording(path, ProcessingSettings(window=7))
    assert other.product_set != first.product_set
    redone = process_recording(path, ProcessingSettings(window=5), overwrite=True)
    assert not redone.reused
    assert redone.product_set == first.product_set
    with open_recording(path) as rec:
        assert sorted(rec.derived) == sorted(first.products + other.products)
        assert rec.derived[first.products[0]].info.parameters["window"] == 5
        assert rec.product("contrast").info.parameters["window"] == 5  # the newest: redone
    assert _sha256(path) == before  # the recording is only ever read


def test_products_dtype_and_their_attributes(tmp_path: Path) -> None:
    path = tmp_path / "rec.h5"
    frames = write_recording(path, n_frames=16)
    settings = ProcessingSettings(window=5, average=4, exposure_s=0.005)
    result = process_recording(path, settings, products=["perfusion"], dtype="float16")
    assert [name.rsplit("/", 1)[1] for name in result.products] == ["perfusion"]
    k = spatial_contrast(frames, 5).reshape(4, 4, *FRAME_SHAPE).mean(axis=1)
    expected = inverse_correlation_time(k, 0.005)
    with open_recording(path) as rec:
        perfusion = rec.product("perfusion")
        assert perfusion.dtype == np.float16
        assert perfusion.attrs["unit"] == "1/s"
        assert perfusion.attrs["model"] == "inverse_tau"
        assert json.loads(perfusion.attrs["calibrations"]) == {}
        # float16 keeps 11 significant bits: relative rounding error ≤ 2⁻¹¹.
        np.testing.assert_allclose(perfusion.read(), expected, rtol=2.0**-11)
    with pytest.raises(ValueError, match="dtype='float64'"):
        process_recording(path, settings, dtype="float64")
    with pytest.raises(ValueError, match="cannot be stored"):
        process_recording(path, settings.__class__(model="contrast"), products=["perfusion"])


def test_an_interrupted_run_leaves_nothing_and_a_rerun_completes(tmp_path: Path) -> None:
    path = tmp_path / "rec.h5"
    frames = write_recording(path, n_frames=30)
    before = _sha256(path)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    settings = ProcessingSettings(window=5)
    with pytest.raises(KeyboardInterrupt):
        process_recording(path, settings, memory_bytes=4 * frames[0].nbytes * 4, progress=interrupt)
    assert _sha256(path) == before
    assert find_product_sets(path) == []
    assert list(product_folder(path).iterdir()) == []  # the temporary folder was removed
    result = process_recording(path, settings)
    assert not result.reused
    with open_recording(path) as rec:
        np.testing.assert_allclose(rec.product("contrast").read(), spatial_contrast(frames, 5))


def test_invalid_settings_and_frames_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rec.h5"
    write_recording(path, n_frames=8)
    for window in (0, 1, 2, 4):
        with pytest.raises(ValueError, match=f"window={window}"):
            ProcessingSettings(window=window)
    with pytest.raises(ValueError, match="larger than the 24×20 frames"):
        process_recording(path, ProcessingSettings(window=21, edges="valid"))
    assert not product_folder(path).exists()


def test_bad_settings_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode='fourier'"):
        ProcessingSettings(mode="fourier")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the exposure time"):
        ProcessingSettings(model="inverse_tau")
    with pytest.raises(ValueError, match=r"beta=1\.5"):
        ProcessingSettings(model="inverse_tau", exposure_s=0.01, beta=1.5)
    path = tmp_path / "short.h5"
    write_recording(path, n_frames=3)
    with pytest.raises(ValueError, match="too few for one map"):
        process_recording(path, ProcessingSettings(mode="temporal", frames_window=25))


def test_stored_calibrations_are_applied(tmp_path: Path) -> None:
    from lsci.calibration import CameraNoise, DarkFrame, calibrate_beta
    from lsci.calibration.noise import fundamental_k2
    from lsci.sim.speckle import SpeckleSimulator

    path = tmp_path / "rec.h5"
    frames = write_recording(path, n_frames=8)
    rng = np.random.default_rng(3)
    dark = DarkFrame.from_frames(rng.normal(5.0, 1.5, size=(20, *FRAME_SHAPE)).round())
    camera = CameraNoise(gain_adu_per_e=0.5, read_noise_e=2.0)
    static = SpeckleSimulator(
        FRAME_SHAPE, tau_c_s=np.inf, exposure_s=0.005, grain_px=3.0, bit_depth=8, seed=1
    ).frames(4)
    beta = calibrate_beta(static, mode="spatial", window=5)
    for calibration in (dark, camera, beta):
        store_calibration(path, calibration)

    settings = ProcessingSettings(window=5, model="inverse_tau", exposure_s=0.005)
    process_recording(path, settings)
    k2, _ = fundamental_k2(frames, camera, dark=dark, window=5)
    expected_k = np.sqrt(np.maximum(k2, 0))
    with open_recording(path) as rec:
        np.testing.assert_allclose(rec.product("contrast")[...], expected_k, rtol=1e-6)
        np.testing.assert_allclose(
            rec.product("perfusion")[...],
            inverse_correlation_time(expected_k, 0.005, beta=beta.beta),
            rtol=1e-5,
        )
        provenance = rec.product("perfusion").info.parameters
    assert provenance["beta"] == pytest.approx(beta.beta)
    assert provenance["gain_adu_per_e"] == 0.5
    assert provenance["dark_frame_frames"] == 20

    # The same file without its calibrations gives the plain result, in a set of its own.
    process_recording(path, settings, calibrated=False)
    with open_recording(path) as rec:
        plain = spatial_contrast(frames, 5)
        np.testing.assert_allclose(rec.product("contrast")[...], plain, rtol=1e-6)


def test_beta_measured_with_other_settings_is_refused(tmp_path: Path) -> None:
    from lsci.calibration import CalibrationMismatchError, calibrate_beta

    path = tmp_path / "rec.h5"
    write_recording(path, n_frames=4)
    rng = np.random.default_rng(0)
    store_calibration(path, calibrate_beta(rng.exponential(50, (2, *FRAME_SHAPE)), window=7))
    with pytest.raises(CalibrationMismatchError, match=r"window=5 \(calibrated: 7\)"):
        process_recording(path, ProcessingSettings(window=5, model="inverse_tau", exposure_s=0.005))
    # An explicit β is the user's choice and is used as given.
    process_recording(
        path, ProcessingSettings(window=5, model="inverse_tau", exposure_s=0.005, beta=0.9)
    )


def test_a_stack_in_memory_and_its_recording_give_the_same_maps(tmp_path: Path) -> None:
    from lsci.calibration import CameraNoise, DarkFrame, calibrate_beta
    from lsci.processing import Calibrations, process_frames

    path = tmp_path / "rec.h5"
    frames = write_recording(path, n_frames=12)
    rng = np.random.default_rng(4)
    dark = DarkFrame.from_frames(rng.normal(4.0, 1.0, size=(10, *FRAME_SHAPE)).round())
    camera = CameraNoise(gain_adu_per_e=0.5, read_noise_e=2.0)
    beta = calibrate_beta(rng.exponential(50, (2, *FRAME_SHAPE)), window=5)
    for calibration in (dark, camera, beta):
        store_calibration(path, calibration)
    settings = ProcessingSettings(window=5, average=3, exposure_s=0.005)
    process_recording(path, settings, memory_bytes=3 * frames[0].nbytes * 4)
    in_memory = process_frames(frames, settings, Calibrations(dark, camera, beta))
    assert in_memory.settings.model == "inverse_tau"
    assert in_memory.settings.beta == beta.beta
    with open_recording(path) as rec:
        np.testing.assert_array_equal(in_memory.contrast, rec.product("contrast")[...])
        np.testing.assert_array_equal(in_memory.perfusion, rec.product("perfusion")[...])
        assert in_memory.parameters() == rec.product("perfusion").info.parameters
    with pytest.raises(ValueError, match="another region of interest"):
        process_frames(frames[:, :10], settings, Calibrations(dark=dark))
    with pytest.raises(ValueError, match="camera-noise correction is not defined"):
        process_frames(
            frames,
            ProcessingSettings(mode="spatiotemporal", window=3, frames_window=4),
            Calibrations(camera=camera),
        )


@pytest.mark.parametrize(
    ("n_frames", "per_chunk", "workers"), [(200, 3, 2), (40, 5, 3), (8, 4, 16)]
)
def test_balanced_chunks_cover_every_map_in_a_multiple_of_the_workers(
    n_frames: int, per_chunk: int, workers: int
) -> None:
    from lsci.processing.chunks import balance, plan_chunks

    settings = ProcessingSettings(average=2)
    planned = plan_chunks(n_frames, settings, maps_per_chunk=per_chunk)
    chunks = balance(planned, settings, workers)
    sizes = [c.stop_map - c.first_map for c in chunks]
    assert chunks[0].first_map == 0
    assert chunks[-1].stop_map == planned[-1].stop_map
    assert all(a.stop_map == b.first_map for a, b in itertools.pairwise(chunks))
    assert max(sizes) <= per_chunk
    assert max(sizes) - min(sizes) <= 1
    assert len(chunks) % workers == 0 or len(chunks) == planned[-1].stop_map
    for c in chunks:
        assert (c.frame_start, c.frame_stop) == settings.frames_for(c.first_map, c.stop_map)


@pytest.mark.parametrize(("frames_window", "step"), [(25, 25), (25, 5), (25, 1), (10, 3)])
def test_chunks_read_no_more_old_frames_than_new_ones(frames_window: int, step: int) -> None:
    from lsci.processing.chunks import maps_per_chunk_for

    settings = ProcessingSettings(mode="temporal", frames_window=frames_window, step=step)
    budget = 16 << 20
    per_chunk = maps_per_chunk_for((1024, 1280), settings, memory_bytes=budget, bytes_per_pixel=1)
    chunks = plan_chunks(2000, settings, maps_per_chunk=per_chunk)
    read = sum(c.frame_stop - c.frame_start for c in chunks)
    # Each frame is read at most twice (once more as the overlap of the next chunk).
    assert read <= 2 * 2000
    if frames_window == step:  # nothing overlaps: the budget alone decides
        frame_and_maps = 1024 * 1280 * (frames_window + 2 * 4)
        assert per_chunk == max(1, budget // frame_and_maps)


@pytest.mark.parametrize(
    ("frame_shape", "average", "budget", "expected"),
    [
        ((1024, 1280), 1, 16 << 20, 4),  # one map alone exceeds the budget
        ((1024, 1280), 8, 16 << 20, 1),
        ((2048, 2048), 1, 16 << 20, 1),
        ((64, 64), 1, 16 << 20, 1024),
        ((1024, 1280), 1, 1, 1),  # a tiny budget is kept
    ],
)
def test_a_chunk_reads_enough_pixels_to_be_worth_its_cost(
    frame_shape: tuple[int, int], average: int, budget: int, expected: int
) -> None:
    """Per-frame maps of camera-sized frames get several frames per chunk even when one map
    alone exceeds the budget, so the cost of each chunk stays small against its pixels."""
    from lsci.processing.chunks import MIN_CHUNK_PIXELS, maps_per_chunk_for

    settings = ProcessingSettings(average=average)
    per_chunk = maps_per_chunk_for(frame_shape, settings, memory_bytes=budget, bytes_per_pixel=1)
    assert per_chunk == expected
    pixels = per_chunk * average * frame_shape[0] * frame_shape[1]
    assert pixels >= min(MIN_CHUNK_PIXELS, budget // 4)


def test_chunks_are_computed_while_a_write_is_held_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The computation does not wait for the disk: while the first write is held up, later
    chunks are read and computed, as far as the chunk memory allows."""
    import threading

    import lsci.processing.recordings as recordings
    from lsci.recording.products import PartWriter

    path = tmp_path / "run.h5"
    write_recording(path, n_frames=40)
    fourth_chunk_computed = threading.Event()
    compute = recordings._one_thread

    def watched(frames: np.ndarray, chunk: recordings.Chunk, *args: object, **kw: object):  # type: ignore[no-untyped-def]
        result = compute(frames, chunk, *args, **kw)  # type: ignore[arg-type]
        if chunk.index == 3:
            fourth_chunk_computed.set()
        return result

    write = PartWriter.write
    waited: list[bool] = []

    def held_up(self: PartWriter, name: str, first: int, data: np.ndarray) -> None:
        if not waited:  # the first write returns once the fourth chunk is computed
            waited.append(fourth_chunk_computed.wait(timeout=20))
        write(self, name, first, data)

    monkeypatch.setattr(recordings, "_one_thread", watched)
    monkeypatch.setattr(PartWriter, "write", held_up)
    # One map per chunk: 20 chunks.
    result = process_recording(path, ProcessingSettings(average=2), memory_bytes=1)
    assert waited == [True], "no later chunk was computed while the first write was held up"
    assert result.maps == 20


def test_a_failing_chunk_stops_the_run_while_writes_are_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk that fails while slow writes hold most of the chunk memory: the run ends with
    that error and publishes nothing."""
    import threading
    import time

    import lsci.processing.recordings as recordings
    from lsci.recording.products import PartWriter

    path = tmp_path / "run.h5"
    write_recording(path, n_frames=400)
    write = PartWriter.write

    def slow_write(self: PartWriter, name: str, first: int, data: np.ndarray) -> None:
        time.sleep(0.05)  # a disk much slower than the computation: writes queue up
        write(self, name, first, data)

    compute = recordings._one_thread

    def failing(frames: np.ndarray, chunk: recordings.Chunk, *args: object, **kw: object):  # type: ignore[no-untyped-def]
        if chunk.index == 20:
            raise MemoryError("chunk 20")
        return compute(frames, chunk, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(PartWriter, "write", slow_write)
    monkeypatch.setattr(recordings, "_one_thread", failing)
    # One frame's memory per chunk: 200 chunks, far more than the pool holds.
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            process_recording(path, ProcessingSettings(average=2), memory_bytes=1)
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "the run did not end after a chunk failed"
    assert [str(exc) for exc in outcome] == ["chunk 20"]
    assert find_product_sets(path) == []


def test_stored_maps_count_every_value_that_is_not_finite() -> None:
    from lsci.processing.chunks import Chunk, ChunkResult
    from lsci.processing.recordings import stored_maps

    rng = np.random.default_rng(4)
    contrast = rng.random((3, 40, 50), dtype=np.float32)
    perfusion = rng.random((3, 40, 50), dtype=np.float32) * 1e5
    flat = perfusion.reshape(-1)
    flat[rng.choice(flat.size, 300, replace=False)] = np.nan
    flat[rng.choice(flat.size, 200, replace=False)] = np.inf
    flat[rng.choice(flat.size, 100, replace=False)] = -np.inf
    result = ChunkResult(Chunk(0, 0, 3, 0, 3), contrast, perfusion)
    expected = int(np.count_nonzero(~np.isfinite(perfusion)))
    assert 0 < expected <= 600
    for dtype in ("float32", "float16"):
        maps, check = stored_maps(result, ("contrast", "perfusion"), np.dtype(dtype))
        assert check.values == {"contrast": contrast.size, "perfusion": perfusion.size}
        assert check.not_finite == {"contrast": 0, "perfusion": expected}
        assert maps["perfusion"].dtype == np.dtype(dtype)
    # float16 rounds finite values from 65520 up (65504 + half its last step) to inf, and says
    # how many.
    overflowed = int(np.count_nonzero(np.isfinite(perfusion) & (perfusion >= 65520)))
    assert check.overflowed["perfusion"] == overflowed > 0
