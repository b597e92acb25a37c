"""Calibrations: the coherence factor β, the dark frame and the camera's noise, and the
camera-noise correction of speckle contrast that applies them.

The calibration types are plain data (:mod:`lsci.calibration.stored`); :func:`calibrate_beta`,
which computes contrast, is imported on first use so that storage code reading these types does
not load the contrast kernels.
"""

from typing import TYPE_CHECKING, Any

from lsci.calibration.stored import (
    BETA_TOLERANCE,
    BetaCalibration,
    CalibrationError,
    CalibrationMismatchError,
    CalibrationWarning,
    CameraNoise,
    DarkFrame,
)

if TYPE_CHECKING:
    from lsci.calibration.beta import calibrate_beta

__all__ = [
    "BETA_TOLERANCE",
    "BetaCalibration",
    "CalibrationError",
    "CalibrationMismatchError",
    "CalibrationWarning",
    "CameraNoise",
    "DarkFrame",
    "calibrate_beta",
]


def __getattr__(name: str) -> Any:
    if name == "calibrate_beta":
        from lsci.calibration.beta import calibrate_beta

        return calibrate_beta
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
