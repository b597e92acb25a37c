"""What the processing engine computes: :class:`ProcessingSettings`.

Output maps
-----------
A mode without a temporal window (``'spatial'``)
    One K map per frame, or the mean K of ``average`` consecutive frames (K is averaged, not K²,
    as FOIL's speckle software does).
A mode with one (``'temporal'``, ``'spatiotemporal'``)
    One K map per window of ``frames_window`` frames, windows starting every ``step`` frames
    (default: non-overlapping), as :func:`lsci.core.contrast.temporal_contrast` defines them.

The modes are those of :data:`lsci.core.modes.MODES`, the perfusion models those of
:data:`lsci.core.models.MODELS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lsci.core.contrast import EDGE_MODES, Edges
from lsci.core.models import PerfusionModel, default_model, get_model
from lsci.core.modes import ContrastMode, get_mode

__all__ = ["DEFAULT_AVERAGE", "ProcessingSettings"]

#: Frames averaged into one map by default by ``lsci process`` and the napari Process widget:
#: 8 frames (80 ms at 100 frames/s, 40 ms at 200) resolve the cardiac pulse (≈ 1 s) while the
#: K of 8 frames is 8× less noisy than one frame's. Commercial and published LSCI systems
#: average a few frames to a few tens of milliseconds per map in the same way.
DEFAULT_AVERAGE = 8


@dataclass(frozen=True)
class ProcessingSettings:
    """How to turn raw frames into contrast and perfusion maps.

    Parameters
    ----------
    mode : str
        Which samples make up one contrast value: a name in :data:`lsci.core.modes.MODES`.
    window : int
        Spatial window side in pixels (odd, ≥ 3); unused by modes without a spatial window.
    frames_window : int
        Frames per temporal window, ≥ 2; unused by modes without a temporal window.
    step : int or None
        Frames between the starts of consecutive temporal windows; None = ``frames_window``.
    average : int
        Modes without a temporal window: consecutive per-frame K maps averaged into one map.
    ddof : {0, 1}
        Variance divisor n − ddof.
    edges : str
        Spatial border handling (:data:`lsci.core.contrast.EDGE_MODES`).
    model : str or None
        Perfusion model, a name in :data:`lsci.core.models.MODELS`; None chooses
        :func:`lsci.core.models.default_model` for ``exposure_s`` (1/τc when the exposure is
        known, else 1/K²).
    exposure_s : float or None
        Exposure time in seconds, needed by models that say so (``inverse_tau``).
    beta : float or None
        Coherence factor β in (0, 1], used by models that say so. None: the β calibration
        given to the engine (checked against mode, window and ddof), else 1.

    Raises
    ------
    ValueError
        When a setting is invalid, the mode or model is unknown, or the model needs the
        exposure time and none is given.
    """

    mode: str = "spatial"
    window: int = 7
    frames_window: int = 25
    step: int | None = None
    average: int = 1
    ddof: int = 0
    edges: Edges = "reflect"
    model: str | None = None
    exposure_s: float | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        get_mode(self.mode)
        if self.model is None:
            object.__setattr__(self, "model", default_model(self.exposure_s))
        model = self.perfusion_model
        if self.edges not in EDGE_MODES:
            raise ValueError(f"edges={self.edges!r} is not one of {', '.join(EDGE_MODES)}")
        for name in ("window", "frames_window", "average"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive whole number")
        mode = self.contrast_mode
        if mode.spatial and (self.window < 3 or self.window % 2 == 0):
            raise ValueError(
                f"window={self.window} must be odd and ≥ 3 (a square centred on its pixel)"
            )
        if mode.temporal and self.frames_window < 2:
            raise ValueError(f"frames_window={self.frames_window} must be ≥ 2 frames")
        if self.step is not None and (not isinstance(self.step, int) or self.step < 1):
            raise ValueError(f"step={self.step!r} must be a positive whole number or None")
        if self.ddof not in (0, 1):
            raise ValueError(f"ddof={self.ddof!r} must be 0 or 1")
        if self.exposure_s is not None and not (0 < self.exposure_s < float("inf")):
            raise ValueError(f"exposure_s={self.exposure_s!r} must be a time > 0 in seconds")
        if model.needs_exposure and (self.exposure_s is None or not self.exposure_s > 0):
            raise ValueError(
                f"model={model.name!r} needs the exposure time: exposure_s={self.exposure_s!r} "
                "must be > 0 (the recording's metadata gives it when it was recorded)"
            )
        if self.beta is not None and not 0 < self.beta <= 1:  # NaN fails too
            raise ValueError(f"beta={self.beta!r} must be in (0, 1] (or None: calibrated)")

    @property
    def contrast_mode(self) -> ContrastMode:
        """The registry entry of :attr:`mode`."""
        return get_mode(self.mode)

    @property
    def perfusion_model(self) -> PerfusionModel:
        """The registry entry of :attr:`model`."""
        return get_model(str(self.model))

    @property
    def algorithm(self) -> str:
        """What computes the maps, as the provenance of derived products names it."""
        return f"lsci.processing {self.mode}"

    @property
    def frames_per_map(self) -> int:
        """Raw frames that one output map is computed from."""
        return self.frames_window if self.contrast_mode.temporal else self.average

    @property
    def frames_between_maps(self) -> int:
        """Raw frames between the first frames of consecutive output maps."""
        if not self.contrast_mode.temporal:
            return self.average
        return self.step if self.step is not None else self.frames_window

    @property
    def calibration_window(self) -> int:
        """The window a β calibration for these settings was measured with."""
        mode = self.contrast_mode
        return self.window if mode.spatial else self.frames_window

    def n_maps(self, n_frames: int) -> int:
        """Number of output maps from ``n_frames`` raw frames (incomplete windows are dropped)."""
        if n_frames < self.frames_per_map:
            return 0
        return (n_frames - self.frames_per_map) // self.frames_between_maps + 1

    def frames_for(self, first_map: int, stop_map: int) -> tuple[int, int]:
        """The raw frame range ``[start, stop)`` that output maps ``[first_map, stop_map)`` need."""
        start = first_map * self.frames_between_maps
        stop = (stop_map - 1) * self.frames_between_maps + self.frames_per_map
        return start, stop

    def check_frames(self, frame_shape: tuple[int, ...]) -> None:
        """Refuse frames the spatial window does not fit in.

        Raises
        ------
        ValueError
            When the window is larger than the frames.
        """
        height, width = frame_shape[-2:]
        if self.contrast_mode.spatial and self.window > min(height, width):
            raise ValueError(
                f"window={self.window} is larger than the {height}×{width} frames "
                f"(at most {min(height, width)})"
            )

    def map_shape(self, frame_shape: tuple[int, ...]) -> tuple[int, int]:
        """Shape of one output map from frames of ``frame_shape`` ('valid' edges crop it)."""
        height, width = frame_shape[-2:]
        if self.edges == "valid" and self.contrast_mode.spatial:
            return height - self.window + 1, width - self.window + 1
        return height, width

    def parameters(self) -> dict[str, Any]:
        """Every setting that changes the result: the provenance of the derived products.

        The perfusion product states its model (``model``) and unit (``perfusion_unit``).
        """
        params = asdict(self)
        mode = self.contrast_mode
        if mode.temporal:
            params["step"] = self.frames_between_maps
            del params["average"]
        else:
            del params["frames_window"], params["step"]
        if not mode.spatial:
            del params["window"], params["edges"]
        model = self.perfusion_model
        if not model.needs_exposure:
            del params["exposure_s"]
        if not model.uses_beta:
            del params["beta"]
        if model.derived:
            params["perfusion_unit"] = model.unit
        return params
