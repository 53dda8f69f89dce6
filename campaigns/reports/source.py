"""Where a report reads from: a URL (a read-only snapshot the report opens itself), or a caller's
session/connection (used as-is, inside the caller's transaction).

Why a separate reader engine rather than `campaigns.db.engine.create_engine`: on SQLite that engine
opens every transaction with `BEGIN IMMEDIATE` (the writer lock), so a long export would hold the
lock and stall `dialer run`. A report only reads, so it opens a plain deferred `BEGIN`: under WAL it
sees one consistent snapshot and never blocks writers. On PostgreSQL the report runs in one
`REPEATABLE READ READ ONLY` transaction, so rows and summary agree with each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from campaigns.db.engine import create_reader_engine, redact
from campaigns.db.migrate import ensure_current
from campaigns.errors import DatabaseUnavailable

#: What the report queries run on (a caller's session, or one on the report's own connection).
Conn = AsyncSession
#: What the public functions accept: a database URL, an engine, a session or a connection.
Source = str | AsyncEngine | AsyncSession | AsyncConnection


def dialect_name(conn: Conn) -> str:
    return conn.get_bind().dialect.name


def reader_engine(url: str) -> AsyncEngine:
    """An engine for read-only report work on `url` (see the module docstring)."""
    return create_reader_engine(url)


#: PostgreSQL settings for the report's transaction (SET LOCAL: gone when it ends). No JIT: the
#: report queries are a few long scans with many expressions, and compiling them cost ~24 s on a
#: 1M-contact export for nothing. DateStyle / IntervalStyle: `pgcopy` renders times as text.
SESSION_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL DateStyle = 'ISO, YMD'",
                    "SET LOCAL IntervalStyle = 'postgres'")


async def tune_for_report(conn: Conn) -> None:
    """Apply SESSION_SETTINGS on PostgreSQL (to a caller's transaction too, until it ends)."""
    if dialect_name(conn) == "postgresql":
        for setting in SESSION_SETTINGS:
            await conn.execute(text(setting))


@asynccontextmanager
async def _engine_snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ",
                                                postgresql_readonly=True)
        async with conn.begin():
            yield conn


@asynccontextmanager
async def open_source(source: Source) -> AsyncIterator[Conn]:
    """A connection to run report queries on; a URL's engine is schema-checked and disposed."""
    if isinstance(source, AsyncSession):
        yield source
        return
    if isinstance(source, AsyncConnection):
        async with AsyncSession(bind=source) as session:
            yield session
        return
    if isinstance(source, AsyncEngine):
        async with _engine_snapshot(source) as conn, AsyncSession(bind=conn) as session:
            yield session
        return
    engine = reader_engine(source)
    try:
        try:
            await ensure_current(engine)
        except (OperationalError, DBAPIError, OSError) as exc:
            raise DatabaseUnavailable(f"cannot use the database {redact(source)}: "
                                      f"{_first_line(exc)}") from None
        async with _engine_snapshot(engine) as conn, AsyncSession(bind=conn) as session:
            yield session
    finally:
        await engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
