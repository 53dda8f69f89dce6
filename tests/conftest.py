"""Shared fixtures: real SQLite files and a real PostgreSQL server, a clean database per test.

PostgreSQL: `DIALER_TEST_POSTGRES_URL` (a server you run) or a throwaway server started from
/usr/lib/postgresql/15/bin. Without one the Postgres tests skip, unless
`DIALER_REQUIRE_POSTGRES=1` (CI), which makes them fail instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from campaigns.db.migrate import upgrade
from tests.pgserver import PgServer, PostgresUnavailable, start_server

REQUIRE_PG = os.environ.get("DIALER_REQUIRE_POSTGRES") == "1"
#: Each pytest-xdist worker has its own throwaway server; on an external server (one for all
#: workers) each has its own template.
TEMPLATE_DB = "dialer_template_" + os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()) or "pg_url" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.postgres)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgres":
            item.add_marker(pytest.mark.postgres)
    # The long end-to-end tests first: parallel workers then finish together instead of one
    # of them running a long test while the others are idle.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | None]:
    """The throwaway server (None when DIALER_TEST_POSTGRES_URL names an external one)."""
    if os.environ.get("DIALER_TEST_POSTGRES_URL"):
        yield None
        return
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (DIALER_REQUIRE_POSTGRES=1): {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg_admin_url(pg_server: PgServer | None) -> str:
    """URL of the maintenance database of a running PostgreSQL server."""
    if pg_server is None:
        return os.environ["DIALER_TEST_POSTGRES_URL"]
    return pg_server.url()


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, *sql: str) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        for stmt in sql:
            await conn.execute(stmt)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> str:
    """A database with every migration applied, cloned by each test."""
    asyncio.run(_admin(pg_admin_url, f"DROP DATABASE IF EXISTS {TEMPLATE_DB}",
                       f"CREATE DATABASE {TEMPLATE_DB}"))
    url = make_url(pg_admin_url).set(database=TEMPLATE_DB).render_as_string(hide_password=False)
    upgrade(url)
    return TEMPLATE_DB


def new_pg_database(admin_url: str, template: str | None) -> str:
    name = "t_" + uuid.uuid4().hex[:16]
    # FILE_COPY: copying a small template's files is twice as fast as WAL_LOG (the default).
    clause = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
    asyncio.run(_admin(admin_url, f"CREATE DATABASE {name}{clause}"))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    """Drop a test's database (a server kept for the session does not fill up the disk);
    connections a killed process left behind are closed first."""
    name = make_url(url).database
    try:
        asyncio.run(_admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    except (OSError, asyncpg.PostgresError):
        pass  # the server is down (a test stopped it) or busy: it is thrown away at the end


@pytest.fixture
def pg_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test."""
    url = new_pg_database(pg_admin_url, pg_template)
    yield url
    drop_pg_database(pg_admin_url, url)


@pytest.fixture
def pg_empty_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database with no schema."""
    url = new_pg_database(pg_admin_url, None)
    yield url
    drop_pg_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, migrated SQLite file for this test."""
    path = tmp_path / "dialer.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database: the test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))

