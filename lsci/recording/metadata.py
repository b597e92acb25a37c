"""The acquisition metadata stored with every recording, validated when it is created."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from numbers import Integral, Real
from typing import Any

import numpy as np

from lsci.recording.errors import RecordingWarning

_POSITIVE_FLOATS = (
    "exposure_s",
    "frame_rate_hz",
    "laser_wavelength_nm",
    "pixel_size_um",
    "magnification",
)
_STRINGS = ("pixel_format", "camera_vendor", "camera_model", "camera_serial", "producer")


@dataclass(frozen=True, kw_only=True)
class AcquisitionMetadata:
    """Camera settings and optical set-up of one recording.

    Every field is optional except ``notes`` (empty by default): ``None`` means unknown and the
    attribute is then absent from the file. There are deliberately no fields about the subject.

    Parameters
    ----------
    exposure_s : float, optional
        Exposure time in seconds (> 0).
    gain : float, optional
        Camera gain as the camera reports it (finite).
    frame_rate_hz : float, optional
        Requested frame rate in frames per second (> 0); the achieved rate follows from the
        timestamps.
    pixel_format : str, optional
        GenICam pixel format name, e.g. ``"Mono8"`` or ``"Mono12"``.
    bit_depth : int, optional
        Significant bits per pixel, 1 to 16.
    roi : tuple of 4 int, optional
        Sensor region ``(offset_x, offset_y, width, height)`` in pixels.
    camera_vendor, camera_model, camera_serial : str, optional
        Camera identification.
    producer : str, optional
        File name of the GenTL producer (``.cti``) that drove the camera.
    laser_wavelength_nm : float, optional
        Laser wavelength in nanometres (> 0).
    pixel_size_um : float, optional
        Sensor pixel pitch in micrometres (> 0).
    magnification : float, optional
        Optical magnification (> 0).
    start_time_utc : str, optional
        Start of the acquisition, ISO 8601 with a UTC offset of zero. The writer fills it in
        when it is ``None``.
    notes : str
        Free text.

    Raises
    ------
    ValueError, TypeError
        When a field has the wrong type or an impossible value.

    Examples
    --------
    >>> meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=100.0, bit_depth=8)
    >>> meta.exposure_s
    0.005
    """

    exposure_s: float | None = None
    gain: float | None = None
    frame_rate_hz: float | None = None
    pixel_format: str | None = None
    bit_depth: int | None = None
    roi: tuple[int, int, int, int] | None = None
    camera_vendor: str | None = None
    camera_model: str | None = None
    camera_serial: str | None = None
    producer: str | None = None
    laser_wavelength_nm: float | None = None
    pixel_size_um: float | None = None
    magnification: float | None = None
    start_time_utc: str | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        for name in (*_POSITIVE_FLOATS, "gain"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"{name} must be a real number or None, got {value!r}")
            value = float(value)
            positive = name != "gain"
            if not math.isfinite(value) or (positive and value <= 0):
                allowed = "a finite number > 0" if positive else "a finite number"
                raise ValueError(f"{name}={value!r} is invalid: it must be {allowed}")
            object.__setattr__(self, name, value)
        for name in _STRINGS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None, got {value!r}")
        if not isinstance(self.notes, str):
            raise TypeError(f"notes must be a string, got {self.notes!r}")
        bit_depth: object = self.bit_depth
        if bit_depth is not None:
            if isinstance(bit_depth, bool) or not isinstance(bit_depth, Integral):
                raise TypeError(f"bit_depth must be an integer or None, got {bit_depth!r}")
            if not 1 <= int(bit_depth) <= 16:
                raise ValueError(f"bit_depth={bit_depth!r} is invalid: allowed 1 to 16")
            object.__setattr__(self, "bit_depth", int(bit_depth))
        if self.roi is not None:
            object.__setattr__(self, "roi", _check_roi(self.roi))
        if self.start_time_utc is not None:
            object.__setattr__(self, "start_time_utc", normalise_utc(self.start_time_utc))

    def to_attrs(self) -> dict[str, Any]:
        """The known fields as HDF5 attribute values (unknown ones left out).

        Returns
        -------
        dict
            Field name to a str, float, int or int64 array (for ``roi``).
        """
        attrs: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if value is None:
                continue
            attrs[name] = np.asarray(value, dtype=np.int64) if name == "roi" else value
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> AcquisitionMetadata:
        """Rebuild the metadata from HDF5 attributes; attributes lsci does not know are ignored.

        Every field is optional, so one invalid stored value (an exposure of 0, a bit depth of
        99, a ``roi`` of three numbers, an unparsable start time) does not make the recording
        unreadable: that field becomes unknown (``None``) and a :class:`RecordingWarning`
        names it.

        Parameters
        ----------
        attrs : mapping
            The attributes of the ``/acquisition`` group.

        Returns
        -------
        AcquisitionMetadata
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name in sorted(known & set(attrs)):
            try:
                value = _plain(attrs[name])
                cls(**{name: value})
            except (TypeError, ValueError, UnicodeDecodeError) as exc:
                default = "empty" if name == "notes" else "unknown"
                warnings.warn(
                    f"acquisition metadata {name} is invalid and treated as {default}: {exc}",
                    RecordingWarning,
                    stacklevel=2,
                )
                continue
            values[name] = value
        return cls(**values)


def _plain(value: Any) -> Any:
    """An attribute value as the Python value a field expects."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise TypeError(f"expected integers, got an array of {value.dtype}")
        return tuple(int(v) for v in value.ravel())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_roi(roi: Any) -> tuple[int, int, int, int]:
    try:
        values = tuple(roi)
    except TypeError:
        raise TypeError(f"roi must be (offset_x, offset_y, width, height), got {roi!r}") from None
    if len(values) != 4 or not all(
        isinstance(v, Integral) and not isinstance(v, bool) for v in values
    ):
        raise TypeError(f"roi must be 4 integers (offset_x, offset_y, width, height), got {roi!r}")
    x, y, width, height = (int(v) for v in values)
    if x < 0 or y < 0 or width <= 0 or height <= 0:
        raise ValueError(f"roi={roi!r} is invalid: offsets must be >= 0 and sizes > 0")
    return x, y, width, height


def normalise_utc(text: str) -> str:
    """Check an ISO 8601 time with a zero UTC offset and return it in the canonical form.

    Parameters
    ----------
    text : str
        For example ``"2026-03-01T10:00:00Z"`` or ``"2026-03-01T10:00:00.5+00:00"``.

    Returns
    -------
    str
        ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Raises
    ------
    ValueError
        When ``text`` is not ISO 8601 or not in UTC.
    """
    if not isinstance(text, str):
        raise TypeError(f"start_time_utc must be an ISO 8601 string, got {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"start_time_utc={text!r} is not an ISO 8601 time") from None
    offset = moment.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise ValueError(f"start_time_utc={text!r} must be in UTC (end in 'Z' or '+00:00')")
    return format_utc(moment)


def format_utc(moment: datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_to_ns(text: str) -> int:
    """Nanoseconds since the Unix epoch of a canonical UTC time string (microsecond precision)."""
    moment = datetime.fromisoformat(text)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
