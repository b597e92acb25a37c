"""Processing recordings on a Dask distributed cluster (the ``dask`` extra).

The plan is the one :func:`lsci.processing.recordings.process_recording` makes: chunks of
frames, with the overlap a temporal window needs. Each chunk becomes a task that a worker runs:
it opens the recording read-only, reads its frames, calls
:func:`lsci.processing.chunks.process_chunk` (the function the single-machine path calls, so
both give the same maps) and writes the maps itself, as one part file of the product set, into
the set's temporary folder (:func:`lsci.recording.products.write_part`). Only a few numbers per
task travel back to the client, which publishes the set once every part is written. At most a
bounded number of tasks is in flight, so nothing grows with the recording.

Workers must be able to open the recordings, and write beside them, at the same paths as the
client (a local disk, or a cluster file system shared by all machines).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lsci.processing.calibrations import Calibrations
from lsci.processing.chunks import Chunk, balance, process_chunk
from lsci.processing.recordings import (
    OutputCheck,
    ProcessingResult,
    RecordingPlan,
    plan_recording,
    stored_maps,
    warn_about,
)
from lsci.processing.settings import ProcessingSettings
from lsci.recording import open_recording
from lsci.recording.products import SetLayout, write_part

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["TASK_BYTES", "compute_part", "connect", "process_recording_distributed"]

#: Memory budget of one task by default: larger than a chunk on one machine, as each task also
#: opens the recording and writes, syncs and closes a part file of its own.
TASK_BYTES = 64 << 20


def compute_part(
    path: str,
    chunk: Chunk,
    settings: ProcessingSettings,
    calibrations: Calibrations,
    products: tuple[str, ...],
    folder: str,
    layout: SetLayout,
) -> tuple[Chunk, OutputCheck]:
    """The task a worker runs: compute one chunk's maps and write them as a part file.

    Returns only the chunk and the check of its values (a few numbers), never the maps.
    """
    with open_recording(path) as recording:
        frames = recording.frames[chunk.frame_start : chunk.frame_stop]
    result = process_chunk(frames, chunk, settings, calibrations)
    maps, check = stored_maps(result, products, np.dtype(layout.dtype))
    write_part(folder, layout, chunk.first_map, maps)
    return chunk, check


def connect(scheduler: str | Client) -> tuple[Client, bool]:
    """A client for ``scheduler`` (an address or a client); True when this call created it.

    Raises
    ------
    ImportError
        Without the dask extra.
    ValueError
        When no scheduler answers at the address (within 10 s).
    """
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(
            "processing on a Dask cluster needs the dask extra: pip install 'lsci[dask]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        return Client(scheduler, timeout="10s"), True
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ValueError(
            f"no Dask scheduler at {scheduler!r}: {exc or type(exc).__name__}"
        ) from None


def process_recording_distributed(
    path: str | Path,
    settings: ProcessingSettings,
    *,
    scheduler: str | Client,
    products: Sequence[str] | None = None,
    dtype: str = "float32",
    memory_bytes: int = TASK_BYTES,
    in_flight: int | None = None,
    overwrite: bool = False,
    calibrated: bool = True,
    progress: Callable[[int, int], None] | None = None,
    plan: RecordingPlan | None = None,
) -> ProcessingResult:
    """Like :func:`lsci.processing.recordings.process_recording`, with the chunks computed and
    written by the workers of a Dask cluster.

    Parameters
    ----------
    path : str or Path
        An lsci recording, at a path the workers can open too.
    settings : ProcessingSettings
        What to compute.
    scheduler : str or distributed.Client
        The scheduler's address (e.g. ``"tcp://10.0.0.1:8786"``) or a connected client.
    products, dtype, overwrite, calibrated, plan
        As for :func:`lsci.processing.recordings.process_recording`.
    memory_bytes : int
        Rough budget for one task's frames and maps.
    in_flight : int, optional
        Tasks submitted but not yet finished; default four per worker thread of the cluster.
    progress : callable, optional
        Called as ``progress(maps_done, maps_total)`` as parts are written.

    Returns
    -------
    ProcessingResult
        ``seconds`` is the wall time seen by the client.

    Examples
    --------
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> with LocalCluster(n_workers=2) as cluster, Client(cluster) as client:  # doctest: +SKIP
    ...     process_recording_distributed("run.h5", ProcessingSettings(), scheduler=client)
    """
    from distributed import as_completed

    if plan is None:
        plan = plan_recording(
            path,
            settings,
            memory_bytes=memory_bytes,
            calibrated=calibrated,
            products=products,
            dtype=dtype,
        )
    client, owned = connect(scheduler)
    futures: list[Future[tuple[Chunk, OutputCheck]]] = []
    try:
        threads = max(1, sum(client.nthreads().values()))
        plan = dataclasses.replace(plan, chunks=balance(plan.chunks, plan.settings, threads))
        if in_flight is None:
            # Enough queued that a worker finishing a task never waits for the client's
            # round trip (fetching a result, submitting the next task).
            in_flight = 4 * threads
        start = time.perf_counter()
        frames_read = 0
        maps_done = 0
        check = OutputCheck()
        with plan.writer(overwrite=overwrite) as out:
            if out.complete:
                return plan.result(out, 0, 0.0, reused=True)
            assert out.temporary is not None
            folder = str(out.temporary)
            # The calibrations go to every worker once, not with every task.
            # A key of its own (hash=False): equal calibrations scattered by an earlier run on
            # this client share a key that run is releasing, and tasks would lose it.
            calibrations = client.scatter(plan.calibrations, broadcast=True, hash=False)

            def submit(chunk: Chunk) -> Future[tuple[Chunk, OutputCheck]]:
                future = client.submit(
                    compute_part,
                    str(plan.path),
                    chunk,
                    plan.settings,
                    calibrations,
                    plan.products,
                    folder,
                    out.layout,
                    pure=False,
                )
                futures.append(future)
                return future

            pending = iter(plan.chunks)
            done = as_completed([submit(c) for c in itertools.islice(pending, in_flight)])
            try:
                for future in done:
                    chunk, part_check = future.result()
                    check.add(part_check)
                    frames_read += chunk.frame_stop - chunk.frame_start
                    maps_done += chunk.stop_map - chunk.first_map
                    if progress is not None:
                        progress(maps_done, plan.n_maps)
                    following = next(pending, None)
                    if following is not None:
                        done.add(submit(following))
            except BaseException:
                # Stop the workers before the temporary folder is removed.
                client.cancel(futures)
                raise
        warn_about(check, plan.path)
        return plan.result(out, frames_read, time.perf_counter() - start, reused=False)
    finally:
        if owned:
            client.close()
