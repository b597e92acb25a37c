"""GenICam cameras through harvesters, for any GenTL producer (``.cti`` file).

A GenTL producer is the vendor's transport library (GigE Vision, USB3 Vision, Camera Link,
...). It is found from an explicit path or from the ``GENICAM_GENTL64_PATH`` environment
variable (folders holding ``.cti`` files, separated by ``os.pathsep``), the GenTL convention.
harvesters and genicam are the optional ``camera`` extra (``pip install "lsci[camera]"``).

Behaviour worth knowing:

- One harvesters ``Harvester`` per producer file serves the whole process: a second one on the
  same producer sees no devices. While a device of a producer is open, its device list is not
  refreshed (refreshing destroys every open acquirer).
- Frames are fetched with a timeout and unpacked out of the driver's buffer before the buffer
  is queued again (the producer reuses its memory).
- harvesters numbers no dropped frame; :class:`~lsci.drivers.base.Camera` counts drops from
  gaps in the frame ids.
- :meth:`GenICamCamera.stop` executes ``AcquisitionStop`` and then drains the frames already
  delivered, which harvesters' own stop would discard.
- harvesters' acquirer installs a Ctrl-C (SIGINT) handler that destroys the acquirer and
  swallows the KeyboardInterrupt. The driver puts the previous handler back right after
  opening, so Ctrl-C raises KeyboardInterrupt in the main thread as usual and the program can
  still stop the camera and keep its last frames.
- Speckle contrast depends on the exposure: opening a camera turns ``ExposureAuto`` and
  ``GainAuto`` off where the device has them, and selects a supported monochrome pixel format
  when the current one is not supported.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from . import pixel_formats
from .base import (
    Camera,
    CameraDisconnectedError,
    CameraError,
    Capability,
    Frame,
    Range,
    Roi,
    RoiLimits,
    SettingValue,
    TriggerMode,
)

__all__ = [
    "ENV_VAR",
    "UNKNOWN",
    "DeviceDescription",
    "GenICamCamera",
    "ProducerNotFoundError",
    "ProducerReport",
    "discover",
    "find_producers",
    "list_devices",
]

ENV_VAR: Final = "GENICAM_GENTL64_PATH"
"""The environment variable listing folders that hold GenTL producers."""

UNKNOWN: Final = "unknown"
"""Shown for device information a producer does not provide."""

_INSTALL_HINT: Final = 'harvesters and genicam are needed: pip install "lsci[camera]"'
_ACCESS_RO: Final = 3  # GenApi EAccessMode: NI=0, NA=1, WO=2, RO=3, RW=4
_ACCESS_RW: Final = 4
_ACCESS_WO: Final = 2
_NO_INCREMENT: Final = 0  # GenApi EIncMode: noIncrement=0, fixedIncrement=1, listIncrement=2
_FIXED_INCREMENT: Final = 1
# Seconds to wait for each delivered frame while draining after AcquisitionStop.
_DRAIN_TIMEOUT_S: Final = 0.1

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class ProducerNotFoundError(CameraError):
    """No GenTL producer was named and none is listed in ``GENICAM_GENTL64_PATH``.

    Its message names the Python parameter (``producer=``); a command line names its own
    option instead.
    """


def _import_genicam() -> tuple[ModuleType, ModuleType, ModuleType]:
    """Import ``harvesters.core``, ``genicam.gentl`` and ``genicam.genapi``, or explain."""
    try:
        import harvesters.core as core
        from genicam import genapi, gentl
    except ImportError as error:
        raise CameraError(f"{_INSTALL_HINT} ({error})") from None
    return core, gentl, genapi


# -- producers and devices --------------------------------------------------------------------


def find_producers(paths: Iterable[str | os.PathLike[str]] | None = None) -> list[Path]:
    """GenTL producer files from ``paths`` (files or folders), or from ``GENICAM_GENTL64_PATH``.

    Parameters
    ----------
    paths
        ``.cti`` files or folders holding them. None reads the folders listed in
        :data:`ENV_VAR`; folders that do not exist are skipped.

    Returns
    -------
    list of pathlib.Path
        Resolved producer files, each once, in the order given (sorted within a folder).

    Raises
    ------
    ValueError
        When an explicit path does not exist.
    """
    if paths is None:
        folders = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
        candidates = [Path(f) for f in folders if Path(f).is_dir()]
    else:
        candidates = [Path(p) for p in paths]
        for path in candidates:
            if not path.exists():
                raise ValueError(f"producer path {str(path)!r} does not exist")
    found: list[Path] = []
    for path in candidates:
        files = sorted(path.glob("*.cti")) if path.is_dir() else [path]
        for file in files:
            resolved = file.resolve()
            if resolved not in found:
                found.append(resolved)
    return found


@dataclass(frozen=True)
class DeviceDescription:
    """A device a producer offers. Fields the producer does not provide read ``"unknown"``.

    Attributes
    ----------
    producer
        The producer file.
    index
        The device's position in :func:`list_devices` (over all producers given).
    vendor, model, serial_number, device_id
        As the producer reports them; ``serial_number`` or ``device_id`` select the device in
        :class:`GenICamCamera`.
    interface
        The producer interface the device sits on.
    transport
        The transport layer type (``"GEV"``, ``"U3V"``, ``"Custom"``, ...).
    user_defined_name
        The name a user stored in the device, often absent.
    """

    producer: Path
    index: int
    vendor: str
    model: str
    serial_number: str
    device_id: str
    interface: str
    transport: str
    user_defined_name: str


@dataclass(frozen=True)
class ProducerReport:
    """A producer and its devices, or why it could not be used."""

    path: Path
    devices: tuple[DeviceDescription, ...]
    error: str | None = None


class _Producer:
    """The process-wide harvester of one producer file and the devices opened through it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.harvester: Any = None
        self.open_ids: set[str] = set()

    def device_infos(self) -> list[Any]:
        """harvesters' DeviceInfo list, refreshed when no device of this producer is open."""
        core, _, _ = _import_genicam()
        if self.harvester is None:
            harvester = core.Harvester()
            try:
                harvester.add_file(str(self.path), check_existence=True, check_validity=True)
            except OSError as error:
                raise CameraError(f"{self.path} is not a usable GenTL producer: {error}") from None
            self.harvester = harvester
        if not self.open_ids:
            if not self.harvester.files:  # the harvester was reset: load the producer again
                self.harvester.add_file(str(self.path))
            self.harvester.update()
        return list(self.harvester.device_info_list)


# Guards _PRODUCERS and every enumeration, create and release: a refresh of the device list
# invalidates the DeviceInfo objects another thread may be about to open.
_HUB_LOCK: Final = threading.RLock()
_PRODUCERS: Final[dict[Path, _Producer]] = {}


def _producer(path: Path) -> _Producer:
    with _HUB_LOCK:
        if path not in _PRODUCERS:
            _PRODUCERS[path] = _Producer(path)
        return _PRODUCERS[path]


def _text(info: Any, field: str) -> str:
    """A DeviceInfo field as text; ``"unknown"`` when absent or not provided."""
    try:
        value = info.property_dict.get(field)
    except AttributeError:
        value = None
    return UNKNOWN if value in (None, "") else str(value)


def _interface_name(info: Any) -> str:
    try:
        return str(info.parent.module.id_)
    except Exception:  # a producer may not implement the interface info at all
        return UNKNOWN


def _describe(path: Path, index: int, info: Any) -> DeviceDescription:
    return DeviceDescription(
        producer=path,
        index=index,
        vendor=_text(info, "vendor"),
        model=_text(info, "model"),
        serial_number=_text(info, "serial_number"),
        device_id=_text(info, "id_"),
        interface=_interface_name(info),
        transport=_text(info, "tl_type"),
        user_defined_name=_text(info, "user_defined_name"),
    )


def discover(producers: Iterable[str | os.PathLike[str]] | None = None) -> list[ProducerReport]:
    """Every producer of :func:`find_producers` with its devices, or the reason it failed.

    Raises
    ------
    CameraError
        When harvesters or genicam is not installed.
    """
    _import_genicam()
    reports = []
    index = 0
    with _HUB_LOCK:
        for path in find_producers(producers):
            try:
                infos = _producer(path).device_infos()
            except CameraError as error:
                reports.append(ProducerReport(path, (), str(error)))
                continue
            devices = tuple(_describe(path, index + i, info) for i, info in enumerate(infos))
            index += len(devices)
            reports.append(ProducerReport(path, devices))
    return reports


def list_devices(
    producers: Iterable[str | os.PathLike[str]] | None = None,
) -> list[DeviceDescription]:
    """All devices of all producers found (see :func:`discover`)."""
    return [device for report in discover(producers) for device in report.devices]


# -- the camera -------------------------------------------------------------------------------


class GenICamCamera(Camera):
    """A GenICam camera (GigE Vision, USB3 Vision, ...) through a GenTL producer.

    Parameters
    ----------
    device
        Which device: an index into :func:`list_devices`, or a serial number or device id.
    producer
        A ``.cti`` file or a folder of them; None uses ``GENICAM_GENTL64_PATH``.
    num_buffers
        Buffers the producer fills in turn (>= 1; raised to the producer's minimum). More
        buffers absorb longer pauses of the reader.

    Notes
    -----
    Settings map to SFNC features: ``exposure_s`` to ``ExposureTime`` (µs on the device),
    ``gain`` to ``Gain``, ``frame_rate_hz`` to ``AcquisitionFrameRate`` (enabling
    ``AcquisitionFrameRateEnable`` where present), ``roi`` to ``OffsetX``, ``OffsetY``,
    ``Width`` and ``Height``, ``pixel_format`` to ``PixelFormat`` and ``trigger_mode`` to
    ``TriggerMode`` (of ``TriggerSelector=FrameStart`` where present). Features the device
    lacks are reported as unavailable capabilities. Frames carry the camera's timestamp when
    the producer reports one.

    Examples
    --------
    >>> with GenICamCamera("0", producer="viky.cti") as cam:  # doctest: +SKIP
    ...     cam.set("roi", Roi(0, 0, 640, 480))
    ...     cam.start()
    ...     frame = cam.read(timeout_s=1.0)
    ...     rest = cam.stop()
    """

    def __init__(
        self,
        device: int | str = 0,
        *,
        producer: str | os.PathLike[str] | None = None,
        num_buffers: int = 16,
    ) -> None:
        super().__init__()
        if isinstance(device, bool) or not isinstance(device, int | str):
            raise TypeError(f"device={device!r} must be an index (int) or a serial number or id")
        if (isinstance(device, int) and device < 0) or device == "":
            raise ValueError(f"device={device!r} must be an index >= 0 or a non-empty string")
        if isinstance(num_buffers, bool) or not isinstance(num_buffers, int) or num_buffers < 1:
            raise ValueError(f"num_buffers={num_buffers!r} must be an integer >= 1")
        self._selector = device
        self._producer_path = producer
        self._num_buffers = num_buffers
        self._acquirer: Any = None
        self._producer: _Producer | None = None
        self._description: DeviceDescription | None = None

    @property
    def name(self) -> str:
        """Vendor, model, serial number and id of the device (the selector until opened)."""
        d = self._description
        if d is None:
            return f"GenICam device {self._selector!r}"
        return f"{d.vendor} {d.model} (serial {d.serial_number}, id {d.device_id})"

    @property
    def description(self) -> DeviceDescription | None:
        """The opened device, None while closed."""
        return self._description

    # -- open and close -----------------------------------------------------------------
    def _do_open(self) -> None:
        paths = find_producers(None if self._producer_path is None else [self._producer_path])
        if not paths:
            raise ProducerNotFoundError(
                f"no GenTL producer found: install your camera vendor's GenTL producer (a .cti "
                f"file) and list its folder in {ENV_VAR}, or pass producer=PATH"
            )
        with _HUB_LOCK:
            candidates: list[tuple[_Producer, Any]] = []
            problems: list[str] = []
            for path in paths:
                try:
                    infos = _producer(path).device_infos()
                except CameraError as error:  # one broken producer must not hide the others
                    problems.append(str(error))
                    continue
                candidates += [(_producer(path), info) for info in infos]
            if not candidates and problems:
                raise CameraError("; ".join(problems))
            producer, info, index = self._select(candidates)
            description = _describe(producer.path, index, info)
            if description.device_id in producer.open_ids:
                raise CameraError(
                    f"{description.vendor} {description.model} (id {description.device_id}) "
                    f"is already open in this process: close it first"
                )
            self._acquirer = self._create(producer, info, description)
            producer.open_ids.add(description.device_id)
            self._producer, self._description = producer, description
        try:
            self._prepare()
        except BaseException:
            self._do_close()
            raise

    def _select(self, candidates: list[tuple[_Producer, Any]]) -> tuple[_Producer, Any, int]:
        selector = self._selector
        if isinstance(selector, int):
            if selector >= len(candidates):
                raise CameraError(
                    f"no GenICam device with index {selector}: {len(candidates)} found"
                )
            return (*candidates[selector], selector)
        matches = [
            (producer, info, i)
            for i, (producer, info) in enumerate(candidates)
            if selector in (_text(info, "serial_number"), _text(info, "id_"))
        ]
        if len(matches) != 1:
            found = ", ".join(
                f"serial {_text(info, 'serial_number')} / id {_text(info, 'id_')}"
                for _, info in candidates
            )
            problem = "no" if not matches else "more than one"
            raise CameraError(
                f"{problem} GenICam device with serial number or id {selector!r}; "
                f"found: {found or 'none'}"
            )
        return matches[0]

    def _create(self, producer: _Producer, info: Any, description: DeviceDescription) -> Any:
        """Create the acquirer, keeping the process's own Ctrl-C handler."""
        _, gentl, _ = _import_genicam()
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if in_main else None
        try:
            return producer.harvester.create(info)
        except gentl.ResourceInUseException:
            raise CameraError(
                f"{description.vendor} {description.model} (id {description.device_id}) is in "
                f"use by another program or camera object"
            ) from None
        except gentl.GenericException as error:
            raise CameraError(f"cannot open {description.device_id}: {error}") from None
        finally:
            if in_main:
                # harvesters replaced it with a handler that destroys the acquirer and
                # swallows Ctrl-C; a recording must instead see KeyboardInterrupt and stop.
                signal.signal(
                    signal.SIGINT, previous if previous is not None else signal.default_int_handler
                )

    def _prepare(self) -> None:
        acquirer = self._acquirer
        acquirer.num_buffers = max(self._num_buffers, acquirer.min_num_buffers)
        for auto in ("ExposureAuto", "GainAuto"):
            node = self._node(auto)
            if node is not None and self._writable(node) and "Off" in node.symbolics:
                self._write(auto, "Off")
        node = self._node("PixelFormat")
        if node is not None and node.value not in pixel_formats.PIXEL_FORMATS:
            offered = [n for n in pixel_formats.PIXEL_FORMATS if n in node.symbolics]
            if offered and self._writable(node):
                self._write("PixelFormat", offered[0])

    def _do_close(self) -> None:
        acquirer, self._acquirer = self._acquirer, None
        if acquirer is not None:
            try:
                acquirer.destroy()
            except Exception as error:  # the device may be gone already; nothing to release
                _log.debug("destroying the acquirer of %s failed: %r", self.name, error)
        with _HUB_LOCK:
            if self._producer is not None and self._description is not None:
                self._producer.open_ids.discard(self._description.device_id)
        self._producer = None
        self._description = None

    # -- streaming ----------------------------------------------------------------------
    def _do_start(self) -> None:
        self._call(lambda: self._acquirer.start())

    def _do_read(
        self, timeout_s: float, out: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | None
    ) -> Frame | None:
        acquirer = self._live_acquirer()
        raw = self._call(lambda: acquirer.try_fetch(timeout=timeout_s, is_raw=True))
        if raw is None:
            return None
        return self._call(functools.partial(self._take, raw, time.monotonic_ns(), out))

    def _do_stop(self) -> list[Frame]:
        acquirer = self._live_acquirer()
        frames: list[Frame] = []
        try:
            node = self._node("AcquisitionStop")
            if node is not None:
                self._call(node.execute)
            # Without AcquisitionStop honoured, a streaming device would refill the buffers
            # forever: never drain more than one round of them.
            for _ in range(acquirer.num_buffers):
                raw = self._call(lambda: acquirer.try_fetch(timeout=_DRAIN_TIMEOUT_S, is_raw=True))
                if raw is None:
                    break
                take = functools.partial(self._take, raw, time.monotonic_ns(), None)
                frames.append(self._call(take))
        finally:
            self._call(acquirer.stop)
        return frames

    def _live_acquirer(self) -> Any:
        acquirer = self._acquirer
        if acquirer is None or not acquirer.is_valid():
            raise CameraDisconnectedError(self._lost_message("its acquirer was destroyed"))
        return acquirer

    def _take(
        self,
        raw: Any,
        host_timestamp_ns: int,
        out: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | None,
    ) -> Frame:
        """Unpack a fetched GenTL buffer into caller-owned memory, then queue it again."""
        _, gentl, _ = _import_genicam()
        try:
            code = raw.pixel_format
            name = pixel_formats.from_pfnc_code(code)
            if name is None:
                raise CameraError(
                    f"{self.name} sent pixel format 0x{code:08X}, which lsci cannot read; "
                    f"set pixel_format to one of {tuple(pixel_formats.PIXEL_FORMATS)}"
                )
            width, height = raw.width, raw.height
            padding = _optional(raw, "padding_x", gentl) or 0
            offset = _optional(raw, "image_offset", gentl) or 0
            size = pixel_formats.buffer_size(name, width, height, line_padding_bytes=padding)
            source = np.frombuffer(raw.raw_buffer, dtype=np.uint8, count=size, offset=offset)
            data = pixel_formats.unpack(
                source, name, width, height, line_padding_bytes=padding, out=out
            )
            return Frame(
                data=data,
                frame_id=int(raw.frame_id),
                camera_timestamp_ns=_optional(raw, "timestamp_ns", gentl),
                host_timestamp_ns=host_timestamp_ns,
                pixel_format=name,
                bit_depth=pixel_formats.bit_depth(name),
            )
        finally:
            try:
                raw.parent.queue_buffer(raw)
            except gentl.GenericException as error:
                # The stream is gone; the next fetch reports the disconnection.
                _log.debug("queueing a buffer of %s failed: %r", self.name, error)

    # -- settings -----------------------------------------------------------------------
    def _do_capabilities(self) -> Mapping[str, Capability]:
        gain_node = self._node("Gain")
        gain_unit = str(getattr(gain_node, "unit", "") or "") if gain_node is not None else ""
        return {
            "exposure_s": self._float_capability("exposure_s", "ExposureTime", 1e-6, "s"),
            "gain": self._float_capability("gain", "Gain", 1.0, gain_unit),
            "frame_rate_hz": self._float_capability(
                "frame_rate_hz", "AcquisitionFrameRate", 1.0, "Hz"
            ),
            "roi": self._roi_capability(),
            "pixel_format": self._choice_capability(
                "pixel_format", "PixelFormat", {n: n for n in pixel_formats.PIXEL_FORMATS}
            ),
            "trigger_mode": self._choice_capability(
                "trigger_mode",
                "TriggerMode",
                {"Off": TriggerMode.OFF.value, "On": TriggerMode.ON.value},
            ),
        }

    def _do_get(self, name: str) -> SettingValue:
        if name == "exposure_s":
            return float(self._feature("ExposureTime").value) * 1e-6
        if name == "gain":
            return float(self._feature("Gain").value)
        if name == "frame_rate_hz":
            return float(self._feature("AcquisitionFrameRate").value)
        if name == "roi":
            return Roi(
                self._int_or_zero("OffsetX"),
                self._int_or_zero("OffsetY"),
                int(self._feature("Width").value),
                int(self._feature("Height").value),
            )
        if name == "pixel_format":
            return str(self._feature("PixelFormat").value)
        self._select_frame_start()
        return TriggerMode.ON if self._feature("TriggerMode").value == "On" else TriggerMode.OFF

    def _do_set(self, name: str, value: SettingValue) -> None:
        if name == "exposure_s":
            assert isinstance(value, float)
            self._write("ExposureTime", value * 1e6)
        elif name == "gain":
            self._write("Gain", value)
        elif name == "frame_rate_hz":
            enable = self._node("AcquisitionFrameRateEnable")
            if enable is not None and self._writable(enable):
                self._write("AcquisitionFrameRateEnable", True)
            self._write("AcquisitionFrameRate", value)
        elif name == "roi":
            assert isinstance(value, Roi)
            # Offsets first go to their minimum so that a larger width or height fits.
            for offset in ("OffsetX", "OffsetY"):
                node = self._node(offset)
                if node is not None and self._writable(node):
                    self._write(offset, int(node.min))
            self._write("Width", value.width)
            self._write("Height", value.height)
            for offset, wanted in (("OffsetX", value.offset_x), ("OffsetY", value.offset_y)):
                if self._node(offset) is not None and self._writable(self._feature(offset)):
                    self._write(offset, wanted)
        elif name == "pixel_format":
            self._write("PixelFormat", value)
        else:
            assert isinstance(value, TriggerMode)
            self._select_frame_start()
            self._write("TriggerMode", "On" if value is TriggerMode.ON else "Off")

    # -- node helpers -------------------------------------------------------------------
    def _node(self, feature: str) -> Any:
        """The GenApi node of ``feature``, None when the device lacks it."""
        acquirer = self._live_acquirer()
        return getattr(acquirer.remote_device.node_map, feature, None)

    def _feature(self, feature: str) -> Any:
        node = self._node(feature)
        if node is None:
            raise CameraError(f"{self.name} has no {feature} feature")
        return node

    @staticmethod
    def _access(node: Any) -> int:
        return int(node.node.get_access_mode())

    def _writable(self, node: Any) -> bool:
        return self._access(node) in (_ACCESS_RW, _ACCESS_WO)

    def _readable(self, node: Any) -> bool:
        return self._access(node) in (_ACCESS_RO, _ACCESS_RW)

    def _write(self, feature: str, value: object) -> None:
        node = self._feature(feature)

        def write() -> None:
            node.value = value

        self._call(write, f"{self.name} refused {feature}={value!r}")

    def _int_or_zero(self, feature: str) -> int:
        node = self._node(feature)
        return int(node.value) if node is not None and self._readable(node) else 0

    def _select_frame_start(self) -> None:
        selector = self._node("TriggerSelector")
        if (
            selector is not None
            and self._writable(selector)
            and "FrameStart" in selector.symbolics
            and selector.value != "FrameStart"
        ):
            self._write("TriggerSelector", "FrameStart")

    def _unavailable(self, setting: str, feature: str) -> Capability | None:
        node = self._node(feature)
        if node is None:
            return Capability.unavailable(setting, f"the device has no {feature} feature")
        if not self._readable(node):
            return Capability.unavailable(setting, f"{feature} is not available in this state")
        return None

    def _read_only_reason(self, node: Any, feature: str) -> str | None:
        return None if self._writable(node) else f"{feature} is read-only in this state"

    def _float_capability(self, setting: str, feature: str, scale: float, unit: str) -> Capability:
        missing = self._unavailable(setting, feature)
        if missing is not None:
            return missing
        node = self._node(feature)
        inc = _increment(node, integer=False)
        return Capability(
            name=setting,
            available=True,
            writable=self._writable(node),
            unit=unit,
            range=Range(
                float(node.min) * scale,
                float(node.max) * scale,
                None if inc is None else inc * scale,
            ),
            reason=self._read_only_reason(node, feature),
        )

    def _choice_capability(
        self, setting: str, feature: str, known: Mapping[str, str]
    ) -> Capability:
        missing = self._unavailable(setting, feature)
        if missing is not None:
            return missing
        node = self._node(feature)
        offered = set(node.symbolics)
        choices = tuple(value for entry, value in known.items() if entry in offered)
        if not choices:
            return Capability.unavailable(
                setting, f"the device offers none of {tuple(known)} for {feature}"
            )
        return Capability(
            name=setting,
            available=True,
            writable=self._writable(node),
            choices=choices,
            reason=self._read_only_reason(node, feature),
        )

    def _roi_capability(self) -> Capability:
        for feature in ("Width", "Height"):
            missing = self._unavailable("roi", feature)
            if missing is not None:
                return missing
        width, height = self._node("Width"), self._node("Height")
        sensor_width = self._sensor_size("WidthMax", width, "OffsetX")
        sensor_height = self._sensor_size("HeightMax", height, "OffsetY")
        limits = RoiLimits(
            width=_int_range(width, sensor_width),
            height=_int_range(height, sensor_height),
            offset_x=self._offset_range("OffsetX", sensor_width - int(width.min)),
            offset_y=self._offset_range("OffsetY", sensor_height - int(height.min)),
            sensor_width=sensor_width,
            sensor_height=sensor_height,
        )
        writable = self._writable(width) and self._writable(height)
        return Capability(
            name="roi",
            available=True,
            writable=writable,
            unit="px",
            roi_limits=limits,
            reason=None if writable else "Width or Height is read-only in this state",
        )

    def _sensor_size(self, max_feature: str, size: Any, offset_feature: str) -> int:
        node = self._node(max_feature)
        if node is not None and self._readable(node):
            return int(node.value)
        # Without WidthMax, the largest width at the current offset spans the sensor from it.
        return int(size.max) + self._int_or_zero(offset_feature)

    def _offset_range(self, feature: str, largest: int) -> Range:
        node = self._node(feature)
        if node is None or not self._readable(node):
            return Range(0, 0)
        if not self._writable(node):
            current = int(node.value)
            return Range(current, current)
        return Range(int(node.min), largest, _increment(node, integer=True))

    def _call(self, call: Callable[[], _T], context: str | None = None) -> _T:
        """Run a harvesters or GenApi call; turn its failures into lsci errors."""
        _, gentl, genapi = _import_genicam()
        try:
            return call()
        except (gentl.InvalidHandleException, gentl.ClosedException, IndexError) as error:
            # harvesters' structures are torn down under us (IndexError, AttributeError on a
            # destroyed acquirer) or the producer invalidated the stream: the device is gone.
            raise CameraDisconnectedError(self._lost_message(repr(error))) from error
        except AttributeError as error:
            if self._acquirer is None or not self._acquirer.is_valid():
                raise CameraDisconnectedError(self._lost_message(repr(error))) from error
            raise
        except (gentl.GenericException, genapi.GenericException) as error:
            raise CameraError(f"{context or self.name}: {error}") from error

    def _lost_message(self, detail: str) -> str:
        return (
            f"{self.name} disappeared ({detail}); the camera is closed: check the cable and "
            f"power, then open it again"
        )


def _optional(raw: Any, field: str, gentl: ModuleType) -> Any:
    """A GenTL buffer field, None when the producer does not provide it."""
    try:
        return getattr(raw, field)
    except gentl.GenericException:
        return None


def _increment(node: Any, *, integer: bool) -> float | None:
    """The fixed step of a numeric node; None when it has none (or, for integers, just 1)."""
    if int(getattr(node, "inc_mode", _NO_INCREMENT)) != _FIXED_INCREMENT:
        return None
    inc = float(node.inc)
    if inc <= 0 or (integer and inc == 1):
        return None
    return inc


def _int_range(node: Any, largest: int) -> Range:
    return Range(int(node.min), largest, _increment(node, integer=True))
