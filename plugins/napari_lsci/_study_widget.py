"""Study widget: browse a follow-up study, open a visit's recording, show a subject's trend.

The widget is a caller of the study engine (:class:`lsci.study.Study`): the subjects, sites
and visits come from the catalog, a visit's recording is opened with the plugin's reader (and
its ROIs, as placed on it by registration or control points, as a Shapes layer), and the trend
is :meth:`lsci.study.Study.trend` with the table columns of ``lsci study trend``'s CSV and its
figure (:func:`lsci.study.trends.trend_plot`) on a Qt canvas. Nothing is computed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, Table
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from superqt.utils import create_worker

from lsci.study import RecordingEntry, Study
from lsci.study.trends import TREND_COLUMNS, Trend, cell, trend_plot
from napari_lsci._reader import read_recording
from napari_lsci._ui import notify_error, put_layers

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["StudyWidget"]

#: The Shapes layer of a visit's ROIs.
ROI_LAYER = "study ROIs"


class StudyWidget(Container):
    """Follow a subject across visits.

    Choose a study folder and :meth:`load` it; pick a subject, a body site and a visit;
    :meth:`open_visit` reads the visit's recording into the viewer with its ROIs;
    :meth:`show_trend` computes the subject's trend at the site with the study engine and shows
    its table (the columns of ``lsci study trend``'s CSV) and figure.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.

    Attributes
    ----------
    folder : magicgui FileEdit
        The study folder.
    subject, site, visit : magicgui ComboBox
        The subject codes, its body sites, and the recordings of its visits at the site.
    table : magicgui Table
        The trend, one row per visit, recording and ROI.
    canvas : FigureCanvasQTAgg
        The trend figure.
    trend : lsci.study.Trend or None
        The trend shown.
    worker : worker or None
        The trend computation in progress (or last run).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.folder = FileEdit(label="Study folder", mode="d", value="")
        self.load_button = PushButton(text="Load study")
        self.subject = ComboBox(label="Subject", choices=[])
        self.site = ComboBox(label="Body site", choices=[])
        self.visit = ComboBox(label="Visit", choices=[])
        self.open_button = PushButton(text="Open visit")
        self.trend_button = PushButton(text="Show trend")
        self.status = Label(value="")
        self.table = Table(value={"data": [], "index": [], "columns": list(TREND_COLUMNS)})
        self.canvas = FigureCanvasQTAgg()
        self.canvas.setMinimumHeight(260)
        self.trend: Trend | None = None
        self.worker: Any = None
        self._entries: list[RecordingEntry] = []
        self.extend(
            [
                self.folder,
                self.load_button,
                self.subject,
                self.site,
                self.visit,
                self.open_button,
                self.trend_button,
                self.status,
                self.table,
            ]
        )
        self.native.layout().addWidget(self.canvas)
        self.load_button.changed.connect(self.load)
        self.subject.changed.connect(self._subject_changed)
        self.site.changed.connect(self._site_changed)
        self.open_button.changed.connect(self.open_visit)
        self.trend_button.changed.connect(self.show_trend)

    def _study(self) -> Study:
        return Study.open(Path(self.folder.value))

    def load(self) -> None:
        """Read the study's recordings and list its subjects."""
        try:
            with self._study() as study:
                self._entries = study.recordings(quick=True)
        except Exception as exc:  # the user sees every failure, as the CLI does
            self._entries = []
            self.status.value = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            notify_error(exc)
            return
        self.subject.choices = list(dict.fromkeys(e.subject for e in self._entries))
        self._subject_changed()
        changed = sum(e.status != "ok" for e in self._entries)
        self.status.value = f"{len(self._entries)} recordings" + (
            f", {changed} changed or missing" if changed else ""
        )

    def _subject_changed(self, *_: Any) -> None:
        own = [e for e in self._entries if e.subject == self.subject.value]
        self.site.choices = list(dict.fromkeys(e.site for e in own))
        self._site_changed()

    def _site_changed(self, *_: Any) -> None:
        self.visit.choices = [(_visit_text(e), e) for e in self._visit_entries()]

    def _visit_entries(self) -> list[RecordingEntry]:
        return [
            e
            for e in self._entries
            if e.subject == self.subject.value and e.site == self.site.value
        ]

    def open_visit(self) -> None:
        """Open the chosen visit's recording in the viewer, with its ROIs as placed on it."""
        entry: RecordingEntry | None = self.visit.value
        if entry is None:
            return
        try:
            put_layers(self.viewer, read_recording(str(entry.path)))
            with self._study() as study:
                rois = study.mapped_rois(entry)
        except Exception as exc:
            notify_error(exc)
            return
        if ROI_LAYER in self.viewer.layers:
            self.viewer.layers.remove(ROI_LAYER)
        if rois:
            self.viewer.add_shapes(
                [np.asarray(roi.vertices) for roi in rois],
                shape_type="polygon",
                name=ROI_LAYER,
                edge_color="yellow",
                face_color="transparent",
                text={"string": [roi.name for roi in rois], "color": "yellow"},
            )
        self.status.value = f"opened {entry.subject} {entry.site} visit {entry.visit}"

    def show_trend(self) -> Any:
        """Compute the subject's trend at the site with the study engine, in the background.

        Returns
        -------
        worker
            The running computation; the table and figure are filled when it returns.
        """
        subject, site = self.subject.value, self.site.value
        if not subject or not site:
            self.status.value = "load a study and choose a subject and a site"
            return None
        folder = Path(self.folder.value)
        self.trend_button.enabled = False
        self.status.value = f"computing the trend of {subject} at {site}..."
        self.worker = create_worker(
            _trend,
            folder,
            subject,
            site,
            _connect={"returned": self._show, "errored": self._failed, "finished": self._done},
        )
        return self.worker

    def _show(self, trend: Trend) -> None:
        self.trend = trend
        data = [[cell(getattr(row, c)) for c in TREND_COLUMNS] for row in trend.rows]
        self.table.value = {
            "data": data,
            "index": [str(i) for i in range(len(data))],
            "columns": list(TREND_COLUMNS),
        }
        self.canvas.figure = trend_plot(trend.rows, title=f"{trend.subject} · {trend.sites[0]}")
        self.canvas.figure.set_canvas(self.canvas)
        self.canvas.draw_idle()
        self.status.value = f"trend of {trend.subject} at {trend.sites[0]}: {len(data)} rows"

    def _failed(self, exc: BaseException) -> None:
        self.status.value = "failed: " + (str(exc).splitlines()[0] if str(exc) else "error")
        notify_error(exc)

    def _done(self) -> None:
        self.trend_button.enabled = True


def _visit_text(entry: RecordingEntry) -> str:
    day = "" if entry.day is None else f" · day {entry.day}"
    state = "" if entry.status == "ok" else f" · {entry.status}"
    return f"{entry.visit}{day} · {Path(entry.stored_path).name}{state}"


def _trend(folder: Path, subject: str, site: str) -> Trend:
    with Study.open(folder) as study:
        return study.trend(subject, site)
