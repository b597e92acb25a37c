"""Processing recordings on a Dask distributed cluster (the ``dask`` extra).

The plan is the one :func:`lsci.processing.recordings.process_recording` makes: chunks of
frames, with the overlap a temporal window needs. Each chunk becomes a task that a worker runs:
it opens the recording read-only (SWMR), reads its frames and calls
:func:`lsci.processing.chunks.process_chunk`, the function the single-machine path calls, so
both paths give the same maps. The client keeps the
recording open in SWMR write mode and stores each result as it arrives; only a bounded number
of tasks is in flight, so the client's memory does not grow with the recording.

Workers must be able to open the recordings at the same paths as the client (a shared file
system that supports SWMR: a local disk or a POSIX cluster file system, not NFS or SMB).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lsci.processing.calibrations import Calibrations
from lsci.processing.chunks import Chunk, ChunkResult, process_chunk
from lsci.processing.recordings import ProcessingResult, plan_recording, store_chunk
from lsci.processing.settings import ProcessingSettings
from lsci.recording import open_recording

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["compute_chunk", "process_recording_distributed"]


def compute_chunk(
    path: str, chunk: Chunk, settings: ProcessingSettings, calibrations: Calibrations
) -> ChunkResult:
    """The task a worker runs: read one chunk's frames from ``path`` and compute its maps."""
    with open_recording(path) as recording:
        frames = recording.frames[chunk.frame_start : chunk.frame_stop]
    return process_chunk(frames, chunk, settings, calibrations)


def _client(scheduler: str | Client) -> tuple[Client, bool]:
    """A client for ``scheduler`` (an address or a client); True when this call created it."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(
            "processing on a Dask cluster needs the dask extra: pip install 'lsci[dask]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    return Client(scheduler), True


def process_recording_distributed(
    path: str | Path,
    settings: ProcessingSettings,
    *,
    scheduler: str | Client,
    memory_bytes: int = 256 << 20,
    in_flight: int | None = None,
    overwrite: bool = False,
    calibrated: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ProcessingResult:
    """Like :func:`lsci.processing.recordings.process_recording`, with the chunks computed on a
    Dask cluster.

    Parameters
    ----------
    path : str or Path
        A closed lsci recording, at a path the workers can open too.
    settings : ProcessingSettings
        What to compute.
    scheduler : str or distributed.Client
        The scheduler's address (e.g. ``"tcp://10.0.0.1:8786"``) or a connected client.
    memory_bytes : int
        Rough budget for one chunk on a worker.
    in_flight : int, optional
        Tasks submitted but not yet stored; default twice the cluster's worker threads.
    overwrite : bool
        Replace products of the same names computed with different settings.
    calibrated : bool
        Apply the recording's stored calibrations (see
        :func:`lsci.processing.recordings.plan_recording`).
    progress : callable, optional
        Called as ``progress(maps_done, maps_total)`` as results are stored.

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

    plan = plan_recording(path, settings, memory_bytes=memory_bytes, calibrated=calibrated)
    client, owned = _client(scheduler)
    try:
        if in_flight is None:
            in_flight = 2 * max(1, sum(client.nthreads().values()))
        start = time.perf_counter()
        frames_read = 0
        maps_done = 0
        with plan.sink(overwrite=overwrite) as sink:
            if sink.complete:
                return plan.result(0, 0.0, reused=True)
            # The calibrations go to every worker once, not with every task.
            calibrations = client.scatter(plan.calibrations, broadcast=True)

            def submit(chunk: Chunk) -> Future[ChunkResult]:
                return client.submit(
                    compute_chunk, str(plan.path), chunk, plan.settings, calibrations, pure=False
                )

            pending = iter(plan.chunks)
            # Results are fetched in the background while the previous one is being stored.
            futures = as_completed(
                [submit(c) for c in itertools.islice(pending, in_flight)], with_results=True
            )
            result: ChunkResult
            for _, result in futures:
                store_chunk(sink, result)
                chunk = result.chunk
                frames_read += chunk.frame_stop - chunk.frame_start
                maps_done += chunk.stop_map - chunk.first_map
                if progress is not None:
                    progress(maps_done, plan.n_maps)
                following = next(pending, None)
                if following is not None:
                    futures.add(submit(following))
        return plan.result(frames_read, time.perf_counter() - start, reused=False)
    finally:
        if owned:
            client.close()
