"""Tests of lsci.sim.speckle against speckle physics computed independently in plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j1

from lsci.sim.needling import HEALTHY, ISCHEMIC, NeedlingScene, simulate_needling
from lsci.sim.speckle import (
    SpeckleSimulator,
    skin_flow_map,
    skin_reflectance_map,
    speckle_pattern,
)


def visibility_k2(x: np.ndarray | float) -> np.ndarray:
    """K²/β of Lorentzian dynamics (Bandyopadhyay et al. 2005; Boas & Dunn 2010)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.exp(-2.0 * x) - 1.0 + 2.0 * x) / (2.0 * x**2)


def mesi_k2(x: float, rho: float) -> float:
    """K² of the multi-exposure model with β = 1, ν = 0 (Parthasarathy et al. 2008)."""
    return float(
        rho**2 * visibility_k2(x)
        + 4.0 * rho * (1.0 - rho) * (np.exp(-x) - 1.0 + x) / x**2
        + (1.0 - rho) ** 2
    )


def temporal_k2(stack: np.ndarray) -> np.ndarray:
    """Per-pixel temporal K² = var/mean² over the first axis (N in the denominator)."""
    stack = stack.astype(np.float64)
    return stack.var(axis=0) / stack.mean(axis=0) ** 2


def independent_frames(tau_c_s: object, exposure_s: float, longest_tau_s: float, **kwargs):
    """A noise-free simulator whose frames are 30 τc apart, hence independent."""
    return SpeckleSimulator(
        kwargs.pop("shape", (64, 64)),
        tau_c_s=tau_c_s,
        exposure_s=exposure_s,
        frame_interval_s=exposure_s + 30.0 * longest_tau_s,
        noise=False,
        **kwargs,
    )


# -- dynamics --------------------------------------------------------------------------------


def test_temporal_contrast_follows_visibility_equation() -> None:
    # Six bands of 16 columns with x = T/τc from 0.5 to 25: τc is exact per pixel.
    x_values = np.array([0.5, 1.0, 2.0, 5.0, 10.0, 25.0])
    exposure = 5e-3
    tau = np.repeat(exposure / x_values, 16)[np.newaxis, :].repeat(48, axis=0)
    sim = independent_frames(tau, exposure, tau.max(), shape=tau.shape, grain_px=3.0, seed=11)
    k2 = temporal_k2(sim.intensities(300))
    measured = k2.reshape(48, 6, 16).mean(axis=(0, 2))
    np.testing.assert_allclose(measured, visibility_k2(x_values), rtol=0.05)


@pytest.mark.parametrize("x", [0.5, 25.0])
def test_temporal_contrast_uniform_map(x: float) -> None:
    tau = 1e-3
    sim = independent_frames(tau, x * tau, tau, shape=(48, 48), seed=3)
    measured = temporal_k2(sim.intensities(300)).mean()
    assert measured == pytest.approx(float(visibility_k2(x)), rel=0.05)


@pytest.mark.parametrize(("x", "interval_over_exposure"), [(1.0, 1.0), (0.5, 2.0)])
def test_consecutive_frames_correlate_like_a_camera(
    x: float, interval_over_exposure: float
) -> None:
    # Cov(S_n, S_n+1)/Var(S) for exposure-averaged intensities with |g1|² = e^(−2τ/τc), frame
    # interval F: (cosh 2x − 1)/(2x²) · e^(−2F/τc) / K²(x).
    tau = 1e-3
    exposure = x * tau
    interval = interval_over_exposure * exposure
    sim = SpeckleSimulator(
        (48, 48), tau_c_s=tau, exposure_s=exposure, frame_interval_s=interval, noise=False, seed=5
    )
    stack = sim.intensities(500)
    fluct = stack - stack.mean(axis=0)
    measured = (fluct[1:] * fluct[:-1]).mean() / (fluct**2).mean()
    expected = (np.cosh(2 * x) - 1) / (2 * x**2) * np.exp(-2 * interval / tau) / visibility_k2(x)
    assert measured == pytest.approx(float(expected), abs=0.03)


def test_set_tau_c_changes_only_the_masked_region() -> None:
    exposure = 5e-3
    background, ischemic = exposure / 5.0, exposure / 0.5
    patch = np.zeros((64, 64), dtype=bool)
    patch[16:48, 16:48] = True
    tau = np.where(patch, ischemic, background)

    def run(recover: bool) -> np.ndarray:
        sim = independent_frames(tau, exposure, ischemic, seed=8)
        before = sim.intensities(200)
        if recover:
            sim.set_tau_c(background, where=patch)
            assert sim.tau_c_s.max() == pytest.approx(background)
        return np.concatenate([before, sim.intensities(300)])

    steady, recovered = run(False), run(True)
    # Pixels are independent processes: outside the patch the frames are bit for bit the same.
    np.testing.assert_array_equal(steady[:, ~patch], recovered[:, ~patch])
    np.testing.assert_array_equal(steady[:200], recovered[:200])
    inner = patch.copy()
    inner[:20, :] = inner[44:, :] = False
    after = temporal_k2(recovered[200:])[inner].mean()
    still = temporal_k2(steady[200:])[inner].mean()
    assert after == pytest.approx(float(visibility_k2(5.0)), rel=0.08)
    assert still == pytest.approx(float(visibility_k2(0.5)), rel=0.08)


def test_set_exposure_changes_contrast_and_substeps() -> None:
    tau = 1e-3
    sim = independent_frames(tau, 1e-3, tau, seed=4)
    sim.set_exposure(20e-3, frame_interval_s=60e-3)
    assert sim.exposure_s == 20e-3
    assert sim.frame_interval_s == 60e-3
    assert sim.n_substeps >= 20
    measured = temporal_k2(sim.intensities(300)).mean()
    assert measured == pytest.approx(float(visibility_k2(20.0)), rel=0.05)
    # A longer exposure than the interval widens the interval to the exposure.
    sim.set_exposure(80e-3)
    assert sim.frame_interval_s == 80e-3


def test_clock_advances_by_frame_interval() -> None:
    sim = SpeckleSimulator((8, 8), tau_c_s=1e-3, exposure_s=2e-3, frame_interval_s=5e-3, seed=0)
    sim.frames(3)
    assert sim.frame_index == 3
    assert sim.time_s == pytest.approx(15e-3)


# -- static speckle ---------------------------------------------------------------------------


@pytest.mark.parametrize("grain_px", [1.5, 3.0, 8.0])
def test_grain_size_is_the_airy_first_zero_diameter(grain_px: float) -> None:
    image = speckle_pattern((512, 512), grain_px, rng=2)
    fluct = image - image.mean()
    # The field is periodic: the circular autocovariance is unbiased.
    spectrum = np.abs(np.fft.fft2(fluct)) ** 2
    acov = np.fft.ifft2(spectrum).real / fluct.size
    lags = np.arange(int(np.ceil(grain_px)) + 2)
    measured = 0.5 * (acov[0, lags] + acov[lags, 0]) / acov[0, 0]
    u = np.where(lags == 0, 1.0, 2.0 * 3.8317059702 * lags / grain_px)
    airy = np.where(lags == 0, 1.0, (2.0 * j1(u) / u) ** 2)
    np.testing.assert_allclose(measured, airy, atol=0.03)
    if grain_px >= 3.0:
        # Full width between first zeros = grain_px.
        half_width = np.argmax(measured < 0.02)
        assert abs(half_width - grain_px / 2.0) <= 0.5


def test_moving_speckle_keeps_its_grain() -> None:
    # For uniform τc the exposure-averaged intensity has the spatial autocovariance
    # K²(x)·|c(r)|²: its normalised shape is the static Airy² of the pupil.
    grain = 4.0
    sim = independent_frames(1e-3, 5e-3, 1e-3, shape=(128, 128), grain_px=grain, seed=17)
    fluct = sim.intensities(30)
    fluct -= fluct.mean(axis=(1, 2), keepdims=True)
    acov = np.fft.ifft2(np.abs(np.fft.fft2(fluct)) ** 2).real.mean(axis=0)
    lags = np.arange(1, 5)
    measured = 0.5 * (acov[0, lags] + acov[lags, 0]) / acov[0, 0]
    u = 2.0 * 3.8317059702 * lags / grain
    np.testing.assert_allclose(measured, (2.0 * j1(u) / u) ** 2, atol=0.03)


def test_static_speckle_is_fully_developed() -> None:
    image = speckle_pattern((512, 512), 4.0, rng=6)
    blocks = image.reshape(8, 64, 8, 64).transpose(0, 2, 1, 3).reshape(64, -1)
    k = blocks.std(axis=1) / blocks.mean(axis=1)
    assert k.mean() == pytest.approx(1.0, abs=0.05)
    assert image.min() >= 0.0
    assert image.mean() == pytest.approx(1.0, abs=0.05)


def test_infinite_tau_is_frozen_speckle() -> None:
    sim = SpeckleSimulator((128, 128), tau_c_s=np.inf, exposure_s=1e-3, noise=False, seed=9)
    first, second = sim.intensities(2)
    np.testing.assert_array_equal(first, second)
    assert first.std() / first.mean() == pytest.approx(1.0, abs=0.08)


def test_static_fraction_follows_parthasarathy_model() -> None:
    # One multi-exposure stream: the exposure changes between the two series.
    rho = 0.6
    tau = 1e-3
    sim = independent_frames(tau, tau, tau, shape=(128, 128), static_fraction=1.0 - rho, seed=21)
    for x in (1.0, 10.0):
        sim.set_exposure(x * tau, frame_interval_s=x * tau + 30.0 * tau)
        stack = sim.intensities(100)
        # Ensemble contrast over pixels and frames: the static speckle contributes (1 − ρ)².
        k2 = stack.var() / stack.mean() ** 2
        assert np.sqrt(k2) == pytest.approx(np.sqrt(mesi_k2(x, rho)), rel=0.05)
        # The model is quadratic in ρ: solve it back.
        f2 = float(visibility_k2(x))
        f1 = 2.0 * (np.exp(-x) - 1.0 + x) / x**2
        roots = np.roots([f2 - 2.0 * f1 + 1.0, 2.0 * f1 - 2.0, 1.0 - k2]).real
        estimate = roots[np.argmin(np.abs(roots - 0.5))]
        assert estimate == pytest.approx(rho, abs=0.06)


# -- camera -----------------------------------------------------------------------------------


def test_mean_counts_match_signal_gain_and_offset() -> None:
    illumination = np.ones((64, 64))
    illumination[:, 32:] = 0.5
    sim = SpeckleSimulator(
        (64, 64),
        tau_c_s=1e-4,
        exposure_s=5e-3,
        frame_interval_s=10e-3,
        illumination=illumination,
        mean_signal_e=1000.0,
        gain_adu_per_e=0.8,
        read_noise_e=3.0,
        dark_offset_adu=64.0,
        seed=1,
    )
    mean = sim.frames(100).astype(np.float64).mean(axis=0)
    assert mean[:, :32].mean() == pytest.approx(64.0 + 0.8 * 1000.0, rel=0.01)
    assert mean[:, 32:].mean() == pytest.approx(64.0 + 0.8 * 500.0, rel=0.01)


def test_shot_and_read_noise_variance() -> None:
    # Frozen speckle: the temporal variance is gain²·(λ + σ_read²) + 1/12 (rounding).
    kwargs = {"tau_c_s": np.inf, "exposure_s": 1e-3, "mean_signal_e": 400.0, "seed": 12}
    gain, read = 1.5, 4.0
    clean = SpeckleSimulator((32, 32), noise=False, **kwargs).next_intensity()
    sim = SpeckleSimulator((32, 32), gain_adu_per_e=gain, read_noise_e=read, bit_depth=16, **kwargs)
    counts = sim.frames(300).astype(np.float64)
    lam = 400.0 * clean
    expected = gain**2 * (lam + read**2) + 1.0 / 12.0
    ratio = counts.var(axis=0, ddof=1) / expected
    assert ratio.mean() == pytest.approx(1.0, abs=0.03)


def test_noise_free_frames_are_rounded_expected_counts() -> None:
    kwargs = {"tau_c_s": 2e-3, "exposure_s": 1e-3, "seed": 7, "noise": False}
    intensity = SpeckleSimulator((32, 32), **kwargs).next_intensity()
    frame = SpeckleSimulator(
        (32, 32), mean_signal_e=300.0, gain_adu_per_e=2.0, dark_offset_adu=10.0, **kwargs
    ).next_frame()
    expected = np.clip(np.rint(2.0 * 300.0 * intensity + 10.0), 0, 4095)
    np.testing.assert_array_equal(frame, expected)


@pytest.mark.parametrize(
    ("bit_depth", "dtype"),
    [(8, np.uint8), (10, np.uint16), (12, np.uint16), (16, np.uint16)],
)
def test_bit_depth_dtype_and_saturation(bit_depth: int, dtype: type) -> None:
    full_scale = 2**bit_depth - 1
    sim = SpeckleSimulator(
        (64, 64),
        tau_c_s=np.inf,
        exposure_s=1e-3,
        bit_depth=bit_depth,
        mean_signal_e=float(full_scale),
        gain_adu_per_e=1.0,
        dark_offset_adu=0.0,
        seed=0,
    )
    frame = sim.next_frame()
    assert frame.dtype == dtype
    assert sim.dtype == dtype
    assert int(frame.max()) == full_scale
    # Mean signal at full scale: the speckle brighter than its mean, a fraction 1/e, clips.
    saturated = np.mean(frame == full_scale)
    assert 0.3 < saturated < 0.45
    out = np.empty((64, 64), dtype=dtype)
    assert sim.next_frame(out=out) is out


def test_same_seed_same_frames() -> None:
    def make(seed: object) -> SpeckleSimulator:
        return SpeckleSimulator((32, 32), tau_c_s=1e-3, exposure_s=5e-3, seed=seed)

    np.testing.assert_array_equal(make(42).frames(5), make(42).frames(5))
    np.testing.assert_array_equal(make(np.random.default_rng(42)).frames(5), make(42).frames(5))
    assert not np.array_equal(make(42).frames(5), make(43).frames(5))
    np.testing.assert_array_equal(
        speckle_pattern((16, 16), 3.0, rng=1), speckle_pattern((16, 16), 3.0, rng=1)
    )


# -- validation -------------------------------------------------------------------------------

GOOD = {"tau_c_s": 1e-3, "exposure_s": 5e-3}


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"exposure_s": -1e-3}, "exposure_s"),
        ({"exposure_s": 0.0}, "exposure_s"),
        ({"tau_c_s": 0.0}, "tau_c_s"),
        ({"tau_c_s": -1e-3}, "tau_c_s"),
        ({"tau_c_s": np.nan}, "tau_c_s"),
        ({"tau_c_s": np.full((8, 8), 1e-3) * np.eye(8)}, "tau_c_s"),
        ({"tau_c_s": np.ones((4, 4))}, "tau_c_s"),
        ({"bit_depth": 11}, "bit_depth"),
        ({"grain_px": 0.5}, "grain_px"),
        ({"frame_interval_s": 1e-3}, "frame_interval_s"),
        ({"static_fraction": 1.5}, "static_fraction"),
        ({"illumination": -1.0}, "illumination"),
        ({"mean_signal_e": -1.0}, "mean_signal_e"),
        ({"gain_adu_per_e": 0.0}, "gain_adu_per_e"),
        ({"read_noise_e": -1.0}, "read_noise_e"),
        ({"dark_offset_adu": np.inf}, "dark_offset_adu"),
    ],
)
def test_bad_parameters_name_themselves(changes: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SpeckleSimulator((8, 8), **{**GOOD, **changes})  # type: ignore[arg-type]


def test_bad_stream_calls() -> None:
    sim = SpeckleSimulator((8, 8), **GOOD)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exposure_s"):
        sim.set_exposure(-1.0)
    with pytest.raises(ValueError, match="frame_interval_s"):
        sim.set_exposure(5e-3, frame_interval_s=1e-3)
    with pytest.raises(ValueError, match="tau_c_s"):
        sim.set_tau_c(0.0)
    with pytest.raises(ValueError, match="where"):
        sim.set_tau_c(1e-3, where=np.ones((8, 8)))
    with pytest.raises(TypeError, match="out"):
        sim.next_frame(out=np.empty((8, 8), dtype=np.float32))
    with pytest.raises(TypeError, match="out"):
        sim.next_intensity(out=np.empty((8, 8), dtype=np.uint16))
    with pytest.raises(ValueError, match="n must"):
        sim.frames(-1)
    with pytest.raises(ValueError, match="shape"):
        SpeckleSimulator((8,), **GOOD)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grain_px"):
        speckle_pattern((8, 8), 0.9)


# -- scenes -----------------------------------------------------------------------------------


def test_skin_flow_map_regions() -> None:
    tau = skin_flow_map(
        (128, 128),
        baseline_tau_c_s=1e-3,
        ischemic_center=(80.0, 64.0),
        ischemic_radius_px=20.0,
        ischemic_factor=4.0,
        vessel_factor=0.25,
        texture=0.0,
    )
    assert tau.shape == (128, 128)
    assert tau.dtype == np.float64
    assert tau[80, 64] == pytest.approx(4e-3)
    assert tau[125, 2] == pytest.approx(1e-3, rel=1e-6)
    # The vessel axis crosses column 0 at row 0.3·128 (centre line y = 0.3 H + 0.08 H sin).
    assert tau[38, 0] == pytest.approx(0.25e-3, rel=0.05)
    # Relative flow ∝ 1/τc: textured maps are positive, seeded and reproducible.
    plain = skin_flow_map((64, 64), ischemic_radius_px=10.0, edge_px=0.0, vessel=False, texture=0.0)
    assert plain[32, 32] == pytest.approx(5e-3)
    assert plain[32, 43] == pytest.approx(1e-3)
    textured = skin_flow_map((64, 64), rng=3)
    np.testing.assert_array_equal(textured, skin_flow_map((64, 64), rng=3))
    assert (textured > 0).all()
    with pytest.raises(ValueError, match="ischemic_factor"):
        skin_flow_map((64, 64), ischemic_factor=0.0)
    with pytest.raises(ValueError, match="baseline_tau_c_s"):
        skin_flow_map((64, 64), baseline_tau_c_s=-1.0)


def test_skin_reflectance_map_is_photo_like() -> None:
    illumination = skin_reflectance_map((96, 128), rng=1)
    assert illumination.shape == (96, 128)
    assert illumination.mean() == pytest.approx(1.0)
    assert illumination.min() > 0.0
    # Brighter in the centre of the laser spot than in the corners.
    assert illumination[40:56, 56:72].mean() > illumination[:8, :8].mean()
    with pytest.raises(ValueError, match="texture"):
        skin_reflectance_map((32, 32), texture=1.5)
    with pytest.raises(ValueError, match="vessel_contrast"):
        skin_reflectance_map((32, 32), vessel_contrast=-0.1)


def test_demo_scene_contrast_is_lower_where_flow_is_faster() -> None:
    shape = (96, 96)
    tau = skin_flow_map(shape, baseline_tau_c_s=1e-3, ischemic_factor=8.0, vessel=False, rng=0)
    sim = SpeckleSimulator(
        shape,
        tau_c_s=tau,
        exposure_s=5e-3,
        illumination=skin_reflectance_map(shape, rng=0),
        noise=False,
        seed=0,
    )
    k2 = temporal_k2(sim.intensities(60))
    assert k2[40:56, 40:56].mean() > 2.0 * k2[:16, :16].mean()


def test_sampled_average_matches_direct_sum() -> None:
    from lsci.sim.speckle import _sampled_average

    decay = np.array([0.0, 1e-9, 1e-3, 0.3, 2.0, 40.0])
    for n in (1, 8, 57):
        lags = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
        direct = np.array([np.exp(-d * lags).mean() for d in decay])
        np.testing.assert_allclose(_sampled_average(decay, n), direct, rtol=1e-11)


def test_float32_intensity_and_static_pixels() -> None:
    tau = np.full((32, 32), 1e-3)
    tau[:, :16] = np.inf
    sim = SpeckleSimulator((32, 32), tau_c_s=tau, exposure_s=5e-3, noise=False, seed=2)
    out = np.empty((32, 32), dtype=np.float32)
    first = sim.next_intensity(out=out).copy()
    assert sim.next_intensity(out=out) is out
    assert out.dtype == np.float32
    # τc = inf: the left half is frozen; the right half moves.
    np.testing.assert_array_equal(first[:, :16], out[:, :16])
    assert not np.allclose(first[:, 16:], out[:, 16:])


def test_frames_are_not_translated_copies() -> None:
    # Slow dynamics and a long dead time: each frame is a fresh speckle pattern, and none may be
    # a circularly shifted copy of another (the maximal cross-correlation stays far below 1).
    sim = independent_frames(1.0, 0.1, 1.0, shape=(64, 64), seed=13)
    stack = sim.intensities(20)
    fluct = stack - stack.mean(axis=(1, 2), keepdims=True)
    fluct /= np.sqrt((fluct**2).mean(axis=(1, 2), keepdims=True))
    spectra = np.fft.fft2(fluct)
    peaks = [
        np.fft.ifft2(spectra[i] * np.conj(spectra[j])).real.max() / fluct[0].size
        for i in range(20)
        for j in range(i + 1, 20)
    ]
    assert max(peaks) < 0.6


def test_needling_scene_knows_its_truth() -> None:
    scene = NeedlingScene(shape=(96, 128), recovery_factor=3.0, needling_start_s=2.0,
                          needling_end_s=3.0)  # fmt: skip
    assert scene.recovery_s == 2.5
    assert scene.events == ((2.0, "needling start"), (3.0, "needling end"))
    assert scene.center_px == (47.5, 63.5)
    assert scene.radius_px == pytest.approx(96 / 5)
    regions = scene.regions()
    weight = scene.recovery_weight()
    assert weight.min() == 0.0
    assert weight.max() == 1.0
    # The ischemic region recovers as a whole; healthy skin does not change at all.
    assert regions[ISCHEMIC].any()
    assert (weight[regions[ISCHEMIC]] == 1.0).all()
    assert regions[HEALTHY].any()
    assert (weight[regions[HEALTHY]] == 0.0).all()
    before, after = scene.tau_c_at(2.49), scene.tau_c_at(2.5)
    np.testing.assert_array_equal(before, scene.tau_c_before())
    np.testing.assert_allclose(before / after, 3.0**weight, rtol=1e-12)
    np.testing.assert_array_equal(before[weight == 0], after[weight == 0])
    # Flow in the ischemic region is a fifth of healthy skin's before the needling.
    flow = 1.0 / before
    ratio = flow[regions[ISCHEMIC]].mean() / flow[regions[HEALTHY]].mean()
    assert ratio == pytest.approx(1 / 5, rel=0.2)
    assert scene.true_recovery(ISCHEMIC) == pytest.approx(3.0, rel=1e-12)
    assert scene.true_recovery(HEALTHY) == 1.0
    with pytest.raises(ValueError, match="recovery_factor"):
        NeedlingScene(recovery_factor=0.0)
    with pytest.raises(ValueError, match="needling_start_s"):
        NeedlingScene(needling_start_s=3.0, needling_end_s=2.0)


def test_needling_leaves_a_crescent_of_the_disk_occluded() -> None:
    # Defaults: the needled part's flow rises from 1/5 to 4/5 of healthy skin's, the rest of
    # the disk stays at 1/5: both far from the default threshold of half of healthy skin.
    scene = NeedlingScene(shape=(128, 128))
    radius = scene.radius_px
    rows, cols = np.indices(scene.shape)
    from_centre = np.hypot(rows - scene.center_px[0], cols - scene.center_px[1])
    from_needled = np.hypot(rows - scene.needled_center_px[0], cols - scene.needled_center_px[1])
    before = scene.true_hypoperfused(0.0)
    after = scene.true_hypoperfused(scene.needling_end_s)
    persistent, recovered = scene.persistent_mask(), scene.recovered_mask()
    # The truth before is the disk; after, what is still hypoperfused is the persistent part,
    # and before splits into it and the recovered part.
    assert np.count_nonzero(before) == pytest.approx(scene.disk_area_px, rel=0.05)
    np.testing.assert_array_equal(after, persistent)
    np.testing.assert_array_equal(before, persistent | recovered)
    assert not (persistent & recovered).any()
    # The persistent part is the crescent beyond the needled disk's edge, on the right.
    edge = scene.edge_px
    assert (from_needled[persistent] > scene.needled_radius_px - edge / 2).all()
    crescent = (from_centre < radius - edge / 2) & (
        from_needled > scene.needled_radius_px + edge / 2
    )
    assert crescent.any()
    assert persistent[crescent].all()
    assert cols[persistent].mean() > scene.center_px[1] + radius / 2
    # Both are sizeable: about a third of the disk stays occluded, two thirds recover.
    share = np.count_nonzero(persistent) / np.count_nonzero(before)
    assert 0.25 < share < 0.45
    # Well defined: thresholds from 0.45 to 0.55 of healthy skin move the area after by less
    # than 10 %, and none of the needled part's flat core is ever below them.
    for fraction in (0.45, 0.55):
        moved = np.count_nonzero(scene.persistent_mask(fraction)) / np.count_nonzero(persistent)
        assert moved == pytest.approx(1.0, abs=0.10)
    core = from_needled < scene.needled_radius_px - edge / 2
    assert not scene.true_hypoperfused(scene.needling_end_s, 0.6)[core].any()


def test_simulated_needling_frames_have_the_contrast_of_the_true_maps() -> None:
    exposure = 5e-3
    scene = NeedlingScene(shape=(64, 64), needling_start_s=1.4, needling_end_s=1.6)
    filmed = simulate_needling(scene, 60, frame_interval_s=0.05, exposure_s=exposure, seed=4)
    assert filmed.frames.dtype == np.uint16
    assert filmed.frames.shape == (60, 64, 64)
    np.testing.assert_allclose(filmed.times_s, np.arange(60) * 0.05)
    before, after = filmed.split(scene.recovery_s)
    assert len(before) == len(after) == 30
    for frames, tau in ((before, scene.tau_c_before()), (after, scene.tau_c_after())):
        stack = frames.astype(np.float64)
        k2 = stack.var(axis=0, ddof=1) / stack.mean(axis=0) ** 2
        for mask in scene.regions().values():
            expected = visibility_k2(exposure / tau[mask]).mean()
            assert k2[mask].mean() == pytest.approx(expected, rel=0.1)
