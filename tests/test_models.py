"""The registry of perfusion models: each entry against the physics, and every caller's view."""

from __future__ import annotations

import numpy as np
import pytest

from lsci.acquisition.live import LiveSettings, live_map
from lsci.core.contrast import spatial_contrast
from lsci.core.models import (
    DEFAULT_MODEL,
    FALLBACK_MODEL,
    MODELS,
    default_model,
    get_model,
    model_of_product,
)
from lsci.core.perfusion import visibility_k2
from lsci.processing import ProcessingSettings, process_frames

EXPOSURE_S = 5e-3


def test_inverse_tau_inverts_the_visibility_equation() -> None:
    # K from known x = T/τc through the forward model; the model must give back 1/τc = x/T.
    x = np.geomspace(0.05, 500.0, 40)
    for beta in (1.0, 0.6):
        k = np.sqrt(visibility_k2(x, beta))
        rate = MODELS["inverse_tau"].apply(
            k, exposure_s=EXPOSURE_S, beta=beta, out=np.empty_like(x)
        )
        np.testing.assert_allclose(rate, x / EXPOSURE_S, rtol=1e-9)


def test_inverse_k2_and_contrast_against_numpy() -> None:
    k = np.random.default_rng(0).uniform(0.05, 1.0, (5, 6)).astype(np.float32)
    sfi = MODELS["inverse_k2"].apply(k)
    assert sfi.dtype == np.float32
    np.testing.assert_allclose(sfi, 1.0 / k.astype(np.float64) ** 2, rtol=1e-6)
    same = MODELS["contrast"].apply(k)
    np.testing.assert_array_equal(same, k)
    assert same is not k
    out = np.empty(k.shape, np.float64)
    assert MODELS["contrast"].apply(k, out=out) is out


def test_units_and_needs_are_stated() -> None:
    assert MODELS["inverse_tau"].label == "1/τc (1/s)"
    assert MODELS["inverse_k2"].label == "1/K² (a.u.)"
    assert MODELS["contrast"].label == "K"
    assert MODELS["inverse_tau"].needs_exposure
    assert MODELS["inverse_tau"].uses_beta
    with pytest.raises(ValueError, match="needs the exposure time"):
        MODELS["inverse_tau"].apply([0.5])
    with pytest.raises(ValueError, match="inverse_tau, inverse_k2, contrast"):
        get_model("tau")


def test_one_default_for_every_caller() -> None:
    assert default_model(EXPOSURE_S) == DEFAULT_MODEL == "inverse_tau"
    assert default_model(None) == FALLBACK_MODEL == "inverse_k2"
    assert ProcessingSettings(exposure_s=EXPOSURE_S).model == DEFAULT_MODEL
    assert ProcessingSettings().model == FALLBACK_MODEL


def test_stored_products_name_their_model_old_names_included() -> None:
    for name, model in MODELS.items():
        assert model_of_product({"model": name}) is model
        for old in model.stored_as:
            assert model_of_product({"model": old}) is model
    assert model_of_product({"model": "tau"}) is MODELS["inverse_tau"]
    assert model_of_product({"model": "1/K2"}) is MODELS["inverse_k2"]
    assert model_of_product({}) is None
    assert model_of_product({"model": "fourier"}) is None


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_through_the_processing_engine_and_the_live_map(name: str) -> None:
    model = MODELS[name]
    frames = np.random.default_rng(1).exponential(300, (3, 24, 24)).astype(np.uint16)
    settings = ProcessingSettings(window=5, model=name, exposure_s=EXPOSURE_S)
    result = process_frames(frames, settings)
    k = spatial_contrast(frames, 5)
    np.testing.assert_array_equal(result.contrast, k)
    expected = model.apply(k, exposure_s=EXPOSURE_S, beta=1.0)
    if model.derived:
        assert result.perfusion is not None
        np.testing.assert_array_equal(result.perfusion, expected)
        assert result.parameters()["perfusion_unit"] == model.unit
    else:
        assert result.perfusion is None
        assert "perfusion_unit" not in result.parameters()
    live = LiveSettings(window=5, model=name, exposure_s=EXPOSURE_S)
    np.testing.assert_array_equal(live_map(frames[0], live), expected[0])


def test_live_settings_check_the_model() -> None:
    with pytest.raises(ValueError, match="is not one of"):
        LiveSettings(model="flow_index")
    with pytest.raises(ValueError, match="needs the exposure time"):
        LiveSettings(model="inverse_tau")
    with pytest.raises(ValueError, match="beta"):
        LiveSettings(beta=0.0)
