"""Similarity registration on skin-like texture: known rotation, scale and shift are recovered,
unrelated pairs are refused."""

from __future__ import annotations

import json
import math

import numpy as np
import numpy.typing as npt
import pytest
from skimage.filters import gaussian
from skimage.transform import SimilarityTransform, rotate, warp

from lsci.analysis.registration import RegistrationError
from lsci.analysis.similarity import (
    SimilarityRegistrationError,
    align_to_reference,
    register_similarity,
)
from lsci.errors import LsciError
from lsci.sim.speckle import skin_reflectance_map

N = 192
# The refusal of a pose outside the allowed range needs no precision: a smaller view.
N_SMALL = 128
# The tissue is drawn at twice the image resolution, with a margin, so every pose samples it.
OVERSAMPLE = 2
MARGIN = 64


@pytest.fixture(scope="module")
def tissue() -> npt.NDArray[np.float64]:
    """Faint fine skin texture with a vessel (3 px correlation length at image resolution)."""
    size = OVERSAMPLE * N + 2 * MARGIN
    return skin_reflectance_map(
        (size, size), beam_radius_px=1e6, texture=0.1, texture_px=3.0 * OVERSAMPLE, rng=5
    )


def _beam(n: int = N) -> npt.NDArray[np.float64]:
    """The laser spot: fixed in the camera's frame, it does not move with the tissue."""
    rows, cols = np.mgrid[:n, :n]
    beam: npt.NDArray[np.float64] = np.exp(
        -2.0 * ((rows - n / 2) ** 2 + (cols - n / 2) ** 2) / (0.9 * n) ** 2
    )
    return beam


def _image(
    tissue: npt.NDArray[np.float64],
    rotation_deg: float,
    scale: float,
    shift_px: tuple[float, float],
    seed: int,
    noise: float = 0.03,
    n: int = N,
) -> npt.NDArray[np.float64]:
    """The camera's n × n view of the tissue turned counter-clockwise (as displayed) by
    rotation_deg and magnified by scale about the image centre, then shifted by (dy, dx), with
    noise.

    Built with skimage's own transform in (x, y) = (col, row) coordinates, where a turn that
    looks counter-clockwise with rows pointing down is a negative rotation angle.
    """
    dy, dx = shift_px
    centre_xy = np.array([(n - 1) / 2.0, (n - 1) / 2.0])
    pose = (
        SimilarityTransform(translation=-centre_xy)
        + SimilarityTransform(scale=scale, rotation=-math.radians(rotation_deg))
        + SimilarityTransform(translation=centre_xy + np.array([dx, dy]))
    )
    to_tissue = pose.inverse + SimilarityTransform(scale=OVERSAMPLE, translation=(MARGIN, MARGIN))
    view = warp(tissue, to_tissue, output_shape=(n, n), order=3)
    rng = np.random.default_rng(seed)
    image: npt.NDArray[np.float64] = _beam(n) * view * (1.0 + noise * rng.standard_normal((n, n)))
    return image


def _fine(image: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The texture finer than the beam and the vessel: image minus its 4-px Gaussian blur."""
    filled = np.where(np.isfinite(image), image, np.nanmean(image))
    fine: npt.NDArray[np.float64] = filled - gaussian(filled, 4.0)
    return np.where(np.isfinite(image), fine, np.nan)


@pytest.fixture(scope="module")
def reference(tissue: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return _image(tissue, 0.0, 1.0, (0.0, 0.0), seed=1)


@pytest.mark.parametrize(
    ("rotation_deg", "scale", "shift_px"),
    [
        (5.0, 1.08, (3.3, -2.7)),
        (-5.0, 0.92, (-4.2, 1.6)),
        (0.0, 1.0, (0.4, -0.3)),
        (2.0, 1.03, (-7.5, 6.0)),
    ],
)
def test_rotation_scale_and_shift_are_recovered(
    tissue: npt.NDArray[np.float64],
    reference: npt.NDArray[np.float64],
    rotation_deg: float,
    scale: float,
    shift_px: tuple[float, float],
) -> None:
    moving = _image(tissue, rotation_deg, scale, shift_px, seed=2)
    result = register_similarity(reference, moving)
    assert result.rotation_deg == pytest.approx(rotation_deg, abs=0.5)
    assert result.scale == pytest.approx(scale, rel=0.01)
    assert math.dist(result.shift_px, shift_px) < 0.5
    assert result.reliable
    assert result.reasons == ()
    assert result.correlation > 0.8
    assert result.residual == pytest.approx(math.sqrt(1 - result.correlation**2))
    assert result.overlap > 0.8


def test_turn_direction_matches_skimage_rotate(reference: npt.NDArray[np.float64]) -> None:
    # skimage.transform.rotate turns counter-clockwise (as displayed) about the centre.
    moving = rotate(reference, 5.0, order=3, mode="reflect")
    result = register_similarity(reference, moving)
    assert result.rotation_deg == pytest.approx(5.0, abs=0.5)
    assert result.scale == pytest.approx(1.0, rel=0.01)
    assert math.hypot(*result.shift_px) < 0.5


def test_aligned_image_matches_the_reference(
    tissue: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]
) -> None:
    moving = _image(tissue, 5.0, 1.08, (3.3, -2.7), seed=3)
    moving[100, 90] = np.nan  # a missing pixel of the moving map stays missing
    result = register_similarity(reference, moving)
    aligned = align_to_reference(moving, result)
    assert aligned.shape == reference.shape
    finite = np.isfinite(aligned)
    # The fine texture lines up (the beam, which does not move with the tissue, divided out).
    fine_reference = _fine(reference / _beam())
    matched = np.corrcoef(fine_reference[finite], _fine(aligned / _beam())[finite])[0, 1]
    unaligned = np.corrcoef(fine_reference.ravel(), _fine(np.nan_to_num(moving) / _beam()).ravel())
    # As well as the same pose imaged again with other noise (the ceiling the noise sets).
    again = _fine(_image(tissue, 0.0, 1.0, (0.0, 0.0), seed=6) / _beam())
    ceiling = np.corrcoef(fine_reference[finite], again[finite])[0, 1]
    assert matched > 0.97 * ceiling
    assert unaligned[0, 1] < 0.2
    # Missing: what the moving image does not cover (it is zoomed in: it sees less), and the
    # footprint of its NaN pixel, at the reference pixel that T maps onto it.
    covered = round(result.overlap * N * N)
    assert 1 <= covered - np.count_nonzero(finite) <= 4
    row, col = np.linalg.solve(result.matrix, [100.0, 90.0, 1.0])[:2]
    assert np.isnan(aligned[round(row), round(col)])
    # Outside the moving image: NaN.
    shifted = align_to_reference(moving[:, : N // 2], result)
    assert np.isnan(shifted[:, -10:]).all()


def test_unrelated_pair_is_refused(reference: npt.NDArray[np.float64]) -> None:
    other = _beam() * skin_reflectance_map(
        (N, N), beam_radius_px=1e6, texture=0.1, texture_px=3.0, rng=9
    )
    with pytest.raises(SimilarityRegistrationError, match="correlate only") as raised:
        register_similarity(reference, other)
    assert isinstance(raised.value, RegistrationError)
    assert isinstance(raised.value, LsciError)
    flagged = register_similarity(reference, other, refuse=False)
    assert not flagged.reliable
    assert any("correlate only" in reason for reason in flagged.reasons)
    assert flagged.correlation < 0.2


def test_pose_outside_the_allowed_range_is_refused(tissue: npt.NDArray[np.float64]) -> None:
    reference = _image(tissue, 0.0, 1.0, (0.0, 0.0), seed=1, n=N_SMALL)
    moving = _image(tissue, 12.0, 1.0, (0.0, 0.0), seed=4, n=N_SMALL)
    with pytest.raises(SimilarityRegistrationError, match="rotation 12"):
        register_similarity(reference, moving, max_rotation_deg=10.0)
    flagged = register_similarity(reference, moving, max_rotation_deg=10.0, refuse=False)
    assert flagged.rotation_deg == pytest.approx(12.0, abs=0.5)
    assert flagged.reasons == (f"rotation {flagged.rotation_deg:.1f}° exceeds ±10°",)
    with pytest.raises(SimilarityRegistrationError, match="scale"):
        register_similarity(reference, moving, scale_range=(1.0, 1.0), min_correlation=0.0)


def test_result_serialises(
    tissue: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]
) -> None:
    moving = _image(tissue, 1.0, 1.0, (1.0, 1.0), seed=5)
    result = register_similarity(reference, moving)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["model"] == "similarity"
    assert record["rotation_deg"] == result.rotation_deg
    assert record["reliable"] is True
    # The matrix maps the reference's centre to the centre plus the shift.
    centre = np.array([(N - 1) / 2.0, (N - 1) / 2.0, 1.0])
    np.testing.assert_allclose(result.matrix @ centre, [*(centre[:2] + result.shift_px), 1.0])


@pytest.mark.parametrize(
    ("reference", "moving", "kwargs", "message"),
    [
        (np.zeros((16, 64)), np.zeros((64, 64)), {}, "at least 32"),
        (np.zeros((4, 64, 64)), np.zeros((64, 64)), {}, "2-D"),
        (np.full((64, 64), np.nan), np.zeros((64, 64)), {}, "no finite pixel"),
        (np.zeros((64, 64)), np.zeros((64, 64)), {"min_correlation": 2.0}, "min_correlation"),
        (np.zeros((64, 64)), np.zeros((64, 64)), {"min_overlap": -0.1}, "min_overlap"),
        (np.zeros((64, 64)), np.zeros((64, 64)), {"max_rotation_deg": 120.0}, "max_rotation"),
        (np.zeros((64, 64)), np.zeros((64, 64)), {"scale_range": (1.1, 2.0)}, "scale_range"),
    ],
)
def test_invalid_input_is_refused(
    reference: npt.NDArray[np.float64],
    moving: npt.NDArray[np.float64],
    kwargs: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        register_similarity(reference, moving, **kwargs)  # type: ignore[arg-type]
