"""One display convention: the figures and the napari plugin colour a change the same way."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.image import AxesImage

from lsci.analysis.compare import compare_before_after
from lsci.viz import display
from lsci.viz.figures import comparison_figure, draw_comparison
from napari_lsci import _display as plugin_display


def _comparison():
    rng = np.random.default_rng(0)
    before = 1.0 + 0.05 * rng.standard_normal((40, 48))
    after = before.copy()
    gain = np.zeros(before.shape, bool)
    gain[10:20, 10:20] = True
    after[gain] *= 2.0
    healthy = np.zeros(before.shape, bool)
    healthy[25:35, 30:40] = True
    masks = {"treated": gain, "healthy": healthy}
    return compare_before_after(before, after, masks, register=False), masks


def _change_image(figure) -> AxesImage:
    [axes] = [a for a in figure.axes if a.get_title() == "Change after / before"]
    [image] = axes.get_images()
    return image


def test_figure_and_plugin_use_one_change_colormap() -> None:
    comparison, masks = _comparison()
    image = _change_image(draw_comparison(comparison, masks=masks))
    assert image.get_cmap().name == plugin_display.CHANGE_COLORMAP == display.CHANGE_COLORMAP
    # Centred on no change.
    low, high = image.get_clim()
    assert low == -high
    # A gain is red: the treated square, which doubled, is drawn in a red colour.
    red, green, blue, _ = image.to_rgba(image.get_array())[15, 15]
    assert red > 2 * blue
    assert red > 2 * green


def test_plugin_reexports_the_conventions() -> None:
    for name in ("PERFUSION_COLORMAP", "CONTRAST_COLORMAP", "RAW_COLORMAP", "CHANGE_COLORMAP"):
        assert getattr(plugin_display, name) == getattr(display, name)
    assert plugin_display.robust_limits is display.robust_limits
    assert plugin_display.symmetric_limits is display.symmetric_limits
    assert plugin_display.unit_of is display.unit_of


def test_napari_draws_the_change_colormap_as_matplotlib_does() -> None:
    pytest.importorskip("napari", reason="napari is not installed (pip install 'lsci[napari]')")
    from napari.utils.colormaps import ensure_colormap

    positions = np.linspace(0.0, 1.0, 9)
    shown = ensure_colormap(display.CHANGE_COLORMAP).map(positions)
    np.testing.assert_allclose(shown, colormaps[display.CHANGE_COLORMAP](positions), atol=0.02)


def test_robust_limits_ignore_outliers_and_non_finite_values() -> None:
    values = np.concatenate([np.linspace(0.0, 1.0, 1001), [1e6, np.nan, np.inf]])
    low, high = display.robust_limits(values)
    assert low == pytest.approx(0.0, abs=0.02)
    assert high == pytest.approx(1.0, abs=0.02)
    assert display.robust_limits([np.nan]) == (0.0, 1.0)
    assert display.robust_limits(np.full(5, 3.0))[1] > 3.0
    with pytest.raises(ValueError, match="percentiles"):
        display.robust_limits(values, low=50, high=10)


def test_display_limits_follow_each_kind_of_map() -> None:
    values = np.linspace(2.0, 4.0, 101)
    assert display.display_limits("perfusion", values)[0] == 0.0
    assert display.display_limits("contrast", values - 3.0)[0] == 0.0
    # The 98th percentile of |change| = (5, 20, 30), interpolated: 20 + 0.96 · 10.
    assert display.display_limits("change", [-30.0, 5.0, 20.0]) == pytest.approx((-29.6, 29.6))
    assert display.display_limits("change", [1.0, -2.0]) == (-10.0, 10.0)
    assert display.colormap_of("perfusion") == "inferno"
    assert display.colormap_of("something else") == display.OTHER_COLORMAP
    assert display.unit_of("perfusion", {"model": "tau"}) == "1/τc (1/s)"


def test_comparison_figure_writes_a_png(tmp_path) -> None:
    comparison, masks = _comparison()
    path = comparison_figure(
        comparison, tmp_path / "compare.png", masks=masks, before_intensity=comparison.before
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
