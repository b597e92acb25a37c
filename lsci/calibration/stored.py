"""Calibrations: the coherence factor β, the dark frame and the camera's noise parameters.

Each calibration is a frozen dataclass that describes itself as plain arrays and attributes
(:meth:`~BetaCalibration.to_arrays_attrs` / :meth:`~BetaCalibration.from_arrays_attrs`; no
pickle, no file format). Storage owns persistence: :func:`lsci.recording.calibration.
store_calibration` and :func:`lsci.recording.calibration.load_calibration` keep them in a
recording. The attributes carry ``lsci_calibration`` naming the class, so data of another kind
is refused with a clear error.

β policy
--------
β must lie in (0, 1]. A measured ⟨K²⟩ of a static target may come out slightly above 1 from
sampling noise of the estimate or a little fixed-pattern or illumination non-uniformity; values up
to ``1 + BETA_TOLERANCE`` (1.05) are clipped to 1 with a :class:`CalibrationWarning`. A larger
value, or β ≤ 0, means the recording is not one of fully developed static speckle (non-uniform
illumination, a structured target, saturation) and raises :class:`CalibrationError`. A
:class:`BetaCalibration` constructed directly with β outside (0, 1] raises ValueError.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

from lsci._arrays import as_int, as_real
from lsci.errors import LsciError

__all__ = [
    "BETA_TOLERANCE",
    "BetaCalibration",
    "CalibrationError",
    "CalibrationMismatchError",
    "CalibrationWarning",
    "CameraNoise",
    "DarkFrame",
]

#: Measured β up to 1 + this is clipped to 1 with a warning; above it is an error.
BETA_TOLERANCE = 0.05

ContrastMode = Literal["spatial", "temporal"]
_MODES = ("spatial", "temporal")
_KIND_ATTR = "lsci_calibration"


class CalibrationError(LsciError):
    """A calibration cannot be made or loaded from the data given."""


class CalibrationMismatchError(CalibrationError):
    """A calibration is used with other contrast settings than it was measured with."""


class CalibrationWarning(UserWarning):
    """A calibration was adjusted (for example β clipped to 1); the message says how."""


class _Stored(ABC):
    """The arrays-and-attributes form shared by the calibration dataclasses.

    A subclass lists its arrays and attributes in :meth:`_payload` and rebuilds itself from
    them in :meth:`_from_payload`.
    """

    _kind: ClassVar[str]
    default_name: ClassVar[str]

    @abstractmethod
    def _payload(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        """The arrays and attributes (without the kind attribute)."""

    @classmethod
    @abstractmethod
    def _from_payload(
        cls, arrays: Mapping[str, npt.NDArray[Any]], attrs: Mapping[str, Any]
    ) -> Self:
        """Rebuild from :meth:`_payload` output; KeyError/TypeError/ValueError when invalid."""

    def to_arrays_attrs(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        """The arrays and attributes that represent this calibration (for a calibration store).

        Returns
        -------
        arrays : dict of str to ndarray
        attrs : dict of str to str, int, float or bool
        """
        arrays, attrs = self._payload()
        return arrays, {_KIND_ATTR: self._kind, **attrs}

    @classmethod
    def from_arrays_attrs(
        cls,
        arrays: Mapping[str, npt.NDArray[Any]],
        attrs: Mapping[str, Any],
        *,
        source: str = "calibration",
    ) -> Self:
        """Rebuild a calibration from :meth:`to_arrays_attrs` output.

        Raises
        ------
        CalibrationError
            If the attributes name another kind of calibration or a field is missing or invalid.
        """
        kind = _decode(attrs.get(_KIND_ATTR))
        if kind != cls._kind:
            raise CalibrationError(
                f"{source} holds {'no lsci calibration' if kind is None else repr(kind)}, "
                f"not a {cls._kind}"
            )
        clean = {name: _decode(value) for name, value in attrs.items()}
        try:
            return cls._from_payload(arrays, clean)
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{source} is not a valid {cls._kind}: {exc}") from None


@dataclass(frozen=True, eq=False)
class BetaCalibration(_Stored):
    """The coherence factor β measured on a static target, with the settings it is valid for.

    Attributes
    ----------
    beta : float
        β = ⟨K²⟩ over the pixels and frames of the static target, in (0, 1].
    mode : {'spatial', 'temporal'}
        Contrast used.
    window : int
        Window: side w of the w × w spatial window, or number of frames N of the temporal one.
    ddof : int
        Variance divisor n − ddof used.
    beta_median : float
        Median over pixels of the per-pixel β map (robust check on ``beta``).
    k2_spread : float
        Standard deviation over pixels of the per-pixel β map (how uniform the target is).
    n_frames : int
        Frames of the calibration recording.
    beta_map : ndarray or None
        Per-pixel ⟨K²⟩ over the frames (float32); None when not kept.
    exposure_s : float or None
        Exposure of the calibration recording, for the record (β does not depend on it).
    """

    beta: float
    mode: ContrastMode
    window: int
    ddof: int
    beta_median: float
    k2_spread: float
    n_frames: int
    beta_map: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    exposure_s: float | None = None

    _kind: ClassVar[str] = "BetaCalibration"
    default_name: ClassVar[str] = "beta"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and 0.0 < self.beta <= 1.0):
            raise ValueError(f"beta must lie in (0, 1], got {self.beta}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        _check_window(self.mode, self.window)
        if self.ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1, got {self.ddof!r}")
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if self.exposure_s is not None and not self.exposure_s > 0:
            raise ValueError(f"exposure_s must be > 0 seconds or None, got {self.exposure_s}")
        if self.beta_map is not None and np.asarray(self.beta_map).ndim != 2:
            raise ValueError(f"beta_map must be 2-D, got shape {np.shape(self.beta_map)}")

    def check_settings(self, *, mode: str, window: int, ddof: int = 0) -> None:
        """Raise unless the contrast settings are those this β was measured with.

        β depends on the window through the finite-window bias of the variance estimate, so a β
        from a 7 × 7 spatial window is wrong for a 5 × 5 one, and a spatial β is wrong for
        temporal contrast.

        Raises
        ------
        CalibrationMismatchError
            Naming every setting that differs.
        """
        wanted = {"mode": self.mode, "window": self.window, "ddof": self.ddof}
        given = {"mode": mode, "window": window, "ddof": ddof}
        differ = [f"{k}={given[k]!r} (calibrated: {wanted[k]!r})" for k in wanted
                  if given[k] != wanted[k]]  # fmt: skip
        if differ:
            raise CalibrationMismatchError(
                "the β calibration was measured with other contrast settings: "
                + ", ".join(differ)
                + "; recalibrate on a static target with the measurement's settings"
            )

    def beta_for(self, *, mode: str, window: int, ddof: int = 0) -> float:
        """β, after checking the settings (:meth:`check_settings`)."""
        self.check_settings(mode=mode, window=window, ddof=ddof)
        return self.beta

    def _payload(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        arrays: dict[str, npt.NDArray[Any]] = {"beta": np.asarray(self.beta, dtype=np.float64)}
        if self.beta_map is not None:
            arrays["beta_map"] = np.asarray(self.beta_map, dtype=np.float32)
        attrs: dict[str, Any] = {
            "mode": self.mode,
            "window": int(self.window),
            "ddof": int(self.ddof),
            "beta_median": float(self.beta_median),
            "k2_spread": float(self.k2_spread),
            "n_frames": int(self.n_frames),
        }
        if self.exposure_s is not None:
            attrs["exposure_s"] = float(self.exposure_s)
        return arrays, attrs

    @classmethod
    def _from_payload(
        cls, arrays: Mapping[str, npt.NDArray[Any]], attrs: Mapping[str, Any]
    ) -> BetaCalibration:
        beta_map = arrays.get("beta_map")
        exposure = attrs.get("exposure_s")
        return cls(
            beta=float(arrays["beta"]),
            mode=str(attrs["mode"]),  # type: ignore[arg-type]  # validated in __post_init__
            window=int(attrs["window"]),
            ddof=int(attrs["ddof"]),
            beta_median=float(attrs["beta_median"]),
            k2_spread=float(attrs["k2_spread"]),
            n_frames=int(attrs["n_frames"]),
            beta_map=None if beta_map is None else np.asarray(beta_map, dtype=np.float32),
            exposure_s=None if exposure is None else float(exposure),
        )


@dataclass(frozen=True, eq=False)
class DarkFrame(_Stored):
    """Per-pixel mean and variance of frames taken with the laser off (or the lens capped).

    Attributes
    ----------
    mean : (M, N) ndarray of float32
        Dark level per pixel, ADU (offset, dark current).
    variance : (M, N) ndarray of float32
        Temporal variance per pixel (ddof = 1), ADU²: read noise, dark-current shot noise and
        the quantisation noise of the dark signal.
    n_frames : int
        Frames averaged (≥ 2).
    exposure_s : float or None
        Exposure of the dark frames (dark current scales with it).
    """

    mean: npt.NDArray[np.float32] = field(repr=False)
    variance: npt.NDArray[np.float32] = field(repr=False)
    n_frames: int
    exposure_s: float | None = None

    _kind: ClassVar[str] = "DarkFrame"
    default_name: ClassVar[str] = "dark_frame"

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean)
        variance = np.asarray(self.variance)
        if mean.ndim != 2 or mean.shape != variance.shape:
            raise ValueError(
                f"mean and variance must be 2-D maps of one shape, got {mean.shape} and "
                f"{variance.shape}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance))):
            raise ValueError("mean and variance must be finite")
        if np.any(variance < 0):
            raise ValueError("variance must be >= 0")
        if self.n_frames < 2:
            raise ValueError(f"n_frames must be >= 2, got {self.n_frames}")
        if self.exposure_s is not None and not self.exposure_s > 0:
            raise ValueError(f"exposure_s must be > 0 seconds or None, got {self.exposure_s}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the maps."""
        rows, cols = np.shape(self.mean)
        return int(rows), int(cols)

    @classmethod
    def from_frames(cls, frames: npt.ArrayLike, *, exposure_s: float | None = None) -> DarkFrame:
        """Measure a dark frame from a stack of dark frames.

        Parameters
        ----------
        frames : (T, M, N) array_like
            T ≥ 2 raw dark frames (any real dtype), taken with the measurement's exposure and
            gain.
        exposure_s : float, optional
            Their exposure time, seconds.

        Returns
        -------
        DarkFrame
            Mean and variance (ddof = 1) per pixel, accumulated in float64, stored as float32.

        Raises
        ------
        ValueError
            If ``frames`` is not a stack of at least 2 frames.
        TypeError
            If ``frames`` does not hold real numbers.

        Examples
        --------
        >>> dark = DarkFrame.from_frames(np.array([[[100, 102]], [[102, 102]]], np.uint16))
        >>> dark.mean, dark.variance
        (array([[101., 102.]], dtype=float32), array([[2., 0.]], dtype=float32))
        """
        stack = np.asarray(frames)
        if stack.ndim != 3 or stack.shape[0] < 2:
            raise ValueError(f"frames must be a (T, M, N) stack with T >= 2, got {stack.shape}")
        values = as_real("frames", stack).astype(np.float64)
        return cls(
            mean=values.mean(axis=0).astype(np.float32),
            variance=values.var(axis=0, ddof=1).astype(np.float32),
            n_frames=int(stack.shape[0]),
            exposure_s=exposure_s,
        )

    def _payload(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        attrs: dict[str, Any] = {"n_frames": int(self.n_frames)}
        if self.exposure_s is not None:
            attrs["exposure_s"] = float(self.exposure_s)
        arrays = {
            "mean": np.asarray(self.mean, dtype=np.float32),
            "variance": np.asarray(self.variance, dtype=np.float32),
        }
        return arrays, attrs

    @classmethod
    def _from_payload(
        cls, arrays: Mapping[str, npt.NDArray[Any]], attrs: Mapping[str, Any]
    ) -> DarkFrame:
        exposure = attrs.get("exposure_s")
        return cls(
            mean=np.asarray(arrays["mean"], dtype=np.float32),
            variance=np.asarray(arrays["variance"], dtype=np.float32),
            n_frames=int(attrs["n_frames"]),
            exposure_s=None if exposure is None else float(exposure),
        )


@dataclass(frozen=True)
class CameraNoise(_Stored):
    """Camera conversion gain and read noise, as the camera's data sheet states them.

    Attributes
    ----------
    gain_adu_per_e : float
        Conversion gain, ADU per photoelectron (> 0). The inverse of the "e⁻/ADU" that data
        sheets often quote.
    read_noise_e : float
        Read noise, electrons RMS (≥ 0).
    """

    gain_adu_per_e: float
    read_noise_e: float

    _kind: ClassVar[str] = "CameraNoise"
    default_name: ClassVar[str] = "camera_noise"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gain_adu_per_e) and self.gain_adu_per_e > 0):
            raise ValueError(f"gain_adu_per_e must be > 0, got {self.gain_adu_per_e}")
        if not (math.isfinite(self.read_noise_e) and self.read_noise_e >= 0):
            raise ValueError(f"read_noise_e must be >= 0, got {self.read_noise_e}")

    @property
    def read_noise_adu(self) -> float:
        """Read noise in ADU RMS: ``gain_adu_per_e · read_noise_e``."""
        return self.gain_adu_per_e * self.read_noise_e

    def _payload(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        # Stored as scalar datasets: a calibration store wants at least one array.
        return {
            "gain_adu_per_e": np.asarray(self.gain_adu_per_e, dtype=np.float64),
            "read_noise_e": np.asarray(self.read_noise_e, dtype=np.float64),
        }, {}

    @classmethod
    def _from_payload(
        cls, arrays: Mapping[str, npt.NDArray[Any]], attrs: Mapping[str, Any]
    ) -> CameraNoise:
        return cls(
            gain_adu_per_e=float(arrays["gain_adu_per_e"]),
            read_noise_e=float(arrays["read_noise_e"]),
        )


def _check_window(mode: str, window: int) -> None:
    window = as_int(window, "window")
    if mode == "spatial" and (window < 3 or window % 2 == 0):
        raise ValueError(f"spatial window must be odd and >= 3, got {window}")
    if mode == "temporal" and window < 2:
        raise ValueError(f"temporal window must be >= 2 frames, got {window}")


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value
