"""The camera kinds lsci can drive, in one registry read by ``lsci acquire``, ``lsci cameras``
and the napari Acquire widget.

A kind says how to list its devices, how to make a camera from the options a user gives, which
of those options it takes, and which optional packages it needs. Adding a camera kind is one
entry in :data:`CAMERA_KINDS` plus its entry in the contract suite
(``tests/test_camera_contract.py``), which every kind must pass.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from .base import Camera, CameraError

__all__ = [
    "CAMERA_KINDS",
    "CameraKind",
    "DeviceGroup",
    "DeviceInfo",
    "OpenOptions",
    "camera_kind",
    "kinds_taking",
]


@dataclass(frozen=True)
class OpenOptions:
    """What a user may say about the camera to open; each kind reads the fields it takes.

    Attributes
    ----------
    producers : tuple of pathlib.Path
        GenTL producers (.cti) or folders of them; empty searches ``GENICAM_GENTL64_PATH``.
        A camera is opened from one of them.
    device : int or str
        Device index as listed, or its serial number or id. A string of digits is an index
        unless a device has it as serial number or id.
    shape : (int, int)
        Sensor ``(height, width)`` of a simulated camera, pixels.
    mode : {'replay', 'physical'}
        Simulated camera: loop a few simulated frames, or simulate every frame (slow).
    num_buffers : int
        Transport buffers of the stream.
    """

    producers: tuple[Path, ...] = ()
    device: int | str = 0
    shape: tuple[int, int] = (512, 512)
    mode: Literal["replay", "physical"] = "replay"
    # A third of a second at 200 frames/s: rides out pauses of the camera thread.
    num_buffers: int = 64


@dataclass(frozen=True)
class DeviceInfo:
    """One device a kind offers, as ``lsci cameras`` lists it."""

    index: int
    vendor: str
    model: str
    serial_number: str
    device_id: str
    interface: str


@dataclass(frozen=True)
class DeviceGroup:
    """The devices of one source (a GenTL producer, the built-in simulator), or why it failed."""

    source: str
    devices: tuple[DeviceInfo, ...]
    error: str | None = None


@dataclass(frozen=True)
class CameraKind:
    """One kind of camera.

    Attributes
    ----------
    name : str
        Short name, the value of ``lsci acquire --camera``.
    label : str
        Name shown to people (the Acquire widget).
    summary : str
        One sentence saying what it is.
    options : frozenset of str
        The :class:`OpenOptions` fields it reads.
    requires : tuple of str
        Importable modules it needs beyond lsci's own dependencies.
    extra : str or None
        The pip extra that installs them.
    setup_help : str
        What to do when it finds no device source.
    """

    name: str
    label: str
    summary: str
    options: frozenset[str]
    _create: Callable[[OpenOptions], Camera] = field(repr=False)
    _discover: Callable[[OpenOptions], list[DeviceGroup]] = field(repr=False)
    requires: tuple[str, ...] = ()
    extra: str | None = None
    setup_help: str = ""

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    def _check_installed(self) -> None:
        missing = self.missing()
        if missing:
            raise CameraError(
                f'the {self.label} needs {", ".join(missing)}: pip install "lsci[{self.extra}]"'
            )

    def create(self, options: OpenOptions | None = None) -> Camera:
        """A camera of this kind, not yet opened.

        Raises
        ------
        CameraError
            When its optional packages are not installed or the device cannot be found.
        """
        self._check_installed()
        return self._create(OpenOptions() if options is None else options)

    def open(self, options: OpenOptions | None = None) -> Camera:
        """A camera of this kind, opened (not acquiring)."""
        camera = self.create(options)
        camera.open()
        return camera

    def discover(self, options: OpenOptions | None = None) -> list[DeviceGroup]:
        """The sources of devices and their devices (empty when no source is found).

        Raises
        ------
        CameraError
            When its optional packages are not installed.
        """
        self._check_installed()
        return self._discover(OpenOptions() if options is None else options)

    def list_devices(self, options: OpenOptions | None = None) -> list[DeviceInfo]:
        """Every device of every source, in index order."""
        return [device for group in self.discover(options) for device in group.devices]


# -- the simulated camera ---------------------------------------------------------------------


def _create_simulated(options: OpenOptions) -> Camera:
    from .simulated import SimulatedCamera, SpeckleScene

    return SimulatedCamera(SpeckleScene.skin(options.shape), mode=options.mode)


def _discover_simulated(options: OpenOptions) -> list[DeviceGroup]:
    device = DeviceInfo(0, "lsci", "SimulatedCamera", "-", "sim", "built in")
    return [DeviceGroup("built-in speckle simulator", (device,))]


# -- GenICam cameras through a GenTL producer -------------------------------------------------


def _producers(options: OpenOptions) -> list[Path] | None:
    return list(options.producers) or None


def _create_genicam(options: OpenOptions) -> Camera:
    from .genicam import GenICamCamera, list_devices

    selector = options.device
    if isinstance(selector, str) and selector.isdigit():
        # Serial numbers are often all digits: a number is an index only when no device has
        # it as serial number or id.
        known = {
            name
            for d in list_devices(_producers(options))
            for name in (d.serial_number, d.device_id)
        }
        selector = selector if selector in known else int(selector)
    if len(options.producers) > 1:
        raise CameraError("a GenICam camera opens from one GenTL producer: name only one")
    producer = options.producers[0] if options.producers else None
    return GenICamCamera(selector, producer=producer, num_buffers=options.num_buffers)


def _discover_genicam(options: OpenOptions) -> list[DeviceGroup]:
    from .genicam import discover

    return [
        DeviceGroup(
            f"GenTL producer {report.path}",
            tuple(
                DeviceInfo(d.index, d.vendor, d.model, d.serial_number, d.device_id, d.interface)
                for d in report.devices
            ),
            report.error,
        )
        for report in discover(_producers(options))
    ]


_GENICAM_HELP = """\
No GenTL producer found.

A GenTL producer is a .cti file from your camera vendor's SDK (the transport library for
GigE Vision, USB3 Vision, ...). Install the SDK, then either list the folder holding the .cti
file in GENICAM_GENTL64_PATH (folders separated by ':'):

    export GENICAM_GENTL64_PATH=/opt/vendor/lib/gentl

or name the producer directly:

    lsci cameras --cti /opt/vendor/lib/gentl/producer.cti"""


def _kinds(*kinds: CameraKind) -> dict[str, CameraKind]:
    return {kind.name: kind for kind in kinds}


#: Every camera kind by name, in the order they are offered.
CAMERA_KINDS: Final[dict[str, CameraKind]] = _kinds(
    CameraKind(
        name="sim",
        label="simulated camera",
        summary="The simulated speckle camera: a skin patch whose perfusion changes at 20 s.",
        options=frozenset({"shape", "mode"}),
        _create=_create_simulated,
        _discover=_discover_simulated,
    ),
    CameraKind(
        name="genicam",
        label="GenICam camera",
        summary="A GenICam camera (GigE Vision, USB3 Vision) through a GenTL producer.",
        options=frozenset({"producers", "device", "num_buffers"}),
        _create=_create_genicam,
        _discover=_discover_genicam,
        requires=("harvesters", "genicam"),
        extra="camera",
        setup_help=_GENICAM_HELP,
    ),
)


def camera_kind(name: str) -> CameraKind:
    """The registered kind called ``name``.

    Raises
    ------
    ValueError
        For a name that is not registered (the message lists the registered ones).
    """
    try:
        return CAMERA_KINDS[name]
    except KeyError:
        raise ValueError(
            f"camera kind {name!r} is unknown: use one of {', '.join(map(repr, CAMERA_KINDS))}"
        ) from None


def kinds_taking(option: str) -> Sequence[str]:
    """Names of the kinds that read the :class:`OpenOptions` field ``option``."""
    return [kind.name for kind in CAMERA_KINDS.values() if option in kind.options]
