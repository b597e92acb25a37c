"""The Dask path gives the same maps as the single-machine path, on a real local cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lsci.processing import ProcessingSettings, process_recording
from lsci.recording import open_recording
from tests.test_process import write_recording

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
from lsci.processing.distributed import process_recording_distributed  # noqa: E402

pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    # Two worker processes, as a small cluster has; no dashboard (no port to collide on).
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [
        ProcessingSettings(mode="spatial", window=5, average=2),
        ProcessingSettings(
            mode="temporal", frames_window=8, step=3, model="inverse_tau", exposure_s=0.005
        ),
    ],
)
def test_cluster_results_equal_single_machine(
    tmp_path: Path, client: distributed.Client, settings: ProcessingSettings
) -> None:
    local, remote = tmp_path / "local.h5", tmp_path / "remote.h5"
    write_recording(local, n_frames=40)
    write_recording(remote, n_frames=40)
    budget = 6 * 24 * 20 * 4  # a few frames per chunk: many tasks, some overlapping
    expected = process_recording(local, settings, memory_bytes=budget)
    seen: list[int] = []
    result = process_recording_distributed(
        remote,
        settings,
        scheduler=client,
        memory_bytes=budget,
        in_flight=3,
        progress=lambda done, total: seen.append(done),
    )
    assert result.maps == expected.maps
    assert seen[-1] == result.maps
    assert seen == sorted(seen)
    # Each task wrote its own part file; readers see one array per product.
    assert len(list(result.product_set.glob("part-*.h5"))) > 1
    with open_recording(local) as a, open_recording(remote) as b:
        for name in ("contrast", "perfusion"):
            mine, theirs = b.product(name), a.product(name)
            np.testing.assert_allclose(mine[...], theirs[...], rtol=1e-6)
            np.testing.assert_allclose(mine[3:9:2, 5], theirs[3:9:2, 5], rtol=1e-6)
            assert mine.info.parameters == theirs.info.parameters
    again = process_recording_distributed(remote, settings, scheduler=client, memory_bytes=budget)
    assert again.reused


@pytest.mark.slow
def test_scheduler_address_is_accepted(tmp_path: Path, client: distributed.Client) -> None:
    path = tmp_path / "rec.h5"
    write_recording(path, n_frames=6)
    result = process_recording_distributed(
        path, ProcessingSettings(window=3), scheduler=client.scheduler.address
    )
    assert result.maps == 6


@pytest.mark.slow
def test_runs_back_to_back_on_one_client(tmp_path: Path, client: distributed.Client) -> None:
    # Each run scatters its calibrations; equal ones used to share a key that the run before
    # was releasing, and the next run's tasks failed with "lost dependencies".
    path = tmp_path / "rec.h5"
    write_recording(path, n_frames=16)
    settings = ProcessingSettings(window=3, average=2)
    for _ in range(4):
        result = process_recording_distributed(path, settings, scheduler=client, overwrite=True)
        assert result.maps == 8
        assert not result.reused


@pytest.mark.slow
def test_the_cli_sizes_cluster_tasks_by_the_task_budget(
    tmp_path: Path, client: distributed.Client
) -> None:
    """Without ``--memory-mb``, ``lsci process --scheduler`` gives each task TASK_BYTES (each
    task opens the recording and writes a part), not the single-machine chunk budget."""
    from click.testing import CliRunner

    from lsci.cli import main
    from lsci.processing.chunks import balance
    from lsci.processing.distributed import TASK_BYTES
    from lsci.processing.recordings import CHUNK_BYTES, plan_recording
    from lsci.recording import AcquisitionMetadata, RecordingWriter

    path = tmp_path / "large.h5"
    shape = (256, 256)
    meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=100.0, bit_depth=8)
    frame = np.random.default_rng(0).integers(1, 255, shape, dtype=np.uint8)
    with RecordingWriter(path, meta, frame_shape=shape, dtype=np.uint8) as writer:
        for i in range(512):
            writer.append(frame, frame_id=i)
    settings = ProcessingSettings(average=8, exposure_s=0.005)
    threads = sum(client.nthreads().values())

    def tasks(budget: int) -> int:
        plan = plan_recording(path, settings, memory_bytes=budget)
        return len(balance(plan.chunks, plan.settings, threads))

    assert tasks(TASK_BYTES) != tasks(CHUNK_BYTES)  # the recording tells the budgets apart
    result = CliRunner().invoke(
        main, ["process", str(path), "--scheduler", client.scheduler.address]
    )
    assert result.exit_code == 0, result.output
    (product_set,) = [p for p in path.with_suffix(".lsci").iterdir() if p.is_dir()]
    assert len(list(product_set.glob("part-*.h5"))) == tasks(TASK_BYTES)


@pytest.mark.slow
def test_a_disk_filling_up_under_the_workers_is_one_clear_error(
    tmp_path: Path, client: distributed.Client
) -> None:
    """Another program fills the disk while the workers write their parts: a RecordingWriteError
    naming it reaches the caller, no product set and nothing else is left, and the recording
    is as it was."""
    import contextlib
    import hashlib
    import shutil

    from lsci.errors import LsciError
    from lsci.recording import AcquisitionMetadata, RecordingWriter
    from lsci.recording.products import find_product_sets, product_folder
    from tests.helpers.tmpfs import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "small", size="48m") as disk:
        path = disk / "rec.h5"  # 8 MB of frames
        meta = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=100.0, bit_depth=8)
        frame = np.random.default_rng(0).integers(1, 255, (256, 256), dtype=np.uint8)
        with RecordingWriter(path, meta, frame_shape=frame.shape, dtype=np.uint8) as writer:
            for i in range(128):
                writer.append(frame, frame_id=i)
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        filler = disk / "filler"

        def fill(done: int, total: int) -> None:
            # Once the first part is written, the disk fills to its last byte.
            if done < total and not filler.exists():
                with open(filler, "wb", buffering=0) as out:
                    for size in (1 << 16, 1):
                        with contextlib.suppress(OSError):
                            while True:
                                out.write(b"x" * size)

        settings = ProcessingSettings(average=2, exposure_s=0.005)  # 16 MB of maps: they fit
        with pytest.raises(LsciError, match="No space left on device"):
            process_recording_distributed(
                path, settings, scheduler=client, products=["perfusion"],
                memory_bytes=1 << 20, progress=fill,
            )  # fmt: skip
        assert find_product_sets(path) == []
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "rec.h5", "rec.lsci"]
        assert list(product_folder(path).iterdir()) == []
        filler.unlink()
        shutil.rmtree(product_folder(path))
        result = process_recording_distributed(  # the workers recovered: a rerun completes
            path, settings, scheduler=client, products=["perfusion"]
        )
        assert len(find_product_sets(path)) == 1
        assert result.maps == 64
