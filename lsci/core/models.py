"""Perfusion models: what map is computed from speckle contrast K, and in which unit.

One registry, :data:`MODELS`, names every model; the command line (``lsci process --model``,
``lsci compare --model``, ``lsci acquire --live``), the napari Process and Acquire widgets, the
live map (:mod:`lsci.acquisition.live`), the processing engine (:mod:`lsci.processing`) and the
provenance of stored products read their choices, units and computations from it. A stored
perfusion product names its model and unit in its parameters (``model``, ``perfusion_unit``).

Models
------
``inverse_tau``
    Inverse correlation time 1/τc in 1/s, exact inversion of the visibility equation
    (Bandyopadhyay et al., Rev. Sci. Instrum. 76, 093110, 2005; Boas & Dunn, J. Biomed. Opt.
    15, 011109, 2010): :func:`lsci.core.perfusion.inverse_correlation_time`. Proportional to
    flow at any exposure; needs the exposure time and the coherence factor β.
``inverse_k2``
    Speckle flow index 1/K² (arbitrary units): :func:`lsci.core.perfusion.speckle_flow_index`.
    Proportional to 1/τc only when the exposure is much longer than τc
    (Ramirez-San-Juan et al., Opt. Express 16, 3197, 2008).
``contrast``
    K itself: no perfusion map is derived.

:data:`DEFAULT_MODEL` is used when the exposure time is known, :data:`FALLBACK_MODEL` when it is
not (:func:`default_model`); every caller asks :func:`default_model`, so the command line and
napari choose the same model for the same file.

Why :class:`lsci.core.perfusion.PerfusionScale` is not a model
--------------------------------------------------------------
A perfusion-unit scale is a calibration of one model's output against a reference (a factor
valid only for the exposure, window and β it was measured with), not a way to compute a map from
K; it applies on top of any model here and is stored with the calibrations, not chosen here.

Adding a model
--------------
Append one :class:`PerfusionModel` to ``_ENTRIES`` (its ``function`` maps K to the model's map)
and add its tests in ``tests/test_models.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.core.perfusion import inverse_correlation_time, speckle_flow_index

__all__ = [
    "DEFAULT_MODEL",
    "FALLBACK_MODEL",
    "MODELS",
    "PerfusionModel",
    "default_model",
    "get_model",
    "model_of_product",
]

FloatArray = npt.NDArray[np.floating[Any]]
#: ``function(k, exposure_s, beta, out)``: the model's map of contrast ``k``.
ModelFunction = Callable[[npt.ArrayLike, float | None, float, np.ndarray | None], FloatArray]


@dataclass(frozen=True)
class PerfusionModel:
    """One way of turning speckle contrast into a map.

    Attributes
    ----------
    name : str
        The registry key, as typed on the command line and stored in provenance.
    symbol : str
        What the map shows, e.g. ``"1/τc"``.
    unit : str
        Unit of the map's values (``"1/s"``; ``"a.u."`` for an index without a unit; ``""``
        for the dimensionless contrast).
    description : str
        One line for help texts.
    needs_exposure : bool
        The exposure time is required.
    uses_beta : bool
        The coherence factor β changes the result.
    derived : bool
        The map is a separate product (``perfusion``); False when it is the contrast itself.
    function : callable
        ``function(k, exposure_s, beta, out)``, see :meth:`apply`.
    stored_as : tuple of str
        Names this model had in the provenance of files written before this registry; read
        only by :func:`model_of_product`.
    """

    name: str
    symbol: str
    unit: str
    description: str
    needs_exposure: bool
    uses_beta: bool
    derived: bool
    function: ModelFunction
    stored_as: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``symbol (unit)``, e.g. ``"1/τc (1/s)"``, for axes and layer names."""
        return f"{self.symbol} ({self.unit})" if self.unit else self.symbol

    def apply(
        self,
        k: npt.ArrayLike,
        *,
        exposure_s: float | None = None,
        beta: float = 1.0,
        out: np.ndarray | None = None,
    ) -> FloatArray:
        """The model's map of contrast ``k`` (float32 unless ``out`` is float64).

        Raises
        ------
        ValueError
            When the model needs the exposure time and ``exposure_s`` is None, or a value is
            out of range (as the underlying function says).
        """
        if self.needs_exposure and exposure_s is None:
            raise ValueError(f"model {self.name!r} ({self.symbol}) needs the exposure time")
        return self.function(k, exposure_s, beta, out)


def _inverse_tau(
    k: npt.ArrayLike, exposure_s: float | None, beta: float, out: np.ndarray | None
) -> FloatArray:
    assert exposure_s is not None  # checked in PerfusionModel.apply
    return inverse_correlation_time(k, exposure_s, beta=beta, out=out)


def _inverse_k2(
    k: npt.ArrayLike, exposure_s: float | None, beta: float, out: np.ndarray | None
) -> FloatArray:
    return speckle_flow_index(k, out=out)


def _contrast(
    k: npt.ArrayLike, exposure_s: float | None, beta: float, out: np.ndarray | None
) -> FloatArray:
    values = np.asarray(k)
    if out is None:
        return values.astype(np.result_type(values.dtype, np.float32))
    if out is not values:
        out[...] = values
    return out


_ENTRIES = (
    PerfusionModel(
        "inverse_tau",
        "1/τc",
        "1/s",
        "inverse correlation time from the visibility equation (needs exposure and β)",
        needs_exposure=True,
        uses_beta=True,
        derived=True,
        function=_inverse_tau,
        stored_as=("tau",),
    ),
    PerfusionModel(
        "inverse_k2",
        "1/K²",
        "a.u.",
        "speckle flow index 1/K², proportional to flow only when exposure ≫ τc",
        needs_exposure=False,
        uses_beta=False,
        derived=True,
        function=_inverse_k2,
        stored_as=("1/K2",),
    ),
    PerfusionModel(
        "contrast",
        "K",
        "",
        "speckle contrast K only, no perfusion map",
        needs_exposure=False,
        uses_beta=False,
        derived=False,
        function=_contrast,
        stored_as=("none",),
    ),
)

#: Every perfusion model, by name.
MODELS: dict[str, PerfusionModel] = {model.name: model for model in _ENTRIES}
#: The model used when the exposure time is known: proportional to flow at any exposure.
DEFAULT_MODEL = "inverse_tau"
#: The model used when it is not.
FALLBACK_MODEL = "inverse_k2"


def get_model(name: str) -> PerfusionModel:
    """The registered model called ``name``.

    Raises
    ------
    ValueError
        When there is none (the message lists the names).
    """
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"model={name!r} is not one of {', '.join(MODELS)}") from None


def default_model(exposure_s: float | None) -> str:
    """The model to use when none is chosen: :data:`DEFAULT_MODEL` when the exposure is known.

    Examples
    --------
    >>> default_model(0.005), default_model(None)
    ('inverse_tau', 'inverse_k2')
    """
    return DEFAULT_MODEL if exposure_s is not None else FALLBACK_MODEL


def model_of_product(parameters: Mapping[str, Any]) -> PerfusionModel | None:
    """The model a stored product's provenance parameters name, or None when they name none.

    Products written before this registry name their model by an older name (``"tau"``,
    ``"1/K2"``, ``"none"``); those are recognised too.
    """
    name = parameters.get("model")
    if not isinstance(name, str):
        return None
    if name in MODELS:
        return MODELS[name]
    for model in _ENTRIES:
        if name in model.stored_as:
            return model
    return None
