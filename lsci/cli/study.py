"""``lsci study``: follow subjects across visits in a study catalog (see :mod:`lsci.study`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lsci.errors import LsciError

if TYPE_CHECKING:
    from lsci.study import Study


class _StudyGroup(click.Group):
    """Expected failures (lsci's errors, invalid values) become one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (LsciError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc


def _api() -> Any:
    """The study engine; its database libraries are an optional extra."""
    try:
        import lsci.study
    except ImportError as exc:
        raise click.ClickException(
            f"the study catalog needs the 'study' extra ({exc.name} is missing): "
            "pip install 'lsci[study]'"
        ) from None
    return lsci.study


def _open(folder: Path) -> Study:
    study: Study = _api().Study.open(folder)
    return study


_FOLDER = click.argument("folder", type=click.Path(file_okay=False, path_type=Path))


@click.group("study", cls=_StudyGroup)
def study() -> None:
    """Follow subjects across visits: catalog, trends and de-identified export.

    A study is a folder whose catalog (SQLite inside it, or PostgreSQL) holds pseudonymous
    subjects, body sites, visits, their recordings (checked by SHA-256) and ROIs.
    """


@study.command("init")
@_FOLDER
@click.option(
    "--database",
    metavar="URL",
    default=None,
    help="PostgreSQL URL (postgresql://user@host/db) for a catalog shared by several "
    "workstations; the password comes from PGPASSWORD or ~/.pgpass. Default: SQLite in FOLDER.",
)
def init_command(folder: Path, database: str | None) -> None:
    """Create a study in FOLDER."""
    with _api().Study.init(folder, database=database) as created:
        click.echo(f"Created study {folder} (catalog: {created.database})")


@study.command("add")
@_FOLDER
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--subject", required=True, help="Pseudonymous subject code (e.g. S01), no name.")
@click.option("--site", required=True, help="Body site, e.g. nose.")
@click.option("--visit", required=True, help="Visit label, unique per subject, e.g. V1.")
@click.option(
    "--date", "visit_date", type=click.DateTime(["%Y-%m-%d"]), default=None, help="YYYY-MM-DD."
)
@click.option("--day", type=int, default=None, help="Day of the visit after the event (day 0).")
@click.option("--notes", default=None, help="Free notes of the visit (left out of exports).")
@click.option(
    "--roi",
    "roi_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="GeoJSON file of the subject's ROIs at this site, drawn on this recording (roles "
    "reference, lesion, other). Later visits get them by registration.",
)
@click.option(
    "--control-points",
    "points_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV (drawn_row,drawn_col,row,col) of landmarks in the recording the ROIs were drawn "
    "on and in this one: place the ROIs by them instead of by registration.",
)
def add_command(
    folder: Path,
    recording: Path,
    subject: str,
    site: str,
    visit: str,
    visit_date: datetime | None,
    day: int | None,
    notes: str | None,
    roi_file: Path | None,
    points_file: Path | None,
) -> None:
    """Catalogue RECORDING as a visit of a subject's body site.

    The subject's ROIs at the site are then placed on the recording: registered onto the
    recording they were drawn on, or by --control-points. A refused registration is reported
    in one line; give control points then (lsci study align).
    """
    api = _api()
    rois = api.read_roi_file(roi_file) if roi_file is not None else None
    points = None
    if points_file is not None:
        points = api.read_control_points(points_file)
    with _open(folder) as opened:
        entry = opened.add_recording(
            recording,
            subject=subject,
            site=site,
            visit=visit,
            visit_date=None if visit_date is None else visit_date.date(),
            day=day,
            notes=notes,
            rois=rois,
            control_points=points,
        )
        day_text = "" if entry.day is None else f", day {entry.day}"
        click.echo(
            f"Added {entry.stored_path}: {entry.subject}, {entry.site}, {entry.visit}{day_text}"
        )
        follows = opened.follow_rois(entry.subject, entry.site)
    _report_follows(folder, [f for f in follows if f.recording.id == entry.id])


def _report_follows(folder: Path, follows: Any) -> None:
    for follow in follows:
        line = follow.describe()
        if follow.mapped:
            click.echo(line)
        else:
            click.echo(line.replace("lsci study align", f"lsci study align {folder}"), err=True)


@study.command("align")
@_FOLDER
@click.option("--subject", required=True, help="Subject code.")
@click.option("--site", required=True, help="Body site.")
@click.option("--visit", required=True, help="The visit whose recording gets the ROIs.")
@click.option(
    "--points",
    default=None,
    help="Landmark pairs 'r,c r,c ...': each a point in the recording the ROIs were drawn on, "
    "then the same point in this visit's recording (row, column in pixels); at least 2 pairs.",
)
@click.option(
    "--control-points",
    "points_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The landmark pairs as CSV (drawn_row,drawn_col,row,col) instead of --points.",
)
@click.option(
    "--recording", type=int, default=1, show_default=True, help="Which recording of the visit."
)
def align_command(
    folder: Path,
    subject: str,
    site: str,
    visit: str,
    points: str | None,
    points_file: Path | None,
    recording: int,
) -> None:
    """Place the ROIs on a visit by control points, where registration was refused."""
    api = _api()
    if (points is None) == (points_file is None):
        raise click.UsageError("give the landmark pairs with --points or --control-points")
    pairs = api.parse_points(points) if points is not None else api.read_control_points(points_file)
    with _open(folder) as opened:
        follow = opened.align(subject, site, visit, *pairs, recording=recording)
    _report_follows(folder, [follow])


@study.command("list")
@_FOLDER
@click.option("--quick", is_flag=True, help="Check sizes only, without hashing the files.")
def list_command(folder: Path, quick: bool) -> None:
    """List the recordings and whether each is unchanged (exit status 1 if one is not)."""
    with _open(folder) as opened:
        entries = opened.recordings(quick=quick)
    if not entries:
        click.echo("No recordings in the study.")
        return
    click.echo("subject  site  visit  day  date  status  path")
    for e in entries:
        day = "" if e.day is None else str(e.day)
        when = "" if e.visit_date is None else e.visit_date.isoformat()
        line = f"{e.subject}  {e.site}  {e.visit}  {day}  {when}  {e.status}  {e.stored_path}"
        click.echo(line + (f"  ({e.reason})" if e.reason else ""))
    bad = [e for e in entries if e.status != "ok"]
    if bad:
        raise click.ClickException(
            f"{len(bad)} of {len(entries)} recordings changed or missing: they are not used"
        )


@study.command("trend")
@_FOLDER
@click.option("--subject", required=True, help="Subject code.")
@click.option("--site", default=None, help="Only this body site (default: all).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for trend_<subject>.csv and a figure per site.",
)
def trend_command(folder: Path, subject: str, site: str | None, out_dir: Path) -> None:
    """Perfusion and hypoperfused area of a subject across visits (CSV and PNG)."""
    with _open(folder) as opened:
        files = opened.trend(subject, site=site).write(out_dir)
    for path in files:
        click.echo(f"Wrote {path}")


@study.command("export")
@_FOLDER
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for study_long.csv, figures/, export.json and README.txt.",
)
@click.option(
    "--include-notes",
    is_flag=True,
    help="Add visit labels, notes and event labels (free text that may identify a person).",
)
def export_command(folder: Path, out_dir: Path, include_notes: bool) -> None:
    """De-identified export of every subject × site × visit × ROI, with the figures."""
    with _open(folder) as opened:
        files = opened.export(out_dir, include_notes=include_notes)
    click.echo(f"Wrote {len(files)} files to {out_dir}")
