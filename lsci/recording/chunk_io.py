"""Reading and writing whole HDF5 chunks directly, one frame or map per chunk.

Frames and maps are stored one per chunk with HDF5's Fletcher-32 checksum
(:mod:`lsci.recording.checksum`). Moving whole chunks with ``read_direct_chunk`` and
``write_direct_chunk``, checksummed here, skips HDF5's filter pipeline, whose checksum and
copies cost more than the contrast kernels: the bytes on disk are the same, and every HDF5
reader still verifies them. Only datasets laid out that way are read like this; anything else
(compressed, other chunking, a checksum that does not match) goes through h5py, which gives the
library's own answer and error.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from lsci.recording.checksum import CHECKSUM_BYTES, fletcher32, verify_chunks, with_checksum

__all__ = ["direct_chunk_checksum", "planes_buffer_bytes", "read_planes", "write_planes"]


def direct_chunk_checksum(dataset: h5py.Dataset) -> bool | None:
    """Whether ``dataset``'s chunks carry a checksum, or None when they cannot be moved whole.

    Whole chunks can be moved when each holds one plane (``chunks == (1, *shape[1:])``) of a
    native dtype and the only filter, if any, is Fletcher-32.
    """
    if dataset.ndim < 2 or dataset.chunks != (1, *dataset.shape[1:]):
        return None
    if not dataset.dtype.isnative or dataset.dtype.kind not in "uif":
        return None
    plist = dataset.id.get_create_plist()
    codes = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if codes == []:
        return False
    if codes == [h5py.h5z.FILTER_FLETCHER32]:
        return True
    return None


def read_planes(
    dataset: h5py.Dataset, start: int, stop: int, out: npt.NDArray[np.uint8] | None = None
) -> npt.NDArray[Any] | None:
    """Planes ``[start, stop)`` read chunk by chunk and verified, or None to read through h5py.

    None when the dataset is not laid out for it (:func:`direct_chunk_checksum`), a chunk is
    missing or of another size, or a checksum does not match (h5py then names the damage).
    ``out``, a 1-D uint8 buffer of at least :func:`planes_buffer_bytes`, is filled instead of
    new memory (the planes returned are a view of it).
    """
    checksum = direct_chunk_checksum(dataset)
    if checksum is None or stop <= start:
        return None
    plane_shape = tuple(int(n) for n in dataset.shape[1:])
    plane_bytes = int(np.prod(plane_shape)) * dataset.dtype.itemsize
    extra = CHECKSUM_BYTES if checksum else 0
    n = stop - start
    # Chunk i is read to [i·plane_bytes, …): its checksum lands where chunk i + 1 starts, and is
    # kept aside before that chunk overwrites it, so the planes need no copy.
    size = n * plane_bytes + extra
    if out is not None and (out.dtype != np.uint8 or out.ndim != 1 or out.size < size):
        raise ValueError(f"out must be a 1-D uint8 buffer of at least {size} bytes")
    flat = np.empty(size, np.uint8) if out is None else out[:size]
    stored = np.empty(n, "<u4")
    origin = (0,) * len(plane_shape)
    for i in range(n):
        place = flat[i * plane_bytes : (i + 1) * plane_bytes + extra]
        try:
            mask, chunk = dataset.id.read_direct_chunk((start + i, *origin), out=place)
        except (OSError, ValueError, KeyError):
            return None
        if mask != 0 or len(chunk) != plane_bytes + extra:
            return None
        if checksum:
            stored[i] = place[plane_bytes:].view("<u4")[0]
    planes = flat[: n * plane_bytes]
    if checksum and not verify_chunks(planes.reshape(n, plane_bytes), stored).all():
        return None
    frames: npt.NDArray[Any] = planes.view(dataset.dtype).reshape(n, *plane_shape)
    return frames


def planes_buffer_bytes(dataset: h5py.Dataset, n: int) -> int:
    """Bytes of an ``out`` buffer for :func:`read_planes` of ``n`` planes of ``dataset``."""
    plane_bytes = int(np.prod(dataset.shape[1:], dtype=np.int64)) * int(dataset.dtype.itemsize)
    return n * plane_bytes + CHECKSUM_BYTES


def write_planes(
    dataset: h5py.Dataset,
    start: int,
    planes: npt.NDArray[Any],
    buffer: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.uint8] | None:
    """Write ``planes`` at ``start``, one whole chunk each (h5py's write when not laid out so).

    Parameters
    ----------
    dataset : h5py.Dataset
        Open for writing.
    start : int
        Index of the first plane.
    planes : ndarray
        Of ``dataset.shape[1:]`` each; converted to the dataset's dtype. Its memory is borrowed
        during the call (see below): no other thread may read it meanwhile.
    buffer : ndarray of uint8, optional
        Room for one checksummed chunk, reused from the last call.

    Returns
    -------
    ndarray of uint8 or None
        The buffer, to pass to the next call.
    """
    checksum = direct_chunk_checksum(dataset)
    if checksum is None:
        dataset[start : start + len(planes)] = planes
        return buffer
    origin = (0,) * (dataset.ndim - 1)
    n = len(planes)
    if not checksum:
        for offset in range(n):
            values = np.ascontiguousarray(planes[offset], dtype=dataset.dtype)
            dataset.id.write_direct_chunk(
                (start + offset, *origin), values.reshape(-1).view(np.uint8)
            )
        return buffer
    borrowed = 0
    if planes.dtype == dataset.dtype and planes.flags.c_contiguous and planes.flags.writeable:
        # Each plane but the last is followed in memory by the next one: its checksum is put
        # there for the write and those 4 bytes are then put back, so no plane is copied.
        borrowed = n - 1
        flat = planes.reshape(-1).view(np.uint8)
        plane_bytes = flat.size // n if n else 0
        for offset in range(borrowed):
            chunk = flat[offset * plane_bytes : (offset + 1) * plane_bytes + CHECKSUM_BYTES]
            following = chunk[plane_bytes:].copy()
            try:
                chunk[plane_bytes:] = np.array([fletcher32(chunk[:plane_bytes])], "<u4").view(
                    np.uint8
                )
                dataset.id.write_direct_chunk((start + offset, *origin), chunk)
            finally:
                chunk[plane_bytes:] = following
    for offset in range(borrowed, n):
        values = np.ascontiguousarray(planes[offset], dtype=dataset.dtype)
        if buffer is None or buffer.size < values.nbytes + CHECKSUM_BYTES:
            buffer = np.empty(values.nbytes + CHECKSUM_BYTES, np.uint8)
        dataset.id.write_direct_chunk((start + offset, *origin), with_checksum(values, out=buffer))
    return buffer
