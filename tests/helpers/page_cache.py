"""Which pages of a file the kernel holds in its page cache (``mincore`` on a mapping)."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

_PAGE = mmap.PAGESIZE


def cached_bytes(path: Path) -> int:
    """Bytes of ``path`` that are in the page cache (whole pages)."""
    size = path.stat().st_size
    if size == 0:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    pages = -(-size // _PAGE)
    flags = (ctypes.c_ubyte * pages)()
    with path.open("rb") as handle:
        # A private mapping: mincore then reports the file's cached pages, nothing is written.
        mapping = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY)
        try:
            view = (ctypes.c_char * size).from_buffer(mapping)
            try:
                status = libc.mincore(
                    ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size), flags
                )
                if status != 0:
                    raise OSError(ctypes.get_errno(), "mincore failed")
            finally:
                del view
        finally:
            mapping.close()
    return _PAGE * sum(flag & 1 for flag in flags)


def pages_can_be_dropped(folder: Path) -> bool:
    """Whether ``posix_fadvise(DONTNEED)`` drops a written file's pages in ``folder`` (not on
    tmpfs, where the page cache is the storage)."""
    probe = folder / "page-cache-probe.bin"
    with probe.open("wb") as handle:
        handle.write(os.urandom(64 * _PAGE))
        handle.flush()
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    try:
        return cached_bytes(probe) < 32 * _PAGE
    finally:
        probe.unlink()
