"""lsci's Fletcher-32 against the checksums HDF5's own filter stores."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lsci.recording.checksum import CHECKSUM_BYTES, fletcher32, verify_chunks, with_checksum
from lsci.recording.chunk_io import read_planes, write_planes

RNG = np.random.default_rng(7)

CHUNKS = {
    "uint8 frame": RNG.integers(0, 256, (1, 64, 80), dtype=np.uint8),
    "odd byte count": RNG.integers(0, 256, (1, 7, 9), dtype=np.uint8),
    "all 0xff, 360-word blocks at their largest sums": np.full((1, 300, 301), 255, np.uint8),
    "uint16 at full scale": np.full((1, 500, 500), 65535, np.uint16),
    "float32 map": RNG.random((1, 129, 257)).astype(np.float32),
    "NaN": np.full((1, 3), np.nan, np.float32),
    "one byte": np.zeros((1, 1), np.uint8),
}


def _stored_by_hdf5(tmp_path, chunk):
    with h5py.File(tmp_path / "f.h5", "w") as handle:
        dataset = handle.create_dataset("d", data=chunk, chunks=chunk.shape, fletcher32=True)
        mask, raw = dataset.id.read_direct_chunk((0,) * chunk.ndim)
    assert mask == 0
    return np.frombuffer(raw, np.uint8)


@pytest.mark.parametrize("name", CHUNKS)
def test_same_bytes_as_hdf5s_filter(tmp_path, name):
    chunk = CHUNKS[name]
    stored = _stored_by_hdf5(tmp_path, chunk)
    assert bytes(with_checksum(chunk)) == bytes(stored)
    assert fletcher32(chunk) == int(stored[-CHECKSUM_BYTES:].view("<u4")[0])


def test_chunks_written_directly_verify_in_hdf5(tmp_path):
    maps = RNG.random((3, 40, 50)).astype(np.float32)
    buffer = np.empty(maps[0].nbytes + CHECKSUM_BYTES + 16, np.uint8)
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        dataset = handle.create_dataset(
            "m", shape=maps.shape, dtype="f4", chunks=(1, 40, 50), fletcher32=True
        )
        for index, plane in enumerate(maps):
            dataset.id.write_direct_chunk((index, 0, 0), with_checksum(plane, out=buffer))
    with h5py.File(tmp_path / "d.h5", "r") as handle:
        np.testing.assert_array_equal(handle["m"][:], maps)  # HDF5 verified every chunk
        offset = handle["m"].id.get_chunk_info(1).byte_offset
    with open(tmp_path / "d.h5", "r+b") as raw:
        raw.seek(offset + 100)
        byte = raw.read(1)
        raw.seek(offset + 100)
        raw.write(bytes([byte[0] ^ 0x10]))
    with (
        h5py.File(tmp_path / "d.h5", "r") as handle,
        pytest.raises(OSError, match=r"(?i)checksum|filter|read"),
    ):
        handle["m"][1]


def test_verify_chunks_flags_damage_and_accepts_pre_1_6_3_order():
    chunks = RNG.integers(0, 256, (4, 1001), dtype=np.uint8)  # odd length too
    stored = np.array([fletcher32(c) for c in chunks], np.uint32)
    assert verify_chunks(chunks, stored).all()
    damaged = chunks.copy()
    damaged[2, 500] ^= 1
    assert verify_chunks(damaged, stored).tolist() == [True, True, False, True]
    # HDF5 before 1.6.3 stored each 16-bit half with its bytes swapped; HDF5 accepts both.
    swapped = ((stored & 0x00FF00FF) << 8) | ((stored >> 8) & 0x00FF00FF)
    assert verify_chunks(chunks, swapped).all()


def test_refuses_a_buffer_too_small_or_an_array_not_contiguous():
    plane = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="at least 68 bytes"):
        with_checksum(plane, out=np.empty(10, np.uint8))
    with pytest.raises(ValueError, match="C-contiguous"):
        fletcher32(np.zeros((4, 4))[:, ::2])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint8])
def test_write_planes_then_read_planes_round_trip(tmp_path, dtype):
    planes = (RNG.random((5, 7, 9)) * 200).astype(dtype)  # odd byte counts for uint8
    before = planes.copy()
    with h5py.File(tmp_path / "p.h5", "w") as handle:
        dataset = handle.create_dataset(
            "p", shape=(6, 7, 9), dtype=dtype, chunks=(1, 7, 9), fletcher32=True
        )
        buffer = write_planes(dataset, 1, planes)
        write_planes(dataset, 0, planes[:1].copy(), buffer)
    np.testing.assert_array_equal(planes, before)  # the borrowed bytes were put back
    with h5py.File(tmp_path / "p.h5", "r") as handle:
        np.testing.assert_array_equal(handle["p"][1:], planes)  # verified by HDF5
        np.testing.assert_array_equal(read_planes(handle["p"], 0, 6), handle["p"][:])


def test_read_planes_leaves_other_layouts_and_damage_to_h5py(tmp_path):
    frames = RNG.integers(0, 256, (4, 16, 16), dtype=np.uint8)
    with h5py.File(tmp_path / "l.h5", "w") as handle:
        handle.create_dataset("compressed", data=frames, chunks=(1, 16, 16), compression="gzip")
        handle.create_dataset("two_per_chunk", data=frames, chunks=(2, 16, 16), fletcher32=True)
        handle.create_dataset("plain", data=frames, chunks=(1, 16, 16))
        checked = handle.create_dataset("checked", data=frames, chunks=(1, 16, 16), fletcher32=True)
        offset = checked.id.get_chunk_info(2).byte_offset
    with h5py.File(tmp_path / "l.h5", "r") as handle:
        assert read_planes(handle["compressed"], 0, 4) is None
        assert read_planes(handle["two_per_chunk"], 0, 4) is None
        np.testing.assert_array_equal(read_planes(handle["plain"], 1, 3), frames[1:3])
        np.testing.assert_array_equal(read_planes(handle["checked"], 0, 4), frames)
    with open(tmp_path / "l.h5", "r+b") as raw:
        raw.seek(offset + 3)
        raw.write(bytes([frames[2, 0, 3] ^ 0xFF]))
    with h5py.File(tmp_path / "l.h5", "r") as handle:
        assert read_planes(handle["checked"], 0, 4) is None  # h5py then names the damage
        np.testing.assert_array_equal(read_planes(handle["checked"], 0, 2), frames[:2])
