"""Connecting to a catalog database: SQLite in the study folder, or PostgreSQL.

SQLite runs in WAL mode (readers never wait for a writer) with a busy timeout, and every
transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock at its start, so two
processes writing at once queue for the lock instead of failing half-way when one of them tries
to upgrade a read transaction (SQLite's ``SQLITE_BUSY``). PostgreSQL handles concurrent writers
itself; the catalog's unique constraints keep two processes from creating the same subject,
site or visit twice (:func:`get_or_create`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from lsci.study.errors import CatalogError

__all__ = ["BUSY_TIMEOUT_S", "connect", "describe_error", "get_or_create", "public_url"]

#: How long a writer waits for another process's write transaction before giving up.
BUSY_TIMEOUT_S = 60.0


def public_url(url: str | URL) -> str:
    """The URL without its password: what may be stored in the study folder and shown."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(password=None).render_as_string(hide_password=False)


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file."""
    return URL.create("sqlite", database=str(path)).render_as_string()


def connect(url: str) -> Engine:
    """An engine for the catalog at ``url`` (``sqlite:///...`` or ``postgresql://...``).

    Raises
    ------
    CatalogError
        When the URL is malformed, names another database system, or its driver is missing.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise CatalogError(
            f"{url!r} is not a database URL (expected postgresql://user@host/database)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return sa.create_engine(parsed, pool_pre_ping=True)
        except ImportError as exc:
            raise CatalogError(
                f"PostgreSQL needs the psycopg driver ({exc}); install lsci[study]"
            ) from None
    if backend == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    raise CatalogError(
        f"{public_url(parsed)}: the catalog runs on SQLite or PostgreSQL, not {backend}"
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the driver's own would be deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def describe_error(exc: sa.exc.SQLAlchemyError) -> str:
    """The database's own message, first line only, without SQLAlchemy's decoration."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def get_or_create(
    connection: Connection,
    table: sa.Table,
    key: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
) -> tuple[int, bool]:
    """The id of the row of ``table`` matching ``key``, inserted with ``values`` if absent.

    Safe against another process inserting the same row at the same moment: the insert runs in
    a savepoint, and when the unique constraint refuses it the other process's row is read.

    Returns
    -------
    id : int
    created : bool
        True when this call inserted the row.
    """
    query = sa.select(table.c.id).filter_by(**key)
    found = connection.execute(query).scalar_one_or_none()
    if found is not None:
        return int(found), False
    try:
        with connection.begin_nested():
            inserted = connection.execute(sa.insert(table).values(**key, **(values or {})))
    except sa.exc.IntegrityError:
        return int(connection.execute(query).scalar_one()), False
    primary = inserted.inserted_primary_key
    assert primary is not None
    return int(primary[0]), True
