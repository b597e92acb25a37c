"""A real PostgreSQL server for the test session, and a fresh database per test.

The server runs from the Debian package ``postgresql`` (installed by ``.ci/system-deps.sh`` as
root) in a temporary folder, listening only on a unix socket there. PostgreSQL refuses to run as
root, so as root it runs as ``nobody`` (through ``runuser``). Where the server binaries or the
psycopg driver are missing, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_PORT = 5432  # names the socket file in the server's own folder; no TCP port is opened
_USER = "lsci"


def _server_binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3])
    )
    return versions[-1].parent if versions else None


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its socket folder, and how to make databases on it."""

    socket_dir: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{_USER}@/{database}?host={self.socket_dir}&port={_PORT}"

    def admin(self) -> object:
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=_PORT, user=_USER, dbname="postgres", autocommit=True
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL for the session; skip with the reason where it cannot run."""
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL server not installed (Debian package postgresql; .ci/system-deps.sh "
            "installs it as root)"
        )
    if importlib_missing("psycopg"):
        pytest.skip("the psycopg driver is not installed (pip install 'lsci[study]')")
    prefix: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
        prefix = [runuser, "-u", "nobody", "--"]
    folder = Path(tempfile.mkdtemp(prefix="lsci-pg-"))
    if prefix:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    data, log = folder / "data", folder / "server.log"
    pg_ctl = [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-w"]
    try:
        subprocess.run(
            [*prefix, str(binaries / "initdb"), "-D", str(data), "-U", _USER, "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        options = f"-k {folder} -p {_PORT} -c listen_addresses= -c fsync=off"
        subprocess.run(
            [*pg_ctl, "-l", str(log), "-o", options, "start"], check=True, capture_output=True
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-500:]}")
    try:
        yield PostgresServer(folder)
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the session's server (dropped afterwards)."""
    name = f"study_{secrets.token_hex(6)}"
    with contextlib.closing(postgres_server.admin()) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # type: ignore[attr-defined]
    yield postgres_server.url(name)
    with contextlib.closing(postgres_server.admin()) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")  # type: ignore[attr-defined]
