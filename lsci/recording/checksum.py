"""HDF5's Fletcher-32 chunk checksum, computed outside the library's filter pipeline.

Every frame of a recording and every map of a product set is one HDF5 chunk followed by the
4-byte Fletcher-32 checksum of the ``fletcher32`` filter. HDF5 computes it one 16-bit word at a
time (``H5_checksum_fletcher32`` in ``H5checksum.c``), at about 0.7 GB/s when writing: for
float32 maps that costs more than computing them. Reading and writing whole chunks directly
(``read_direct_chunk``/``write_direct_chunk``) with the checksum computed here gives the very
same bytes on disk, and every HDF5 reader still verifies them.

HDF5's definition: the chunk's bytes are read as big-endian 16-bit words ``w`` (an odd last
byte is the high byte of a last word); ``sum1 += w; sum2 += sum1`` for each word, both 32-bit
unsigned, folded as ``s = (s & 0xffff) + (s >> 16)`` after every 360 words (and after the odd
byte), then folded once more; the checksum is ``sum2 << 16 | sum1``, stored little-endian after
the data. Releases before 1.6.3 stored it with the bytes of each half swapped, which HDF5 still
accepts when reading, and so does :func:`verify_chunks`.

Words are summed per 360-word block, each on its own (in vector lanes): a block adds ``Σw`` to
``sum1`` and ``n·sum1 + Σ(n − i)·w_i`` to ``sum2`` (``i`` from 0), the same totals as the word
loop, reduced modulo 2³² as the library's 32-bit sums are; the folds are then applied block by
block in order, exactly where the library applies them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["CHECKSUM_BYTES", "fletcher32", "verify_chunks", "with_checksum"]

#: Bytes HDF5's ``fletcher32`` filter appends to a chunk.
CHECKSUM_BYTES = 4
_BLOCK_WORDS = 360  # HDF5 folds the sums after this many words
_OPTS: dict[str, Any] = {"cache": True, "nogil": True}


@njit(**_OPTS)
def _block_sums(words: np.ndarray, sums: np.ndarray) -> None:
    """``sums[b] = (Σw, Σ(n − i)·w_i)`` modulo 2³² of each block of the native uint16 ``words``.

    Modulo 2³² is all the library's 32-bit sums keep, so the loop runs on unsigned 32-bit lanes;
    ``Σ(n − i)·w_i`` is formed as ``n·Σw − Σi·w_i``.
    """
    for b in range(sums.shape[0]):
        start = b * _BLOCK_WORDS
        n = min(_BLOCK_WORDS, words.shape[0] - start)
        s1 = np.uint32(0)
        weighted = np.uint32(0)
        for i in range(n):
            x = np.uint32(words[start + i])
            word = ((x & np.uint32(0xFF)) << np.uint32(8)) | (x >> np.uint32(8))  # big-endian
            s1 = np.uint32(s1 + word)
            weighted = np.uint32(weighted + np.uint32(np.uint32(i) * word))
        sums[b, 0] = s1
        sums[b, 1] = np.uint32(np.uint32(n) * s1 - weighted)


@njit(**_OPTS)
def _fold(s: np.int64) -> np.int64:
    return (s & 0xFFFF) + (s >> 16)


@njit(**_OPTS)
def _fletcher32(words: np.ndarray, odd_byte: int) -> np.uint32:
    """The checksum of native uint16 ``words`` then, unless ``odd_byte < 0``, one last byte."""
    n_words = words.shape[0]
    sums = np.empty((-(-n_words // _BLOCK_WORDS), 2), np.int64)
    _block_sums(words, sums)
    # The library's folds, in its order.
    mask = np.int64(0xFFFFFFFF)
    sum1 = np.int64(0)
    sum2 = np.int64(0)
    for b in range(sums.shape[0]):
        n = min(_BLOCK_WORDS, n_words - b * _BLOCK_WORDS)
        sum2 = _fold((sum2 + n * sum1 + sums[b, 1]) & mask)
        sum1 = _fold((sum1 + sums[b, 0]) & mask)
    if odd_byte >= 0:
        sum1 = (sum1 + (np.int64(odd_byte) << 8)) & mask
        sum2 = _fold((sum2 + sum1) & mask)
        sum1 = _fold(sum1)
    return np.uint32((_fold(sum2) << 16) | _fold(sum1))


@njit(**_OPTS)
def _fletcher32_rows(words: np.ndarray, odd_bytes: np.ndarray, out: np.ndarray) -> None:
    """Checksums of the rows of ``words`` (2-D).

    On one thread: readers verify frames in the thread that reads them, beside the computing
    threads. (A ``prange`` here also keeps numba from vectorising the block loop.)
    """
    for c in range(words.shape[0]):
        out[c] = _fletcher32(words[c], odd_bytes[c])


def _words(data: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint16], int]:
    """The whole 16-bit words of 1-D bytes, and the odd last byte (−1 when there is none)."""
    n_words = data.shape[-1] // 2
    odd = int(data[-1]) if data.shape[-1] % 2 else -1
    return data[: 2 * n_words].view(np.uint16), odd


def _bytes_of(array: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """The bytes of a C-contiguous array as a 1-D uint8 view (no copy)."""
    if not array.flags.c_contiguous:
        raise ValueError("the array must be C-contiguous, as HDF5 stores a chunk")
    return array.reshape(-1).view(np.uint8)


def fletcher32(chunk: npt.NDArray[Any]) -> int:
    """HDF5's Fletcher-32 checksum of one chunk's bytes.

    Parameters
    ----------
    chunk : ndarray
        C-contiguous; its bytes in memory order, as HDF5 stores them.

    Returns
    -------
    int
        The checksum, as ``H5_checksum_fletcher32`` computes it.
    """
    return int(_fletcher32(*_words(_bytes_of(chunk))))


def with_checksum(
    chunk: npt.NDArray[Any], out: npt.NDArray[np.uint8] | None = None
) -> npt.NDArray[np.uint8]:
    """The bytes HDF5's ``fletcher32`` filter stores for ``chunk``: its data, then the checksum.

    ``out``, when given, is a uint8 buffer of at least the chunk's bytes plus
    :data:`CHECKSUM_BYTES` to fill (the result is a view of it).
    """
    data = _bytes_of(chunk)
    size = data.size + CHECKSUM_BYTES
    if out is not None and (out.dtype != np.uint8 or out.ndim != 1 or out.size < size):
        raise ValueError(f"out must be a 1-D uint8 buffer of at least {size} bytes")
    stored = np.empty(size, np.uint8) if out is None else out[:size]
    stored[: data.size] = data
    stored[data.size :] = np.array([_fletcher32(*_words(data))], "<u4").view(np.uint8)
    return stored


def verify_chunks(chunks: npt.NDArray[np.uint8], stored: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Which chunks match their stored checksum, as HDF5 checks them when reading.

    Parameters
    ----------
    chunks : ndarray of uint8, shape (n, chunk_bytes)
        The chunks' data.
    stored : ndarray of uint32, shape (n,)
        The checksums stored after each chunk (decoded little-endian).

    Returns
    -------
    ndarray of bool, shape (n,)
        True where the checksum matches, or matches with the bytes of each half swapped
        (files written by HDF5 before 1.6.3).
    """
    computed = np.empty(chunks.shape[0], np.uint32)
    n_words = chunks.shape[1] // 2
    odd_bytes = chunks[:, -1].astype(np.int64) if chunks.shape[1] % 2 else np.full(len(chunks), -1)
    words = np.ascontiguousarray(chunks[:, : 2 * n_words]).view(np.uint16)
    _fletcher32_rows(words, odd_bytes, computed)
    halves_swapped = ((computed & 0x00FF00FF) << 8) | ((computed >> 8) & 0x00FF00FF)
    result: npt.NDArray[np.bool_] = (stored == computed) | (stored == halves_swapped)
    return result
