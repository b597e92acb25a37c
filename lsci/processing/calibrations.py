"""The calibrations the processing engine applies, and how they meet the settings.

:class:`Calibrations` holds a dark frame, the camera's noise and a β calibration;
:meth:`Calibrations.from_recording` reads those a recording stores, and :func:`resolve` checks
them against the settings and decides β. Every path through the engine (an in-memory stack, a
recording on this machine or on a cluster, a time window of a recording) goes through
:func:`resolve`, so a recording's calibrations are applied the same way everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from lsci.calibration import BetaCalibration, CameraNoise, DarkFrame
from lsci.processing.settings import ProcessingSettings
from lsci.recording import Recording, load_calibration

__all__ = ["Calibrations", "resolve"]


@dataclass(frozen=True)
class Calibrations:
    """Calibrations applied when contrast and perfusion are computed.

    Parameters
    ----------
    dark : DarkFrame, optional
        Subtracted from every frame (:func:`lsci.calibration.noise.subtract_dark`).
    camera : CameraNoise, optional
        Gain and read noise: the camera-noise bias of K² (shot, read and quantisation noise;
        Kim et al., Commun Biol 6:844, 2023) is removed
        (:func:`lsci.calibration.noise.fundamental_k2`), and K is the square root of the
        corrected K² (0 where noise exceeds the measured variance). Supported by the modes
        whose registry entry says so (:data:`lsci.core.modes.MODES`), temporal ones in
        non-overlapping windows.
    beta : BetaCalibration, optional
        β of the optics, used by models that need β when the settings give none; it must
        have been measured with the settings' mode, window and ddof.
    """

    dark: DarkFrame | None = None
    camera: CameraNoise | None = None
    beta: BetaCalibration | None = None

    @classmethod
    def from_recording(cls, recording: Recording, settings: ProcessingSettings) -> Calibrations:
        """The calibrations a recording stores that apply to ``settings``.

        The dark frame and camera noise always apply; the β calibration only when the model
        uses β and ``settings.beta`` is None (an explicit β is the user's choice).

        Raises
        ------
        lsci.calibration.CalibrationError
            When a stored calibration cannot be read as its kind.
        """
        stored = recording.calibrations

        def load(kind: Any) -> Any:
            return load_calibration(recording, kind) if kind.default_name in stored else None

        wants_beta = settings.perfusion_model.uses_beta and settings.beta is None
        return cls(
            load(DarkFrame), load(CameraNoise), load(BetaCalibration) if wants_beta else None
        )

    def parameters(self) -> dict[str, Any]:
        """What is applied, for the provenance of derived products and comparison reports."""
        applied: dict[str, Any] = {}
        if self.dark is not None:
            applied["dark_frame_frames"] = self.dark.n_frames
            applied["dark_frame_mean_adu"] = round(float(np.mean(self.dark.mean)), 6)
        if self.camera is not None:
            applied["gain_adu_per_e"] = self.camera.gain_adu_per_e
            applied["read_noise_e"] = self.camera.read_noise_e
        if self.beta is not None:
            applied["beta_calibration_frames"] = self.beta.n_frames
        return applied


def resolve(
    settings: ProcessingSettings,
    calibrations: Calibrations | None,
    frame_shape: tuple[int, ...],
) -> tuple[ProcessingSettings, Calibrations]:
    """Check calibrations against the settings and frames, and settle β.

    Parameters
    ----------
    settings : ProcessingSettings
        What to compute.
    calibrations : Calibrations or None
        What to apply.
    frame_shape : tuple of int
        ``(H, W)`` of the raw frames.

    Returns
    -------
    settings : ProcessingSettings
        With ``beta`` set: as given, else the β calibration's, else 1.
    calibrations : Calibrations
        Those applied: the β calibration is dropped when it is not used.

    Raises
    ------
    ValueError
        When the spatial window does not fit in the frames, the dark frame was taken with
        another region of interest, or camera-noise
        correction is not defined for the mode (or for overlapping temporal windows).
    lsci.calibration.CalibrationMismatchError
        When the β calibration was measured with other contrast settings.
    """
    settings.check_frames(frame_shape)
    calibrations = Calibrations() if calibrations is None else calibrations
    if calibrations.dark is not None and calibrations.dark.shape != tuple(frame_shape[-2:]):
        raise ValueError(
            f"the dark frame is {calibrations.dark.shape}, the frames {tuple(frame_shape[-2:])}: "
            "it was taken with another region of interest"
        )
    mode = settings.contrast_mode
    if calibrations.camera is not None and (
        not mode.noise_correction
        or (mode.temporal and settings.frames_between_maps != settings.frames_window)
    ):
        raise ValueError(
            "camera-noise correction is not defined for "
            f"mode={settings.mode!r} with step={settings.frames_between_maps} (it applies to "
            "spatial contrast and to temporal contrast in non-overlapping windows); drop the "
            "camera-noise calibration or use such a mode"
        )
    beta = settings.beta
    used = calibrations.beta
    if not settings.perfusion_model.uses_beta or beta is not None:
        used = None
    elif used is not None:
        beta = used.beta_for(
            mode=settings.mode, window=settings.calibration_window, ddof=settings.ddof
        )
    settings = dataclasses.replace(settings, beta=1.0 if beta is None else beta)
    return settings, dataclasses.replace(calibrations, beta=used)
