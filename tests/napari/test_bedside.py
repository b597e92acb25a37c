"""The bedside workspace as a clinician sees it, on a 1366 × 768 screen (real napari viewer).

The case runs on the simulated camera in ten user actions (choices and clicks through qtbot):
acquire, draw the lesion and healthy skin, mark the needling, stop, export. The before/after
numbers are those of ``lsci compare`` on the same recording with the same regions, file for file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install 'lsci[napari]')")
pytest.importorskip("qtpy", reason="no Qt binding installed (pip install 'lsci[napari]')")
pytest.importorskip("cv2", reason="OpenCV is not installed")

import cv2
from click.testing import CliRunner
from qtpy.QtCore import QRect, Qt
from qtpy.QtWidgets import QApplication, QDockWidget

from lsci.acquisition.live import LiveSettings, live_map
from lsci.cli import main as lsci_main
from lsci.cli.view import DOCKED_WIDGETS, open_viewer
from lsci.drivers.simulated import SimulatedCamera, SpeckleScene
from lsci.sim.needling import HEALTHY, NeedlingScene
from napari_lsci._acquire_widget import LIVE_LAYER, live_layer
from napari_lsci._bedside import NEEDLING_END, NEEDLING_START, REPORT_FILES

from .support import SCENE as SMALL_SCENE
from .support import write_small_recording

pytestmark = pytest.mark.napari

SCREEN = (1366, 768)
#: When the simulated skin's perfusion is restored, seconds after the camera starts. The
#: needling start is clicked about 7 s in (live maps, colour limits, delineation, 1.5 s of
#: "before"): the rest is margin for a slow machine, checked by the test.
RECOVERY_S = 45.0
#: The simulated camera's sensor in the plugin (napari_lsci._acquisition.SIMULATED_SHAPE).
SENSOR = (256, 256)


def rectangle(r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
    return np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]], dtype=float)


def healthy_box() -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(NeedlingScene(SENSOR).regions()[HEALTHY])
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


LESION = (105, 105, 150, 150)


def assert_fits_the_screen(viewer) -> None:
    """The window is on a 1366 × 768 screen and inside it; every visible dock is in the window."""
    QApplication.processEvents()
    window = viewer.window._qt_window
    screen = window.screen().geometry()
    assert (screen.width(), screen.height()) == SCREEN
    frame = window.frameGeometry()
    assert screen.contains(frame), f"window {frame} is not inside the screen {screen}"
    inside = QRect(0, 0, window.width(), window.height())
    shown = []
    for dock in window.findChildren(QDockWidget):
        # A dock behind another tab is not shown (Qt parks it out of the window).
        if dock.isVisible() and not dock.isFloating() and not dock.visibleRegion().isEmpty():
            assert inside.contains(dock.geometry()), f"{dock.windowTitle()}: {dock.geometry()}"
            shown.append(dock.windowTitle())
    assert any(title.startswith("lsci: bedside") for title in shown)
    assert "ROI traces" in shown


@pytest.fixture
def layout(make_napari_viewer) -> Iterator[dict[str, Any]]:
    """The layout ``lsci view`` opens; whatever a test left acquiring is stopped at the end."""
    opened = open_viewer(None, viewer=make_napari_viewer(show=True))
    yield opened
    opened["Acquire"].disconnect_camera()


@pytest.mark.slow
def test_a_needling_case_in_ten_actions_gives_the_numbers_of_lsci_compare(
    layout: dict[str, Any], qtbot, tmp_path: Path
) -> None:
    opened = layout
    viewer, bedside, acquire = opened["viewer"], opened["lsci: bedside"], opened["Acquire"]
    assert set(opened) == {"viewer", *DOCKED_WIDGETS}
    assert_fits_the_screen(viewer)
    # Everything the case needs is on the screen without scrolling.
    for widget in (
        bedside.start_button,
        bedside.stop_button,
        bedside.needling_start_button,
        bedside.needling_end_button,
        bedside.draw_button,
        bedside.colour_bar,
        bedside.export_button,
    ):
        assert widget.visibleRegion().boundingRect() == widget.rect(), widget

    # numba compiles a kernel on its first call (several seconds each with a cold cache, as in
    # a fresh clone): compile the live path's kernels now, so the timeline below measures the
    # workflow rather than compilation. Through the live map's own function, on frames of the
    # sensor's size and type (Mono8): kernels are chosen by frame size and compiled per type.
    warm_up = np.random.default_rng(0).integers(0, 256, (8, *SENSOR), dtype=np.uint8)
    for model in ("inverse_tau", "inverse_k2"):
        live_map(warm_up, LiveSettings(window=7, average=8, model=model, exposure_s=1e-3))
    # The simulated camera, its skin's perfusion restored RECOVERY_S after the start (the
    # needling happens then), as the Acquire tab opens it.
    acquire.camera = SimulatedCamera(
        SpeckleScene.skin(SENSOR, needling_time_s=RECOVERY_S), mode="replay"
    )
    acquire.camera.open()
    acquire.refresh_settings()

    # 1-3: the folder to record to and the optics (a pixel of 50 µm on the skin).
    acquire.folder.value = tmp_path
    acquire.pixel_um.value = 5.0
    acquire.magnification.value = 0.1
    # 4: Start. The camera connects, a dated file is recorded, the live map appears.
    qtbot.mouseClick(bedside.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: acquire.live_maps >= 2, timeout=60_000)
    # 5-6: the lesion, then healthy skin (named in that order by default).
    bedside.add_roi("lesion", rectangle(*LESION))
    bedside.add_roi("healthy skin", rectangle(*healthy_box()))
    qtbot.waitUntil(
        lambda: acquire.last_update is not None and acquire.last_update.delineation is not None,
        timeout=30_000,
    )
    qtbot.wait(1500)
    # 7-9: Needling start, Needling end (once perfusion is restored), Stop (the comparison
    # follows on its own).
    qtbot.mouseClick(bedside.needling_start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(acquire.events) == 1, timeout=30_000)
    assert acquire.events[0].time_s < RECOVERY_S - 1.0, "the camera took too long to start"
    qtbot.waitUntil(lambda: acquire.last_update.time_s > RECOVERY_S + 1.5, timeout=60_000)
    qtbot.mouseClick(bedside.needling_end_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(acquire.events) == 2, timeout=30_000)
    qtbot.wait(1500)
    qtbot.mouseClick(bedside.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bedside.result is not None, timeout=120_000)
    # 10: Export.
    qtbot.mouseClick(bedside.export_button, Qt.MouseButton.LeftButton)

    recording = bedside.recording
    assert recording is not None
    assert recording.parent == tmp_path
    assert recording.name.startswith("lsci-")
    assert recording.suffix == ".h5"
    report = tmp_path / f"{recording.stem} report"
    written = sorted(p.name for p in report.iterdir())
    assert written == sorted(REPORT_FILES.values()), bedside.status.text()

    # The live view carried its unit, a colour bar and the live outline and area.
    live = live_layer(viewer)
    assert live.name == f"{LIVE_LAYER} [1/τc (1/s)]"
    assert live.colorbar.visible
    assert live.metadata["unit"] == "1/τc (1/s)"
    assert bedside.colour_bar.bar is not None
    assert bedside.colour_bar.bar.unit == "1/τc (1/s)"
    assert bedside.colour_bar.bar.percent_title == "% of healthy skin"
    assert "1/τc (1/s)" in bedside.colour_bar.toolTip()
    assert "mm²" in bedside.live_label.text()
    assert viewer.canvas.overlays.scale_bar.visible

    # The same numbers as the command line, file for file.
    cli_out = tmp_path / "cli"
    r0, c0, r1, c1 = healthy_box()
    result = CliRunner().invoke(
        lsci_main,
        [
            "compare",
            str(recording),
            "--before",
            NEEDLING_START,
            "--after",
            NEEDLING_END,
            "--roi",
            "lesion={},{},{},{}".format(*LESION),
            "--roi",
            f"healthy skin={r0},{c0},{r1},{c1}",
            "--reference",
            "healthy skin",
            "--out",
            str(cli_out),
        ],
    )
    assert result.exit_code == 0, result.output
    ours = json.loads((report / REPORT_FILES["numbers"]).read_text(encoding="utf-8"))
    theirs = json.loads((cli_out / "comparison.json").read_text(encoding="utf-8"))
    assert ours == theirs
    assert ours["unit"] == "1/s"
    assert (report / REPORT_FILES["table"]).read_text() == (cli_out / "comparison.csv").read_text()

    # The hypoperfused area, in mm², before and after; the ROI traces; the video.
    # Against the simulated skin's truth: the whole disk before the needling; after it, the
    # needled part recovered (its flow rose from 1/5 to 3/5 of healthy skin, above the
    # threshold of 1/2) and the crescent the needling did not reach is still hypoperfused.
    # The camera replays 8 frames per phase, so noise near the threshold does not average
    # out: part of the recovered region still reads below it.
    scene = NeedlingScene(SENSOR)
    pixel_mm2 = 0.05**2
    true_before = scene.true_hypoperfused(0.0).sum() * pixel_mm2
    true_persistent = scene.persistent_mask().sum() * pixel_mm2
    areas = ours["areas"]
    assert areas["before"]["area_mm2"] == pytest.approx(true_before, rel=0.15)
    assert 0.9 * true_persistent < areas["after"]["area_mm2"] < areas["before"]["area_mm2"]
    assert areas["recovered_mm2"] > 0.5 * (true_before - true_persistent)
    assert ours["scale"]["pixel_size_mm"] == pytest.approx(0.05)
    assert (report / REPORT_FILES["report"]).read_bytes().startswith(b"%PDF")
    with (report / REPORT_FILES["traces"]).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {"lesion", "healthy skin", "hypoperfused area"} <= {row["name"] for row in rows}
    assert all(row["unit"] in ("1/τc (1/s)", "mm²") for row in rows)
    capture = cv2.VideoCapture(str(report / REPORT_FILES["video"]))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames >= 10

    # The result: before, after and change panels, each colour bar with its unit.
    assert "Hypoperfused area" in bedside.result_text.toPlainText()
    assert bedside.table.rowCount() == 2
    for name in ("bedside: before [1/τc (1/s)]", "bedside: change [%]"):
        assert viewer.layers[name].colorbar.visible
    assert viewer.layers["bedside: change [%]"].metadata["unit"] == "%"
    assert_fits_the_screen(viewer)
    # make screenshots: the README's picture of the bedside.
    folder = os.environ.get("LSCI_SCREENSHOT_DIR")
    if folder:
        viewer.screenshot(str(Path(folder) / "bedside.png"), canvas_only=False)


def test_long_messages_wrap_instead_of_widening_the_window(layout: dict[str, Any], qtbot) -> None:
    opened = layout
    viewer = opened["viewer"]
    assert_fits_the_screen(viewer)
    window = viewer.window._qt_window
    width = window.width()
    message = "a failure message that goes on and on " * 12
    opened["Acquire"].status.value = message
    opened["Compare before/after"].status.value = message
    opened["Process"].status.value = message
    opened["lsci: bedside"].status.setText(message)
    # A choice that makes no sense is refused in one line: nothing to compare yet.
    qtbot.mouseClick(opened["lsci: bedside"].compare_button, Qt.MouseButton.LeftButton)
    assert "record a case" in opened["lsci: bedside"].status.text()
    QApplication.processEvents()
    assert window.width() == width
    assert_fits_the_screen(viewer)
    # No widget is wider than its dock's view of it: nothing is cut off on the right.
    for name in ("lsci: bedside", "Acquire", "Process", "Compare before/after", "Events"):
        widget = opened[name]
        native = getattr(widget, "native", widget)
        assert native.width() <= native.parentWidget().width(), name


def test_the_plugins_menu_opens_the_bedside_layout(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer(show=True)
    _, bedside = viewer.window.add_plugin_dock_widget("lsci", "lsci: bedside")
    qtbot.wait(50)
    assert type(bedside.bedside).__name__ == "BedsideWidget"
    try:
        titles = {dock.windowTitle() for dock in viewer.window._qt_window.findChildren(QDockWidget)}
        assert {"Acquire", "Process", "Compare before/after", "Events", "ROI traces"} <= titles
        QApplication.processEvents()
        assert_fits_the_screen(viewer)
    finally:
        bedside.bedside.acquire.disconnect_camera()


def test_regions_drawn_on_a_reviewed_recording_get_their_traces(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    path = write_small_recording(tmp_path / "case.h5", processed=True)
    opened = open_viewer(path, viewer=make_napari_viewer(show=True))
    bedside = opened["lsci: bedside"]
    try:
        rows, cols = (size // 2 for size in SMALL_SCENE.shape)
        bedside.add_roi("lesion", rectangle(rows - 3, cols - 3, rows + 3, cols + 3))
        healthy = np.nonzero(SMALL_SCENE.regions()[HEALTHY])
        bedside.add_roi(
            "healthy skin",
            rectangle(
                int(healthy[0].min()),
                int(healthy[1].min()),
                int(healthy[0].max()) + 1,
                int(healthy[1].max()) + 1,
            ),
        )

        def traced() -> set[str]:
            return {str(line.get_label()) for line in bedside.traces.axes.get_lines()}

        # Both regions' traces: the axes hold other lines too (the events' marks).
        qtbot.waitUntil(lambda: {"lesion", "healthy skin"} <= traced(), timeout=60_000)
        # A worker that finishes after a newer one started (here: with no traces) is ignored.
        older = bedside.trace_worker
        newer = bedside.trace_recording()
        older.returned.emit(({}, []))
        QApplication.processEvents()
        assert {"lesion", "healthy skin"} <= traced()
        qtbot.waitUntil(lambda: not newer.is_running, timeout=60_000)
    finally:
        opened["Acquire"].disconnect_camera()
    lines = {line.get_label(): line for line in bedside.traces.axes.get_lines()}
    assert {"lesion", "healthy skin"} <= set(lines)
    # Shown as % of healthy skin: the ischemic patch has a fifth of its flow before the
    # needling, and recovers during it (the scene's flow rises threefold at frame 6).
    lesion = np.asarray(lines["lesion"].get_ydata())
    assert lesion[:2].max() < 50.0
    assert lesion[-1] > 2.0 * lesion[:2].mean()
    assert [event.label for event in bedside.marks] == [NEEDLING_START, NEEDLING_END]
    assert bedside.traces.axes.get_ylabel() == "% of healthy skin"
