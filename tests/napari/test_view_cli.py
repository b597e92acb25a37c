"""``lsci view``: the viewer it builds, and its messages without napari or without a display."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lsci.cli.view import DOCKED_WIDGETS, open_viewer, view

from .support import write_small_recording

pytestmark = pytest.mark.napari


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return write_small_recording(tmp_path / "run.h5", processed=False)


def test_view_explains_a_missing_napari(monkeypatch, recording: Path) -> None:
    monkeypatch.setitem(sys.modules, "napari", None)
    result = CliRunner().invoke(view, [str(recording)])
    assert result.exit_code == 1
    assert 'pip install "lsci[napari]"' in result.output


def test_view_explains_a_missing_display(monkeypatch, recording: Path) -> None:
    pytest.importorskip("napari", reason="napari is not installed")
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(view, [str(recording)])
    assert result.exit_code == 1
    assert "no display" in result.output
    assert "xvfb-run" in result.output


def test_view_refuses_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    other = tmp_path / "notes.h5"
    other.write_text("text")
    result = CliRunner().invoke(view, [str(other)])
    assert result.exit_code != 0
    assert "not an HDF5 file" in str(result.exception) + result.output


def test_view_opens_the_recording_with_the_widgets_docked(
    make_napari_viewer, qtbot, recording: Path
) -> None:
    pytest.importorskip("qtpy", reason="no Qt binding installed")
    opened = open_viewer(recording, viewer=make_napari_viewer())
    viewer = opened["viewer"]
    assert [layer.name for layer in viewer.layers] == ["run raw [ADU]"]
    assert viewer.canvas.overlays.scale_bar.visible
    assert set(opened) == {"viewer", *DOCKED_WIDGETS}
    assert type(opened["Process"]).__name__ == "ProcessWidget"
    # The Process widget is ready to process the file just opened.
    assert opened["Process"].recording_path() == recording
    assert opened["Events"].summary.value == "2 events"
    # The bedside layout: Acquire docked too, the recording at its start, time in seconds.
    assert type(opened["Acquire"]).__name__ == "AcquireWidget"
    assert type(opened["lsci: bedside"]).__name__ == "BedsideWidget"
    assert viewer.dims.current_step[0] == 0
    qtbot.wait(50)
    slider = viewer.window._qt_viewer.dims.slider_widgets[0]
    assert slider.curslice_label.text() == "0.0 s"
    assert slider.totslice_label.text().endswith(" s")
    assert "t = 0.00 s" in viewer.canvas.overlays.text.text
