"""The tables of a study catalog (SQLAlchemy Core), at schema version :data:`SCHEMA_VERSION`.

A new catalog is created from these tables directly; an older one is brought to this version by
the upgrade steps of :mod:`lsci.study.migrations`. Changing a table here therefore means bumping
:data:`SCHEMA_VERSION` and registering the step that upgrades the previous version.

Privacy by construction: a subject is a pseudonymous code with a random date offset; there is
no column for a name, a birth date, a device serial number or a recording's start time.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "SCHEMA_VERSION",
    "mapped_rois",
    "metadata",
    "recordings",
    "results",
    "roi_transforms",
    "rois",
    "schema_versions",
    "sites",
    "study",
    "subjects",
    "visits",
]

#: Version of the tables below; stored in ``schema_versions`` of every catalog.
SCHEMA_VERSION = 2

metadata = sa.MetaData()

#: Applied schema versions, one row each: the highest is the catalog's version.
schema_versions = sa.Table(
    "schema_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_utc", sa.String(32), nullable=False),
    sa.Column("lsci_version", sa.String(64), nullable=False),
)

#: The study itself: one row. ``uid`` ties the study folder to its database.
study = sa.Table(
    "study",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uid", sa.String(32), nullable=False, unique=True),
    sa.Column("created_utc", sa.String(32), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
)

subjects = sa.Table(
    "subjects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(16), nullable=False, unique=True),
    # Days added to every date of this subject in a de-identified export (intervals are kept).
    sa.Column("date_shift_days", sa.Integer, nullable=False),
    sa.Column("created_utc", sa.String(32), nullable=False),
)

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
)

visits = sa.Table(
    "visits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id"), nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("visit_date", sa.Date, nullable=True),
    # Day of the visit relative to the event (occlusion, injection, burn): day 0 is the event.
    sa.Column("day", sa.Integer, nullable=True),
    sa.Column("notes", sa.Text, nullable=False, default=""),
    sa.UniqueConstraint("subject_id", "label"),
)

recordings = sa.Table(
    "recordings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("visit_id", sa.Integer, sa.ForeignKey("visits.id"), nullable=False),
    sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id"), nullable=False),
    # Relative to the study folder when the file is inside it (POSIX separators), else absolute.
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    # The events and calibrations added beside the recording later (its annotations file).
    sa.Column("annotations_sha256", sa.String(64), nullable=True),
    sa.Column("exposure_s", sa.Float, nullable=True),
    sa.Column("frame_rate_hz", sa.Float, nullable=True),
    sa.Column("frame_height", sa.Integer, nullable=False),
    sa.Column("frame_width", sa.Integer, nullable=False),
    sa.Column("n_frames", sa.Integer, nullable=False),
    sa.Column("pixel_size_um", sa.Float, nullable=True),
    sa.Column("magnification", sa.Float, nullable=True),
    # The lsci version that wrote the recording.
    sa.Column("lsci_version", sa.String(64), nullable=False),
    sa.Column("added_utc", sa.String(32), nullable=False),
    sa.UniqueConstraint("visit_id", "site_id", "path"),
)

rois = sa.Table(
    "rois",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id"), nullable=False),
    sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # A GeoJSON Polygon geometry in pixel coordinates, x = column, y = row.
    sa.Column("geometry", sa.JSON, nullable=False),
    sa.Column("created_utc", sa.String(32), nullable=False),
    # The recording whose pixels the geometry is in (version 2; NULL: the subject's first
    # recording at the site, as ROIs of version 1 were drawn).
    sa.Column("recording_id", sa.Integer, sa.ForeignKey("recordings.id"), nullable=True),
    sa.UniqueConstraint("subject_id", "site_id", "name"),
)

#: How ROIs move from the recording they were drawn on to another recording of the subject's
#: site (version 2): a registration (accepted or refused, with its confidence) or control
#: points. The newest row for the pair and the same recording bytes is the one in force.
roi_transforms = sa.Table(
    "roi_transforms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("recording_id", sa.Integer, sa.ForeignKey("recordings.id"), nullable=False),
    sa.Column("drawn_recording_id", sa.Integer, sa.ForeignKey("recordings.id"), nullable=False),
    sa.Column("recording_sha256", sa.String(64), nullable=False),
    sa.Column("drawn_sha256", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),
    # 3 × 3 on (row, col, 1) of the drawn recording, giving (row, col) in the other one.
    sa.Column("matrix", sa.JSON, nullable=False),
    sa.Column("confidence", sa.JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("lsci_version", sa.String(64), nullable=False),
    sa.Column("created_utc", sa.String(32), nullable=False),
    sa.Index("ix_roi_transforms_pair", "recording_id", "drawn_recording_id"),
)

#: The ROIs of a subject's site as they lie on one recording (version 2): the drawn geometry on
#: the recording it was drawn on, else moved there by the transform in force.
mapped_rois = sa.Table(
    "mapped_rois",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("recording_id", sa.Integer, sa.ForeignKey("recordings.id"), nullable=False),
    sa.Column("roi_id", sa.Integer, sa.ForeignKey("rois.id"), nullable=False),
    # NULL where the ROI was drawn on this recording.
    sa.Column("transform_id", sa.Integer, sa.ForeignKey("roi_transforms.id"), nullable=True),
    sa.Column("geometry", sa.JSON, nullable=False),
    sa.Column("created_utc", sa.String(32), nullable=False),
    sa.UniqueConstraint("recording_id", "roi_id"),
)

#: Every analysis result, with what made it: reused only when all of that is unchanged.
results = sa.Table(
    "results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("recording_id", sa.Integer, sa.ForeignKey("recordings.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("recording_sha256", sa.String(64), nullable=False),
    # Digest of the canonical settings JSON (and the ROIs it used), to find a result again.
    sa.Column("settings_digest", sa.String(64), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("numbers", sa.JSON, nullable=False),
    sa.Column("lsci_version", sa.String(64), nullable=False),
    sa.Column("created_utc", sa.String(32), nullable=False),
    sa.Index("ix_results_lookup", "recording_id", "kind", "settings_digest"),
)
