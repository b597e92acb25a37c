"""Crafted recordings that point outside themselves are refused by everything that reads them.

Each file is a real lsci recording modified with h5py the way an attacker (or a careless tool)
would: frames stored in another file, an external link, a virtual dataset, soft links that
dangle or loop. Only storage inside the file and links that stay inside it are accepted.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from lsci.cli import main
from lsci.recording import (
    AcquisitionMetadata,
    RecordingFormatError,
    RecordingWriter,
    add_event,
    open_recording,
    save_derived,
)

SHAPE = (8, 8)
COUNT = 4


def _recording(path: Path) -> Path:
    frames = np.arange(COUNT * 64, dtype=np.uint16).reshape(COUNT, *SHAPE)
    with RecordingWriter(
        path, AcquisitionMetadata(exposure_s=0.001), frame_shape=SHAPE, dtype=np.uint16
    ) as writer:
        writer.append_many(frames, frame_ids=np.arange(COUNT))
    save_derived(path, "map", np.ones(SHAPE), algorithm="a", parameters={})
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(b"SECRET!!" * (COUNT * 16))  # exactly COUNT frames of 8×8 uint16
    return path


def _external_frames(path: Path, secret: Path) -> None:
    with h5py.File(path, "r+") as handle:
        del handle["raw/frames"]
        handle["raw"].create_dataset(
            "frames",
            shape=(COUNT, *SHAPE),
            dtype=np.uint16,
            external=[(str(secret), 0, secret.stat().st_size)],
        )


def _external_link(path: Path, other: Path) -> None:
    with h5py.File(other, "w") as handle:
        handle.create_group("derived")
        handle["derived"].create_dataset("victim", data=np.arange(3))
    with h5py.File(path, "r+") as handle:
        del handle["derived"]
        handle["derived"] = h5py.ExternalLink(str(other), "/derived")


def _virtual_frames(path: Path, missing: Path) -> None:
    layout = h5py.VirtualLayout(shape=(COUNT, *SHAPE), dtype=np.uint16)
    layout[:] = h5py.VirtualSource(str(missing), "frames", shape=(COUNT, *SHAPE))
    with h5py.File(path, "r+") as handle:
        del handle["raw/frames"]
        handle["raw"].create_virtual_dataset("frames", layout, fillvalue=0)


def _soft_loop(path: Path, _other: Path) -> None:
    with h5py.File(path, "r+") as handle:
        del handle["events"]
        handle["events"] = h5py.SoftLink("/loop")
        handle["loop"] = h5py.SoftLink("/events")


def _dangling_soft(path: Path, _other: Path) -> None:
    with h5py.File(path, "r+") as handle:
        handle["derived/ghost"] = h5py.SoftLink("/nowhere/at/all")


CRAFTED = {
    "external raw storage": (_external_frames, "stores its data in another file"),
    "external link": (_external_link, "external link"),
    "virtual dataset": (_virtual_frames, "virtual dataset"),
    "soft-link loop": (_soft_loop, "missing or loops"),
    "dangling soft link": (_dangling_soft, "missing or loops"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_files_are_refused_everywhere(case: str, tmp_path: Path, secret: Path) -> None:
    path = _recording(tmp_path / "crafted.h5")
    craft, message = CRAFTED[case]
    other = tmp_path / "other.h5"
    craft(path, secret if case == "external raw storage" else other)
    other_before = other.read_bytes() if other.exists() else None
    with pytest.raises(RecordingFormatError, match=message):
        open_recording(path)
    with pytest.raises(RecordingFormatError, match=message):
        save_derived(path, "new", np.zeros(3), algorithm="a", parameters={}, overwrite=True)
    with pytest.raises(RecordingFormatError, match=message):
        add_event(path, "x", time_s=0.0)
    out = tmp_path / "out.tif"
    for args in (["info", path], ["export", path, "--out", out]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1
        assert message in result.output
    assert not out.exists()
    if other_before is not None:
        assert other.read_bytes() == other_before


def test_links_inside_the_file_are_accepted(tmp_path: Path) -> None:
    path = _recording(tmp_path / "linked.h5")
    with h5py.File(path, "r+") as handle:
        handle["derived/hard"] = handle["derived/map"]
        handle["derived/soft"] = h5py.SoftLink("/derived/map")
    with open_recording(path) as rec:
        assert sorted(rec.derived) == ["hard", "map", "soft"]
        np.testing.assert_array_equal(rec.derived["soft"].read(), np.ones(SHAPE))
        assert len(rec) == COUNT
