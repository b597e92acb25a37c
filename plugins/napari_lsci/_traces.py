"""ROI traces over time with event marks: a plot for a dock, and their CSV export.

The traces are :meth:`lsci.analysis.live.LiveAnalysis.traces` during acquisition, and
:func:`recording_traces` (the comparison engine's
:func:`lsci.analysis.compare_recordings.session_time_course` over a processed recording) when
a recording is reviewed: each named region's mean perfusion (as % of healthy skin once a
reference is drawn, else in the map's unit) and the hypoperfused area on a second axis, against
seconds since the first frame; event marks are dashed vertical lines labelled with the event.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy

from lsci.analysis.compare_recordings import session_time_course
from lsci.analysis.live import AREA_TRACE, Trace
from lsci.analysis.roi import roi_masks
from lsci.analysis.scale import recording_scale
from lsci.recording import Event, open_recording
from lsci.recording.atomic import atomic_write
from lsci.viz.display import unit_of
from napari_lsci._display import frames_between_maps

__all__ = [
    "TRACE_COLUMNS",
    "TracesWidget",
    "recording_traces",
    "traces_csv",
    "write_traces_csv",
]

TRACE_COLUMNS = ("time_s", "name", "value", "unit", "percent_of_reference")
#: Maps of a recording read at once for its traces (memory stays small on long sessions).
_CHUNK_MAPS = 32
#: Shortest time between two redraws of the plot, seconds: drawing costs the GUI thread.
_REDRAW_S = 1.0


def recording_traces(
    path: str | os.PathLike[str],
    rois: Mapping[str, np.ndarray],
    reference: str | None = None,
) -> tuple[dict[str, Trace], list[Event]] | None:
    """The traces of a processed recording's perfusion maps, and its events on their axis.

    Parameters
    ----------
    path : str or path
        The recording; its newest ``perfusion`` product is traced.
    rois : mapping of str to (K, 2) polygon
        Named regions (at least one).
    reference : str, optional
        The healthy reference among them: % of healthy skin and the hypoperfused area.

    Returns
    -------
    tuple or None
        ``(traces, events)`` with :class:`lsci.analysis.live.Trace` values; None when the
        recording holds no perfusion stack (process it first).
    """
    with open_recording(path) as recording:
        try:
            product = recording.product("perfusion")
        except KeyError:
            return None
        info = product.info
        if len(info.shape) != 3 or not len(recording):
            return None
        stamps = np.asarray(recording.host_timestamps_ns, dtype=np.int64)
        frame_s = (stamps - stamps[0]) / 1e9
        step = frames_between_maps(info, len(recording))
        scale = recording_scale(recording)
        unit = unit_of("perfusion", info.parameters)
        events = [
            dataclasses.replace(e, time_s=float(frame_s[min(e.frame_index, frame_s.size - 1)]))
            for e in recording.events
        ]
        times: list[np.ndarray] = []
        means: dict[str, list[np.ndarray]] = {name: [] for name in rois}
        areas: list[np.ndarray] = []
        levels: list[np.ndarray] = []
        for start in range(0, info.shape[0], _CHUNK_MAPS):
            maps = np.asarray(product[start : start + _CHUNK_MAPS])
            if reference is not None:
                # 100 % of healthy skin is the reference's median, as live and in the areas.
                mask = roi_masks({reference: rois[reference]}, maps.shape[1:])[reference]
                levels.append(np.nanmedian(maps[:, mask], axis=1))
            first_frames = np.arange(start, start + maps.shape[0]) * step
            course = session_time_course(
                maps,
                frame_s[np.minimum(first_frames, frame_s.size - 1)],
                rois,
                reference=reference,
                scale=scale,
                unit=unit,
            )
            times.append(course.times_s)
            for name, values in course.means.items():
                means[name].append(values)
            if course.area is not None:
                area = course.area
                areas.append(area.area_px.astype(float) if area.area_mm2 is None else area.area_mm2)
    time_s = np.concatenate(times)
    level = np.concatenate(levels) if levels else None
    traces: dict[str, Trace] = {}
    for name, chunks in means.items():
        values = np.concatenate(chunks)
        percent = np.full(values.shape, np.nan) if level is None else 100.0 * values / level
        traces[name] = Trace(name, time_s, values, unit, percent)
    if areas:
        traces[AREA_TRACE] = Trace(
            AREA_TRACE,
            time_s,
            np.concatenate(areas),
            "px" if scale is None else "mm²",
            np.full(time_s.shape, np.nan),
        )
    return traces, events


def traces_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Trace rows (:meth:`lsci.analysis.live.LiveAnalysis.trace_rows`) as CSV text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(TRACE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def write_traces_csv(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write trace rows as CSV, under a temporary name published when complete.

    Raises
    ------
    ValueError
        When there is no row yet.
    lsci.recording.RecordingError
        When the file exists (and ``overwrite`` is false) or cannot be written.
    """
    if not rows:
        raise ValueError("no ROI trace yet: acquire with named ROIs first")
    target = Path(path)
    with atomic_write(target, overwrite=overwrite) as temporary:
        temporary.write_text(traces_csv(rows), encoding="utf-8")
    return target


class TracesWidget(FigureCanvasQTAgg):  # type: ignore[misc]
    """The traces of the live analysis over time, with the event marks.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        The plot; its axes carry the titles with units.
    """

    def __init__(self) -> None:
        figure = Figure(figsize=(5.0, 2.0), dpi=90, layout="constrained")
        super().__init__(figure)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumHeight(140)
        self.axes = figure.add_subplot()
        self.area_axes = self.axes.twinx()
        self._drawn = 0.0
        self.plot({}, [], unit="", force=True)

    def plot(
        self,
        traces: Mapping[str, Trace],
        marks: Sequence[Event],
        *,
        unit: str,
        force: bool = False,
    ) -> bool:
        """Draw the traces (at most once a second unless ``force``); whether it drew."""
        now = time.monotonic()
        if not force and now - self._drawn < _REDRAW_S:
            return False
        self._drawn = now
        axes, area_axes = self.axes, self.area_axes
        axes.clear()
        area_axes.clear()
        relative = any(
            np.isfinite(t.percent_of_reference).any()
            for name, t in traces.items()
            if name != AREA_TRACE
        )
        for name, trace in traces.items():
            if name == AREA_TRACE:
                area_axes.plot(trace.times_s, trace.values, color="0.4", lw=1.2, ls=":", label=name)
                area_axes.set_ylabel(f"area ({trace.unit})", fontsize=8)
                continue
            values = trace.percent_of_reference if relative else trace.values
            axes.plot(trace.times_s, values, lw=1.5, label=name)
        for event in marks:
            if math.isfinite(event.time_s):
                axes.axvline(event.time_s, color="tab:red", ls="--", lw=1)
                axes.annotate(
                    event.label,
                    (event.time_s, 1.0),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    va="top",
                    ha="right",
                    fontsize=7,
                    color="tab:red",
                )
        # clear() puts the twin axis' label and ticks back on the left.
        area_axes.yaxis.set_label_position("right")
        area_axes.yaxis.tick_right()
        axes.set_xlabel("time (s)", fontsize=8)
        axes.set_ylabel("% of healthy skin" if relative else (unit or "perfusion"), fontsize=8)
        axes.tick_params(labelsize=7)
        area_axes.tick_params(labelsize=7)
        if traces:
            axes.legend(fontsize=7, loc="lower left")
        else:
            axes.set_title("ROI traces appear here during acquisition", fontsize=8)
        self.draw_idle()
        return True
