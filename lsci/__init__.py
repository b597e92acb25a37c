"""lsci: laser speckle contrast imaging.

Camera frames become speckle contrast (:mod:`lsci.core.contrast`), contrast becomes perfusion
(:mod:`lsci.core.perfusion`), recordings live in HDF5 (:mod:`lsci.recording`), and before/after
maps are compared (:mod:`lsci.analysis.compare`). The everyday functions are available here
directly::

    import lsci
    k = lsci.spatial_contrast(frames, 7)
    rate = lsci.inverse_correlation_time(k, exposure_s=5e-3)

Everything else lives in the subpackages, named after their layer: ``core``, ``sim``,
``calibration``, ``recording``, ``acquisition``, ``processing``, ``analysis``, ``viz``, ``cli``.
Drivers are :mod:`lsci.drivers`; the napari plugin is the separate import ``napari_lsci``.

The names below are imported on first use (PEP 562), so ``import lsci`` (and
``import lsci.drivers``) loads none of the numerical or storage modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lsci._version import __version__

if TYPE_CHECKING:
    from lsci.analysis.compare import compare_before_after
    from lsci.calibration.beta import calibrate_beta
    from lsci.core.contrast import spatial_contrast, spatiotemporal_contrast, temporal_contrast
    from lsci.core.perfusion import (
        correlation_time,
        inverse_correlation_time,
        relative_perfusion,
        speckle_flow_index,
    )
    from lsci.recording.reader import open_recording

# Public name -> module that defines it.
_LAZY = {
    "spatial_contrast": "lsci.core.contrast",
    "temporal_contrast": "lsci.core.contrast",
    "spatiotemporal_contrast": "lsci.core.contrast",
    "correlation_time": "lsci.core.perfusion",
    "inverse_correlation_time": "lsci.core.perfusion",
    "speckle_flow_index": "lsci.core.perfusion",
    "relative_perfusion": "lsci.core.perfusion",
    "calibrate_beta": "lsci.calibration.beta",
    "open_recording": "lsci.recording.reader",
    "compare_before_after": "lsci.analysis.compare",
}

__all__ = [
    "__version__",
    "calibrate_beta",
    "compare_before_after",
    "correlation_time",
    "inverse_correlation_time",
    "open_recording",
    "relative_perfusion",
    "spatial_contrast",
    "spatiotemporal_contrast",
    "speckle_flow_index",
    "temporal_contrast",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lsci' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
