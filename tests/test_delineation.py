"""Hypoperfused-area delineation, checked against simulated ground truth and exact geometry."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from lsci.analysis.delineation import (
    DEFAULT_MIN_SIZE_PX,
    area_time_course,
    compare_areas,
    delineate_hypoperfusion,
)
from lsci.analysis.roi import polygon_mask
from lsci.analysis.scale import PixelScale
from lsci.core.contrast import spatial_contrast
from lsci.core.perfusion import inverse_correlation_time
from lsci.sim.needling import HEALTHY, NeedlingScene, simulate_needling
from lsci.sim.speckle import SpeckleSimulator, skin_flow_map

SHAPE = (128, 128)
CENTRE = ((SHAPE[0] - 1) / 2.0, (SHAPE[1] - 1) / 2.0)
RADIUS_PX = 25.6
EXPOSURE_S = 5e-3
ISCHEMIC_FACTOR = 5.0


def _camera(tau_c_s: npt.ArrayLike, seed: int) -> SpeckleSimulator:
    return SpeckleSimulator(
        SHAPE,
        tau_c_s=tau_c_s,
        exposure_s=EXPOSURE_S,
        grain_px=3.0,
        dark_offset_adu=0.0,
        seed=seed,
    )


def _healthy_reference() -> npt.NDArray[np.bool_]:
    reference = np.zeros(SHAPE, dtype=bool)
    reference[87:115, 10:38] = True  # lower left: away from the disk and the vessel
    return reference


def _disk(radius: float) -> npt.NDArray[np.bool_]:
    rows, cols = np.ogrid[: SHAPE[0], : SHAPE[1]]
    inside: npt.NDArray[np.bool_] = np.hypot(rows - CENTRE[0], cols - CENTRE[1]) <= radius
    return inside


@pytest.fixture(scope="module")
def beta() -> float:
    """β of the simulated camera and the 7 × 7 window, measured on a static scatterer."""
    static = _camera(np.inf, seed=1).frames(3)
    return float(np.mean(spatial_contrast(static, 7).astype(np.float64) ** 2))


def _measure(tau_c_s: npt.NDArray[np.float64], beta: float, seed: int) -> npt.NDArray[np.float64]:
    """1/τc map measured from simulated raw frames: spatial K (7 × 7), K² averaged over frames."""
    frames = _camera(tau_c_s, seed).frames(6)
    k2 = np.mean(spatial_contrast(frames, 7).astype(np.float64) ** 2, axis=0)
    rate: npt.NDArray[np.float64] = inverse_correlation_time(
        np.sqrt(k2), EXPOSURE_S, beta=beta, out=np.empty(SHAPE)
    )
    return rate


@pytest.fixture(scope="module")
def tau_before() -> npt.NDArray[np.float64]:
    return skin_flow_map(
        SHAPE,
        baseline_tau_c_s=1e-3,
        ischemic_center=CENTRE,
        ischemic_radius_px=RADIUS_PX,
        ischemic_factor=ISCHEMIC_FACTOR,
        rng=0,
    )


@pytest.fixture(scope="module")
def measured_before(tau_before: npt.NDArray[np.float64], beta: float) -> npt.NDArray[np.float64]:
    return _measure(tau_before, beta, seed=2)


# ---------------------------------------------------------------------- ground truth


def test_simulated_disk_area_within_10_percent(measured_before: npt.NDArray[np.float64]) -> None:
    result = delineate_hypoperfusion(measured_before, reference=_healthy_reference())
    true_area = math.pi * RADIUS_PX**2
    assert result.area_px == pytest.approx(true_area, rel=0.10)
    assert result.centroid_px is not None
    assert math.dist(result.centroid_px, CENTRE) < 0.1 * RADIUS_PX
    # One region without holes: one closed outline that rasterises back to the mask.
    assert len(result.outlines) == 1
    outline = result.outlines[0]
    np.testing.assert_array_equal(outline[0], outline[-1])
    np.testing.assert_array_equal(polygon_mask(outline, SHAPE), result.mask)
    # The threshold is half the reference median of the measured map, and says so.
    reference = measured_before[_healthy_reference()]
    assert result.threshold.value == pytest.approx(0.5 * float(np.median(reference)), rel=1e-12)
    assert result.threshold.reference_px == reference.size
    assert "0.5 × the median" in result.threshold.description


def test_simulated_needling_session_against_its_truth(beta: float) -> None:
    # The needling scene knows its hypoperfused disk, the needled part whose flow rises from
    # 1/5 to 4/5 of healthy skin's and the crescent that stays at 1/5: both far from half.
    scene = NeedlingScene(needling_start_s=0.8, needling_end_s=1.2)
    session = simulate_needling(scene, 40, frame_interval_s=0.05, exposure_s=EXPOSURE_S, seed=4)
    before, after = session.split(scene.recovery_s)

    def perfusion(frames: npt.NDArray[np.uint16]) -> npt.NDArray[np.float64]:
        k2 = np.mean(spatial_contrast(frames, 7).astype(np.float64) ** 2, axis=0)
        rate: npt.NDArray[np.float64] = inverse_correlation_time(
            np.sqrt(k2), EXPOSURE_S, beta=beta, out=np.empty(scene.shape)
        )
        return rate

    result = compare_areas(perfusion(before), perfusion(after), reference=scene.regions()[HEALTHY])
    true_area = math.pi * scene.radius_px**2
    assert result.before.area_px == pytest.approx(true_area, rel=0.10)
    assert result.before.centroid_px is not None
    assert math.dist(result.before.centroid_px, scene.center_px) < 0.1 * scene.radius_px
    persistent, recovered = scene.persistent_mask(), scene.recovered_mask()
    assert result.after.area_px == pytest.approx(np.count_nonzero(persistent), rel=0.10)
    assert result.persistent_px == pytest.approx(np.count_nonzero(persistent), rel=0.10)
    assert result.recovered_px == pytest.approx(np.count_nonzero(recovered), rel=0.10)
    # Where: the crescent the needling did not reach, on the disk's right.
    assert result.after.centroid_px is not None
    rows, cols = np.nonzero(persistent)
    assert math.dist(result.after.centroid_px, (rows.mean(), cols.mean())) < 0.1 * scene.radius_px
    assert result.new_px < 0.02 * true_area


def test_area_in_mm2_for_a_known_pixel_size(measured_before: npt.NDArray[np.float64]) -> None:
    pixel_mm = 0.05
    result = delineate_hypoperfusion(
        measured_before, reference=_healthy_reference(), scale=pixel_mm
    )
    true_area_mm2 = math.pi * (RADIUS_PX * pixel_mm) ** 2
    assert result.area_mm2 is not None
    assert result.area_mm2 == pytest.approx(true_area_mm2, rel=0.10)
    assert result.area_mm2 == pytest.approx(result.area_px * pixel_mm**2, rel=1e-12)
    assert result.centroid_px is not None
    assert result.centroid_mm is not None
    assert result.centroid_mm == pytest.approx(
        (result.centroid_px[0] * pixel_mm, result.centroid_px[1] * pixel_mm), rel=1e-12
    )
    # The default minimum size is 1 mm² when the scale is known: 400 pixels of 0.05 mm.
    assert result.min_size_mm2 == 1.0
    assert result.min_size_px == 400


def test_partial_recovery_split(
    tau_before: npt.NDArray[np.float64],
    measured_before: npt.NDArray[np.float64],
    beta: float,
) -> None:
    # The left half of the disk (and its soft edge) recovers the flow of healthy skin; the
    # right half stays occluded.
    left = np.broadcast_to(np.arange(SHAPE[1]) < CENTRE[1], SHAPE)
    healed = _disk(1.25 * RADIUS_PX) & left
    tau_after = np.where(healed, tau_before / ISCHEMIC_FACTOR, tau_before)
    measured_after = _measure(tau_after, beta, seed=3)
    pixel_mm = 0.1
    result = compare_areas(
        measured_before, measured_after, reference=_healthy_reference(), scale=pixel_mm
    )
    half = math.pi * RADIUS_PX**2 / 2.0
    assert result.before.area_px == pytest.approx(2 * half, rel=0.10)
    assert result.after.area_px == pytest.approx(half, rel=0.10)
    assert result.reduction_percent == pytest.approx(50.0, abs=5.0)
    assert result.reduction_px == result.before.area_px - result.after.area_px
    assert result.reduction_mm2 == pytest.approx(result.reduction_px * pixel_mm**2, rel=1e-12)
    # Where: the recovered region is the left half of the disk, the persistent one the right.
    true_recovered = _disk(RADIUS_PX) & left
    true_persistent = _disk(RADIUS_PX) & ~left
    assert _inside(result.recovered, left) > 0.9
    assert _inside(result.persistent, ~left) > 0.9
    assert _overlap(result.recovered, true_recovered) > 0.75
    assert _overlap(result.persistent, true_persistent) > 0.75
    assert result.recovered_px == pytest.approx(half, rel=0.10)
    assert result.persistent_px == pytest.approx(half, rel=0.10)
    assert result.new_px < 0.05 * half  # boundary noise only
    # The parts add up.
    assert result.recovered_px + result.persistent_px + result.unmeasured_after_px == (
        result.before.area_px
    )
    assert result.persistent_px + result.new_px == result.after.area_px


def _inside(found: npt.NDArray[np.bool_], region: npt.ArrayLike) -> float:
    """The share of ``found`` that lies in ``region``."""
    return float(np.count_nonzero(found & region) / np.count_nonzero(found))


def _overlap(found: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> float:
    """Intersection over union."""
    return float(np.count_nonzero(found & truth) / np.count_nonzero(found | truth))


# ---------------------------------------------------------------------- exact geometry


def _square_lesion(size: int = 60) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    perfusion = np.full((size, size), 100.0)
    perfusion[10:20, 10:20] = 20.0
    reference = np.zeros((size, size), dtype=bool)
    reference[40:, 40:] = True
    return perfusion, reference


def test_square_area_outline_and_centroid() -> None:
    perfusion, reference = _square_lesion()
    result = delineate_hypoperfusion(perfusion, reference=reference)
    assert result.area_px == 100
    assert result.area_mm2 is None
    assert result.centroid_mm is None
    assert result.centroid_px == (14.5, 14.5)
    (outline,) = result.outlines
    # Half way between pixel centres: the 10 × 10 block spans 9.5 .. 19.5.
    assert outline[:, 0].min() == 9.5
    assert outline[:, 0].max() == 19.5
    assert outline[:, 1].min() == 9.5
    assert outline[:, 1].max() == 19.5
    np.testing.assert_array_equal(polygon_mask(outline, perfusion.shape), result.mask)
    assert result.min_size_px == DEFAULT_MIN_SIZE_PX
    assert result.excluded_px == 0


def test_islands_and_holes_are_cleaned_by_the_minimum_size() -> None:
    perfusion, reference = _square_lesion()
    perfusion[12:15, 12:15] = 100.0  # a 9-pixel perfused hole in the lesion
    perfusion[30:34, 5:10] = 20.0  # a 20-pixel island
    cleaned = delineate_hypoperfusion(perfusion, reference=reference)
    assert cleaned.area_px == 100  # island dropped, hole filled
    kept = delineate_hypoperfusion(perfusion, reference=reference, min_size_px=5)
    assert kept.area_px == 100 - 9 + 20
    assert len(kept.outlines) == 3  # lesion, its hole, the island
    raw = delineate_hypoperfusion(perfusion, reference=reference, min_size_px=1)
    assert raw.area_px == 100 - 9 + 20


def test_minimum_size_in_mm2() -> None:
    perfusion, reference = _square_lesion()
    perfusion[30:32, 5:8] = 20.0  # 6 pixels of 0.5 mm: 1.5 mm²
    scale = PixelScale(pixel_size_mm=0.5, method="metadata", source="test optics")
    default = delineate_hypoperfusion(perfusion, reference=reference, scale=scale)
    assert default.min_size_px == 4  # 1 mm² / 0.25 mm²
    assert default.area_px == 106
    assert default.area_mm2 == pytest.approx(106 * 0.25)
    assert default.scale is scale
    larger = delineate_hypoperfusion(perfusion, reference=reference, scale=scale, min_size_mm2=2)
    assert larger.min_size_px == 8
    assert larger.area_px == 100


def test_unmeasured_pixels_are_excluded_and_reported() -> None:
    perfusion, reference = _square_lesion()
    perfusion[14, 14] = np.nan  # a hole in the map inside the lesion
    valid = np.ones(perfusion.shape, dtype=bool)
    valid[11:13, 16:18] = False  # saturated pixels inside the lesion
    valid[50, 50] = False  # and one in the reference region
    perfusion[50, 50] = 1e9  # ... whose value must not enter the reference statistic
    result = delineate_hypoperfusion(perfusion, reference=reference, valid=valid)
    assert result.area_px == 100 - 1 - 4
    assert not result.mask[14, 14]
    assert not result.mask[11:13, 16:18].any()
    assert result.excluded_px == 1 + 4 + 1
    assert result.excluded_inside_px == 5
    assert result.threshold.reference_px == 20 * 20 - 1
    assert result.threshold.reference_value == 100.0


def test_roi_share() -> None:
    perfusion, reference = _square_lesion()
    rois = {
        "half in": np.array([(10, 15), (10, 25), (20, 25), (20, 15)], dtype=float),
        "outside": reference,
    }
    result = delineate_hypoperfusion(perfusion, reference=reference, rois=rois)
    assert result.roi_share == {"half in": 0.5, "outside": 0.0}


def test_absolute_threshold_and_mean_reference() -> None:
    perfusion, reference = _square_lesion()
    perfusion[10:20, 10:15] = 30.0
    absolute = delineate_hypoperfusion(perfusion, absolute=25.0, unit="PU")
    assert absolute.area_px == 50
    assert absolute.threshold.method == "absolute"
    assert absolute.threshold.description == "hypoperfused below 25 PU (absolute threshold)"
    reference_values = perfusion[reference]
    mean = delineate_hypoperfusion(perfusion, reference=reference, statistic="mean", fraction=0.3)
    assert mean.threshold.value == pytest.approx(0.3 * reference_values.mean())
    # Strictly below: the half at 30 is not hypoperfused at 0.3 × 100, the half at 20 is.
    assert mean.area_px == 50


def test_time_course() -> None:
    maps = np.full((3, 60, 60), 100.0)
    for i, half_width in enumerate((10, 7, 4)):
        maps[i, 30 - half_width : 30 + half_width, 30 - half_width : 30 + half_width] = 10.0
    maps[2] *= 2.0  # the whole field brighter: the relative threshold follows it
    reference = np.zeros((60, 60), dtype=bool)
    reference[:10, :10] = True
    course = area_time_course(maps, [0.0, 5.0, 10.0], reference=reference, scale=0.2)
    np.testing.assert_array_equal(course.area_px, [400, 196, 64])
    assert course.area_mm2 is not None
    np.testing.assert_allclose(course.area_mm2, course.area_px * 0.04)
    np.testing.assert_allclose(course.threshold, [50.0, 50.0, 100.0])
    np.testing.assert_array_equal(course.times_s, [0.0, 5.0, 10.0])
    assert len(course.delineations) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "reference region"),
        ({"reference": "ref", "absolute": 10.0}, "not both"),
        ({"reference": "ref", "fraction": 0.0}, "fraction"),
        ({"reference": "ref", "fraction": 1.5}, "fraction"),
        ({"reference": "ref", "statistic": "mode"}, "statistic"),
        ({"absolute": math.nan}, "absolute"),
        ({"absolute": 10.0, "min_size_mm2": 1.0}, "needs a scale"),
        ({"absolute": 10.0, "min_size_mm2": 1.0, "min_size_px": 3, "scale": 0.1}, "not both"),
        ({"absolute": 10.0, "min_size_px": 0}, "min_size_px"),
        ({"absolute": 10.0, "valid": np.ones((3, 3), bool)}, "valid"),
        ({"reference": "nan"}, "no measured pixel"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    perfusion, reference = _square_lesion()
    if kwargs.get("reference") == "nan":
        perfusion[reference] = np.nan
    if "reference" in kwargs:
        kwargs["reference"] = reference
    with pytest.raises(ValueError, match=message):
        delineate_hypoperfusion(perfusion, **kwargs)  # type: ignore[arg-type]


def test_compare_refuses_maps_of_different_shape() -> None:
    with pytest.raises(ValueError, match="same shape"):
        compare_areas(np.ones((10, 10)), np.ones((10, 12)), absolute=0.5)
