"""The short top-level API: every name of ``lsci.__all__`` resolves, lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import lsci


@pytest.mark.parametrize("name", lsci.__all__)
def test_every_public_name_resolves_to_its_definition(name: str) -> None:
    value = getattr(lsci, name)
    if name == "__version__":
        assert isinstance(value, str)
        return
    # The object is the one its defining module exports, not a copy or wrapper.
    module = importlib.import_module(value.__module__)
    assert getattr(module, name) is value
    assert name in dir(lsci)


def test_all_lists_exactly_the_lazy_names() -> None:
    assert sorted(lsci.__all__) == sorted(["__version__", *lsci._LAZY])


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_function"):
        lsci.no_such_function  # noqa: B018


def test_import_stays_light() -> None:
    """``import lsci`` and ``import lsci.drivers`` load no storage or contrast code."""
    code = (
        "import sys, lsci, lsci.drivers; "
        "print(sorted(m for m in ('h5py', 'lsci.core.contrast', 'lsci.recording', "
        "'lsci.analysis') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_short_names_compute() -> None:
    import numpy as np

    frame = np.random.default_rng(0).exponential(100.0, (16, 16)).astype(np.float32)
    k = lsci.spatial_contrast(frame, 5)
    np.testing.assert_array_equal(k, lsci.core.contrast.spatial_contrast(frame, 5))
    rate = lsci.inverse_correlation_time(k, 5e-3)
    assert rate.shape == (16, 16)
