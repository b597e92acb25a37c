"""De-identified export of a study: one long table for statistics, the trend figures, a README.

What the export carries, by default:

- subjects by their pseudonymous codes only;
- visits by number and day relative to the event; their dates shifted by the subject's random
  offset (stored in the catalog), so intervals between a subject's dates are kept but the dates
  themselves are not (HIPAA Safe Harbor lists all elements of dates except the year);
- no device identifiers or serial numbers, no recording file names or paths (they often carry
  dates or names), no recording start times;
- no free text: visit labels, visit notes and the labels of events marked in the recordings
  appear only with ``include_notes`` (events are otherwise marked without their label).

``export.json`` and ``README.txt`` state this, and that images of a face may still identify a
person.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from lsci._version import __version__
from lsci.study.analysis import PERFUSION_EXPRESSION, StudySettings
from lsci.study.output import output_folder, safe_name, write_atomically
from lsci.study.trends import Trend, TrendRow, trend_figure, write_csv

__all__ = ["EXPORT_COLUMNS", "FACE_STATEMENT", "export_study"]

#: What the de-identification cannot do.
FACE_STATEMENT = (
    "Images of a face may still identify a person: this export holds no images of the "
    "recordings, but the recordings themselves do, and sharing them is not covered by it."
)
_EVENT_MARK = "procedure event"

#: Columns of the long table, with their meaning and unit.
EXPORT_COLUMNS: dict[str, str] = {
    "subject": "pseudonymous subject code",
    "site": "body site",
    "visit_number": "visit number of the subject, in order of day (then date)",
    "day": "day of the visit relative to the event (day 0)",
    "visit_date_shifted": "visit date shifted by the subject's random offset (intervals kept)",
    "recording": "recording number within the visit and site",
    "roi": "region of interest",
    "role": "reference, lesion or other",
    "roi_pixels": "pixels of the ROI with a finite perfusion value",
    "perfusion_inv_s": f"mean perfusion over the ROI: {PERFUSION_EXPRESSION}",
    "perfusion_percent_of_reference": "ROI mean as % of the reference ROI mean",
    "hypoperfused_area_mm2": "hypoperfused area inside the lesion ROI, mm²: below the "
    "threshold fraction of the reference ROI's median, regions under 1 mm² cleaned",
    "perfusion_change_percent": "change of perfusion_inv_s from the first visit, %",
    "percent_of_reference_change_points": "change of % of reference from the first visit, "
    "percentage points",
    "hypoperfused_area_change_mm2": "change of the hypoperfused area from the first visit, mm²",
    "events": "events marked in the recording (labels only with --include-notes)",
    "roi_mapping": "how the ROIs were placed on the recording: drawn on it, or moved from the "
    "recording they were drawn on by registration or by control points",
    "registration_correlation": "correlation of the registered mean intensities (confidence)",
}
_NOTE_COLUMNS = {"visit_label": "visit label as entered", "notes": "free notes of the visit"}


def export_study(
    trends: Sequence[Trend],
    date_shifts: Mapping[str, int],
    out_dir: str | Path,
    *,
    settings: StudySettings,
    include_notes: bool = False,
) -> list[Path]:
    """Write the export of the subjects' trends into ``out_dir``.

    Files: ``study_long.csv`` (one row per subject × site × visit × recording × ROI),
    ``figures/trend_<subject>_<site>.png``, ``export.json`` and ``README.txt``. Each is written
    under a temporary name and renamed when complete.

    Parameters
    ----------
    trends : sequence of Trend
        One per subject (:meth:`lsci.study.Study.trend`).
    date_shifts : mapping of str to int
        Each subject's date offset in days (:meth:`lsci.study.Study.date_shifts`).
    out_dir : str or Path
        Output folder (created if needed).
    settings : StudySettings
        The study's analysis settings, stated in the export.
    include_notes : bool
        Add visit labels, visit notes and event labels (free text that may identify).

    Returns
    -------
    list of Path
        The files written.
    """
    folder = output_folder(out_dir)
    figures = output_folder(folder / "figures")
    rows: list[TrendRow] = []
    files: list[Path] = []
    for trend in trends:
        code = trend.subject
        own = [_de_identified(row, date_shifts[code], include_notes) for row in trend.rows]
        rows.extend(own)
        for site in trend.sites:
            files.append(
                trend_figure(
                    [row for row in own if row.site == site],
                    figures / f"trend_{safe_name(code)}_{safe_name(site)}.png",
                    title=f"{code} · {site}",
                )
            )
    columns = list(EXPORT_COLUMNS) + (list(_NOTE_COLUMNS) if include_notes else [])

    def cells(row: TrendRow) -> list[Any]:
        values = {name: getattr(row, name, None) for name in EXPORT_COLUMNS}
        values["visit_date_shifted"] = row.visit_date
        if include_notes:
            values["visit_label"], values["notes"] = row.visit, row.notes
        return [values[name] for name in columns]

    files.insert(0, write_csv(folder / "study_long.csv", rows, columns, cells))
    description = _description(settings, rows, include_notes)
    files.append(
        write_atomically(
            folder / "export.json",
            lambda tmp: tmp.write_text(json.dumps(description, indent=2) + "\n", "utf-8"),
        )
    )
    files.append(
        write_atomically(folder / "README.txt", lambda tmp: tmp.write_text(_readme(description)))
    )
    return files


def _de_identified(row: TrendRow, shift_days: int, include_notes: bool) -> TrendRow:
    shifted = None if row.visit_date is None else row.visit_date + timedelta(days=shift_days)
    if include_notes:
        return replace(row, visit_date=shifted)
    return replace(
        row,
        visit_date=shifted,
        visit=f"visit {row.visit_number}",
        notes="",
        events=_EVENT_MARK if row.events else "",
    )


def _description(
    settings: StudySettings, rows: list[TrendRow], include_notes: bool
) -> dict[str, Any]:
    columns = EXPORT_COLUMNS | (_NOTE_COLUMNS if include_notes else {})
    return {
        "format": "lsci-study-export",
        "format_version": 1,
        "lsci_version": __version__,
        "de_identified": not include_notes,
        "identifiers": {
            "subjects": "pseudonymous codes only; the catalog stores no names",
            "dates": "shifted by a random offset per subject (intervals kept); days relative "
            "to the event are exact",
            "devices": "no camera serial numbers or other device identifiers",
            "files": "no recording file names, paths or start times",
            "free_text": "visit labels, notes and event labels included"
            if include_notes
            else "none (visit labels, notes and event labels left out)",
        },
        "faces": FACE_STATEMENT,
        "perfusion": PERFUSION_EXPRESSION,
        "hypoperfusion_threshold": (
            f"{settings.hypoperfusion_fraction:g} × the reference ROI median, in each recording"
        ),
        "settings": settings.to_dict(),
        "subjects": len({row.subject for row in rows}),
        "rows": len(rows),
        "columns": columns,
    }


def _readme(description: dict[str, Any]) -> str:
    identifiers = description["identifiers"]
    lines = [
        "lsci study export",
        "",
        "study_long.csv: one row per subject, body site, visit, recording and region of "
        "interest; figures/: perfusion (% of reference) and hypoperfused area across visits.",
        "",
        "De-identification" + ("" if description["de_identified"] else " (notes included)") + ":",
        *(f"- {key}: {text}" for key, text in identifiers.items()),
        f"- {description['faces']}",
        "",
        f"Perfusion: {description['perfusion']}.",
        f"Hypoperfused area: below {description['hypoperfusion_threshold']}.",
        "",
        "Columns:",
        *(f"- {name}: {text}" for name, text in description["columns"].items()),
        "",
    ]
    return "\n".join(lines)
