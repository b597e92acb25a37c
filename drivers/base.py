"""The abstract camera every lsci driver implements.

A driver subclasses :class:`Camera` and fills in a few private hooks (``_do_open``,
``_do_read``, ...). The public methods of :class:`Camera` are concrete: they hold the lock,
check the state (closed, open, acquiring), validate settings against the device's
capabilities, count dropped frames from gaps in the frame ids, and turn a lost device into a
closed camera. A driver therefore only talks to its device.

Settings have units in their names:

==================  ===============================  =============================
name                value type                       meaning
==================  ===============================  =============================
``exposure_s``      ``float``                        exposure time in seconds
``gain``            ``float``                        gain, in the device's unit
``frame_rate_hz``   ``float``                        frame rate in hertz
``roi``             :class:`Roi`                     region of interest in pixels
``pixel_format``    ``str``                          a PFNC name such as ``"Mono8"``
``trigger_mode``    :class:`TriggerMode`             free running or triggered
==================  ===============================  =============================

``roi`` and ``pixel_format`` are readable on every camera (they define the frame layout) and
can only change while the camera is not acquiring.
"""

from __future__ import annotations

import abc
import enum
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, NamedTuple, Self, TypeVar

import numpy as np
import numpy.typing as npt

from lsci.errors import LsciError

from . import pixel_formats

__all__ = [
    "SETTING_NAMES",
    "AcquisitionStats",
    "Camera",
    "CameraDisconnectedError",
    "CameraError",
    "CameraState",
    "Capability",
    "Frame",
    "FrameInfo",
    "FrameTimeoutError",
    "IncompatibleStateError",
    "Range",
    "Roi",
    "RoiLimits",
    "SettingValue",
    "TriggerMode",
    "UnsupportedFeatureError",
]


class CameraError(LsciError):
    """A camera or its driver failed; the message names the device."""


class UnsupportedFeatureError(CameraError):
    """The device lacks a setting, or the setting is read-only on it."""


class IncompatibleStateError(CameraError):
    """The operation needs another state (for example, reading while not acquiring)."""


class CameraDisconnectedError(CameraError):
    """The device disappeared; the camera is closed and can be opened again."""


class FrameTimeoutError(CameraError):
    """No frame arrived within the timeout."""


class CameraState(enum.Enum):
    """The life cycle of a :class:`Camera`: closed → open → acquiring → open → closed."""

    CLOSED = "closed"
    OPEN = "open"
    ACQUIRING = "acquiring"


class TriggerMode(enum.Enum):
    """How frames start: free running at the frame rate, or each on a trigger.

    ``ON`` waits for the trigger source configured on the device (SFNC ``TriggerMode=On``).
    """

    OFF = "off"
    ON = "on"


class Roi(NamedTuple):
    """A region of interest on the sensor, in pixels."""

    offset_x: int
    offset_y: int
    width: int
    height: int


SettingValue = float | Roi | str | TriggerMode
"""The type of a setting's value (see the module table)."""

SETTING_NAMES: Final[tuple[str, ...]] = (
    "exposure_s",
    "gain",
    "frame_rate_hz",
    "roi",
    "pixel_format",
    "trigger_mode",
)
"""Every setting a :class:`Camera` knows, in a stable order."""

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

_NUMERIC_SETTINGS: Final = frozenset({"exposure_s", "gain", "frame_rate_hz"})
# Changing these changes the frame layout, which a running stream's buffers cannot follow.
_LAYOUT_SETTINGS: Final = frozenset({"roi", "pixel_format"})


@dataclass(frozen=True)
class Range:
    """A closed interval of allowed values, with an optional step from ``minimum``."""

    minimum: float
    maximum: float
    increment: float | None = None

    def check(self, name: str, value: float, unit: str, device: str) -> None:
        """Raise ValueError naming ``name`` and the interval when ``value`` is outside it."""
        if not self.minimum <= value <= self.maximum:
            raise ValueError(
                f"{name}={value!r} is outside the allowed range "
                f"[{self.minimum:g}, {self.maximum:g}]{' ' + unit if unit else ''} of {device}"
            )
        if self.increment and self.increment > 0:
            steps = (value - self.minimum) / self.increment
            if not math.isclose(steps, round(steps), abs_tol=1e-9):
                raise ValueError(
                    f"{name}={value!r} is not {self.minimum:g} plus a multiple of "
                    f"{self.increment:g}, as {device} requires"
                )


@dataclass(frozen=True)
class RoiLimits:
    """What a region of interest may be: sizes, offsets and the sensor it must fit on."""

    width: Range
    height: Range
    offset_x: Range
    offset_y: Range
    sensor_width: int
    sensor_height: int


@dataclass(frozen=True)
class Capability:
    """What a device offers for one setting.

    Attributes
    ----------
    name
        The setting, one of :data:`SETTING_NAMES`.
    available
        Whether the setting can be read on this device now.
    writable
        Whether it can also be set now.
    unit
        The unit of the value (``"s"``, ``"Hz"``, ``"px"``, the device's gain unit or ``""``).
    range
        Allowed values of a numeric setting.
    choices
        Allowed values of ``pixel_format`` (names) and ``trigger_mode`` (enum values).
    roi_limits
        Allowed regions of interest, for ``roi``.
    reason
        Why the setting is unavailable or read-only; None otherwise.
    """

    name: str
    available: bool
    writable: bool = False
    unit: str = ""
    range: Range | None = None
    choices: tuple[str, ...] | None = None
    roi_limits: RoiLimits | None = None
    reason: str | None = None

    @classmethod
    def unavailable(cls, name: str, reason: str) -> Capability:
        """A setting the device does not have, with the reason shown to the user."""
        return cls(name=name, available=False, reason=reason)


@dataclass(frozen=True, kw_only=True)
class FrameInfo:
    """What is known about a frame besides its pixels.

    Attributes
    ----------
    frame_id
        The camera's frame counter; it increases within one acquisition (from one
        :meth:`Camera.start` to the next :meth:`Camera.stop`) and may restart after it.
    camera_timestamp_ns
        The camera's own time stamp in nanoseconds, None when the device has none.
    host_timestamp_ns
        :func:`time.monotonic_ns` when the driver received the frame: comparable between
        frames and cameras of one process, unaffected by wall-clock changes, not a date.
    pixel_format
        The PFNC name of the format the camera sent (the data is unpacked).
    bit_depth
        Significant bits per pixel.
    """

    frame_id: int
    camera_timestamp_ns: int | None
    host_timestamp_ns: int
    pixel_format: str
    bit_depth: int


@dataclass(frozen=True, kw_only=True, eq=False)
class Frame(FrameInfo):
    """One frame: its pixels and :class:`FrameInfo`.

    ``data`` is a ``(height, width)`` array owned by the caller (``uint8`` for 8-bit formats,
    ``uint16`` otherwise): no driver writes into it after handing it over.
    """

    data: npt.NDArray[np.uint8] | npt.NDArray[np.uint16]

    @property
    def info(self) -> FrameInfo:
        """The frame without its pixels."""
        return FrameInfo(
            frame_id=self.frame_id,
            camera_timestamp_ns=self.camera_timestamp_ns,
            host_timestamp_ns=self.host_timestamp_ns,
            pixel_format=self.pixel_format,
            bit_depth=self.bit_depth,
        )


@dataclass(frozen=True)
class AcquisitionStats:
    """Counts for the current (or last) acquisition.

    Attributes
    ----------
    frames_read
        Frames handed to the caller, including those returned by :meth:`Camera.stop`.
    frames_dropped
        Frames the camera numbered but that never arrived, counted from gaps in the frame ids.
    last_frame_id
        The id of the last frame handed over, None before the first.
    """

    frames_read: int = 0
    frames_dropped: int = 0
    last_frame_id: int | None = None


class Camera(abc.ABC):
    """A camera: settings with units, a state, and frames.

    Use it as a context manager (``with Camera(...) as cam:``) or call :meth:`open` and
    :meth:`close`. The public methods are thread safe; :meth:`read` holds the camera while it
    waits, so a :meth:`stop` from another thread waits for it (at most its timeout).

    Drivers implement the hooks ``_do_open``, ``_do_close``, ``_do_start``, ``_do_stop``,
    ``_do_read``, ``_do_get``, ``_do_set`` and ``_do_capabilities``; they may override
    :attr:`name`. Hooks run under the lock and only in the states their docstrings name.

    Notes
    -----
    Closing is never left to garbage collection: :meth:`close` (or the ``with`` block) releases
    the device.

    Examples
    --------
    >>> with SomeCamera() as cam:  # doctest: +SKIP
    ...     cam.set("exposure_s", 0.005)
    ...     cam.start()
    ...     frame = cam.read(timeout_s=1.0)
    ...     leftovers = cam.stop()
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = CameraState.CLOSED
        self._stats = AcquisitionStats()
        # The frame layout is fixed while acquiring (layout settings are refused then), so
        # start() records it once instead of querying the device for every frame.
        self._layout: tuple[tuple[int, int], np.dtype[np.uint8] | np.dtype[np.uint16]] | None = None

    # -- hooks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _do_open(self) -> None:
        """Connect to the device (state closed). Raise CameraError on failure."""

    @abc.abstractmethod
    def _do_close(self) -> None:
        """Release the device (state open, or after a disconnection). Must not raise."""

    @abc.abstractmethod
    def _do_start(self) -> None:
        """Start streaming (state open)."""

    @abc.abstractmethod
    def _do_stop(self) -> list[Frame]:
        """Stop streaming (state acquiring); return frames delivered but not yet read."""

    @abc.abstractmethod
    def _do_read(
        self, timeout_s: float, out: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | None
    ) -> Frame | None:
        """Wait up to ``timeout_s`` for the next frame (state acquiring).

        Write its pixels into ``out`` when given (already checked against the frame shape
        and dtype), else into a new array; return the frame, whose ``data`` is that array, or
        None on timeout. Raise :class:`CameraDisconnectedError` when the device is gone.
        """

    @abc.abstractmethod
    def _do_get(self, name: str) -> SettingValue:
        """Return the value of an available setting, in the type of the module table."""

    @abc.abstractmethod
    def _do_set(self, name: str, value: SettingValue) -> None:
        """Write an already validated value of a writable setting."""

    @abc.abstractmethod
    def _do_capabilities(self) -> Mapping[str, Capability]:
        """Describe the settings; settings left out are reported as unavailable."""

    # -- identity and state --------------------------------------------------------------
    @property
    def name(self) -> str:
        """A human-readable name of the device, used in messages."""
        return type(self).__name__

    @property
    def state(self) -> CameraState:
        """The current state."""
        return self._state

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state.value}>"

    def _require(self, operation: str, *states: CameraState) -> None:
        if self._state not in states:
            allowed = " or ".join(s.value for s in states)
            raise IncompatibleStateError(
                f"cannot {operation} {self.name}: it is {self._state.value}, needs to be {allowed}"
            )

    # -- life cycle ----------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the device; does nothing when it is already open.

        Raises
        ------
        CameraError
            When the device cannot be opened (absent, or in use by another program).
        """
        with self._lock:
            if self._state is not CameraState.CLOSED:
                return
            self._do_open()
            self._state = CameraState.OPEN

    def close(self) -> None:
        """Stop acquiring if needed and release the device; closing twice is harmless.

        Frames not yet read when closing while acquiring are discarded; call :meth:`stop`
        first to keep them. A failure to stop is logged, not raised: closing is cleanup (it
        runs when a ``with`` block exits on an error, which it must not mask).
        """
        with self._lock:
            if self._state is CameraState.CLOSED:
                return
            try:
                if self._state is CameraState.ACQUIRING:
                    self._do_stop()
            except CameraError as error:
                _log.warning("stopping %s before closing failed: %s", self.name, error)
            finally:
                self._state = CameraState.CLOSED
                self._do_close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start acquiring; resets :meth:`stats`.

        Raises
        ------
        IncompatibleStateError
            When the camera is closed or already acquiring.
        CameraError
            When the device is set to a pixel format lsci cannot unpack.
        """
        with self._lock:
            self._require("start", CameraState.OPEN)
            pixel_format = str(self.get("pixel_format"))
            if pixel_format not in pixel_formats.PIXEL_FORMATS:
                raise CameraError(
                    f"{self.name} is set to pixel format {pixel_format}, which lsci cannot read: "
                    f"set pixel_format to one of {self.capabilities()['pixel_format'].choices}"
                )
            layout = (self.frame_shape, self.frame_dtype)
            self._guard(self._do_start)
            self._layout = layout
            self._stats = AcquisitionStats()
            self._state = CameraState.ACQUIRING

    def stop(self) -> list[Frame]:
        """Stop acquiring and return the frames delivered but not yet read, oldest first.

        Raises
        ------
        IncompatibleStateError
            When the camera is not acquiring.
        """
        with self._lock:
            self._require("stop", CameraState.ACQUIRING)
            try:
                frames = self._guard(self._do_stop)
            finally:
                if self._state is CameraState.ACQUIRING:
                    self._state = CameraState.OPEN
            for frame in frames:
                self._count(frame)
            return frames

    def stats(self) -> AcquisitionStats:
        """Frames read and dropped in the current (or last) acquisition."""
        return self._stats

    # -- frames --------------------------------------------------------------------------
    def read(self, timeout_s: float = 1.0) -> Frame:
        """Wait for the next frame and return it in a new array.

        Parameters
        ----------
        timeout_s
            How long to wait, in seconds (> 0).

        Returns
        -------
        Frame
            The next frame; its ``data`` belongs to the caller.

        Raises
        ------
        FrameTimeoutError
            When no frame arrives in time.
        CameraDisconnectedError
            When the device disappeared; the camera is then closed.
        IncompatibleStateError
            When the camera is not acquiring.
        """
        with self._lock:
            return self._read(timeout_s, None)

    def read_into(
        self, out: npt.NDArray[np.uint8] | npt.NDArray[np.uint16], timeout_s: float = 1.0
    ) -> FrameInfo:
        """Wait for the next frame and write its pixels into ``out`` (a ring-buffer slot).

        Parameters
        ----------
        out
            A writable C-contiguous array of :attr:`frame_shape` and :attr:`frame_dtype`.
        timeout_s
            How long to wait, in seconds (> 0).

        Returns
        -------
        FrameInfo
            Everything about the frame but its pixels.

        Raises
        ------
        ValueError
            When ``out`` has the wrong shape or dtype, or is not writable and C-contiguous.
        FrameTimeoutError, CameraDisconnectedError, IncompatibleStateError
            As :meth:`read`.
        """
        with self._lock:
            self._require("read a frame from", CameraState.ACQUIRING)
            assert self._layout is not None
            shape, dtype = self._layout
            if out.shape != shape or out.dtype != dtype:
                raise ValueError(
                    f"out has shape {out.shape} and dtype {out.dtype}; frames of {self.name} "
                    f"need shape {shape} and dtype {dtype}"
                )
            if not (out.flags.c_contiguous and out.flags.writeable):
                raise ValueError("out must be a writable C-contiguous array")
            return self._read(timeout_s, out).info

    def _read(
        self,
        timeout_s: float,
        out: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | None,
    ) -> Frame:
        self._require("read a frame from", CameraState.ACQUIRING)
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s={timeout_s!r} must be a finite number of seconds > 0")
        frame = self._guard(lambda: self._do_read(float(timeout_s), out))
        if frame is None:
            raise FrameTimeoutError(f"no frame from {self.name} within {timeout_s:g} s")
        self._count(frame)
        return frame

    def _count(self, frame: Frame) -> None:
        last = self._stats.last_frame_id
        gap = 0 if last is None else max(frame.frame_id - last - 1, 0)
        self._stats = AcquisitionStats(
            frames_read=self._stats.frames_read + 1,
            frames_dropped=self._stats.frames_dropped + gap,
            last_frame_id=frame.frame_id,
        )

    def _guard(self, call: Callable[[], _T]) -> _T:
        """Run a hook; when it reports a lost device, release what is left and close."""
        try:
            return call()
        except CameraDisconnectedError:
            self._state = CameraState.CLOSED
            self._do_close()
            raise

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(height, width)`` of the frames the current settings produce."""
        if self._state is CameraState.ACQUIRING and self._layout is not None:
            return self._layout[0]
        roi = self.get("roi")
        assert isinstance(roi, Roi)
        return (roi.height, roi.width)

    @property
    def frame_dtype(self) -> np.dtype[np.uint8] | np.dtype[np.uint16]:
        """The dtype of the frames the current pixel format produces."""
        if self._state is CameraState.ACQUIRING and self._layout is not None:
            return self._layout[1]
        return pixel_formats.output_dtype(str(self.get("pixel_format")))

    # -- settings ------------------------------------------------------------------------
    def capabilities(self) -> dict[str, Capability]:
        """Describe every setting of :data:`SETTING_NAMES` for this device, now.

        Raises
        ------
        IncompatibleStateError
            When the camera is closed.
        """
        with self._lock:
            self._require("query the capabilities of", CameraState.OPEN, CameraState.ACQUIRING)
            reported = self._guard(self._do_capabilities)
            return {
                name: reported.get(name)
                or Capability.unavailable(name, f"the {type(self).__name__} driver lacks it")
                for name in SETTING_NAMES
            }

    def get(self, name: str) -> SettingValue:
        """Return the value of setting ``name``.

        Raises
        ------
        ValueError
            When ``name`` is not a setting.
        UnsupportedFeatureError
            When the device lacks the setting.
        IncompatibleStateError
            When the camera is closed.
        """
        with self._lock:
            capability = self._capability(name, "read")
            if not capability.available:
                raise self._unsupported(capability)
            return self._guard(lambda: self._do_get(name))

    def set(self, name: str, value: SettingValue) -> None:
        """Set setting ``name`` to ``value`` after checking it against the capabilities.

        Parameters
        ----------
        name
            One of :data:`SETTING_NAMES`.
        value
            A number for numeric settings, a :class:`Roi` (or a 4-tuple of ints), a PFNC name,
            or a :class:`TriggerMode` (or its value).

        Raises
        ------
        ValueError
            When ``name`` is unknown or ``value`` is outside the allowed range or choices.
        TypeError
            When ``value`` has the wrong type.
        UnsupportedFeatureError
            When the device lacks the setting or it is read-only.
        IncompatibleStateError
            When the camera is closed, or acquiring and ``name`` changes the frame layout.
        """
        with self._lock:
            if name in _LAYOUT_SETTINGS and self._state is CameraState.ACQUIRING:
                raise IncompatibleStateError(
                    f"cannot set {name} of {self.name} while acquiring: stop first"
                )
            capability = self._capability(name, "set")
            if not (capability.available and capability.writable):
                raise self._unsupported(capability)
            checked = self._validate(capability, value)
            self._guard(lambda: self._do_set(name, checked))

    def _capability(self, name: str, operation: str) -> Capability:
        if name not in SETTING_NAMES:
            raise ValueError(f"name={name!r} is not a camera setting; use one of {SETTING_NAMES}")
        self._require(f"{operation} {name} of", CameraState.OPEN, CameraState.ACQUIRING)
        return self.capabilities()[name]

    def _unsupported(self, capability: Capability) -> UnsupportedFeatureError:
        what = "unavailable" if not capability.available else "read-only"
        because = f": {capability.reason}" if capability.reason else ""
        return UnsupportedFeatureError(f"{capability.name} is {what} on {self.name}{because}")

    def _validate(self, capability: Capability, value: object) -> SettingValue:
        name = capability.name
        if name in _NUMERIC_SETTINGS:
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"{name}={value!r} must be a number")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"{name}={value!r} must be finite")
            if capability.range is not None:
                capability.range.check(name, number, capability.unit, self.name)
            return number
        if name == "roi":
            return self._validate_roi(capability, value)
        choices = capability.choices or ()
        if name == "trigger_mode":
            if not isinstance(value, TriggerMode | str):
                raise TypeError(f"trigger_mode={value!r} must be a TriggerMode")
            values = {m.value for m in TriggerMode}
            if not isinstance(value, TriggerMode) and value not in values:
                raise ValueError(f"trigger_mode={value!r} is not one of {sorted(values)}")
            mode = TriggerMode(value)
            if mode.value not in choices:
                raise ValueError(
                    f"trigger_mode={mode.value!r} is not one of {choices} of {self.name}"
                )
            return mode
        if not isinstance(value, str):
            raise TypeError(f"{name}={value!r} must be a string")
        if value not in choices:
            raise ValueError(f"{name}={value!r} is not one of {choices} offered by {self.name}")
        return value

    def _validate_roi(self, capability: Capability, value: object) -> Roi:
        if not (
            isinstance(value, tuple)
            and len(value) == 4
            and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value)
        ):
            raise TypeError(
                f"roi={value!r} must be a Roi(offset_x, offset_y, width, height) of ints"
            )
        roi = Roi(*(int(v) for v in value))
        limits = capability.roi_limits
        if limits is not None:
            for field, allowed in (
                ("width", limits.width),
                ("height", limits.height),
                ("offset_x", limits.offset_x),
                ("offset_y", limits.offset_y),
            ):
                allowed.check(f"roi.{field}", getattr(roi, field), "px", self.name)
            if roi.offset_x + roi.width > limits.sensor_width:
                raise ValueError(
                    f"roi={roi} ends at x={roi.offset_x + roi.width}, beyond the sensor width "
                    f"{limits.sensor_width} of {self.name}"
                )
            if roi.offset_y + roi.height > limits.sensor_height:
                raise ValueError(
                    f"roi={roi} ends at y={roi.offset_y + roi.height}, beyond the sensor height "
                    f"{limits.sensor_height} of {self.name}"
                )
        return roi
