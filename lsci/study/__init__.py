"""Follow-up across visits: a study catalog of subjects, body sites, visits, recordings and ROIs.

:class:`Study` is the engine behind ``lsci study``: create a study folder (:meth:`Study.init`;
SQLite by default, PostgreSQL for several workstations), catalogue recordings with their
subject, site and visit (:meth:`Study.add_recording`), follow a subject's ROI perfusion and
hypoperfused area across visits (:meth:`Study.trend`), and write a de-identified export for
statistics (:meth:`Study.export`). Needs the ``study`` extra (SQLAlchemy, psycopg).
"""

from lsci.study.analysis import StudySettings, hypoperfused_area_mm2
from lsci.study.errors import CatalogError, RecordingChangedError, StudyError
from lsci.study.rois import ROLES, Roi, read_roi_file
from lsci.study.study import RecordingEntry, Study, VisitEntry, check_subject_code
from lsci.study.trends import Trend, TrendRow

__all__ = [
    "ROLES",
    "CatalogError",
    "RecordingChangedError",
    "RecordingEntry",
    "Roi",
    "Study",
    "StudyError",
    "StudySettings",
    "Trend",
    "TrendRow",
    "VisitEntry",
    "check_subject_code",
    "hypoperfused_area_mm2",
    "read_roi_file",
]
