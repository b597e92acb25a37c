"""Import multipage TIFF stacks as recordings; export frames, timestamps and derived products.

Export formats:

* **TIFF** keeps the numbers: raw counts stay ``uint8``/``uint16``, derived products keep their
  dtype; a stack becomes one multipage TIFF (BigTIFF above 3.9 GB).
* **CSV** keeps the numbers as text: one file per 2-D image (rows = image rows), integers as
  integers, floats with 9 significant digits; ``timestamps`` gives one row per frame.
* **PNG** is for viewing only: values are scaled linearly from ``vmin`` (black) to ``vmax``
  (white) and clipped, 8-bit grayscale; by default ``vmin``/``vmax`` are the minimum and maximum
  of the exported data (NaN ignored, drawn transparent).

Stacks exported to PNG or CSV give one file per frame, named ``<stem>_<index:06d><suffix>``
after ``out``, where ``index`` is the frame index in the recording.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from lsci.recording import layout
from lsci.recording.atomic import atomic_write, atomic_writes
from lsci.recording.errors import RecordingFormatError, RecordingStateError
from lsci.recording.metadata import AcquisitionMetadata, format_utc, utc_to_ns
from lsci.recording.reader import Recording, open_recording
from lsci.recording.writer import RecordingWriter

FORMATS = ("tiff", "png", "csv")
#: ``what`` values that are not derived products.
RAW, TIMESTAMPS = "raw", "timestamps"
_BIGTIFF_BYTES = 3_900_000_000


def import_tiff(
    tiff_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    metadata: AcquisitionMetadata,
    *,
    compression: str | None = None,
    checksum: bool = True,
    overwrite: bool = False,
) -> Path:
    """Turn a multipage TIFF of raw speckle frames into an lsci recording.

    Frames are copied exactly (``uint8`` or ``uint16`` only), one page at a time. Frame ids are
    0, 1, 2...; there are no camera timestamps (``-1``); host timestamps are synthesised from
    ``metadata.start_time_utc`` (now when unknown) and ``metadata.frame_rate_hz``.

    Parameters
    ----------
    tiff_path : str or os.PathLike
        A 2-D image or a stack of 2-D frames.
    out_path : str or os.PathLike
        The recording to create.
    metadata : AcquisitionMetadata
        What is known about the acquisition; ``frame_rate_hz`` is required. The source file
        name is added to the notes.
    compression : {None, "blosc-lz4"}
        As for :class:`RecordingWriter`.
    checksum : bool
        As for :class:`RecordingWriter`.
    overwrite : bool
        Replace an existing ``out_path``.

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    ValueError
        When ``metadata.frame_rate_hz`` is unknown.
    RecordingFormatError
        When the TIFF cannot be read, is not a stack of 2-D frames, or is not uint8/uint16.
    RecordingError
        When the recording cannot be written.

    Examples
    --------
    >>> import_tiff("speckle.tif", "speckle.h5",
    ...             AcquisitionMetadata(frame_rate_hz=100.0, exposure_s=0.005))  # doctest: +SKIP
    """
    source = Path(tiff_path)
    if not isinstance(metadata, AcquisitionMetadata):
        raise TypeError(f"metadata must be an AcquisitionMetadata, got {type(metadata)}")
    frame_rate_hz = metadata.frame_rate_hz
    if frame_rate_hz is None:
        raise ValueError(
            "metadata.frame_rate_hz=None is invalid for a TIFF import: give the frame rate, "
            "the timestamps are derived from it"
        )
    start_utc = metadata.start_time_utc or format_utc(datetime.now(UTC))
    note = f"Imported from {source.name}."
    notes = f"{metadata.notes}\n{note}" if metadata.notes else note
    metadata = replace(metadata, start_time_utc=start_utc, notes=notes)
    start_ns = utc_to_ns(start_utc)
    period_ns = 1e9 / frame_rate_hz
    with _open_tiff(source) as tif:
        shape, dtype, frames = _tiff_frames(tif, source)
        with (
            atomic_write(out_path, overwrite=overwrite, inputs=[source]) as temporary,
            RecordingWriter(
                temporary,
                metadata,
                frame_shape=shape,
                dtype=dtype,
                compression=compression,  # type: ignore[arg-type]
                checksum=checksum,
                overwrite=True,
                fsync_interval_s=None,
            ) as writer,
        ):
            for index, frame in enumerate(frames):
                writer.append(
                    frame, frame_id=index, host_timestamp_ns=start_ns + round(index * period_ns)
                )
    return Path(out_path)


class _TiffWarnings(logging.Handler):
    """Collects what tifffile logs: it reports a broken page chain there and reads on."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _open_tiff(path: Path) -> tifffile.TiffFile:
    if not path.is_file():
        raise RecordingFormatError(path, "no such TIFF file")
    try:
        return tifffile.TiffFile(path)
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise RecordingFormatError(path, f"not a readable TIFF file: {exc}") from None


def _tiff_frames(
    tif: tifffile.TiffFile, path: Path
) -> tuple[tuple[int, int], np.dtype[Any], Iterator[np.ndarray]]:
    """Check every page of the file, then return the frame shape, dtype and a page reader.

    Every page becomes a frame (a stack written page by page, or by several writes, has as
    many series as writes). ImageJ stacks above 4 GB store one page and the rest as raw
    frames described by its metadata; they are read through their single series.
    """
    warnings = _TiffWarnings()
    logger = logging.getLogger("tifffile")
    logger.addHandler(warnings)
    try:
        sources = _tiff_sources(tif, path)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
        raise RecordingFormatError(
            path, f"the TIFF file is damaged (truncated?): {exc}; nothing was imported"
        ) from None
    finally:
        logger.removeHandler(warnings)
    if warnings.messages:
        raise RecordingFormatError(
            path,
            f"the TIFF file is damaged (truncated?): {warnings.messages[0]}; pages would be "
            "missing, nothing was imported",
        )
    if not sources:
        raise RecordingFormatError(path, "holds no image pages")
    first_shape, first_dtype = sources[0][1], sources[0][2]
    for number, (_, shape, dtype) in enumerate(sources):
        if dtype not in layout.FRAME_DTYPES:
            raise RecordingFormatError(
                path,
                f"page {number} holds {dtype} pixels; raw speckle frames must be uint8 or uint16",
            )
        if len(shape) != 2:
            raise RecordingFormatError(
                path,
                f"page {number} has shape {shape}: colour (RGB/RGBA) or multi-sample pages are "
                "not raw speckle frames; expected one grey value per pixel",
            )
        if (shape, dtype) != (first_shape, first_dtype):
            raise RecordingFormatError(
                path,
                f"page {number} is {'×'.join(map(str, shape))} {dtype} but page 0 is "
                f"{'×'.join(map(str, first_shape))} {first_dtype}: every frame of a recording "
                "has the same size and type",
            )
    height, width = (int(n) for n in first_shape)

    def frames() -> Iterator[np.ndarray]:
        for number, (read, _, _) in enumerate(sources):
            try:
                frame = np.asarray(read())
            except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
                raise RecordingFormatError(
                    path,
                    f"page {number} cannot be read (truncated or damaged file?): {exc}; "
                    "nothing was imported",
                ) from None
            yield np.ascontiguousarray(frame).reshape(height, width)

    return (height, width), np.dtype(first_dtype), frames()


_PageSource = tuple[Callable[[], np.ndarray], tuple[int, ...], np.dtype[Any]]


def _tiff_sources(tif: tifffile.TiffFile, path: Path) -> list[_PageSource]:
    """One (reader, shape, dtype) per frame, in file order."""
    if tif.is_imagej and len(tif.series) == 1:
        series = tif.series[0]
        axes = series.axes
        if "S" in axes:
            raise RecordingFormatError(
                path,
                f"has colour samples (axes {axes}, shape {series.shape}): colour (RGB/RGBA) "
                "images are not raw speckle frames; expected one grey value per pixel",
            )
        frame_shape = tuple(int(n) for n in series.shape[-2:])
        count = int(np.prod(series.shape[:-2], dtype=np.int64)) if len(series.shape) > 2 else 1
        dtype = np.dtype(series.dtype)
        return [
            (functools.partial(series.asarray, key=index), frame_shape, dtype)
            for index in range(count)
        ]
    sources: list[_PageSource] = []
    for page in tif.pages:
        if not isinstance(page, tifffile.TiffPage):
            page = page.aspage()
        shape = tuple(int(n) for n in page.shape)
        if page.samplesperpixel > 1 and len(shape) == 2:
            shape = (*shape, int(page.samplesperpixel))
        sources.append((page.asarray, shape, np.dtype(page.dtype)))
    return sources


def export(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    what: str = RAW,
    fmt: str = "tiff",
    start: int | None = None,
    stop: int | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    overwrite: bool = False,
    allow_incomplete: bool = False,
) -> list[Path]:
    """Export raw frames, per-frame timestamps or a derived product.

    Every output is written under a temporary name in its folder and renamed when complete: a
    failure (disk full, read-only folder, a damaged frame) leaves no file under the output
    name. The output may never be the recording itself, under any name.

    Parameters
    ----------
    path : str or os.PathLike
        The recording.
    out : str or os.PathLike
        Output file; for several PNG or CSV files, the name they are numbered after.
    what : str
        ``"raw"`` (frames), ``"timestamps"`` (CSV table of frame ids and times) or a derived
        product: its full name as :attr:`Recording.derived` lists it
        (``"spatial-w7-avg8-inverse_tau-3f2a9c01de/perfusion"``), or its plain name
        (``"perfusion"``) for the newest product set that has it.
    fmt : {"tiff", "png", "csv"}
        Output format (see the module notes for what each keeps).
    start, stop : int, optional
        Frame range ``[start, stop)`` of a stack (raw frames or a 3-D product).
    vmin, vmax : float, optional
        PNG scaling limits (finite); default: the data's minimum and maximum.
    overwrite : bool
        Replace existing output files.
    allow_incomplete : bool
        Export a derived product whose computation did not finish (its unwritten maps are
        NaN); refused by default.

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    ValueError
        When ``what``, ``fmt``, the range or the PNG limits are invalid for the data.
    RecordingError
        When the recording cannot be read, an output file exists, is the recording, or
        cannot be written, or the product is incomplete.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is invalid: allowed {FORMATS}")
    for name, limit in (("vmin", vmin), ("vmax", vmax)):
        if limit is not None and not np.isfinite(limit):
            raise ValueError(f"{name}={limit!r} is invalid: it must be a finite number")
    out = Path(out)
    source = Path(path)
    with open_recording(path) as rec:
        if what == TIMESTAMPS:
            if fmt != "csv" or start is not None or stop is not None:
                raise ValueError("what='timestamps' exports the whole table, as CSV only")
            with atomic_write(out, overwrite=overwrite, inputs=[source]) as temporary:
                _write_timestamps(rec, temporary)
            return [out]
        data: Any
        if what == RAW:
            data = rec.frames
        elif what in rec.unreadable_derived:
            raise RecordingFormatError(rec.path, rec.unreadable_derived[what])
        else:
            try:
                data = rec.product(what)
            except KeyError:
                known = ", ".join([RAW, TIMESTAMPS, *rec.derived])
                raise ValueError(
                    f"{rec.path} has nothing called {what!r} to export: there are {known} (a "
                    "product by its full name, or by its plain name for the newest one)"
                ) from None
            if not data.info.complete and not allow_incomplete:
                raise RecordingStateError(
                    rec.path,
                    f"derived product {what!r} is incomplete: its computation did not finish, "
                    "so part of it was never written (NaN). Compute it again, or export it "
                    "anyway with the incomplete flag",
                )
        return _export_array(data, out, fmt, start, stop, vmin, vmax, overwrite, source)


def _export_array(
    data: Any,
    out: Path,
    fmt: str,
    start: int | None,
    stop: int | None,
    vmin: float | None,
    vmax: float | None,
    overwrite: bool,
    source: Path,
) -> list[Path]:
    ndim = len(data.shape)
    if ndim == 3:
        indices = range(*slice(start, stop).indices(data.shape[0]))
        if not indices:
            raise ValueError(f"start={start!r}, stop={stop!r} select no frames of {data.shape[0]}")
    elif start is not None or stop is not None:
        raise ValueError(f"start/stop apply to stacks; this data has shape {data.shape}")
    elif ndim == 1 and fmt != "csv":
        raise ValueError(f"1-D data (shape {data.shape}) exports to CSV only")
    elif ndim not in (1, 2):
        raise ValueError(f"data of shape {data.shape} cannot be exported as images")
    if ndim < 3:
        single = np.asarray(data[()] if ndim else data)
        with atomic_write(out, overwrite=overwrite, inputs=[source]) as temporary:
            if fmt == "tiff":
                tifffile.imwrite(temporary, single, photometric="minisblack")
            elif fmt == "csv":
                _write_csv(temporary, single)
            else:
                low, high = _limits([single], vmin, vmax)
                _write_png(temporary, single, low, high)
        return [out]
    if fmt == "tiff":
        item_bytes = int(np.prod(data.shape[1:])) * data.dtype.itemsize
        bigtiff = item_bytes * len(indices) > _BIGTIFF_BYTES
        with (
            atomic_write(out, overwrite=overwrite, inputs=[source]) as temporary,
            tifffile.TiffWriter(temporary, bigtiff=bigtiff) as tw,
        ):
            for index in indices:
                tw.write(np.asarray(data[index]), contiguous=True, photometric="minisblack")
        return [out]
    targets = [out.with_name(f"{out.stem}_{index:06d}{out.suffix}") for index in indices]
    if fmt == "png":
        low, high = _limits((np.asarray(data[index]) for index in indices), vmin, vmax)
    with atomic_writes(targets, overwrite=overwrite, inputs=[source]) as temporaries:
        for index, temporary in zip(indices, temporaries, strict=True):
            if fmt == "csv":
                _write_csv(temporary, np.asarray(data[index]))
            else:
                _write_png(temporary, np.asarray(data[index]), low, high)
    return targets


def _limits(images: Any, vmin: float | None, vmax: float | None) -> tuple[float, float]:
    if vmin is not None and vmax is not None:
        low, high = float(vmin), float(vmax)
    else:
        low, high = np.inf, -np.inf
        for image in images:
            finite = image[np.isfinite(image)] if image.dtype.kind == "f" else image
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
        low = float(vmin) if vmin is not None else (low if np.isfinite(low) else 0.0)
        high = float(vmax) if vmax is not None else (high if np.isfinite(high) else 1.0)
    if not high > low:
        if vmin is not None and vmax is not None:
            raise ValueError(f"vmin={vmin!r} must be smaller than vmax={vmax!r}")
        high = low + 1.0
    return low, high


def _write_png(target: Path, image: np.ndarray, low: float, high: float) -> None:
    from matplotlib import image as mpl_image

    mpl_image.imsave(
        target, image.astype(np.float64), vmin=low, vmax=high, cmap="gray", format="png"
    )


def _write_csv(target: Path, array: np.ndarray) -> None:
    fmt = "%d" if array.dtype.kind in "biu" else "%.9g"
    np.savetxt(target, np.atleast_1d(array), fmt=fmt, delimiter=",")


def _write_timestamps(rec: Recording, target: Path) -> None:
    ids = rec.frame_ids
    camera = rec.camera_timestamps_ns
    host = rec.host_timestamps_ns
    seconds = (host - rec.start_host_time_ns) / 1e9
    with target.open("w", encoding="utf-8") as stream:
        stream.write("frame_index,frame_id,camera_timestamp_ns,host_timestamp_ns,time_s\n")
        for index in range(len(ids)):
            stream.write(
                f"{index},{int(ids[index])},{int(camera[index])},{int(host[index])},"
                f"{seconds[index]:.9f}\n"
            )
