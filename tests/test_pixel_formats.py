"""Pixel-format unpacking, checked bit for bit against the PFNC and GigE Vision layouts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsci.drivers import pixel_formats
from lsci.drivers.pixel_formats import PIXEL_FORMATS, unpack

# -- an independent packer, written from the specifications, pixel by pixel -------------------


def pack_lsb(pixels: list[int], bits: int) -> bytes:
    """PFNC ``p`` layout: append each pixel's bits, least significant first, to a bit stream."""
    stream = 0
    for i, value in enumerate(pixels):
        stream |= value << (i * bits)
    return stream.to_bytes(-(-len(pixels) * bits // 8), "little")


def pack_mono12packed(pixels: list[int]) -> bytes:
    """GigE Vision Mono12Packed: high 8 bits of each pixel in bytes 0 and 2, low nibbles in 1."""
    out = bytearray()
    for i in range(0, len(pixels), 2):
        p0 = pixels[i]
        p1 = pixels[i + 1] if i + 1 < len(pixels) else None
        out.append(p0 >> 4)
        if p1 is None:
            out.append(p0 & 0x0F)
        else:
            out.append((p0 & 0x0F) | (p1 & 0x0F) << 4)
            out.append(p1 >> 4)
    return bytes(out)


def pack_line(pixels: list[int], pixel_format: str) -> bytes:
    fmt = PIXEL_FORMATS[pixel_format]
    if fmt.packing is pixel_formats.Packing.PFNC_LSB:
        return pack_lsb(pixels, fmt.storage_bits)
    if fmt.packing is pixel_formats.Packing.GIGE_LEGACY:
        return pack_mono12packed(pixels)
    size = fmt.storage_bits // 8
    return b"".join(v.to_bytes(size, "little") for v in pixels)


def pack_image(image: np.ndarray, pixel_format: str, padding: int) -> bytes:
    return b"".join(
        pack_line([int(v) for v in row], pixel_format) + bytes([0xA5] * padding) for row in image
    )


# -- hand-built bit patterns -------------------------------------------------------------------


def test_mono12p_two_pixels_in_three_bytes() -> None:
    # p0 = b0 | (b1 & 0x0F) << 8 = 0xABC; p1 = b1 >> 4 | b2 << 4 = 0xDEF
    raw = bytes([0xBC, 0xFA, 0xDE])
    assert unpack(raw, "Mono12p", 2, 1).tolist() == [[0xABC, 0xDEF]]


def test_mono12packed_two_pixels_in_three_bytes() -> None:
    # p0 = b0 << 4 | (b1 & 0x0F) = 0xABC; p1 = b2 << 4 | b1 >> 4 = 0xDEF
    raw = bytes([0xAB, 0xFC, 0xDE])
    assert unpack(raw, "Mono12Packed", 2, 1).tolist() == [[0xABC, 0xDEF]]


def test_mono12p_and_mono12packed_differ_on_the_same_bytes() -> None:
    raw = bytes([0x12, 0x34, 0x56])
    assert unpack(raw, "Mono12p", 2, 1).tolist() == [[0x412, 0x563]]
    assert unpack(raw, "Mono12Packed", 2, 1).tolist() == [[0x124, 0x563]]


def test_mono10p_four_pixels_in_five_bytes() -> None:
    # Pixels 0x3FF, 0x000, 0x155, 0x2AA as a little-endian 40-bit stream:
    # bits 0-9 = 0x3FF, 10-19 = 0, 20-29 = 0x155, 30-39 = 0x2AA.
    # b0 = 0xFF; b1 = 0x03 (p0 bits 8-9); b2 = 0x50 (p2 bits 0-3 at bit 4);
    # b3 = 0x15 | (0x2AA & 0x3) << 6 = 0x95; b4 = 0x2AA >> 2 = 0xAA.
    raw = bytes([0xFF, 0x03, 0x50, 0x95, 0xAA])
    assert unpack(raw, "Mono10p", 4, 1).tolist() == [[0x3FF, 0x000, 0x155, 0x2AA]]


def test_mono10p_partial_group_at_line_end() -> None:
    # Two pixels take 20 bits: three bytes, the last nibble unused; the next line starts on
    # the next byte.
    line0 = bytes([0x01, 0x08, 0x00])  # p0 = 1, p1 = 2
    line1 = bytes([0xFF, 0xFF, 0x0F])  # p0 = p1 = 0x3FF
    assert unpack(line0 + line1, "Mono10p", 2, 2).tolist() == [[1, 2], [0x3FF, 0x3FF]]


def test_mono12p_odd_width_pads_each_line_to_a_byte() -> None:
    # Three pixels: 36 bits, five bytes per line.
    raw = bytes([0x01, 0x20, 0x00, 0x03, 0x00]) * 2
    assert unpack(raw, "Mono12p", 3, 2).tolist() == [[1, 2, 3], [1, 2, 3]]


def test_mono12packed_odd_width() -> None:
    raw = bytes([0xAB, 0xFC, 0xDE, 0x12, 0x03])
    assert unpack(raw, "Mono12Packed", 3, 1).tolist() == [[0xABC, 0xDEF, 0x123]]


def test_unpacked_16_bit_formats_are_little_endian() -> None:
    raw = bytes([0x34, 0x12, 0xFF, 0x0F])
    for name in ("Mono10", "Mono12", "Mono16"):
        result = unpack(raw, name, 2, 1)
        assert result.dtype == np.uint16
        assert result.tolist() == [[0x1234, 0x0FFF]]


def test_mono8_with_line_padding() -> None:
    raw = bytes([1, 2, 3, 0xEE, 4, 5, 6, 0xEE])
    result = unpack(raw, "Mono8", 3, 2, line_padding_bytes=1)
    assert result.dtype == np.uint8
    assert result.tolist() == [[1, 2, 3], [4, 5, 6]]


# -- randomized round trip against the packer above ---------------------------------------------


@given(
    pixel_format=st.sampled_from(sorted(PIXEL_FORMATS)),
    width=st.integers(1, 19),
    height=st.integers(1, 7),
    padding=st.integers(0, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_against_independent_packer(
    pixel_format: str, width: int, height: int, padding: int, seed: int
) -> None:
    depth = pixel_formats.bit_depth(pixel_format)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 2**depth, size=(height, width), dtype=np.int64)
    raw = pack_image(image, pixel_format, padding)
    assert len(raw) == pixel_formats.buffer_size(
        pixel_format, width, height, line_padding_bytes=padding
    )
    result = unpack(raw, pixel_format, width, height, line_padding_bytes=padding)
    assert result.dtype == pixel_formats.output_dtype(pixel_format)
    np.testing.assert_array_equal(result, image)


def test_large_image_uses_out_and_accepts_numpy_buffers() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 4096, size=(64, 96), dtype=np.int64)
    raw = np.frombuffer(pack_image(image, "Mono12p", 0), dtype=np.uint8)
    out = np.zeros((64, 96), dtype=np.uint16)
    assert unpack(raw, "Mono12p", 96, 64, out=out) is out
    np.testing.assert_array_equal(out, image)


def test_result_never_shares_memory_with_the_buffer() -> None:
    raw = bytearray(range(12))
    result = unpack(raw, "Mono8", 4, 3)
    raw[0] = 99
    assert result[0, 0] == 0


# -- metadata and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "depth", "dtype"),
    [
        ("Mono8", 8, np.uint8),
        ("Mono10", 10, np.uint16),
        ("Mono12", 12, np.uint16),
        ("Mono16", 16, np.uint16),
        ("Mono10p", 10, np.uint16),
        ("Mono12p", 12, np.uint16),
        ("Mono12Packed", 12, np.uint16),
    ],
)
def test_bit_depth_and_dtype(name: str, depth: int, dtype: type) -> None:
    assert pixel_formats.bit_depth(name) == depth
    assert pixel_formats.output_dtype(name) == np.dtype(dtype)
    assert pixel_formats.from_pfnc_code(PIXEL_FORMATS[name].pfnc_code) == name


def test_unknown_code_and_name() -> None:
    assert pixel_formats.from_pfnc_code(0x02200016) is None  # RGBa8
    with pytest.raises(ValueError, match=r"RGBa8.*Mono8"):
        pixel_formats.bit_depth("RGBa8")


@pytest.mark.parametrize("size", [2, 4])
def test_wrong_buffer_size_raises(size: int) -> None:
    with pytest.raises(ValueError, match=f"buffer has {size} bytes.*has 3"):
        unpack(bytes(size), "Mono12p", 2, 1)


def test_bad_sizes_and_out_raise() -> None:
    with pytest.raises(ValueError, match="width=0"):
        unpack(b"", "Mono8", 0, 1)
    with pytest.raises(ValueError, match="height=-1"):
        unpack(b"", "Mono8", 1, -1)
    with pytest.raises(ValueError, match="line_padding_bytes=-2"):
        unpack(b"", "Mono8", 1, 1, line_padding_bytes=-2)
    with pytest.raises(ValueError, match="out has shape"):
        unpack(bytes(3), "Mono12p", 2, 1, out=np.empty((1, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="C-contiguous"):
        unpack(bytes(4), "Mono8", 2, 2, out=np.empty((2, 4), dtype=np.uint8)[:, ::2])
    with pytest.raises(TypeError, match="bytes-like"):
        unpack([1, 2], "Mono8", 2, 1)  # type: ignore[arg-type]
