"""Apply and inspect Alembic migrations programmatically (for `dialer db upgrade` and the CLI's
"did you forget to upgrade?" check)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from campaigns.db.engine import async_url, create_engine, redact
from campaigns.errors import DatabaseNotReady


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations.LOCATION))
    # Alembic's ConfigParser treats % specially (passwords may contain it).
    cfg.set_main_option("sqlalchemy.url", str(async_url(url).render_as_string(False)).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(migrations.LOCATION))
    head = script.get_current_head()
    assert head is not None
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (blocking; runs its own event loop, in a worker thread
    when the caller already has one running)."""
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
    def _get(sync_conn: Any) -> str | None:
        return MigrationContext.configure(sync_conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_get)


async def ensure_current(engine: AsyncEngine) -> None:
    """Raise DatabaseNotReady with the fix when the schema is missing or behind."""
    current = await current_revision(engine)
    head = head_revision()
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
