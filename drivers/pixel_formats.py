"""Monochrome camera pixel formats and their unpacking into NumPy arrays.

The names and codes are those of the GenICam Pixel Format Naming Convention (PFNC). Frames
come out as ``(height, width)`` arrays: ``uint8`` for ``Mono8`` and ``uint16`` holding the raw
counts (never rescaled) for every deeper format.

Three memory layouts occur on real cameras:

- unpacked (``Mono8``, ``Mono10``, ``Mono12``, ``Mono16``): one byte, or two little-endian
  bytes, per pixel;
- PFNC packed (``Mono10p``, ``Mono12p``): the pixels of a line form one bit stream filled
  least significant bit first; ``Mono12p`` stores two pixels in three bytes as
  ``p0 = b0 | (b1 & 0x0F) << 8`` and ``p1 = b1 >> 4 | b2 << 4``, ``Mono10p`` four pixels in
  five bytes;
- GigE Vision legacy packed (``Mono12Packed``): two pixels in three bytes as
  ``p0 = b0 << 4 | (b1 & 0x0F)`` and ``p1 = b2 << 4 | b1 >> 4``.

Every line starts on a byte boundary: a line takes ``ceil(width * bits / 8)`` bytes (the last
byte of an odd-width ``Mono12p`` line holds one unused nibble), optionally followed by
``line_padding_bytes`` that the transport adds (GenTL's ``padding_x``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from lsci.drivers._unpack import unpack_lsb, unpack_mono12packed

__all__ = [
    "PIXEL_FORMATS",
    "Packing",
    "PixelFormatInfo",
    "bit_depth",
    "buffer_size",
    "from_pfnc_code",
    "info",
    "line_bytes",
    "output_dtype",
    "unpack",
]


class Packing(enum.Enum):
    """How pixels are laid out in a line."""

    UNPACKED = "unpacked"
    PFNC_LSB = "pfnc_lsb"
    GIGE_LEGACY = "gige_legacy"


@dataclass(frozen=True)
class PixelFormatInfo:
    """A supported pixel format.

    Attributes
    ----------
    name
        The PFNC name, e.g. ``"Mono12p"``.
    pfnc_code
        The PFNC 32-bit code a GenTL buffer reports.
    storage_bits
        Bits a pixel takes in the buffer.
    bit_depth
        Significant bits per pixel.
    packing
        The layout of a line.
    """

    name: str
    pfnc_code: int
    storage_bits: int
    bit_depth: int
    packing: Packing


PIXEL_FORMATS: Final[Mapping[str, PixelFormatInfo]] = MappingProxyType(
    {
        f.name: f
        for f in (
            PixelFormatInfo("Mono8", 0x01080001, 8, 8, Packing.UNPACKED),
            PixelFormatInfo("Mono10", 0x01100003, 16, 10, Packing.UNPACKED),
            PixelFormatInfo("Mono12", 0x01100005, 16, 12, Packing.UNPACKED),
            PixelFormatInfo("Mono16", 0x01100007, 16, 16, Packing.UNPACKED),
            PixelFormatInfo("Mono10p", 0x010A0046, 10, 10, Packing.PFNC_LSB),
            PixelFormatInfo("Mono12p", 0x010C0047, 12, 12, Packing.PFNC_LSB),
            PixelFormatInfo("Mono12Packed", 0x010C0006, 12, 12, Packing.GIGE_LEGACY),
        )
    }
)
"""Every supported format by name, in order of preference for a default."""

_BY_CODE: Final = {f.pfnc_code: f.name for f in PIXEL_FORMATS.values()}


def info(pixel_format: str) -> PixelFormatInfo:
    """Describe ``pixel_format``.

    Raises
    ------
    ValueError
        When the format is not supported.
    """
    try:
        return PIXEL_FORMATS[pixel_format]
    except (KeyError, TypeError):
        raise ValueError(
            f"pixel_format={pixel_format!r} is not supported; use one of {tuple(PIXEL_FORMATS)}"
        ) from None


def bit_depth(pixel_format: str) -> int:
    """Significant bits per pixel of ``pixel_format``.

    Examples
    --------
    >>> bit_depth("Mono12p")
    12
    """
    return info(pixel_format).bit_depth


def output_dtype(pixel_format: str) -> np.dtype[np.uint8] | np.dtype[np.uint16]:
    """The dtype :func:`unpack` returns for ``pixel_format``: uint8 for 8 bits, else uint16."""
    if info(pixel_format).bit_depth <= 8:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16)


def from_pfnc_code(code: int) -> str | None:
    """The name of the supported format with PFNC code ``code``, None when unsupported."""
    return _BY_CODE.get(code)


def line_bytes(pixel_format: str, width: int) -> int:
    """Bytes one line of ``width`` pixels takes, without transport padding.

    Examples
    --------
    >>> line_bytes("Mono12p", 3), line_bytes("Mono10p", 4), line_bytes("Mono16", 3)
    (5, 5, 6)
    """
    _check_positive("width", width)
    return -(-width * info(pixel_format).storage_bits // 8)


def buffer_size(pixel_format: str, width: int, height: int, *, line_padding_bytes: int = 0) -> int:
    """Bytes of an image of ``width`` × ``height`` pixels with the given line padding."""
    _check_positive("height", height)
    _check_non_negative("line_padding_bytes", line_padding_bytes)
    return (line_bytes(pixel_format, width) + line_padding_bytes) * height


def unpack(
    buffer: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    pixel_format: str,
    width: int,
    height: int,
    *,
    line_padding_bytes: int = 0,
    out: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | None = None,
) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint16]:
    """Turn a raw image buffer into a ``(height, width)`` array of pixel counts.

    Parameters
    ----------
    buffer
        The image bytes, exactly :func:`buffer_size` of them.
    pixel_format
        A name from :data:`PIXEL_FORMATS`.
    width, height
        The image size in pixels.
    line_padding_bytes
        Bytes the transport appends to every line.
    out
        Where to write: a writable C-contiguous array of shape ``(height, width)`` and dtype
        :func:`output_dtype`. A new array when None.

    Returns
    -------
    numpy.ndarray
        ``out``, or a new array; it never shares memory with ``buffer``.

    Raises
    ------
    ValueError
        When the format is unsupported, a size is not positive, ``buffer`` has the wrong
        number of bytes, or ``out`` does not fit.
    TypeError
        When ``buffer`` is not bytes-like.

    Examples
    --------
    >>> unpack(bytes([0x21, 0x43, 0x65]), "Mono12p", 2, 1).tolist()
    [[801, 1620]]
    >>> unpack(bytes([0x21, 0x43, 0x65]), "Mono12Packed", 2, 1).tolist()
    [[531, 1620]]
    """
    fmt = info(pixel_format)
    expected = buffer_size(pixel_format, width, height, line_padding_bytes=line_padding_bytes)
    try:
        src = np.frombuffer(buffer, dtype=np.uint8)
    except (TypeError, ValueError) as error:
        raise TypeError(f"buffer must be a contiguous bytes-like object: {error}") from None
    if src.size != expected:
        raise ValueError(
            f"buffer has {src.size} bytes; a {width}×{height} {pixel_format} image with "
            f"{line_padding_bytes} padding bytes per line has {expected}"
        )
    dtype = output_dtype(pixel_format)
    if out is None:
        out = np.empty((height, width), dtype=dtype)
    elif out.shape != (height, width) or out.dtype != dtype:
        raise ValueError(
            f"out has shape {out.shape} and dtype {out.dtype}; needs ({height}, {width}) {dtype}"
        )
    elif not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be a writable C-contiguous array")

    stride = line_bytes(pixel_format, width) + line_padding_bytes
    if fmt.packing is Packing.PFNC_LSB:
        unpack_lsb(src, stride, fmt.storage_bits, out)
    elif fmt.packing is Packing.GIGE_LEGACY:
        unpack_mono12packed(src, stride, out)
    else:
        lines = src.reshape(height, stride)[:, : width * dtype.itemsize]
        # PFNC multi-byte pixels are little endian whatever the host's byte order.
        np.copyto(out, lines.view(dtype.newbyteorder("<")), casting="equiv")
    return out


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer")


def _check_non_negative(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name}={value!r} must be a non-negative integer")
