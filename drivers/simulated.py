"""A simulated laser speckle camera with a known truth, for demos, tests and benchmarks.

:class:`SimulatedCamera` implements :class:`~lsci.drivers.base.Camera` like any vendor
driver. Its frames come from the physical speckle model of :mod:`lsci.sim.speckle`: a correlation
time map τc(x, y) (a :class:`SpeckleScene`, by default a skin patch with an ischemic region),
an exposure that really changes the contrast K, shot and read noise, and the bit depth of the
pixel format (``Mono8``, ``Mono12``, ``Mono16``).

How it behaves like a camera:

- A device thread produces frames paced in real time at the frame interval
  ``max(1 / frame_rate_hz, exposure_s)`` (a long exposure lowers the frame rate, as on most
  cameras) and hands them to a transport queue of ``buffer_frames`` buffers. When the reader
  falls behind and every buffer is full, the newest frame is lost, and only its frame id
  records it: exactly what a GenTL stream does.
- Frame ids count from 0 at every :meth:`~lsci.drivers.base.Camera.start`; camera time stamps
  come from a simulated camera clock (nanoseconds since the camera was opened) and mark the
  start of each exposure; host time stamps mark the frame's arrival in the queue.
- When generating a frame takes longer than the frame interval (large regions of interest in
  ``"physical"`` mode), the device runs late instead of dropping: ids stay contiguous and the
  time stamps show the achieved rate. ``"replay"`` mode generates a few frames per scene phase
  at :meth:`start` and loops them, for throughput tests at hundreds of frames per second; it
  keeps its schedule like a hardware clock, catching up after the device thread was delayed.
- Scene changes (:class:`FlowChange`, e.g. perfusion recovering after needling) happen at fixed
  times since the start of the acquisition; :meth:`SimulatedCamera.tau_c_at` returns the true
  τc map at any time.
- :class:`SimulatedFaults` injects dropped frames and a disconnection for reliability tests.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from lsci.sim.needling import NeedlingScene
from lsci.sim.speckle import SpeckleSimulator

from . import pixel_formats
from .base import (
    Camera,
    CameraDisconnectedError,
    Capability,
    Frame,
    Range,
    Roi,
    RoiLimits,
    SettingValue,
    TriggerMode,
)

__all__ = [
    "MAX_SENSOR_PX",
    "PIXEL_FORMATS",
    "FlowChange",
    "SimulatedCamera",
    "SimulatedFaults",
    "SpeckleScene",
    "decode_frame_id",
]

PIXEL_FORMATS: Final = ("Mono8", "Mono12", "Mono16")
"""The pixel formats the simulated camera offers."""

Mode = Literal["physical", "replay"]
RawFrame = npt.NDArray[np.uint8] | npt.NDArray[np.uint16]

_EXPOSURE_RANGE_S: Final = Range(1e-5, 1.0)
_FRAME_RATE_RANGE_HZ: Final = Range(1.0, 1000.0)
_GAIN_RANGE_DB: Final = Range(0.0, 24.0)
_MIN_ROI_PX: Final = 16
#: The longest side of a simulated sensor, in pixels. The simulator holds several float64 maps
#: and the replay frames of the sensor's size (about 250 bytes a pixel, 4 GiB at the limit).
MAX_SENSOR_PX: Final = 4096
# Mean raw level of a fully lit pixel at 0 dB, as a fraction of full scale: bright enough for
# good photon statistics, with headroom for the bright tail of the speckle histogram.
_MEAN_LEVEL: Final = 0.12
_SIGNAL_E: Final = 4000.0
_READ_NOISE_E: Final = 3.0
_GRAIN_PX: Final = 3.0
# Frame ids are written into the first pixels of row 0 one byte per pixel, little-endian.
_ID_PIXELS: Final = 8
# The device thread polls its stop flag at least this often while it waits for a frame time.
_POLL_S: Final = 0.05


@dataclass(frozen=True)
class FlowChange:
    """A scripted change of the flow, from ``time_s`` after the acquisition starts.

    Attributes
    ----------
    time_s
        Seconds since :meth:`~lsci.drivers.base.Camera.start` (>= 0).
    flow_factor
        Flow is multiplied by this (> 0) where ``where`` is true: τc is divided by it.
    where
        Boolean mask of the sensor's shape, or weights in [0, 1] that grade the change (the
        flow is multiplied by ``flow_factor ** weight``: a soft edge); None changes every pixel.
    label
        What happened, e.g. ``"needling"``.
    """

    time_s: float
    flow_factor: float
    where: npt.NDArray[np.bool_] | npt.NDArray[np.float64] | None = field(
        default=None, compare=False
    )
    label: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_s) and self.time_s >= 0):
            raise ValueError(f"time_s={self.time_s!r} must be a finite number of seconds >= 0")
        if not (math.isfinite(self.flow_factor) and self.flow_factor > 0):
            raise ValueError(f"flow_factor={self.flow_factor!r} must be a finite number > 0")


def check_sensor_shape(shape: object) -> tuple[int, int]:
    """``(height, width)`` of a simulated sensor, checked before anything of its size exists.

    Raises
    ------
    ValueError
        Unless both are integers from 16 to :data:`MAX_SENSOR_PX`.
    """
    sides = tuple(shape) if isinstance(shape, tuple | list) else ()
    if len(sides) != 2 or not all(
        isinstance(side, int | np.integer)
        and not isinstance(side, bool)
        and _MIN_ROI_PX <= side <= MAX_SENSOR_PX
        for side in sides
    ):
        raise ValueError(
            f"sensor shape {shape!r} is invalid: height and width are whole pixels from "
            f"{_MIN_ROI_PX} to {MAX_SENSOR_PX}"
        )
    return int(sides[0]), int(sides[1])


class SpeckleScene:
    """What the simulated camera looks at: τc, illumination and scripted flow changes.

    Parameters
    ----------
    tau_c_s
        Correlation-time map of the whole sensor in seconds, shape ``(height, width)``, > 0.
    illumination
        Relative mean intensity, a scalar or a map of the same shape, >= 0.
    changes
        Flow changes; they apply in order of their times, each on top of the previous ones.

    Raises
    ------
    ValueError
        When a map has the wrong shape or values, or a change's mask the wrong shape.
    """

    def __init__(
        self,
        tau_c_s: npt.ArrayLike,
        *,
        illumination: npt.ArrayLike = 1.0,
        changes: Sequence[FlowChange] = (),
    ) -> None:
        tau = np.array(tau_c_s, dtype=np.float64)
        if tau.ndim != 2 or not (np.isfinite(tau).all() and (tau > 0).all()):
            raise ValueError("tau_c_s must be a 2-D map of finite correlation times > 0 s")
        check_sensor_shape(tau.shape)
        light = np.array(np.broadcast_to(np.asarray(illumination, np.float64), tau.shape))
        if not (np.isfinite(light).all() and (light >= 0).all()):
            raise ValueError("illumination must be finite and >= 0 everywhere")
        ordered = sorted(changes, key=lambda c: c.time_s)
        phases = [tau]
        for change in ordered:
            if change.where is not None and change.where.shape != tau.shape:
                raise ValueError(
                    f"the mask of change {change.label!r} has shape {change.where.shape}, "
                    f"the scene {tau.shape}"
                )
            weight = np.asarray(1.0 if change.where is None else change.where, np.float64)
            if not (np.isfinite(weight).all() and (weight >= 0).all() and (weight <= 1).all()):
                raise ValueError(f"the weights of change {change.label!r} must lie in [0, 1]")
            # flow_factor ** 0 is exactly 1 and ** 1 exactly flow_factor: a boolean mask
            # changes its pixels by the factor and leaves the others bit for bit.
            phases.append(phases[-1] / change.flow_factor**weight)
        self._phases = tuple(phases)
        self._illumination = light
        self.changes: tuple[FlowChange, ...] = tuple(ordered)
        for array in (*self._phases, self._illumination):
            array.flags.writeable = False

    @classmethod
    def needling(cls, scene: NeedlingScene) -> SpeckleScene:
        """The camera's view of a simulated needling session: its flow recovers on time.

        Parameters
        ----------
        scene
            The session (:class:`lsci.sim.needling.NeedlingScene`); its times count from the
            start of the acquisition.
        """
        change = FlowChange(
            scene.recovery_s, scene.recovery_factor, scene.recovery_weight(), "needling"
        )
        return cls(scene.tau_c_before(), illumination=scene.illumination(), changes=[change])

    @classmethod
    def skin(
        cls,
        shape: tuple[int, int] = (512, 512),
        *,
        baseline_tau_c_s: float = 1e-3,
        ischemic_factor: float = 5.0,
        needling_time_s: float | None = 20.0,
        recovery_factor: float = 3.0,
        seed: int = 0,
    ) -> SpeckleScene:
        """A skin patch with a vessel and a central ischemic region that recovers on needling.

        Parameters
        ----------
        shape
            Sensor ``(height, width)`` in pixels.
        baseline_tau_c_s
            τc of normally perfused skin in seconds.
        ischemic_factor
            τc in the ischemic region over the baseline (> 1: less flow).
        needling_time_s
            When the flow in the ischemic region recovers, in seconds after the start; None for
            no change.
        recovery_factor
            The flow in the needled part of the ischemic region is multiplied by this at
            ``needling_time_s`` (:class:`lsci.sim.needling.NeedlingScene`: a crescent of it
            stays occluded).
        seed
            Seed of the tissue texture.
        """
        shape = check_sensor_shape(shape)
        scene = NeedlingScene(
            shape,
            baseline_tau_c_s=baseline_tau_c_s,
            ischemic_factor=ischemic_factor,
            recovery_factor=recovery_factor,
            needling_start_s=0.0 if needling_time_s is None else needling_time_s,
            needling_end_s=0.0 if needling_time_s is None else needling_time_s,
            seed=seed,
        )
        if needling_time_s is None:
            return cls(scene.tau_c_before(), illumination=scene.illumination())
        return cls.needling(scene)

    @property
    def shape(self) -> tuple[int, int]:
        """Sensor ``(height, width)``."""
        height, width = self._phases[0].shape
        return int(height), int(width)

    @property
    def illumination(self) -> npt.NDArray[np.float64]:
        """The relative mean intensity map (read-only)."""
        return self._illumination

    def phase_at(self, time_s: float) -> int:
        """How many changes have happened ``time_s`` seconds after the start."""
        return sum(1 for change in self.changes if change.time_s <= time_s)

    def tau_c_at(self, time_s: float) -> npt.NDArray[np.float64]:
        """The true τc map (seconds, whole sensor, read-only) ``time_s`` after the start."""
        return self._phases[self.phase_at(time_s)]


@dataclass(frozen=True)
class SimulatedFaults:
    """Faults a :class:`SimulatedCamera` injects, for reliability tests.

    Attributes
    ----------
    drop_frame_ids
        Frame ids the camera numbers but never delivers.
    drop_probability
        Probability in [0, 1) that any other frame is lost the same way.
    disconnect_after_frames
        Frames delivered to the reader in an acquisition before the device disappears:
        the next read raises :class:`~lsci.drivers.base.CameraDisconnectedError`. None: never.
    seed
        Seed of the random drops.
    """

    drop_frame_ids: Collection[int] = frozenset()
    drop_probability: float = 0.0
    disconnect_after_frames: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_probability < 1.0:
            raise ValueError(f"drop_probability={self.drop_probability!r} must lie in [0, 1)")
        if self.disconnect_after_frames is not None and self.disconnect_after_frames < 0:
            raise ValueError(
                f"disconnect_after_frames={self.disconnect_after_frames!r} must be >= 0 or None"
            )
        object.__setattr__(self, "drop_frame_ids", frozenset(self.drop_frame_ids))


def decode_frame_id(frame: npt.NDArray[np.integer]) -> int:
    """The frame id a camera with ``stamp_frame_id=True`` wrote into the frame's first pixels."""
    digits = np.asarray(frame[0, :_ID_PIXELS], dtype=np.uint64) & np.uint64(0xFF)
    return int(sum(int(d) << (8 * i) for i, d in enumerate(digits)))


def _stamp(frame: RawFrame, frame_id: int) -> None:
    frame[0, :_ID_PIXELS] = [(frame_id >> (8 * i)) & 0xFF for i in range(_ID_PIXELS)]


@dataclass(frozen=True)
class _Settings:
    roi: Roi
    exposure_s: float = 5e-3
    gain_db: float = 0.0
    frame_rate_hz: float = 100.0
    pixel_format: str = "Mono8"

    @property
    def interval_s(self) -> float:
        return max(1.0 / self.frame_rate_hz, self.exposure_s)


class _Source:
    """Frames of one acquisition's settings: a live simulator or replay stacks per phase."""

    def __init__(
        self, scene: SpeckleScene, settings: _Settings, mode: Mode, replay: int, seed: int
    ) -> None:
        self.settings = settings
        self._scene = scene
        roi = settings.roi
        self._window = (
            slice(roi.offset_y, roi.offset_y + roi.height),
            slice(roi.offset_x, roi.offset_x + roi.width),
        )
        bits = pixel_formats.bit_depth(settings.pixel_format)
        gain = 10.0 ** (settings.gain_db / 20.0)
        self._simulator = SpeckleSimulator(
            (roi.height, roi.width),
            tau_c_s=scene.tau_c_at(0.0)[self._window],
            exposure_s=settings.exposure_s,
            frame_interval_s=settings.interval_s,
            grain_px=_GRAIN_PX,
            illumination=scene.illumination[self._window],
            mean_signal_e=_SIGNAL_E,
            gain_adu_per_e=gain * _MEAN_LEVEL * (2**bits - 1) / _SIGNAL_E,
            read_noise_e=_READ_NOISE_E,
            dark_offset_adu=0.01 * (2**bits - 1),
            bit_depth=bits,
            seed=seed,
        )
        self._phase = 0
        self._stacks: list[RawFrame] = []
        if mode == "replay":
            for phase in range(len(scene.changes) + 1):
                self._enter(phase)
                self._stacks.append(self._simulator.frames(replay))
        else:
            # One frame ahead: the kernels compile (or load) now, when the acquisition starts,
            # rather than while a reader waits for the first frame.
            self._simulator.next_frame()

    def retime(self, settings: _Settings) -> bool:
        """Follow new settings without simulating anew, if possible; False when it is not.

        Exposure and frame rate retime a live simulator. Replay stacks stay valid when only
        the frame rate changes: their frames are independent of the interval between them.
        """
        if settings == self.settings:
            return True
        same_layout = dataclasses.replace(
            settings, exposure_s=self.settings.exposure_s, frame_rate_hz=self.settings.frame_rate_hz
        )
        if same_layout != self.settings:
            return False
        if self._stacks:
            if settings.exposure_s != self.settings.exposure_s:
                return False
        else:
            self._simulator.set_exposure(settings.exposure_s, frame_interval_s=settings.interval_s)
        self.settings = settings
        return True

    def _enter(self, phase: int) -> None:
        if phase != self._phase:
            self._phase = phase
            start = 0.0 if phase == 0 else self._scene.changes[phase - 1].time_s
            self._simulator.set_tau_c(self._scene.tau_c_at(start)[self._window])

    def frame(self, index: int, time_s: float, pool: RawFrame | None) -> RawFrame:
        """Frame ``index`` at ``time_s`` since the start, written into ``pool`` unless replayed.

        A replayed frame is a read-only view of its stack.
        """
        phase = self._scene.phase_at(time_s)
        if self._stacks:
            stack = self._stacks[phase]
            view: RawFrame = stack[index % stack.shape[0]]
            return view
        self._enter(phase)
        assert pool is not None
        self._simulator.next_frame(out=pool)
        return pool


@dataclass
class _Delivered:
    frame_id: int
    camera_timestamp_ns: int
    host_timestamp_ns: int
    data: RawFrame
    pooled: bool


class SimulatedCamera(Camera):
    """A camera whose frames are simulated laser speckle with a known flow.

    Parameters
    ----------
    scene
        What the camera sees; its shape is the sensor's. Default: :meth:`SpeckleScene.skin` at
        512 × 512 with needling at 20 s.
    mode
        ``"physical"`` simulates every frame (exact dynamics, slow for large regions);
        ``"replay"`` simulates ``replay_frames`` frames per scene phase when acquisition starts
        and loops them.
    replay_frames
        Frames per phase in replay mode (>= 1).
    buffer_frames
        Transport buffers (>= 1): frames delivered but not yet read that the camera keeps.
    faults
        Injected faults; None for none.
    stamp_frame_id
        Write each frame's id into its first 8 pixels of row 0 (one byte each), so that a test
        can check which frame landed where with :func:`decode_frame_id`. In replay mode this
        costs one more copy per frame (the replayed frames are shared).
    seed
        Seed of the speckle, the noise and the random drops.

    Notes
    -----
    Settings: ``exposure_s`` 10 µs to 1 s, ``gain`` 0 to 24 dB, ``frame_rate_hz`` 1 to 1000,
    ``roi`` of at least 16 × 16 pixels, ``pixel_format`` among :data:`PIXEL_FORMATS`, and
    ``trigger_mode`` off (free running). Exposure, gain and frame rate may change while
    acquiring and apply from the next frame; in replay mode a change of exposure or gain
    simulates new replay frames first, which pauses the stream. Replay frames simulated for
    one acquisition serve the next one while the settings (frame rate aside) stay the same.

    Examples
    --------
    >>> with SimulatedCamera(SpeckleScene.skin((64, 64))) as cam:
    ...     cam.set("exposure_s", 0.002)
    ...     cam.start()
    ...     frame = cam.read(timeout_s=2.0)
    ...     rest = cam.stop()
    >>> frame.data.shape, frame.pixel_format
    ((64, 64), 'Mono8')
    """

    def __init__(
        self,
        scene: SpeckleScene | None = None,
        *,
        mode: Mode = "physical",
        replay_frames: int = 8,
        buffer_frames: int = 16,
        faults: SimulatedFaults | None = None,
        stamp_frame_id: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mode not in ("physical", "replay"):
            raise ValueError(f"mode={mode!r} is invalid: allowed 'physical' and 'replay'")
        for name, value in (("replay_frames", replay_frames), ("buffer_frames", buffer_frames)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        self.scene = SpeckleScene.skin() if scene is None else scene
        height, width = self.scene.shape
        if height < _MIN_ROI_PX or width < _MIN_ROI_PX:
            raise ValueError(
                f"the scene is {height} × {width} pixels; the sensor needs at least "
                f"{_MIN_ROI_PX} × {_MIN_ROI_PX}"
            )
        self.mode: Mode = mode
        self.faults = SimulatedFaults() if faults is None else faults
        self._replay_frames = replay_frames
        self._buffer_frames = buffer_frames
        self._stamp = stamp_frame_id
        self._seed = seed
        self._settings = _Settings(roi=Roi(0, 0, width, height))
        self._clock_origin_ns = 0
        self._source: _Source | None = None
        self._cond = threading.Condition()
        self._queue: collections.deque[_Delivered] = collections.deque()
        self._free: list[RawFrame] = []
        self._running = False
        self._device_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._start_ns = 0
        self._delivered = 0

    @property
    def name(self) -> str:
        """``"Simulated speckle camera"`` and its sensor size."""
        height, width = self.scene.shape
        return f"Simulated speckle camera ({width} × {height})"

    def tau_c_at(self, time_s: float) -> npt.NDArray[np.float64]:
        """The true τc (seconds) of the current region of interest, ``time_s`` after start."""
        roi = self._settings.roi
        window = self.scene.tau_c_at(time_s)
        return window[
            roi.offset_y : roi.offset_y + roi.height, roi.offset_x : roi.offset_x + roi.width
        ]

    # -- life cycle ---------------------------------------------------------------------
    def _do_open(self) -> None:
        self._clock_origin_ns = time.monotonic_ns()

    def _do_close(self) -> None:
        self._halt()
        self._source = None

    def _do_start(self) -> None:
        settings = self._settings
        # The frames simulated for an earlier acquisition serve again if nothing changed.
        if self._source is None or not self._source.retime(settings):
            self._source = self._build(settings)
        dtype = pixel_formats.output_dtype(settings.pixel_format)
        shape = self.frame_shape
        self._free = (
            []
            if self.mode == "replay"
            else [np.empty(shape, dtype) for _ in range(self._buffer_frames + 1)]
        )
        self._queue.clear()
        self._delivered = 0
        self._device_error = None
        self._running = True
        self._start_ns = time.monotonic_ns()
        self._thread = threading.Thread(
            target=self._produce, name="lsci-simulated-camera", daemon=True
        )
        self._thread.start()

    def _build(self, settings: _Settings) -> _Source:
        return _Source(self.scene, settings, self.mode, self._replay_frames, self._seed)

    def _halt(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _do_stop(self) -> list[Frame]:
        self._halt()
        pixel_format = self._settings.pixel_format
        bits = pixel_formats.bit_depth(pixel_format)
        frames = [
            Frame(
                data=item.data.copy(),
                frame_id=item.frame_id,
                camera_timestamp_ns=item.camera_timestamp_ns,
                host_timestamp_ns=item.host_timestamp_ns,
                pixel_format=pixel_format,
                bit_depth=bits,
            )
            for item in self._queue
        ]
        self._queue.clear()
        return frames

    # -- the device thread --------------------------------------------------------------
    def _produce(self) -> None:
        try:
            self._produce_frames()
        except BaseException as error:  # reported to the reader, like a failing transport
            with self._cond:
                self._device_error = error
                self._cond.notify_all()

    def _produce_frames(self) -> None:
        faults = self.faults
        rng = np.random.default_rng(faults.seed)
        origin = self._start_ns
        elapsed_ns = 0  # camera time of the next exposure start, since the start
        frame_id = 0
        while True:
            settings = self._settings
            source = self._source
            assert source is not None
            if not source.retime(settings):
                source = self._source = self._build(settings)
            interval_ns = round(settings.interval_s * 1e9)
            with self._cond:
                if not self._running:
                    return
                pool = self._free.pop() if self._free else None
            if pool is None and self.mode == "physical":
                # Every buffer waits for the reader: the camera loses this frame.
                data: RawFrame | None = None
            else:
                # The scene follows the camera clock, which keeps real time when the device
                # runs late: scripted changes happen when the time stamps say they do.
                scene_time_s = (origin - self._start_ns + elapsed_ns) / 1e9
                data = source.frame(frame_id, scene_time_s, pool)
                if self._stamp:
                    if data is not pool:  # a replayed frame is shared: stamp a private copy
                        data = data.copy()
                    _stamp(data, frame_id)
            # The frame is read out at the end of its interval. A device slowed down by
            # simulating runs on from now; in replay mode, where frames cost nothing to make,
            # lateness only means this thread waited for the interpreter, and the device keeps
            # its schedule, catching up, as a camera's clock does.
            due_ns = origin + elapsed_ns + interval_ns
            if not self._sleep_until(due_ns):
                return
            now = time.monotonic_ns()
            if self.mode == "physical" and now > due_ns + interval_ns:
                origin = now - elapsed_ns - interval_ns
            lost = (
                data is None
                or frame_id in faults.drop_frame_ids
                or (faults.drop_probability > 0 and rng.random() < faults.drop_probability)
            )
            with self._cond:
                if lost or len(self._queue) >= self._buffer_frames:
                    if pool is not None:
                        self._free.append(pool)
                else:
                    assert data is not None
                    self._queue.append(
                        _Delivered(
                            frame_id,
                            origin + elapsed_ns - self._clock_origin_ns,
                            time.monotonic_ns(),
                            data,
                            data is pool,
                        )
                    )
                    self._cond.notify_all()
            elapsed_ns += interval_ns
            frame_id += 1

    def _sleep_until(self, deadline_ns: int) -> bool:
        """Wait until ``deadline_ns`` (monotonic); False when the acquisition stopped."""
        with self._cond:
            while self._running:
                remaining_s = (deadline_ns - time.monotonic_ns()) / 1e9
                if remaining_s <= 0:
                    return True
                self._cond.wait(min(remaining_s, _POLL_S))
            return False

    # -- frames -------------------------------------------------------------------------
    def _do_read(self, timeout_s: float, out: RawFrame | None) -> Frame | None:
        limit = self.faults.disconnect_after_frames
        if limit is not None and self._delivered >= limit:
            raise CameraDisconnectedError(
                f"{self.name} disconnected after {limit} frames (injected fault)"
            )
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._queue:
                if self._device_error is not None:
                    raise CameraDisconnectedError(
                        f"{self.name} failed: {self._device_error!r}"
                    ) from self._device_error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item = self._queue.popleft()
        if out is None:
            data: RawFrame = item.data.copy()
        else:
            np.copyto(out, item.data)
            data = out
        if item.pooled:
            with self._cond:
                self._free.append(item.data)
        self._delivered += 1
        pixel_format = self._settings.pixel_format
        return Frame(
            data=data,
            frame_id=item.frame_id,
            camera_timestamp_ns=item.camera_timestamp_ns,
            host_timestamp_ns=item.host_timestamp_ns,
            pixel_format=pixel_format,
            bit_depth=pixel_formats.bit_depth(pixel_format),
        )

    # -- settings -----------------------------------------------------------------------
    def _do_capabilities(self) -> Mapping[str, Capability]:
        height, width = self.scene.shape
        limits = RoiLimits(
            width=Range(_MIN_ROI_PX, width, 1),
            height=Range(_MIN_ROI_PX, height, 1),
            offset_x=Range(0, width - _MIN_ROI_PX, 1),
            offset_y=Range(0, height - _MIN_ROI_PX, 1),
            sensor_width=width,
            sensor_height=height,
        )
        return {
            "exposure_s": Capability("exposure_s", True, True, "s", _EXPOSURE_RANGE_S),
            "gain": Capability("gain", True, True, "dB", _GAIN_RANGE_DB),
            "frame_rate_hz": Capability("frame_rate_hz", True, True, "Hz", _FRAME_RATE_RANGE_HZ),
            "roi": Capability("roi", True, True, "px", roi_limits=limits),
            "pixel_format": Capability("pixel_format", True, True, choices=PIXEL_FORMATS),
            "trigger_mode": Capability(
                "trigger_mode", True, True, choices=(TriggerMode.OFF.value,)
            ),
        }

    def _do_get(self, name: str) -> SettingValue:
        s = self._settings
        values: dict[str, SettingValue] = {
            "exposure_s": s.exposure_s,
            "gain": s.gain_db,
            "frame_rate_hz": s.frame_rate_hz,
            "pixel_format": s.pixel_format,
            "trigger_mode": TriggerMode.OFF,
        }
        if name == "roi":
            return s.roi
        return values[name]

    def _do_set(self, name: str, value: SettingValue) -> None:
        # The device thread picks the new settings up before its next frame. Only free
        # running is offered, so a validated trigger_mode is already the current one.
        s = self._settings
        if name == "roi":
            assert isinstance(value, Roi)
            self._settings = dataclasses.replace(s, roi=value)
        elif name == "pixel_format":
            self._settings = dataclasses.replace(s, pixel_format=str(value))
        elif isinstance(value, float):
            if name == "exposure_s":
                self._settings = dataclasses.replace(s, exposure_s=value)
            elif name == "gain":
                self._settings = dataclasses.replace(s, gain_db=value)
            elif name == "frame_rate_hz":
                self._settings = dataclasses.replace(s, frame_rate_hz=value)
