"""Follow-up across visits: a study catalog of subjects, body sites, visits, recordings and ROIs.

:class:`Study` is the engine behind ``lsci study``: create a study folder (:meth:`Study.init`;
SQLite by default, PostgreSQL for several workstations), catalogue recordings with their
subject, site and visit (:meth:`Study.add_recording`), follow a subject's ROI perfusion and
hypoperfused area across visits (:meth:`Study.trend`; ROIs drawn once follow the subject onto
every visit by registration or control points, :meth:`Study.follow_rois`, :meth:`Study.align`),
and write a de-identified export for statistics (:meth:`Study.export`). Needs the ``study``
extra (SQLAlchemy, psycopg).
"""

from lsci.study.analysis import StudySettings
from lsci.study.errors import CatalogError, RecordingChangedError, StudyError
from lsci.study.follow import (
    RoiTransform,
    control_point_transform,
    parse_points,
    read_control_points,
)
from lsci.study.rois import ROLES, Roi, read_roi_file
from lsci.study.study import RecordingEntry, RoiFollow, Study, VisitEntry, check_subject_code
from lsci.study.trends import Trend, TrendRow

__all__ = [
    "ROLES",
    "CatalogError",
    "RecordingChangedError",
    "RecordingEntry",
    "Roi",
    "RoiFollow",
    "RoiTransform",
    "Study",
    "StudyError",
    "StudySettings",
    "Trend",
    "TrendRow",
    "VisitEntry",
    "check_subject_code",
    "control_point_transform",
    "parse_points",
    "read_control_points",
    "read_roi_file",
]
