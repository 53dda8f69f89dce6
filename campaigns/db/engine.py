"""One engine/session factory for every database URL a user may write.

`sqlite:///path` and `postgresql://user:pass@host:port/db` are accepted as users write them; the
async driver behind each (aiosqlite, asyncpg) is this module's business.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from campaigns.db.urls import parse_url, redact
from campaigns.errors import InvalidSettings

__all__ = ["DEFAULT_DATABASE_URL", "SQLITE_BUSY_TIMEOUT_MS", "async_url", "create_engine",
           "is_sqlite",
           "redact", "session_factory"]

DEFAULT_DATABASE_URL = "sqlite:///./dialer.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Key of a SQLite connection's `info`: the statement that begins its transactions. Unset:
#: `BEGIN IMMEDIATE` (every writer). The contact import sets `BEGIN` (deferred) while it reads
#: the file and stages rows in a TEMP table, so that it does not hold the writer lock meanwhile.
SQLITE_BEGIN = "dialer_sqlite_begin"

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str | URL) -> URL:
    """Turn a user's URL into one with the project's async driver (keeps an explicit async one).
    InvalidSettings when it is malformed (see campaigns.db.urls: the password is never shown)."""
    parsed = parse_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in _ASYNC_DRIVERS:
        raise InvalidSettings(
            f"unsupported database {parsed.drivername!r}: use sqlite:///path or postgresql://..."
        )
    if driver in ("aiosqlite", "asyncpg"):
        return parsed
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])




def is_sqlite(url: str | URL) -> bool:
    """Whether a URL (as users write it) names a SQLite database."""
    return async_url(url).get_backend_name() == "sqlite"


#: Prepared statements kept per PostgreSQL connection.
STATEMENT_CACHE = 2000


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for `url`; SQLite gets WAL, a busy timeout, foreign keys and BEGIN
    IMMEDIATE."""
    aurl = async_url(url)
    if aurl.get_backend_name() == "sqlite":
        return _sqlite_engine(aurl, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    if aurl.get_driver_name() == "asyncpg" and "prepared_statement_cache_size" not in aurl.query:
        # Each distinct statement text not in a connection's cache costs a PREPARE round trip
        # and the server's parse; the default of 100 per connection was too few for the
        # engine's statements (IN lists of every batch length): 45% of its statements were
        # prepared again at 100 dials/s.
        aurl = aurl.update_query_dict({"prepared_statement_cache_size": str(STATEMENT_CACHE)})
    return create_async_engine(aurl, **kwargs)


def _sqlite_engine(aurl: URL, **kwargs: Any) -> AsyncEngine:
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = create_async_engine(aurl, connect_args=connect_args, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN IMMEDIATE below is what runs:
        # a writer then waits for the lock up front instead of failing on a read->write upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.info.get(SQLITE_BEGIN, "BEGIN IMMEDIATE"))

    return engine


def create_reader_engine(url: str | URL) -> AsyncEngine:
    """An engine for read-only work (status, lists, reports): its transactions never take the
    writer lock. SQLite: a plain deferred `BEGIN` and `query_only`, so that under WAL a reader
    sees one consistent snapshot while a writer (an import, `dialer run`) holds the lock, and
    never waits for it; PostgreSQL: the usual engine (MVCC readers never wait for writers), with
    a small pool. `create_engine`'s writers keep `BEGIN IMMEDIATE`."""
    aurl = async_url(url)
    if aurl.get_backend_name() != "sqlite":
        return create_engine(aurl, pool_size=2, max_overflow=0)
    engine = create_async_engine(aurl, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")  # deferred: a read snapshot, no writer lock

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
