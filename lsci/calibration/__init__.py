"""Calibrations: the coherence factor β, the dark frame and the camera's noise, and the
camera-noise correction of speckle contrast that applies them."""

from lsci.calibration.beta import calibrate_beta
from lsci.calibration.stored import (
    BETA_TOLERANCE,
    BetaCalibration,
    CalibrationError,
    CalibrationMismatchError,
    CalibrationWarning,
    CameraNoise,
    DarkFrame,
)

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
