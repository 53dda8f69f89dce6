"""Transactions of the engine and how it rides out a database outage.

Every part of the engine runs its database work as `tx.run(fn)` (one transaction, `fn(session)`)
and its loops as `tx.retrying(what, fn)`: an outage (the server restarting, a dropped connection,
SQLite's lock held too long) is logged and waited out, then the step runs again. Anything else (a
value the database refuses, a bug) is *not* an outage and is raised to the caller at once:
retrying it would only repeat it for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from campaigns.db import dialects
from campaigns.db.engine import session_factory

log = logging.getLogger("dialer.engine")

T = TypeVar("T")

#: SQLSTATE classes of passing trouble: connection exceptions, insufficient resources, operator
#: intervention (server shutting down or starting), transaction rollback (deadlock,
#: serialization), object not in prerequisite state (lock not available), system errors.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "40", "55", "58"})


def _sqlstate(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def is_conflict(exc: BaseException) -> bool:
    """Whether the database rolled the work back to break a deadlock or a serialization
    conflict with another transaction: run again, it succeeds."""
    return _sqlstate(exc) in ("40P01", "40001")


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database is (for now) unreachable or busy, so the same work can
    succeed later; False for data the database refuses and for bugs."""
    state = _sqlstate(exc)
    if state is not None:
        return state[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(exc, (ConnectionError, OSError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return not isinstance(exc, (DataError, IntegrityError, ProgrammingError,
                                    NotSupportedError))
    # The driver's own errors on a raw connection (asyncpg's InterfaceError, a closed
    # connection) carry no SQLSTATE: the connection, not the data, is the trouble.
    return type(exc).__module__.startswith("asyncpg") and not isinstance(exc, ValueError)


class WriterTurns:
    """SQLite's one writer, taken in turns by this process's transactions, where an urgent one
    (a dial-slot reservation: dials wait on it) goes before those that wait, never before the
    one that holds it. `async with turns:` is an ordinary turn (as with an `asyncio.Lock`)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._urgent = 0
        self._no_urgent = asyncio.Event()
        self._no_urgent.set()

    async def acquire(self, urgent: bool = False) -> None:
        if urgent:
            self._urgent += 1
            self._no_urgent.clear()
            try:
                await self._lock.acquire()
            finally:
                self._urgent -= 1
                if not self._urgent:
                    self._no_urgent.set()
            return
        while True:
            await self._no_urgent.wait()
            await self._lock.acquire()
            if not self._urgent:
                return
            self._lock.release()  # an urgent turn came while this one queued: it goes first

    def release(self) -> None:
        self._lock.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Transactions:
    """One transaction per call; on SQLite the transactions of this process take turns
    (`WriterTurns`; SQLite has one writer: contending in its busy handler sleeps in coarse
    steps)."""

    def __init__(self, db: AsyncEngine, *, keep_retrying: Callable[[], bool]) -> None:
        self.db = db
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(db)
        self.write_lock: WriterTurns | None = WriterTurns() if dialects.is_sqlite(db) else None
        #: False once the engine is stopping for good: an outage then ends the step.
        self._keep_retrying = keep_retrying

    async def run(self, fn: Callable[[AsyncSession], Awaitable[T]], *,
                  urgent: bool = False) -> T:
        """`fn(session)` in one transaction; `urgent`: ahead of the turns that wait."""
        if self.write_lock is None:
            async with self.sessions() as session, session.begin():
                return await fn(session)
        await self.write_lock.acquire(urgent)
        try:
            async with self.sessions() as session, session.begin():
                return await fn(session)
        finally:
            self.write_lock.release()

    async def retrying(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a database step, waiting out outages: log, back off, reconnect, retry."""
        delay = 0.1
        while True:
            try:
                return await fn()
            except Exception as exc:
                if not is_outage(exc) or not self._keep_retrying():
                    raise
                log.warning("database unavailable during %s (%s); retrying in %.1fs", what,
                            _first_line(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def run_retrying(self, what: str, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`run(fn)` in its own transaction, retried through outages."""
        return await self.retrying(what, lambda: self.run(fn))


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


def describe(exc: BaseException) -> str:
    """One line naming an error, for logs and stored reasons (never a whole traceback)."""
    return f"{type(exc).__name__}: {_first_line(exc)}"[:500]

