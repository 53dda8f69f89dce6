"""Apply and inspect Alembic migrations programmatically (for `dialer db upgrade` and the CLI's
"did you forget to upgrade?" check).

Alembic is imported only where a migration runs or its scripts are read: the check that every
command and every engine start makes (`ensure_current`) reads `alembic_version` with one query
and compares it with `HEAD_REVISION`, which spares each CLI command ~0.2 s of imports
(a test keeps the constant equal to the scripts' head)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from campaigns.db.engine import async_url, create_engine, redact
from campaigns.errors import DatabaseNotReady

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest migration (`migrations/versions`): what `ensure_current` expects. A new migration
#: moves it (tests/foundation/test_migrations.py checks it against the scripts).
HEAD_REVISION = "0007"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations.LOCATION))
    # Alembic's ConfigParser treats % specially (passwords may contain it).
    cfg.set_main_option("sqlalchemy.url",
                        str(async_url(url).render_as_string(False)).replace("%", "%%"))
    return cfg


#: The PostgreSQL advisory lock every migration run holds (its transaction's), so that runs
#: started together (several `dialer db upgrade`, or engines at start-up) apply each migration
#: once: the later ones wait, then find the schema current. Without it, two runs on a fresh
#: database both created the same types and one failed on a duplicate `pg_type` key.
#: SQLite needs none: its migrations run in BEGIN IMMEDIATE, one writer at a time.
MIGRATION_LOCK_KEY = 0x646C_7231_6D69_6772  # "dlr1migr"


def lock_for_migration(connection: Connection) -> None:
    """Wait for the migration lock, inside the migration's transaction (released at its end)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": MIGRATION_LOCK_KEY})


def head_revision() -> str:
    """The head of the migration scripts, read from them (`HEAD_REVISION` is its copy)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations.LOCATION))
    head = script.get_current_head()
    assert head is not None
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (blocking; runs its own event loop, in a worker thread
    when the caller already has one running)."""
    from alembic import command

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(url), revision)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(command.upgrade, alembic_config(url), revision).result()


async def upgrade_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's revision (`alembic_version`), None when the database has no schema yet."""
    exists = ("SELECT to_regclass('alembic_version') IS NOT NULL"
              if engine.dialect.name == "postgresql" else
              "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' "
              "AND name = 'alembic_version'")
    async with engine.connect() as conn:
        if not await conn.scalar(text(exists)):
            return None
        versions = list(await conn.scalars(text("SELECT version_num FROM alembic_version")))
    if len(versions) > 1:  # several heads: not this project's history; Alembic says what
        from alembic.runtime.migration import MigrationContext

        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision())
    return str(versions[0]) if versions else None


async def ensure_current(engine: AsyncEngine) -> None:
    """Raise DatabaseNotReady with the fix when the schema is missing or behind."""
    current = await current_revision(engine)
    head = HEAD_REVISION
    if current == head:
        return
    where = redact(engine.url)
    if current is None:
        raise DatabaseNotReady(
            f"the database {where} has no schema yet: run `dialer db upgrade` first"
        )
    raise DatabaseNotReady(
        f"the database {where} is at schema revision {current}, this version needs {head}: "
        "run `dialer db upgrade`"
    )


def run(engine_url: str) -> None:  # pragma: no cover - convenience for scripts
    asyncio.run(_check(engine_url))


async def _check(url: str) -> None:
    engine = create_engine(url)
    try:
        await ensure_current(engine)
    finally:
        await engine.dispose()
