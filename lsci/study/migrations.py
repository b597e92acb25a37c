"""Schema versions of a catalog: create at the current version, upgrade older ones in place.

Why not Alembic: a catalog is created and upgraded by lsci itself when a study is opened, on
SQLite and PostgreSQL alike, with no administrator step and no migration scripts to ship as
data files. Alembic's script directory, ``env.py`` and template engine would be a second
framework around a handful of tables. Instead:

- ``schema_versions`` records each version applied (with the lsci version that applied it);
- a new catalog is created from :mod:`lsci.study.schema` and stamped :data:`SCHEMA_VERSION`;
- :data:`UPGRADES` maps a version ``v`` to the step that brings a catalog from ``v`` to
  ``v + 1`` (plain SQLAlchemy DDL and data statements); :func:`migrate` runs the missing steps
  in one transaction, so a failed upgrade leaves the catalog as it was;
- a catalog newer than this lsci is refused rather than written with an older schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lsci._version import __version__
from lsci.recording.metadata import format_utc
from lsci.study import schema
from lsci.study.errors import CatalogError

__all__ = ["UPGRADES", "catalog_version", "create_schema", "migrate"]

Upgrade = Callable[[Connection], None]


def _rois_follow_the_subject(connection: Connection) -> None:
    """Version 1 to 2: the recording a ROI was drawn on, ROI transforms and mapped ROIs."""
    connection.execute(
        sa.text("ALTER TABLE rois ADD COLUMN recording_id INTEGER REFERENCES recordings (id)")
    )
    schema.roi_transforms.create(connection)
    schema.mapped_rois.create(connection)


#: ``{v: step}``: the step that upgrades a catalog from version ``v`` to ``v + 1``.
UPGRADES: Mapping[int, Upgrade] = {1: _rois_follow_the_subject}


def catalog_version(connection: Connection) -> int | None:
    """The catalog's schema version; None when the database holds no lsci catalog."""
    if not sa.inspect(connection).has_table(schema.schema_versions.name):
        return None
    version = connection.execute(sa.select(sa.func.max(schema.schema_versions.c.version)))
    value = version.scalar_one_or_none()
    return None if value is None else int(value)


def _stamp(connection: Connection, version: int) -> None:
    connection.execute(
        sa.insert(schema.schema_versions).values(
            version=version, applied_utc=format_utc(datetime.now(UTC)), lsci_version=__version__
        )
    )


def create_schema(connection: Connection) -> None:
    """Create every table of the current schema and stamp its version."""
    schema.metadata.create_all(connection)
    _stamp(connection, schema.SCHEMA_VERSION)


def migrate(
    connection: Connection,
    *,
    target: int = schema.SCHEMA_VERSION,
    upgrades: Mapping[int, Upgrade] = UPGRADES,
) -> int:
    """Bring the catalog to ``target``, inside the caller's transaction.

    Returns
    -------
    int
        The version the catalog had before.

    Raises
    ------
    CatalogError
        When the database holds no catalog, the catalog is newer than ``target`` (written by a
        newer lsci), or no upgrade step exists for a version on the way.
    """
    version = catalog_version(connection)
    if version is None:
        raise CatalogError("the database holds no lsci study catalog")
    if version > target:
        raise CatalogError(
            f"the catalog has schema version {version}, newer than this lsci ({__version__}) "
            f"understands ({target}); update lsci"
        )
    for step_from in range(version, target):
        step = upgrades.get(step_from)
        if step is None:
            raise CatalogError(
                f"no upgrade of the catalog schema from version {step_from} to {step_from + 1}"
            )
        step(connection)
        _stamp(connection, step_from + 1)
    return version
