"""The whole chain against the simulator's ground truth.

Raw frames → dark subtraction and camera-noise correction → contrast → β calibration on a
reference target → τc by the visibility equation, compared with the τc the frames were simulated
with; and a before/after recording whose ischemic patch recovers by a known factor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lsci.analysis.compare import compare_before_after
from lsci.analysis.time_windows import event_windows, recording_window_mean
from lsci.calibration import BetaCalibration, CameraNoise, DarkFrame, calibrate_beta
from lsci.calibration.noise import fundamental_k2
from lsci.core.contrast import spatial_contrast
from lsci.core.perfusion import correlation_time, inverse_correlation_time
from lsci.recording import AcquisitionMetadata, RecordingWriter, open_recording
from lsci.sim.speckle import SpeckleSimulator, skin_reflectance_map

EXPOSURE_S = 1e-3
X_VALUES = (0.5, 1.0, 2.0, 5.0, 10.0, 25.0)  # x = T/τc
CAMERA = CameraNoise(gain_adu_per_e=1.0, read_noise_e=2.0)
OFFSET_ADU = 100.0
CAMERA_SETTINGS = {
    "exposure_s": EXPOSURE_S,
    "mean_signal_e": 1000.0,
    "gain_adu_per_e": CAMERA.gain_adu_per_e,
    "read_noise_e": CAMERA.read_noise_e,
    "dark_offset_adu": OFFSET_ADU,
    "bit_depth": 16,
}


def dark_frame(shape: tuple[int, int]) -> DarkFrame:
    """The simulator's dark level: offset, read variance (G σ)² and quantisation."""
    variance = CAMERA.read_noise_adu**2 + 1 / 12
    return DarkFrame(
        mean=np.full(shape, OFFSET_ADU), variance=np.full(shape, variance), n_frames=100
    )


def tau_strips(block_rows: int, block_cols: int) -> np.ndarray:
    """A τc map of side-by-side blocks, one per x value."""
    taus = np.repeat(EXPOSURE_S / np.array(X_VALUES), block_cols)
    return np.tile(taus, (block_rows, 1))


def block_means(k2: np.ndarray, block_cols: int, inset: int) -> list[float]:
    """Mean K² of each block, leaving out ``inset`` pixels at its borders."""
    return [
        float(k2[inset:-inset, i * block_cols + inset : (i + 1) * block_cols - inset].mean())
        for i in range(len(X_VALUES))
    ]


def test_temporal_chain_recovers_tau_c() -> None:
    rows, cols, window = 48, 32, 50
    tau = tau_strips(rows, cols)
    # Frames far apart (100 exposures) are independent realisations, as temporal contrast
    # assumes; with no dead time consecutive frames of slow pixels would be correlated.
    frames = SpeckleSimulator(
        tau.shape, tau_c_s=tau, frame_interval_s=100 * EXPOSURE_S, grain_px=2.0, seed=11,
        **CAMERA_SETTINGS,
    ).frames(4 * window)  # fmt: skip
    # Calibration target for temporal contrast: frozen during the exposure (x = 1e-4), fully
    # decorrelated between frames.
    target = SpeckleSimulator(
        tau.shape, tau_c_s=10.0, frame_interval_s=1e3, grain_px=2.0, seed=12, **CAMERA_SETTINGS
    ).frames(4 * window)
    dark = dark_frame(tau.shape)
    calibration = calibrate_beta(target, mode="temporal", window=window, dark=dark, camera=CAMERA)
    beta = calibration.beta_for(mode="temporal", window=window)
    k2, _ = fundamental_k2(frames, CAMERA, dark=dark, mode="temporal", window=window)
    k2_blocks = block_means(k2.astype(np.float64).mean(axis=0), cols, inset=2)
    tau_c = correlation_time(np.sqrt(k2_blocks), EXPOSURE_S, beta=beta).astype(np.float64)
    expected = EXPOSURE_S / np.array(X_VALUES)
    np.testing.assert_allclose(tau_c, expected, rtol=0.10)
    # Independent float64 check of the inversion: the visibility equation at the recovered x
    # gives back the measured K²/β.
    x = EXPOSURE_S / tau_c
    visibility = (np.exp(-2 * x) - 1 + 2 * x) / (2 * x**2)
    np.testing.assert_allclose(visibility, np.array(k2_blocks) / beta, rtol=1e-4)


@pytest.mark.parametrize("grain_px", [2.5, 4.0])
def test_spatial_chain_recovers_tau_c(grain_px: float) -> None:
    side, window = 48, 7
    tau = tau_strips(side, side)
    frames = SpeckleSimulator(
        tau.shape, tau_c_s=tau, frame_interval_s=100 * EXPOSURE_S, grain_px=grain_px, seed=21,
        **CAMERA_SETTINGS,
    ).frames(40)  # fmt: skip
    # A static target (teflon block): independent patches of static speckle.
    target = np.concatenate([
        SpeckleSimulator((128, 128), tau_c_s=np.inf, grain_px=grain_px, seed=30 + s,
                         **CAMERA_SETTINGS).frames(1)
        for s in range(4)
    ])  # fmt: skip
    calibration = calibrate_beta(target, window=window, dark=dark_frame((128, 128)), camera=CAMERA)
    beta = calibration.beta_for(mode="spatial", window=window)
    k2, _ = fundamental_k2(frames, CAMERA, dark=dark_frame(tau.shape), window=window)
    k2_blocks = block_means(k2.astype(np.float64).mean(axis=0), side, inset=window - 1)
    tau_c = correlation_time(np.sqrt(k2_blocks), EXPOSURE_S, beta=beta).astype(np.float64)
    np.testing.assert_allclose(tau_c, EXPOSURE_S / np.array(X_VALUES), rtol=0.15)


def test_before_after_recording_recovers_known_factor(tmp_path: Path) -> None:
    """Ischemic patch: flow 1/4 of normal before needling, 1/2 after (a factor 2 recovery).

    The camera moves by (−3, +2) pixels during needling; the comparison registers the
    mean-intensity images and finds the factor in the ROI statistics.
    """
    exposure_s, baseline_tau_s, window = 5e-3, 1e-3, 7
    scene_shape, crop_shape = (80, 112), (64, 96)
    ischemic = np.zeros(scene_shape, bool)
    ischemic[30:55, 45:75] = True
    tau = np.where(ischemic, 4 * baseline_tau_s, baseline_tau_s)
    # Fine skin texture and a vessel: the structure that registers the mean-intensity images
    # (smooth, featureless images are refused rather than registered wrongly).
    illumination = skin_reflectance_map(scene_shape, texture=0.5, texture_px=3.0, rng=5)
    camera = SpeckleSimulator(
        scene_shape, tau_c_s=tau, exposure_s=exposure_s, frame_interval_s=50e-3, grain_px=3.0,
        illumination=illumination, mean_signal_e=1500.0, gain_adu_per_e=1.0, read_noise_e=2.0,
        dark_offset_adu=OFFSET_ADU, bit_depth=16, seed=9,
    )  # fmt: skip
    before = camera.frames(30)[:, 8:72, 8:104]
    camera.set_tau_c(2 * baseline_tau_s, where=ischemic)
    after = camera.frames(30)[:, 11:75, 6:102]  # scene point (r, c) now at (r - 3, c + 2)

    path = tmp_path / "needling.h5"
    start_ns = 1_700_000_000_000_000_000
    stamps = start_ns + np.arange(60, dtype=np.int64) * 50_000_000
    metadata = AcquisitionMetadata(exposure_s=exposure_s, frame_rate_hz=20.0, bit_depth=16)
    with RecordingWriter(path, metadata, frame_shape=crop_shape, dtype=np.uint16) as writer:
        writer.append_many(before, frame_ids=np.arange(30), host_timestamps_ns=stamps[:30])
        writer.add_event("needling", host_time_ns=int(stamps[29] + 25_000_000))
        writer.append_many(after, frame_ids=np.arange(30, 60), host_timestamps_ns=stamps[30:])

    # β of this optics and window from a static target.
    target = SpeckleSimulator(
        (128, 128), tau_c_s=np.inf, exposure_s=exposure_s, grain_px=3.0, mean_signal_e=1500.0,
        dark_offset_adu=OFFSET_ADU, bit_depth=16, seed=3,
    ).frames(2)  # fmt: skip
    calibration: BetaCalibration = calibrate_beta(
        target, window=window, dark=dark_frame((128, 128))
    )
    beta = calibration.beta_for(mode="spatial", window=window)
    dark = dark_frame(crop_shape)

    def perfusion(frames: np.ndarray) -> np.ndarray:
        k = spatial_contrast(frames.astype(np.float32) - dark.mean, window)
        return inverse_correlation_time(k, exposure_s, beta=beta)

    def intensity(frames: np.ndarray) -> np.ndarray:
        return frames.astype(np.float32)

    with open_recording(path) as rec:
        before_window, after_window = event_windows(
            rec.events, "needling", before_s=1.5, after_s=1.5
        )
        maps = [recording_window_mean(rec, w, perfusion, batch_frames=10)
                for w in (before_window, after_window)]  # fmt: skip
        means = [recording_window_mean(rec, w, intensity) for w in (before_window, after_window)]

    # ROIs in the before image: the ischemic patch (inset from its soft edge) and healthy skin.
    patch = [(26.0, 41.0), (26.0, 63.0), (43.0, 63.0), (43.0, 41.0)]
    healthy = [(2.0, 4.0), (2.0, 30.0), (18.0, 30.0), (18.0, 4.0)]
    result = compare_before_after(
        maps[0], maps[1], {"ischemic": patch, "healthy": healthy}, reference="healthy",
        before_intensity=means[0], after_intensity=means[1], registration="translation",
    )  # fmt: skip
    assert result.registration is not None
    # after[r, c] shows what before[r + 3, c - 2] showed: move it by (+3, -2).
    np.testing.assert_allclose(result.registration.shift_px, [3.0, -2.0], atol=0.5)
    ischemic_row = result.roi("ischemic")
    # True 1/τc ratio: 2 in the patch, 1 in healthy skin.
    assert ischemic_row.ratio == pytest.approx(2.0, rel=0.10)
    assert ischemic_row.relative_ratio == pytest.approx(2.0, rel=0.10)
    assert result.roi("healthy").ratio == pytest.approx(1.0, rel=0.10)
