"""ROI masks: polygon rasterisation (inside rule) and label images."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.path import Path

from lsci.analysis.roi import label_masks, polygon_mask, roi_masks


def edge_distance(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Distance from each point to the polygon's boundary (float64, brute force)."""
    a = vertices
    b = np.roll(vertices, -1, axis=0)
    ab = b - a
    rel = points[:, None, :] - a[None, :, :]
    t = np.clip(np.sum(rel * ab, axis=2) / np.maximum(np.sum(ab * ab, axis=1), 1e-300), 0, 1)
    nearest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None, :] - nearest, axis=2).min(axis=1)


def test_rectangle_with_integer_corners_is_half_open() -> None:
    mask = polygon_mask([(2, 3), (2, 8), (6, 8), (6, 3)], (10, 12))
    expected = np.zeros((10, 12), bool)
    expected[2:6, 3:8] = True
    np.testing.assert_array_equal(mask, expected)


def test_vertex_order_does_not_matter() -> None:
    square = np.array([(1.5, 1.2), (1.5, 7.7), (6.2, 7.7), (6.2, 1.2)])
    np.testing.assert_array_equal(polygon_mask(square, (9, 9)), polygon_mask(square[::-1], (9, 9)))


def test_shared_edge_never_shares_a_pixel() -> None:
    left = [(0.0, 0.0), (9.0, 4.0), (0.0, 10.0)]
    right = [(0.0, 10.0), (9.0, 4.0), (9.0, 12.0)]
    union = [(0.0, 0.0), (9.0, 4.0), (9.0, 12.0), (0.0, 10.0)]
    a = polygon_mask(left, (12, 14))
    b = polygon_mask(right, (12, 14))
    assert not (a & b).any()
    np.testing.assert_array_equal(a | b, polygon_mask(union, (12, 14)))


@given(
    st.lists(
        st.tuples(
            st.floats(-3, 20, allow_nan=False, allow_infinity=False),
            st.floats(-3, 20, allow_nan=False, allow_infinity=False),
        ),
        min_size=3,
        max_size=7,
    )
)
def test_agrees_with_matplotlib_away_from_edges(vertices: list[tuple[float, float]]) -> None:
    verts = np.array(vertices)
    mask = polygon_mask(verts, (16, 18))
    rows, cols = np.mgrid[0:16, 0:18]
    centres = np.column_stack([rows.ravel(), cols.ravel()]).astype(float)
    # matplotlib's crossing test (an independent implementation, (x, y) = (col, row)) is
    # undefined exactly on edges: compare only centres clearly inside or outside.
    clear = edge_distance(centres, verts) > 1e-6
    expected = Path(verts[:, ::-1]).contains_points(centres[:, ::-1])
    np.testing.assert_array_equal(mask.ravel()[clear], expected[clear])


def test_pixel_count_approximates_area() -> None:
    # A large circle: the pixel count tracks the polygon area closely.
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    verts = np.column_stack([50 + 30.3 * np.sin(angles), 60 + 30.3 * np.cos(angles)])
    x, y = verts[:, 1], verts[:, 0]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    assert polygon_mask(verts, (100, 120)).sum() == pytest.approx(area, rel=0.01)


def test_polygon_clipped_to_image() -> None:
    mask = polygon_mask([(-5, -5), (-5, 3), (3, 3), (3, -5)], (6, 6))
    expected = np.zeros((6, 6), bool)
    expected[:3, :3] = True
    np.testing.assert_array_equal(mask, expected)
    assert not polygon_mask([(20, 20), (20, 30), (30, 30)], (6, 6)).any()


@pytest.mark.parametrize(
    "vertices", [[(0, 0), (1, 1)], [[0, 0, 0]] * 3, [(0, 0), (1, np.nan), (2, 0)], [1, 2, 3]]
)
def test_bad_vertices(vertices: object) -> None:
    with pytest.raises(ValueError, match="vertices"):
        polygon_mask(vertices, (5, 5))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shape", "exc"),
    [((0, 5), ValueError), ((5,), ValueError), ((2, -1), ValueError), ("ab", TypeError),
     ((2.5, 3), TypeError)],
)  # fmt: skip
def test_bad_shape(shape: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match="shape"):
        polygon_mask([(0, 0), (0, 2), (2, 2)], shape)  # type: ignore[arg-type]


def test_label_masks() -> None:
    labels = np.array([[0, 3, 3], [1, 1, -2]])
    masks = label_masks(labels)
    assert list(masks) == ["1", "3"]
    np.testing.assert_array_equal(masks["3"], labels == 3)
    with pytest.raises(ValueError, match="2-D"):
        label_masks(np.zeros(3, int))
    with pytest.raises(TypeError, match="integers"):
        label_masks(np.zeros((3, 3)))


def test_roi_masks_mapping_and_labels() -> None:
    shape = (8, 8)
    square = np.zeros(shape, bool)
    square[1:3, 1:3] = True
    masks = roi_masks({"mask": square, "poly": [(4, 4), (4, 7), (7, 7), (7, 4)]}, shape)
    assert list(masks) == ["mask", "poly"]
    assert masks["poly"].sum() == 9
    np.testing.assert_array_equal(masks["mask"], square)
    labels = np.zeros(shape, int)
    labels[5, 5] = 2
    assert list(roi_masks(labels, shape)) == ["2"]


def test_roi_masks_errors() -> None:
    shape = (8, 8)
    with pytest.raises(ValueError, match="no pixel"):
        roi_masks({"empty": np.zeros(shape, bool)}, shape)
    with pytest.raises(ValueError, match="no pixel"):
        roi_masks({"outside": [(20, 20), (20, 30), (30, 30)]}, shape)
    with pytest.raises(ValueError, match="at least one"):
        roi_masks({}, shape)
    with pytest.raises(ValueError, match="at least one"):
        roi_masks(np.zeros(shape, int), shape)
    with pytest.raises(ValueError, match="shape"):
        roi_masks({"m": np.ones((4, 4), bool)}, shape)
    with pytest.raises(ValueError, match="label image"):
        roi_masks(np.ones((4, 4), int), shape)
    with pytest.raises(ValueError, match="'bad'"):
        roi_masks({"bad": [(1, 1), (2, 2)]}, shape)
