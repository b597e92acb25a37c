"""Unpack packed monochrome pixel formats into ``uint16``, one image line per thread.

Each line of the source starts at ``line * stride`` bytes; the wrapper
(:func:`lsci.drivers.pixel_formats.unpack`) checks every size before calling a kernel, so the
kernels index without bounds checks.
"""

import numba
import numpy as np


@numba.njit(cache=True, parallel=True, nogil=True)
def unpack_lsb(src, stride, bits, dst):  # type: ignore[no-untyped-def]
    """PFNC ``p`` formats: pixels as one little-endian bit stream, least significant first.

    A 10- or 12-bit pixel starting at bit ``b`` of a line always spans the two bytes at
    ``b // 8`` and ``b // 8 + 1`` (its shift within the first byte is at most 6 for 10 bits
    and 4 for 12 bits), so two bytes give every pixel.
    """
    height, width = dst.shape
    mask = np.uint16((1 << bits) - 1)
    for y in numba.prange(height):
        line = y * stride
        for x in range(width):
            bit = x * bits
            byte = line + (bit >> 3)
            word = np.uint16(src[byte]) | (np.uint16(src[byte + 1]) << np.uint16(8))
            dst[y, x] = (word >> np.uint16(bit & 7)) & mask


@numba.njit(cache=True, parallel=True, nogil=True)
def unpack_mono12packed(src, stride, dst):  # type: ignore[no-untyped-def]
    """GigE Vision ``Mono12Packed``: two pixels in three bytes, the middle byte split.

    ``p0 = b0 << 4 | (b1 & 0x0F)`` and ``p1 = b2 << 4 | (b1 >> 4)``.
    """
    height, width = dst.shape
    for y in numba.prange(height):
        line = y * stride
        for x in range(width):
            byte = line + (x >> 1) * 3
            if x & 1:
                dst[y, x] = (np.uint16(src[byte + 2]) << np.uint16(4)) | (
                    np.uint16(src[byte + 1]) >> np.uint16(4)
                )
            else:
                dst[y, x] = (np.uint16(src[byte]) << np.uint16(4)) | (
                    np.uint16(src[byte + 1]) & np.uint16(0x0F)
                )
