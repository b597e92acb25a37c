"""A study: subjects, body sites, visits, their recordings and ROIs, in a catalog database.

A study is a folder. ``study.json`` in it says where its catalog is: ``catalog.sqlite`` beside
it by default (an embedded database, no server), or a PostgreSQL database shared by several
workstations. Recordings inside the folder are catalogued by their path relative to it, so the
folder can be moved or mounted elsewhere; recordings outside it by their absolute path.

Every recording is catalogued with its SHA-256 and size; before its numbers are used it is
checked again, and one that changed or moved is reported and refused
(:class:`lsci.study.errors.RecordingChangedError`), never silently used.

The catalog holds no names: a subject is a pseudonymous code (:func:`check_subject_code`)
with a random date offset used by the de-identified export (:mod:`lsci.study.export`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lsci._version import __version__
from lsci.recording import open_recording
from lsci.recording.metadata import format_utc
from lsci.study import schema
from lsci.study.analysis import (
    StudySettings,
    analyse_recording,
    recording_perfusion_map,
    rois_digest,
)
from lsci.study.database import connect, describe_error, get_or_create, public_url, sqlite_url
from lsci.study.errors import CatalogError, RecordingChangedError, StudyError
from lsci.study.export import export_study
from lsci.study.fingerprint import Fingerprint, Status, fingerprint, status
from lsci.study.follow import (
    Points,
    RoiTransform,
    control_point_transform,
    map_roi,
    register_visit,
)
from lsci.study.migrations import catalog_version, create_schema, migrate
from lsci.study.output import write_atomically
from lsci.study.rois import Roi, check_rois
from lsci.study.trends import Trend, TrendRow, with_changes

__all__ = [
    "CATALOG_FILE",
    "STUDY_FILE",
    "RecordingEntry",
    "RoiFollow",
    "Study",
    "VisitEntry",
    "check_subject_code",
]

#: The file that makes a folder a study.
STUDY_FILE = "study.json"
#: The SQLite catalog of a study without a database URL.
CATALOG_FILE = "catalog.sqlite"
_FORMAT = "lsci-study"
_FORMAT_VERSION = 1
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}")
#: Range of the random per-subject date offset of de-identified exports, in days.
DATE_SHIFT_DAYS = (-1095, -365)
_ANALYSIS = "roi_perfusion"
_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _now() -> str:
    return format_utc(datetime.now(UTC))


def check_subject_code(code: str) -> str:
    """Check a pseudonymous subject code: 1–16 letters, digits, '-' or '_', at least one digit.

    A code is what a study knows of a person; a word without digits ("Smith") looks like a
    name and is refused.

    Raises
    ------
    StudyError
        When ``code`` is not such a code.
    """
    if not (isinstance(code, str) and _CODE.fullmatch(code) and any(c.isdigit() for c in code)):
        raise StudyError(
            f"subject code {code!r} refused: use a pseudonymous code of 1 to 16 letters, digits, "
            "'-' or '_' with at least one digit (e.g. S01), never a name"
        )
    return code


def _check_text(kind: str, text: str, limit: int = 64) -> str:
    if (
        not isinstance(text, str)
        or not 0 < len(text.strip()) <= limit
        or not text.isprintable()
        or text != text.strip()
    ):
        raise StudyError(f"{kind} {text!r} must be 1 to {limit} printable characters")
    return text


@dataclass(frozen=True)
class VisitEntry:
    """A visit of a subject: its label, number (in order of day, then date), date, day, notes."""

    label: str
    number: int
    visit_date: date | None
    day: int | None
    notes: str


@dataclass(frozen=True)
class RecordingEntry:
    """A catalogued recording and whether it is still what was added.

    Attributes
    ----------
    id : int
        Its row in the catalog.
    subject, site, visit : str
        Subject code, body site and visit label.
    visit_date : date or None
    day : int or None
        Day of the visit relative to the event.
    stored_path : str
        As catalogued (relative to the study folder when inside it).
    path : Path
        Where it is expected now.
    status : {'ok', 'changed', 'missing'}
    reason : str
        Why it is not ok (empty when ok).
    """

    id: int
    subject: str
    site: str
    visit: str
    visit_date: date | None
    day: int | None
    stored_path: str
    path: Path
    fingerprint: Fingerprint
    status: Status
    reason: str


@dataclass(frozen=True)
class RoiFollow:
    """How the ROIs of a subject's site lie on one of its recordings.

    Attributes
    ----------
    recording : RecordingEntry
        The recording.
    drawn : RecordingEntry
        The recording the ROIs were drawn on.
    transform : RoiTransform or None
        How they were moved onto ``recording`` (None: drawn on it).
    """

    recording: RecordingEntry
    drawn: RecordingEntry
    transform: RoiTransform | None

    @property
    def mapped(self) -> bool:
        """True when the ROIs lie on the recording (drawn there, or moved by a transform)."""
        return self.transform is None or self.transform.accepted

    def describe(self) -> str:
        """One line: which visit, how its ROIs were placed, or why they could not be."""
        where = f"visit {self.recording.visit} of {self.recording.subject} at {self.recording.site}"
        if self.transform is None:
            return f"{where}: ROIs drawn on this recording"
        if self.transform.accepted:
            return (
                f"{where}: ROIs mapped from visit {self.drawn.visit} by {self.transform.summary()}"
            )
        return (
            f"{where}: ROIs not mapped from visit {self.drawn.visit}, registration refused: "
            f"{self.transform.reason}. Give control points: lsci study align "
            f"--subject {self.recording.subject} --site {self.recording.site} "
            f"--visit {self.recording.visit} --points 'r,c r,c ...'"
        )


class Study:
    """A study folder and its catalog. Create with :meth:`init`, open with :meth:`open`.

    Examples
    --------
    >>> with Study.init("study") as study:  # doctest: +SKIP
    ...     study.add_recording("day2.h5", subject="S01", site="nose", visit="V1", day=2,
    ...                         rois=read_roi_file("nose.geojson"))
    ...     study.trend("S01").write("trend")
    """

    def __init__(
        self, folder: Path, engine: Engine, uid: str, settings: StudySettings, url: str
    ) -> None:
        self.folder = folder
        self.settings = settings
        self.uid = uid
        self.database = url
        self._engine = engine

    # ------------------------------------------------------------------ opening
    @classmethod
    def init(
        cls,
        folder: str | Path,
        *,
        database: str | None = None,
        settings: StudySettings | None = None,
    ) -> Study:
        """Create a study in ``folder`` (created if needed).

        Parameters
        ----------
        folder : str or Path
            The study folder; it must not hold a study already.
        database : str, optional
            A PostgreSQL URL (``postgresql://user@host/database``); the database must exist and
            hold no catalog. The URL is stored without its password: give the password through
            ``PGPASSWORD`` or ``~/.pgpass``. Default: SQLite in ``folder/catalog.sqlite``.
        settings : StudySettings, optional
            How recordings are analysed (stored in the catalog).

        Raises
        ------
        StudyError, CatalogError
            When the folder is a study already, or the database cannot be used.
        """
        folder = Path(folder)
        settings = StudySettings() if settings is None else settings
        if (folder / STUDY_FILE).exists():
            raise StudyError(f"{folder}: is a study already ({STUDY_FILE} exists)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudyError(f"{folder}: cannot create the folder: {exc.strerror}") from None
        url = sqlite_url(folder / CATALOG_FILE) if database is None else database
        engine = connect(url)
        uid = secrets.token_hex(16)
        shown = public_url(url)
        with _transaction(engine, shown) as connection:
            if catalog_version(connection) is not None:
                raise StudyError(f"{shown}: the database holds a study catalog already")
            create_schema(connection)
            connection.execute(
                sa.insert(schema.study).values(
                    uid=uid, created_utc=_now(), settings=settings.to_dict()
                )
            )
        description = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "uid": uid,
            "database_url": None if database is None else public_url(database),
        }
        write_atomically(
            folder / STUDY_FILE,
            lambda tmp: tmp.write_text(json.dumps(description, indent=2) + "\n", "utf-8"),
        )
        return cls(folder, engine, uid, settings, shown)

    @classmethod
    def open(cls, folder: str | Path) -> Study:
        """Open the study in ``folder``, upgrading an older catalog schema.

        Raises
        ------
        StudyError, CatalogError
            When the folder is not a study, its database cannot be reached, or the database
            holds another study's catalog.
        """
        folder = Path(folder)
        try:
            description = json.loads((folder / STUDY_FILE).read_text("utf-8"))
        except FileNotFoundError:
            raise StudyError(
                f"{folder}: not a study folder (no {STUDY_FILE}); create one with lsci study init"
            ) from None
        except (OSError, ValueError) as exc:
            raise StudyError(f"{folder / STUDY_FILE}: cannot be read: {exc}") from None
        if not isinstance(description, dict) or description.get("format") != _FORMAT:
            raise StudyError(f"{folder / STUDY_FILE}: not an lsci study description")
        if description.get("format_version", 0) > _FORMAT_VERSION:
            raise StudyError(f"{folder}: written by a newer lsci; update lsci")
        stored_url = description.get("database_url")
        url = sqlite_url(folder / CATALOG_FILE) if stored_url is None else str(stored_url)
        if stored_url is None and not (folder / CATALOG_FILE).is_file():
            raise StudyError(f"{folder / CATALOG_FILE}: the study's catalog is missing")
        engine = connect(url)
        shown = public_url(url)
        with _transaction(engine, shown) as connection:
            if connection.dialect.name == "postgresql" and catalog_version(connection):
                # One process at a time checks and upgrades the schema.
                connection.exec_driver_sql("LOCK TABLE schema_versions IN SHARE ROW EXCLUSIVE MODE")
            migrate(connection)
            row = connection.execute(sa.select(schema.study)).one()
        if row.uid != description.get("uid"):
            raise StudyError(
                f"{shown} holds the catalog of another study than {folder} (their ids differ)"
            )
        return cls(folder, engine, row.uid, StudySettings.from_dict(row.settings), shown)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Study:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Study({str(self.folder)!r}, database={self.database!r})"

    def _transaction(self) -> contextlib.AbstractContextManager[Connection]:
        return _transaction(self._engine, self.database)

    # ------------------------------------------------------------------ adding
    def add_recording(
        self,
        recording: str | Path,
        *,
        subject: str,
        site: str,
        visit: str,
        visit_date: date | None = None,
        day: int | None = None,
        notes: str | None = None,
        rois: Sequence[Roi] | None = None,
        control_points: tuple[Points, Points] | None = None,
    ) -> RecordingEntry:
        """Catalogue a recording of a subject's site at a visit.

        The subject, site and visit are created on first use. A visit's date and day are set
        once; a later call with other values is refused. Without ``day``, the day is derived
        from ``visit_date`` and another visit of the subject with both.

        Parameters
        ----------
        recording : str or Path
            A closed lsci recording (only read).
        subject : str
            Pseudonymous code (:func:`check_subject_code`).
        site : str
            Body site, e.g. "nose".
        visit : str
            Visit label, unique per subject, e.g. "V1".
        visit_date : date, optional
        day : int, optional
            Day relative to the event (day 0).
        notes : str, optional
            Free notes of the visit (kept out of exports unless asked).
        rois : sequence of Roi, optional
            ROIs of this subject and site, drawn on this recording; replace stored ROIs of the
            same names.
        control_points : (drawn points, points), optional
            Landmarks in the recording the ROIs were drawn on and in this one
            (:func:`lsci.study.follow.control_point_transform`): the ROIs are moved onto this
            recording by them instead of by registration.

        Returns
        -------
        RecordingEntry

        Where the stored ROIs lie on the new recording is settled by :meth:`follow_rois`
        (called by :meth:`trend`).

        Raises
        ------
        StudyError
            Invalid code, site or label; the recording is catalogued there already; the visit
            has another date or day.
        lsci.recording.RecordingError
            When the file is not a readable recording.
        """
        code = check_subject_code(subject)
        site = _check_text("site name", site)
        visit = _check_text("visit label", visit)
        if rois is not None:
            check_rois(rois, f"ROIs of {code} at {site}")
        path = Path(recording).absolute()
        with open_recording(path) as opened:
            meta, shape = opened.metadata, opened.frame_shape
            n_frames, writer_version = len(opened.frames), opened.lsci_version
        try:
            current = fingerprint(path)
        except OSError as exc:
            raise StudyError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        stored = self._stored_path(path)
        with self._transaction() as connection:
            subject_id, _ = get_or_create(
                connection,
                schema.subjects,
                {"code": code},
                {"date_shift_days": _random_shift(), "created_utc": _now()},
            )
            site_id, _ = get_or_create(connection, schema.sites, {"name": site})
            visit_id, visit_date, day = _visit(
                connection, subject_id, visit, visit_date, day, notes, code
            )
            values = {
                "visit_id": visit_id,
                "site_id": site_id,
                "path": stored,
                "sha256": current.sha256,
                "size_bytes": current.size_bytes,
                "annotations_sha256": current.annotations_sha256,
                "exposure_s": meta.exposure_s,
                "frame_rate_hz": meta.frame_rate_hz,
                "frame_height": shape[0],
                "frame_width": shape[1],
                "n_frames": n_frames,
                "pixel_size_um": meta.pixel_size_um,
                "magnification": meta.magnification,
                "lsci_version": writer_version or "unknown",
                "added_utc": _now(),
            }
            try:
                with connection.begin_nested():
                    inserted = connection.execute(sa.insert(schema.recordings).values(**values))
            except sa.exc.IntegrityError:
                raise StudyError(
                    f"{stored} is in the catalog already ({code}, {site}, visit {visit})"
                ) from None
            assert inserted.inserted_primary_key is not None
            recording_id = int(inserted.inserted_primary_key[0])
            if rois is not None:
                _store_rois(
                    connection, subject_id, site_id, rois, f"{code} at {site}", recording_id
                )
        entry = RecordingEntry(
            id=recording_id,
            subject=code,
            site=site,
            visit=visit,
            visit_date=visit_date,
            day=day,
            stored_path=stored,
            path=path,
            fingerprint=current,
            status="ok",
            reason="",
        )
        if control_points is not None:
            self._align(entry, *control_points)
        return entry

    def set_rois(
        self, subject: str, site: str, rois: Sequence[Roi], *, visit: str | None = None
    ) -> None:
        """Store ROIs of a subject's site, replacing stored ROIs of the same names.

        Parameters
        ----------
        subject, site : str
        rois : sequence of Roi
            In the pixels of the first recording of ``visit`` at the site.
        visit : str, optional
            The visit the ROIs were drawn on; default: the subject's first recording at the
            site, whichever visit comes first.

        Raises
        ------
        StudyError
            When the subject, site or visit is unknown, or the stored set would get two
            references.
        """
        check_rois(rois, f"ROIs of {subject} at {site}")
        drawn = None
        if visit is not None:
            drawn = self._recording_of(subject, site, visit).id
        with self._transaction() as connection:
            subject_id, site_id = self._ids(connection, subject, site)
            _store_rois(connection, subject_id, site_id, rois, f"{subject} at {site}", drawn)

    def rois(self, subject: str, site: str) -> list[Roi]:
        """The ROIs stored for a subject's site, by name."""
        with self._transaction() as connection:
            subject_id, site_id = self._ids(connection, subject, site)
            rows = connection.execute(
                sa.select(schema.rois)
                .where(schema.rois.c.subject_id == subject_id, schema.rois.c.site_id == site_id)
                .order_by(schema.rois.c.name)
            ).all()
        return [Roi.from_geometry(r.name, r.role, r.geometry) for r in rows]

    # ------------------------------------------------------------------ ROIs across visits
    def follow_rois(
        self, subject: str, site: str, *, min_correlation: float = 0.3
    ) -> list[RoiFollow]:
        """Place the ROIs of a subject's site on each of its recordings (module follow).

        Each recording other than the one the ROIs were drawn on is registered onto it, unless
        a transform for the same recording bytes is in the catalog already (a registration, or
        control points given with :meth:`align`); the ROIs moved by an accepted transform are
        stored per recording (:meth:`mapped_rois`). A refused registration is stored with its
        reasons and reported, and the recording gets no ROIs until control points are given.
        Recordings that changed or are missing are left out (:meth:`recordings` reports them).

        Returns
        -------
        list of RoiFollow
            One per recording and recording the ROIs were drawn on, in visit order.
        """
        code = check_subject_code(subject)
        entries = self.recordings(subject=code, site=site, quick=True)
        if not entries:
            return []
        by_id = {entry.id: entry for entry in entries}
        first = entries[0].id
        with self._transaction() as connection:
            subject_id, site_id = self._ids(connection, code, site)
            roi_rows = connection.execute(
                sa.select(schema.rois).where(
                    schema.rois.c.subject_id == subject_id, schema.rois.c.site_id == site_id
                )
            ).all()
        drawn_ids = list(dict.fromkeys(row.recording_id or first for row in roi_rows))
        intensities: dict[int, Any] = {}
        follows = []
        for entry in (e for e in entries if e.status == "ok"):
            for drawn_id in drawn_ids:
                drawn = by_id[drawn_id]
                transform_id, transform = None, None
                if drawn_id != entry.id:
                    transform_id, transform = self._transform(
                        entry, drawn, intensities, min_correlation
                    )
                rows = [r for r in roi_rows if (r.recording_id or first) == drawn_id]
                self._store_mapped(entry.id, rows, transform_id, transform)
                follows.append(RoiFollow(entry, drawn, transform))
        return follows

    def align(
        self,
        subject: str,
        site: str,
        visit: str,
        drawn_points: Points,
        points: Points,
        *,
        recording: int = 1,
    ) -> RoiFollow:
        """Move the ROIs onto a visit's recording by control points, where registration failed.

        Parameters
        ----------
        subject, site, visit : str
        drawn_points, points : (K, 2) array_like
            ``(row, col)`` of K >= 2 landmarks in the recording the ROIs were drawn on and the
            same landmarks in the visit's recording
            (:func:`lsci.study.follow.control_point_transform`).
        recording : int
            Which recording of the visit at the site (1 = the first added).

        Returns
        -------
        RoiFollow

        Raises
        ------
        StudyError
            Unknown subject, site or visit; no ROIs; the ROIs were drawn on this recording;
            unusable points.
        """
        entry = self._recording_of(subject, site, visit, recording)
        return self._align(entry, drawn_points, points)

    def mapped_rois(self, entry: RecordingEntry) -> list[Roi]:
        """The ROIs as they lie on a recording (after :meth:`follow_rois`), by name."""
        m, r = schema.mapped_rois, schema.rois
        with self._transaction() as connection:
            rows = connection.execute(
                sa.select(r.c.name, r.c.role, m.c.geometry)
                .join(r, m.c.roi_id == r.c.id)
                .where(m.c.recording_id == entry.id)
                .order_by(r.c.name)
            ).all()
        return [Roi.from_geometry(row.name, row.role, row.geometry) for row in rows]

    def _align(self, entry: RecordingEntry, drawn_points: Points, points: Points) -> RoiFollow:
        transform = control_point_transform(drawn_points, points)
        drawn = self._drawn_on(entry)
        where = f"visit {entry.visit} of {entry.subject} at {entry.site}"
        if drawn.id == entry.id:
            raise StudyError(f"{where}: the ROIs were drawn on this recording; nothing to align")
        self._insert_transform(entry, drawn, transform)
        for follow in self.follow_rois(entry.subject, entry.site):
            if follow.recording.id == entry.id and follow.drawn.id == drawn.id:
                return follow
        raise StudyError(f"{where}: the recording changed or is missing; not aligned")

    def _drawn_on(self, entry: RecordingEntry) -> RecordingEntry:
        """The one recording the ROIs of the entry's subject and site were drawn on."""
        entries = self.recordings(subject=entry.subject, site=entry.site, quick=True)
        with self._transaction() as connection:
            subject_id, site_id = self._ids(connection, entry.subject, entry.site)
            drawn = connection.execute(
                sa.select(schema.rois.c.recording_id)
                .where(schema.rois.c.subject_id == subject_id, schema.rois.c.site_id == site_id)
                .distinct()
            ).scalars().all()  # fmt: skip
        if not drawn:
            raise StudyError(f"no ROIs for {entry.subject} at {entry.site}; add them first")
        ids = {entries[0].id if value is None else value for value in drawn}
        if len(ids) > 1:
            raise StudyError(
                f"the ROIs of {entry.subject} at {entry.site} were drawn on several recordings; "
                "control points need one: draw them again on one recording"
            )
        (drawn_id,) = ids
        return next(e for e in entries if e.id == drawn_id)

    def _recording_of(self, subject: str, site: str, visit: str, number: int = 1) -> RecordingEntry:
        code = check_subject_code(subject)
        own = [e for e in self.recordings(subject=code, site=site, quick=True) if e.visit == visit]
        if not 1 <= number <= len(own):
            raise StudyError(
                f"visit {visit} of {code} at {site} has {len(own)} recording(s), not a "
                f"recording {number}"
            )
        return own[number - 1]

    def _transform(
        self,
        entry: RecordingEntry,
        drawn: RecordingEntry,
        intensities: dict[int, Any],
        min_correlation: float,
    ) -> tuple[int, RoiTransform]:
        """The transform in force for the pair and its id, registering them when there is none."""
        t = schema.roi_transforms
        with self._transaction() as connection:
            row = connection.execute(
                sa.select(t)
                .where(
                    t.c.recording_id == entry.id,
                    t.c.drawn_recording_id == drawn.id,
                    t.c.recording_sha256 == entry.fingerprint.sha256,
                    t.c.drawn_sha256 == drawn.fingerprint.sha256,
                )
                .order_by(t.c.id.desc())
                .limit(1)
            ).first()
        if row is not None:
            matrix = tuple(tuple(float(v) for v in line) for line in row.matrix)
            stored = RoiTransform(row.method, row.accepted, matrix, row.confidence, row.reason)
            return int(row.id), stored
        if drawn.status != "ok":
            # Not stored: it holds until the drawn recording is restored.
            reason = f"the recording the ROIs were drawn on ({drawn.stored_path}): {drawn.reason}"
            return 0, RoiTransform("registration", False, _IDENTITY, {}, reason)
        for item in (drawn, entry):
            if item.id not in intensities:
                intensities[item.id] = recording_perfusion_map(item.path, self.settings).intensity
        transform = register_visit(
            intensities[drawn.id], intensities[entry.id], min_correlation=min_correlation
        )
        return self._insert_transform(entry, drawn, transform), transform

    def _insert_transform(
        self, entry: RecordingEntry, drawn: RecordingEntry, transform: RoiTransform
    ) -> int:
        with self._transaction() as connection:
            inserted = connection.execute(
                sa.insert(schema.roi_transforms).values(
                    recording_id=entry.id,
                    drawn_recording_id=drawn.id,
                    recording_sha256=entry.fingerprint.sha256,
                    drawn_sha256=drawn.fingerprint.sha256,
                    method=transform.method,
                    accepted=transform.accepted,
                    matrix=[list(line) for line in transform.matrix],
                    confidence=transform.confidence,
                    reason=transform.reason,
                    lsci_version=__version__,
                    created_utc=_now(),
                )
            )
        assert inserted.inserted_primary_key is not None
        return int(inserted.inserted_primary_key[0])

    def _store_mapped(
        self,
        recording_id: int,
        roi_rows: Sequence[Any],
        transform_id: int | None,
        transform: RoiTransform | None,
    ) -> None:
        """Store the ROIs as they lie on a recording; none where the transform was refused."""
        m = schema.mapped_rois
        with self._transaction() as connection:
            for row in roi_rows:
                connection.execute(
                    sa.delete(m).where(m.c.recording_id == recording_id, m.c.roi_id == row.id)
                )
                if transform is not None and not transform.accepted:
                    continue
                roi = Roi.from_geometry(row.name, row.role, row.geometry)
                if transform is not None:
                    roi = map_roi(roi, transform.matrix)
                connection.execute(
                    sa.insert(m).values(
                        recording_id=recording_id,
                        roi_id=row.id,
                        transform_id=transform_id,
                        geometry=roi.geometry(),
                        created_utc=_now(),
                    )
                )

    def _ids(self, connection: Connection, subject: str, site: str) -> tuple[int, int]:
        subject_id = connection.execute(
            sa.select(schema.subjects.c.id).where(schema.subjects.c.code == subject)
        ).scalar_one_or_none()
        if subject_id is None:
            raise StudyError(f"no subject {subject!r} in the study")
        site_id = connection.execute(
            sa.select(schema.sites.c.id).where(schema.sites.c.name == site)
        ).scalar_one_or_none()
        if site_id is None:
            raise StudyError(f"no body site {site!r} in the study")
        return int(subject_id), int(site_id)

    def _stored_path(self, path: Path) -> str:
        folder = self.folder.absolute()
        try:
            return path.relative_to(folder).as_posix()
        except ValueError:
            return str(path)

    def _path(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.folder / path

    # ------------------------------------------------------------------ reading
    def subjects(self) -> list[str]:
        """Subject codes, sorted."""
        with self._transaction() as connection:
            codes = connection.execute(
                sa.select(schema.subjects.c.code).order_by(schema.subjects.c.code)
            ).scalars()
            return list(codes)

    def recordings(
        self, *, subject: str | None = None, site: str | None = None, quick: bool = False
    ) -> list[RecordingEntry]:
        """The catalogued recordings in visit order, each checked against its fingerprint.

        Parameters
        ----------
        subject, site : str, optional
            Only those of this subject and site.
        quick : bool
            Check existence and size only, without hashing (see
            :func:`lsci.study.fingerprint.status`).
        """
        s, v, r, b = schema.subjects, schema.visits, schema.recordings, schema.sites
        query = (
            sa.select(r, s.c.code, b.c.name.label("site"), v.c.label, v.c.visit_date, v.c.day)
            .join(v, r.c.visit_id == v.c.id)
            .join(s, v.c.subject_id == s.c.id)
            .join(b, r.c.site_id == b.c.id)
        )
        if subject is not None:
            query = query.where(s.c.code == subject)
        if site is not None:
            query = query.where(b.c.name == site)
        query = query.order_by(
            s.c.code, v.c.day.is_(None), v.c.day, v.c.visit_date.is_(None), v.c.visit_date,
            v.c.id, b.c.name, r.c.id,
        )  # fmt: skip
        with self._transaction() as connection:
            rows = connection.execute(query).all()
        entries = []
        for row in rows:
            expected = Fingerprint(row.sha256, row.size_bytes, row.annotations_sha256)
            path = self._path(row.path)
            state, reason = status(path, expected, quick=quick)
            entries.append(
                RecordingEntry(
                    id=row.id,
                    subject=row.code,
                    site=row.site,
                    visit=row.label,
                    visit_date=row.visit_date,
                    day=row.day,
                    stored_path=row.path,
                    path=path,
                    fingerprint=expected,
                    status=state,
                    reason=reason,
                )
            )
        return entries

    # ------------------------------------------------------------------ analysis
    def trend(self, subject: str, site: str | None = None) -> Trend:
        """Perfusion and hypoperfused area of a subject across visits, per site and ROI.

        Every recording used is checked against its fingerprint first; the ROIs are placed on
        each recording by :meth:`follow_rois`; results already in the catalog for the same
        recording bytes, placed ROIs, settings and lsci version are reused, new ones are
        computed and stored.

        Raises
        ------
        StudyError
            Unknown subject or site, no recording, no ROIs or no reference ROI for a site, or
            a recording whose registration onto the ROIs' recording was refused (the message
            names the visit and why).
        RecordingChangedError
            When a recording changed or moved since it was added.
        """
        code = check_subject_code(subject)
        entries = self.recordings(subject=code, site=site)
        if not entries:
            where = f" at {site}" if site is not None else ""
            raise StudyError(f"subject {code} has no recordings{where} in the study")
        for entry in entries:
            if entry.status != "ok":
                raise RecordingChangedError(
                    f"{entry.stored_path} ({code}, {entry.site}, visit {entry.visit}): "
                    f"{entry.reason}; not used. Restore it, or add the new file as a recording"
                )
        visits = {visit.label: visit for visit in self.visits(code)}
        rows: list[TrendRow] = []
        for site_name in dict.fromkeys(e.site for e in entries):
            rois = self.rois(code, site_name)
            if not rois:
                raise StudyError(
                    f"no ROIs for {code} at {site_name}; add them with --roi FILE.geojson"
                )
            if not any(roi.role == "reference" for roi in rois):
                raise StudyError(f"the ROIs of {code} at {site_name} have no 'reference' ROI")
            follows = self.follow_rois(code, site_name)
            refused = [follow for follow in follows if not follow.mapped]
            if refused:
                others = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
                raise StudyError(refused[0].describe() + others)
            counts: dict[str, int] = {}
            for entry in (e for e in entries if e.site == site_name):
                counts[entry.visit] = counts.get(entry.visit, 0) + 1
                placed = self.mapped_rois(entry)
                if sorted(roi.name for roi in placed) != sorted(roi.name for roi in rois):
                    raise StudyError(
                        f"visit {entry.visit} of {code} at {site_name}: its ROIs are not placed"
                    )
                mapping = _mapping(f for f in follows if f.recording.id == entry.id)
                numbers = self._analysis(entry, placed)
                for roi in placed:
                    value = numbers["rois"][roi.name]
                    rows.append(
                        TrendRow(
                            subject=code,
                            site=site_name,
                            visit=entry.visit,
                            visit_number=visits[entry.visit].number,
                            day=entry.day,
                            visit_date=entry.visit_date,
                            notes=visits[entry.visit].notes,
                            recording=counts[entry.visit],
                            roi=roi.name,
                            role=roi.role,
                            roi_pixels=int(value["pixels"]),
                            perfusion_inv_s=_number(value["perfusion_mean"]),
                            perfusion_percent_of_reference=_number(value["percent_of_reference"]),
                            hypoperfused_area_mm2=_number(value.get("hypoperfused_area_mm2")),
                            events="; ".join(dict.fromkeys(numbers["events"])),
                            roi_mapping=mapping[0],
                            registration_correlation=mapping[1],
                        )
                    )
        return Trend(code, with_changes(rows), self.settings)

    def visits(self, subject: str) -> list[VisitEntry]:
        """The visits of a subject, numbered in order of day, then date, then creation."""
        v, s = schema.visits, schema.subjects
        query = (
            sa.select(v.c.label, v.c.visit_date, v.c.day, v.c.notes)
            .join(s)
            .where(s.c.code == subject)
            .order_by(v.c.day.is_(None), v.c.day, v.c.visit_date.is_(None), v.c.visit_date, v.c.id)
        )
        with self._transaction() as connection:
            rows = connection.execute(query).all()
        return [
            VisitEntry(row.label, number, row.visit_date, row.day, row.notes or "")
            for number, row in enumerate(rows, start=1)
        ]

    def _analysis(self, entry: RecordingEntry, rois: Sequence[Roi]) -> dict[str, Any]:
        settings = {"study": self.settings.to_dict(), "rois": rois_digest(rois)}
        digest = _digest(settings)
        r = schema.results
        with self._transaction() as connection:
            stored = connection.execute(
                sa.select(r.c.numbers)
                .where(
                    r.c.recording_id == entry.id,
                    r.c.kind == _ANALYSIS,
                    r.c.settings_digest == digest,
                    r.c.recording_sha256 == entry.fingerprint.sha256,
                    r.c.lsci_version == __version__,
                )
                .order_by(r.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        if stored is not None:
            numbers: dict[str, Any] = stored
            return numbers
        numbers = analyse_recording(entry.path, rois, self.settings)
        with self._transaction() as connection:
            connection.execute(
                sa.insert(r).values(
                    recording_id=entry.id,
                    kind=_ANALYSIS,
                    recording_sha256=entry.fingerprint.sha256,
                    settings_digest=digest,
                    settings=settings,
                    numbers=numbers,
                    lsci_version=__version__,
                    created_utc=_now(),
                )
            )
        return numbers

    def date_shifts(self) -> dict[str, int]:
        """Each subject's date offset in days, as the de-identified export applies it."""
        with self._transaction() as connection:
            rows = connection.execute(
                sa.select(schema.subjects.c.code, schema.subjects.c.date_shift_days)
            ).all()
        return {row.code: int(row.date_shift_days) for row in rows}

    def export(self, out_dir: str | Path, *, include_notes: bool = False) -> list[Path]:
        """Write the de-identified export of every subject (see :mod:`lsci.study.export`).

        Raises
        ------
        StudyError, RecordingChangedError
            As :meth:`trend`, for any subject.
        """
        trends = [
            self.trend(code)
            for code in self.subjects()
            if self.recordings(subject=code, quick=True)
        ]
        return export_study(
            trends,
            self.date_shifts(),
            out_dir,
            settings=self.settings,
            include_notes=include_notes,
        )


@contextlib.contextmanager
def _transaction(engine: Engine, shown: str) -> Iterator[Connection]:
    """A transaction on the catalog; database failures become one-line CatalogErrors."""
    try:
        with engine.begin() as connection:
            yield connection
    except sa.exc.SQLAlchemyError as exc:
        raise CatalogError(f"{shown}: {describe_error(exc)}") from None


def _random_shift() -> int:
    low, high = DATE_SHIFT_DAYS
    return low + secrets.randbelow(high - low + 1)


def _visit(
    connection: Connection,
    subject_id: int,
    label: str,
    visit_date: date | None,
    day: int | None,
    notes: str | None,
    code: str,
) -> tuple[int, date | None, int | None]:
    """The visit's id, date and day; created, completed or checked against what is given."""
    v = schema.visits
    if day is None and visit_date is not None:
        other = connection.execute(
            sa.select(v.c.visit_date, v.c.day).where(
                v.c.subject_id == subject_id,
                v.c.visit_date.is_not(None),
                v.c.day.is_not(None),
                v.c.label != label,
            )
        ).first()
        if other is not None:
            day = other.day + (visit_date - other.visit_date).days
    visit_id, created = get_or_create(
        connection,
        v,
        {"subject_id": subject_id, "label": label},
        {"visit_date": visit_date, "day": day, "notes": notes or ""},
    )
    # Locked until the transaction ends, so two processes completing it lose no notes.
    row = connection.execute(sa.select(v).where(v.c.id == visit_id).with_for_update()).one()
    if created:
        return visit_id, row.visit_date, row.day
    changes: dict[str, Any] = {}
    for name, given, stored in (("date", visit_date, row.visit_date), ("day", day, row.day)):
        if given is not None and stored is not None and given != stored:
            raise StudyError(f"visit {label} of {code} has {name} {stored}, not {given}")
        if given is not None and stored is None:
            changes["visit_date" if name == "date" else "day"] = given
    if notes and notes not in (row.notes or ""):
        changes["notes"] = f"{row.notes}\n{notes}" if row.notes else notes
    if changes:
        connection.execute(sa.update(v).where(v.c.id == visit_id).values(**changes))
    return (
        visit_id,
        changes.get("visit_date", row.visit_date),
        changes.get("day", row.day),
    )


def _store_rois(
    connection: Connection,
    subject_id: int,
    site_id: int,
    rois: Sequence[Roi],
    where: str,
    recording_id: int | None,
) -> None:
    """Store ROIs drawn on ``recording_id``; their earlier placements on recordings are void."""
    r, m = schema.rois, schema.mapped_rois
    for roi in rois:
        key = {"subject_id": subject_id, "site_id": site_id, "name": roi.name}
        values = {
            "role": roi.role,
            "geometry": roi.geometry(),
            "created_utc": _now(),
            "recording_id": recording_id,
        }
        roi_id, created = get_or_create(connection, r, key, values)
        if not created:
            connection.execute(sa.update(r).where(r.c.id == roi_id).values(**values))
            connection.execute(sa.delete(m).where(m.c.roi_id == roi_id))
    references = connection.execute(
        sa.select(sa.func.count())
        .select_from(r)
        .where(r.c.subject_id == subject_id, r.c.site_id == site_id, r.c.role == "reference")
    ).scalar_one()
    if references > 1:
        raise StudyError(f"ROIs of {where}: more than one ROI would have the role 'reference'")


def _mapping(follows: Iterable[RoiFollow]) -> tuple[str, float]:
    """How a recording's ROIs were placed ('drawn', 'registration', 'control_points'; joined
    when they come from several recordings) and the lowest registration correlation."""
    methods: dict[str, None] = {}
    correlations = []
    for follow in follows:
        transform = follow.transform
        methods["drawn" if transform is None else transform.method] = None
        if transform is not None and transform.method == "registration":
            correlations.append(float(transform.confidence["correlation"]))
    return "+".join(methods), min(correlations, default=float("nan"))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)
