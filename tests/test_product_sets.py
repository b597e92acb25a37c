"""Product sets beside a sealed recording: atomic publication, coexistence, discovery."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from lsci.recording import AcquisitionMetadata, RecordingWriter, open_recording
from lsci.recording.errors import RecordingError, RecordingWriteError
from lsci.recording.products import (
    ProductSetWriter,
    find_product_sets,
    product_folder,
    write_part,
)
from tests.helpers.page_cache import cached_bytes, pages_can_be_dropped
from tests.helpers.tmpfs import mounted_tmpfs

SHAPE = (16, 24)
META = AcquisitionMetadata(exposure_s=0.005, frame_rate_hz=100.0, pixel_format="Mono8", bit_depth=8)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "session.h5"
    rng = np.random.default_rng(3)
    with RecordingWriter(path, META, frame_shape=SHAPE, dtype=np.uint8) as writer:
        for i in range(8):
            writer.append(rng.integers(0, 256, SHAPE, dtype=np.uint8), frame_id=i)
    return path


def _write_set(recording: Path, window: int, maps: np.ndarray) -> ProductSetWriter:
    with ProductSetWriter(
        recording,
        {"contrast": maps.shape},
        algorithm="spatial_contrast",
        parameters={"mode": "spatial", "window": window},
        attributes={"contrast": {"unit": "1"}},
    ) as out:
        if not out.complete:
            out.write("contrast", 0, maps)
    return out


def test_a_set_is_published_beside_the_recording_which_is_unchanged(recording: Path) -> None:
    before = _sha256(recording)
    maps = np.random.default_rng(0).random((8, *SHAPE), dtype=np.float32)
    out = _write_set(recording, 7, maps)
    assert out.path.parent == product_folder(recording) == recording.with_name("session.lsci")
    assert out.path.name.startswith("spatial-w7-")
    assert _sha256(recording) == before
    # Readable with plain h5py, no lsci: attributes name the recording and the settings.
    [part] = sorted(out.path.glob("part-*.h5"))
    with h5py.File(part, "r") as handle:
        assert handle.attrs["lsci_format"] == "lsci-products"
        assert handle.attrs["recording"] == "session.h5"
        np.testing.assert_array_equal(handle["contrast"][()], maps)
        assert handle["contrast"].attrs["unit"] == "1"
    with open_recording(recording) as rec:
        name = f"{out.path.stem}/contrast"
        assert list(rec.derived) == [name]
        np.testing.assert_array_equal(rec.product("contrast").read(), maps)
        assert rec.product(name).info.parameters == {"mode": "spatial", "window": 7}
        assert not list(product_folder(recording).glob(".*"))


def test_settings_coexist_and_the_same_settings_are_recognised(recording: Path) -> None:
    maps = np.ones((8, *SHAPE), dtype=np.float32)
    first = _write_set(recording, 7, maps)
    mtime = first.path.stat().st_mtime_ns
    again = _write_set(recording, 7, maps * 2)  # same settings: recognised, not recomputed
    assert again.path == first.path
    assert first.path.stat().st_mtime_ns == mtime
    other = _write_set(recording, 9, maps * 3)
    assert other.path != first.path
    sets = find_product_sets(recording)
    assert [s.parameters["window"] for s in sets] == [7, 9]
    with open_recording(recording) as rec:
        assert len(rec.derived) == 2
        # the newest set answers a plain name
        np.testing.assert_array_equal(rec.product("contrast").read(), maps * 3)
    shutil.rmtree(other.path)  # deleting a set's folder is all it takes to remove it
    assert [s.path for s in find_product_sets(recording)] == [first.path]


def test_an_error_while_writing_leaves_nothing(recording: Path) -> None:
    maps = np.ones((8, *SHAPE), dtype=np.float32)
    writer = ProductSetWriter(
        recording, {"contrast": maps.shape}, algorithm="a", parameters={"window": 7}
    )

    def interrupted() -> None:
        with writer as out:
            out.write("contrast", 0, maps[:4])
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        interrupted()
    assert not writer.path.exists()
    assert list(product_folder(recording).iterdir()) == []  # the temporary folder too
    assert find_product_sets(recording) == []


def _fill(disk: Path) -> None:
    """Take every free byte of ``disk``, as another program writing there would."""
    with open(disk / "filler", "wb", buffering=0) as out:
        for size in (1 << 16, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"x" * size)


@pytest.mark.serial
def test_a_full_disk_when_the_last_part_closes_is_a_clear_error(tmp_path: Path) -> None:
    """HDF5 writes a part's chunk index when the part closes; on a full disk it raises that as
    RuntimeError, which must be the same clear error as a failed write, and leave nothing."""
    with mounted_tmpfs(tmp_path / "small", size="16m") as disk:
        path = disk / "session.h5"
        with RecordingWriter(path, META, frame_shape=SHAPE, dtype=np.uint8) as writer:
            writer.append(np.zeros(SHAPE, np.uint8), frame_id=0)
        before = _sha256(path)
        maps = np.ones((4000, *SHAPE), dtype=np.float32)  # a chunk index of 4000 entries

        def filled_before_closing() -> None:
            with ProductSetWriter(
                path, {"contrast": maps.shape}, algorithm="a", parameters={}
            ) as out:
                out.write("contrast", 0, maps)
                _fill(disk)

        with pytest.raises(RecordingWriteError, match="closing a product file failed: No space"):
            filled_before_closing()
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "session.h5", "session.lsci"]
        assert list(product_folder(path).iterdir()) == []
        assert _sha256(path) == before
        (disk / "filler").unlink()
        assert _write_set(path, 7, maps).complete  # once there is room, a rerun completes


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_writer_leaves_no_product_and_a_rerun_completes(
    recording: Path, sig: signal.Signals
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time, numpy as np
        from lsci.recording.products import ProductSetWriter
        with ProductSetWriter({str(recording)!r}, {{"contrast": (8, {SHAPE[0]}, {SHAPE[1]})}},
                              algorithm="a", parameters={{"window": 7}}) as out:
            out.write("contrast", 0, np.ones((2, {SHAPE[0]}, {SHAPE[1]}), np.float32))
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    before = _sha256(recording)
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "writing"
        process.send_signal(sig)
        process.wait(timeout=30)
    assert _sha256(recording) == before
    assert find_product_sets(recording) == []
    leftovers = list(product_folder(recording).glob(".*.partial"))
    assert len(leftovers) == 1  # at most a hidden temporary folder, never a product
    with h5py.File(recording, "r") as handle:  # never opened for writing: not locked
        assert handle["raw/frames"].shape[0] == 8
    # The next run ignores what a killed writer left, completes, and removes it once stale.
    old = time.time() - 3600
    for leftover in leftovers:
        os.utime(leftover, (old, old))
    out = _write_set(recording, 7, np.ones((8, *SHAPE), dtype=np.float32))
    assert out.path.exists()
    assert not any(leftover.exists() for leftover in leftovers)


def test_a_symlinked_products_folder_is_refused(recording: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    product_folder(recording).symlink_to(elsewhere)
    with pytest.raises(RecordingError, match="symbolic link"):
        _write_set(recording, 7, np.ones((8, *SHAPE), dtype=np.float32))
    assert list(elsewhere.iterdir()) == []


def test_a_file_where_the_products_folder_goes_is_named_and_kept(recording: Path) -> None:
    product_folder(recording).write_bytes(b"notes")
    with pytest.raises(RecordingError, match=r"session\.lsci: exists and is not a folder"):
        _write_set(recording, 7, np.ones((8, *SHAPE), dtype=np.float32))
    assert product_folder(recording).read_bytes() == b"notes"


@pytest.mark.parametrize("kind", ["file", "dangling link"])
def test_something_in_the_way_of_a_set_is_refused_before_any_work(
    recording: Path, tmp_path: Path, kind: str
) -> None:
    maps = np.ones((8, *SHAPE), dtype=np.float32)
    writer = ProductSetWriter(
        recording, {"contrast": maps.shape}, algorithm="a", parameters={"window": 7}
    )
    product_folder(recording).mkdir()
    if kind == "file":
        writer.path.write_bytes(b"notes")
    else:
        writer.path.symlink_to(tmp_path / "nowhere")
    with pytest.raises(RecordingError, match="where this product set's folder goes"):
        writer.__enter__()
    assert sorted(p.name for p in product_folder(recording).iterdir()) == [writer.path.name]


def test_sets_of_another_recording_or_other_files_are_not_listed(recording: Path) -> None:
    _write_set(recording, 7, np.ones((8, *SHAPE), dtype=np.float32))
    folder = product_folder(recording)
    (folder / "notes").mkdir()
    (folder / "notes" / "part-000000000.h5").write_bytes(b"not hdf5")
    (folder / "foreign").mkdir()
    with h5py.File(folder / "foreign" / "part-000000000.h5", "w") as handle:
        handle.attrs["lsci_format"] = "lsci-products"
        handle.attrs["format_version"] = 1
        handle.attrs["recording"] = "other.h5"
        handle.attrs["maps"] = 8
    assert len(find_product_sets(recording)) == 1


def test_parts_written_by_several_processes_read_as_one_array(recording: Path) -> None:
    maps = np.random.default_rng(1).random((11, *SHAPE), dtype=np.float32)
    with ProductSetWriter(
        recording, {"contrast": maps.shape}, algorithm="a", parameters={"window": 7}
    ) as out:
        assert out.temporary is not None
        # Out of order, as cluster workers finish them.
        for first, stop in ((4, 9), (0, 4), (9, 11)):
            write_part(out.temporary, out.layout, first, {"contrast": maps[first:stop]})
    with open_recording(recording) as rec:
        product = rec.product("contrast")
        assert product.shape == maps.shape
        np.testing.assert_array_equal(product.read(), maps)
        for key in (5, -1, slice(2, 10, 3), slice(None, None, -2), (slice(3, 10), 2, slice(4, 9))):
            np.testing.assert_array_equal(product[key], maps[key])
    # Plain h5py: the parts in name order, concatenated, are the product.
    parts = sorted(out.path.glob("part-*.h5"))
    assert [p.name for p in parts] == [
        "part-000000000.h5",
        "part-000000004.h5",
        "part-000000009.h5",
    ]
    pieces = []
    for part in parts:
        with h5py.File(part, "r") as handle:
            pieces.append(handle["contrast"][()])
    np.testing.assert_array_equal(np.concatenate(pieces), maps)


def test_a_set_missing_a_part_is_not_published(recording: Path) -> None:
    maps = np.ones((6, *SHAPE), dtype=np.float32)
    writer = ProductSetWriter(recording, {"contrast": maps.shape}, algorithm="a", parameters={})

    def half_written() -> None:
        with writer as out:
            assert out.temporary is not None
            write_part(out.temporary, out.layout, 0, {"contrast": maps[:3]})

    with pytest.raises(RecordingError, match="incomplete"):
        half_written()
    assert find_product_sets(recording) == []
    assert list(product_folder(recording).iterdir()) == []


def test_written_maps_leave_the_page_cache(recording: Path) -> None:
    """Each write drops the pages of the maps written before it, so a long run reuses that
    memory instead of filling the page cache with products (read back rarely, and then from
    disk) and evicting the raw frames."""
    if not pages_can_be_dropped(recording.parent):
        pytest.skip(f"{recording.parent} keeps written pages in memory (tmpfs)")
    maps = np.random.default_rng(0).random((40, 256, 256), dtype=np.float32)
    with ProductSetWriter(
        recording, {"contrast": maps.shape}, algorithm="spatial_contrast", parameters={}
    ) as out:
        for index, one_map in enumerate(maps):
            out.write("contrast", index, one_map[None])
    (part,) = sorted(out.path.glob("part-*.h5"))
    assert part.stat().st_size >= maps.nbytes
    # Pages still being written when the last maps came are kept (a few maps on an idle disk,
    # more on a busy one); without the drop, all 40 maps stay cached.
    assert cached_bytes(part) <= maps.nbytes // 2
