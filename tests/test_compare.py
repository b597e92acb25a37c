"""Before/after comparison: ratio maps, ROI statistics, registration, export."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lsci.analysis.compare import (
    Comparison,
    RoiStatistics,
    compare_before_after,
    percent_change_map,
    ratio_map,
    roi_statistics,
)
from lsci.analysis.registration import RegistrationError

SHAPE = (96, 112)
PATCH = [(30.0, 40.0), (30.0, 70.0), (60.0, 70.0), (60.0, 40.0)]  # (row, col), 30 × 30 px
HEALTHY = [(65.0, 10.0), (65.0, 35.0), (90.0, 35.0), (90.0, 10.0)]


def perfusion_scene(rng: np.random.Generator, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """A positive perfusion-like map: smooth structure plus fine texture."""
    noise = rng.standard_normal((shape[0] + 40, shape[1] + 40))
    smooth = ndimage.gaussian_filter(noise, 6.0)
    fine = ndimage.gaussian_filter(noise, 1.0)
    scene = 1.0 + 2.0 * smooth / smooth.std() * 0.15 + 0.1 * fine / fine.std()
    return scene


def before_after_maps(
    rng: np.random.Generator, recovery: float, shift: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Before/after maps of an ischemic patch that recovers by ``recovery``, after displaced.

    Returns before (cropped), after (cropped, displaced by ``shift``), and the true after map in
    before coordinates.
    """
    big = perfusion_scene(rng)
    ischemic = np.zeros(big.shape, bool)
    ischemic[20 + 30 : 20 + 60, 20 + 40 : 20 + 70] = True
    before_big = np.where(ischemic, 0.3 * big, big)
    after_big = np.where(ischemic, 0.3 * recovery * big, big)
    crop = (slice(20, 20 + SHAPE[0]), slice(20, 20 + SHAPE[1]))
    moved = ndimage.shift(after_big, shift, order=1, mode="nearest")
    noise = 0.01
    before = before_big[crop] + noise * rng.standard_normal(SHAPE)
    after = moved[crop] + noise * rng.standard_normal(SHAPE)
    return before, after, after_big[crop]


def test_ratio_and_percent_maps_against_numpy() -> None:
    rng = np.random.default_rng(0)
    before = rng.uniform(-0.5, 2.0, (10, 12))
    after = rng.uniform(0.0, 2.0, (10, 12))
    before[0, 0] = np.nan
    after[1, 1] = np.inf
    ratio = ratio_map(before, after)
    expected = after / before
    expected[~(np.isfinite(before) & np.isfinite(after) & (before > 0))] = np.nan
    np.testing.assert_allclose(ratio, expected, rtol=1e-12)
    assert ratio.dtype == np.float64
    np.testing.assert_allclose(percent_change_map(before, after), 100 * (expected - 1), rtol=1e-12)
    assert ratio_map(before.astype(np.float32), after.astype(np.float32)).dtype == np.float32
    out = np.empty((10, 12))
    assert ratio_map(before, after, out=out) is out
    assert percent_change_map(before, after, out=out) is out
    with pytest.raises(ValueError, match="out"):
        ratio_map(before, after, out=np.empty((3, 3)))


def test_roi_statistics_against_numpy() -> None:
    rng = np.random.default_rng(1)
    before = rng.uniform(0.5, 2.0, SHAPE)
    after = rng.uniform(0.5, 3.0, SHAPE)
    before[35, 45] = np.nan
    after[40, 50] = np.nan
    patch = np.zeros(SHAPE, bool)
    patch[30:60, 40:70] = True
    rows = roi_statistics(before, after, {"patch": PATCH, "healthy": HEALTHY}, reference="healthy")
    assert [r.name for r in rows] == ["patch", "healthy"]
    stats = rows[0]
    valid = patch & np.isfinite(before) & np.isfinite(after)
    b, a = before[valid], after[valid]
    assert stats.roi_pixels == 900
    assert stats.pixel_count == 898
    assert stats.before_mean == pytest.approx(np.mean(b), rel=1e-12)
    assert stats.before_median == pytest.approx(np.median(b), rel=1e-12)
    assert stats.before_std == pytest.approx(np.std(b), rel=1e-12)
    assert stats.after_mean == pytest.approx(np.mean(a), rel=1e-12)
    assert stats.after_median == pytest.approx(np.median(a), rel=1e-12)
    assert stats.after_std == pytest.approx(np.std(a), rel=1e-12)
    assert stats.ratio == pytest.approx(np.mean(a) / np.mean(b), rel=1e-12)
    assert stats.percent_change == pytest.approx(100 * (np.mean(a) / np.mean(b) - 1), rel=1e-12)
    healthy = np.zeros(SHAPE, bool)
    healthy[65:90, 10:35] = True
    ref_ratio = after[healthy].mean() / before[healthy].mean()
    assert stats.relative_ratio == pytest.approx(stats.ratio / ref_ratio, rel=1e-12)
    assert stats.relative_percent_change == pytest.approx(
        100 * (stats.ratio / ref_ratio - 1), rel=1e-12
    )
    assert rows[1].relative_ratio == pytest.approx(1.0)


def test_nan_only_roi_reports_nan_with_count_zero() -> None:
    before = np.ones((20, 20))
    after = np.ones((20, 20))
    before[:5, :5] = np.nan
    dead = np.zeros((20, 20), bool)
    dead[:5, :5] = True
    rows = roi_statistics(before, after, {"dead": dead, "ok": ~dead}, reference="dead")
    assert rows[0].pixel_count == 0
    assert rows[0].roi_pixels == 25
    assert all(math.isnan(getattr(rows[0], f)) for f in ("before_mean", "after_std", "ratio"))
    # A NaN reference makes the relative figures NaN, never an exception.
    assert math.isnan(rows[1].relative_ratio)
    assert rows[1].ratio == 1.0


def test_reference_given_as_polygon_and_without() -> None:
    before = np.ones(SHAPE)
    after = np.full(SHAPE, 2.0)
    rows = roi_statistics(before, after, {"patch": PATCH}, reference=HEALTHY)
    assert [r.name for r in rows] == ["patch", "reference"]
    assert rows[0].relative_ratio == pytest.approx(1.0)
    rows = roi_statistics(before, after, {"patch": PATCH})
    assert math.isnan(rows[0].relative_ratio)
    assert rows[0].percent_change == pytest.approx(100.0)


def test_label_image_rois() -> None:
    labels = np.zeros(SHAPE, int)
    labels[:10, :10] = 1
    labels[50:, 50:] = 7
    before = np.ones(SHAPE)
    after = np.where(labels == 7, 3.0, 1.0)
    rows = roi_statistics(before, after, labels, reference="1")
    assert [r.name for r in rows] == ["1", "7"]
    assert rows[1].relative_ratio == pytest.approx(3.0)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (3.0, -4.0), (-2.5, 1.75)])
@pytest.mark.parametrize(("registration", "sign"), [("translation", -1.0), ("similarity", 1.0)])
def test_recovery_factor_found_through_registration(
    shift: tuple[float, float], registration: str, sign: float
) -> None:
    rng = np.random.default_rng(5)
    recovery = 2.5
    before, after, _ = before_after_maps(rng, recovery, shift)
    # The patch edges blur under interpolation: measure an ROI inset by 3 px.
    inner = [(33.0, 43.0), (33.0, 67.0), (57.0, 67.0), (57.0, 43.0)]
    result = compare_before_after(
        before,
        after,
        {"patch": inner, "healthy": HEALTHY},
        reference="healthy",
        registration=registration,  # type: ignore[arg-type]
    )
    assert result.registration is not None
    # A translation is the shift that moves the after map onto the before map; a similarity
    # registration's shift is where the before map's centre lies in the after map.
    np.testing.assert_allclose(
        result.registration.shift_px, [sign * shift[0], sign * shift[1]], atol=0.5
    )
    patch = result.roi("patch")
    assert patch.ratio == pytest.approx(recovery, rel=0.10)
    assert patch.relative_ratio == pytest.approx(recovery, rel=0.10)
    assert result.roi("healthy").ratio == pytest.approx(1.0, rel=0.05)


def test_register_on_intensity_images_and_stacks() -> None:
    rng = np.random.default_rng(6)
    intensity = perfusion_scene(rng)[: SHAPE[0], : SHAPE[1]]
    moved = ndimage.shift(intensity, (2.0, -3.0), order=1, mode="nearest")
    before = np.ones((4, *SHAPE))
    after = np.full((3, *SHAPE), 2.0)
    after[0, 0, 0] = np.nan
    result = compare_before_after(
        before,
        after,
        {"all": HEALTHY},
        before_intensity=intensity,
        after_intensity=moved,
        registration="translation",
    )
    assert result.registration is not None
    np.testing.assert_allclose(result.registration.shift_px, [-2.0, 3.0], atol=0.3)
    assert result.roi("all").ratio == pytest.approx(2.0)
    # Pixels the shift uncovered are NaN in the aligned after map and the ratio map.
    # Shift (-2, +3): out[r, c] = after[r + 2, c - 3], so the last 2 rows and first 3 columns.
    assert np.isnan(result.after[-2:, :]).all()
    assert np.isnan(result.after[:, :3]).all()
    assert np.isnan(result.ratio[:, :3]).all()
    assert np.isfinite(result.after[:-2, 3:]).all()


def test_unrelated_maps_are_refused_not_compared() -> None:
    rng = np.random.default_rng(7)
    before = perfusion_scene(rng)[: SHAPE[0], : SHAPE[1]]
    after = rng.uniform(0.5, 1.5, SHAPE)
    with pytest.raises(RegistrationError):
        compare_before_after(before, after, {"patch": PATCH})
    # Without registration the same maps are compared as given.
    result = compare_before_after(before, after, {"patch": PATCH}, register=False)
    assert result.registration is None


def test_bad_inputs_give_clear_errors() -> None:
    ones = np.ones(SHAPE)
    with pytest.raises(ValueError, match="same shape"):
        compare_before_after(ones, np.ones((SHAPE[0], SHAPE[1] - 1)), {"p": PATCH},
                             registration="translation")  # fmt: skip
    with pytest.raises(RegistrationError, match="no texture"):
        compare_before_after(ones, np.ones((SHAPE[0], SHAPE[1] - 1)), {"p": PATCH})
    with pytest.raises(ValueError, match="same shape"):
        roi_statistics(ones, np.ones((5, 5)), {"p": PATCH})
    with pytest.raises(ValueError, match="2-D"):
        roi_statistics(ones[None], ones[None], {"p": PATCH})
    with pytest.raises(ValueError, match=r"\(M, N\) map"):
        compare_before_after(np.ones((2, 2, *SHAPE)), ones, {"p": PATCH})
    with pytest.raises(ValueError, match="no pixel"):
        compare_before_after(ones, ones, {"p": [(200, 200), (200, 300), (300, 300)]},
                             register=False)  # fmt: skip
    with pytest.raises(ValueError, match="no pixel"):
        compare_before_after(ones, ones, {"p": np.zeros(SHAPE, bool)}, register=False)
    with pytest.raises(ValueError, match="reference 'x'"):
        roi_statistics(ones, ones, {"p": PATCH}, reference="x")
    with pytest.raises(ValueError, match="already named 'reference'"):
        roi_statistics(ones, ones, {"reference": PATCH}, reference=HEALTHY)
    with pytest.raises(ValueError, match="after_intensity"):
        compare_before_after(ones, ones, {"p": PATCH}, after_intensity=np.ones((3, 3)))
    with pytest.raises(ValueError, match="real numbers"):
        compare_before_after(ones.astype(complex), ones, {"p": PATCH})
    with pytest.raises(ValueError, match="real numbers"):
        ratio_map(ones.astype(complex), ones)


def make_comparison() -> Comparison:
    rng = np.random.default_rng(8)
    before, after, _ = before_after_maps(rng, 2.0, (1.0, -1.0))
    after[40:45, 45:50] = np.nan
    dead = np.zeros(SHAPE, bool)
    dead[0, 0] = True
    before[0, 0] = np.nan
    return compare_before_after(
        before, after, {"patch": PATCH, "healthy": HEALTHY, "dead": dead}, reference="healthy"
    )


def test_csv_export_round_trip(tmp_path: Path) -> None:
    result = make_comparison()
    path = tmp_path / "table.csv"
    text = result.to_csv(path)
    assert path.read_text(encoding="utf-8") == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == ["patch", "healthy", "dead"]
    for row, stats in zip(rows, result.rois, strict=True):
        assert int(row["pixel_count"]) == stats.pixel_count
        assert row["reference"] == "healthy"
        for name in ("before_mean", "ratio", "relative_percent_change"):
            value = getattr(stats, name)
            if math.isnan(value):
                assert math.isnan(float(row[name]))
            else:
                assert float(row[name]) == value
    assert result.registration is not None
    assert float(rows[0]["shift_dy_px"]) == result.registration.shift_px[0]


def test_json_export_round_trip(tmp_path: Path) -> None:
    result = make_comparison()
    path = tmp_path / "result.json"
    text = result.to_json(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == json.loads(text)
    assert data["shape"] == list(SHAPE)
    assert data["reference"] == "healthy"
    assert data["registration"]["shift_px"] == list(result.registration.shift_px)  # type: ignore[union-attr]
    restored = [
        RoiStatistics(**{k: math.nan if v is None else v for k, v in row.items()})
        for row in data["rois"]
    ]
    for got, stats in zip(restored, result.rois, strict=True):
        for name, value in vars(stats).items():
            other = getattr(got, name)
            assert other == value or (math.isnan(value) and math.isnan(other))
    assert data["rois"][2]["pixel_count"] == 0
    assert data["rois"][2]["before_mean"] is None


def test_csv_without_registration_and_lookup() -> None:
    result = compare_before_after(np.ones(SHAPE), np.ones(SHAPE), {"p": PATCH}, register=False)
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert rows[0]["shift_dy_px"] == ""
    assert rows[0]["reference"] == ""
    assert json.loads(result.to_json())["registration"] is None
    with pytest.raises(KeyError, match="no ROI named"):
        result.roi("missing")
