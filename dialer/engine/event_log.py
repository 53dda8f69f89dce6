"""The webhook event log: the one home of the `webhook_events` table.

- `EventStore`: group commit of incoming events (the receiver awaits `store`; one writer commits
  what arrived meanwhile), keeping the documents it stored in a bounded `RecentEvents` cache.
- `take_pending` / `mark_events` / `mark_failed`: what the event processor reads and writes: the
  pending rows in arrival order (locked, `SKIP LOCKED`), with their documents from the cache or
  the table, and how each was processed.

The path of a webhook: receiver (HTTP) -> event log (stored) -> processor -> attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, case, func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from campaigns.db import dialects
from campaigns.db.dialects import one_of
from campaigns.db.models import WebhookEvent
from campaigns.db.types import naive_utc, utcnow
from dialer.engine.events import URGENT_EVENTS, Envelope
from dialer.engine.transactions import is_conflict

if TYPE_CHECKING:
    from dialer.engine.transactions import WriterTurns

log = logging.getLogger("dialer.receiver")

#: What the cache of recent documents may hold: a count and a size (the bodies' bytes), so a
#: flood of large events cannot grow the process without bound.
RECENT_MAX_EVENTS = 20_000
RECENT_MAX_BYTES = 64 * 1024 * 1024


#: Times a batch of webhooks is stored when PostgreSQL rolls it back to break a deadlock.
STORE_ATTEMPTS = 3


class EventStore:
    """Group commit of incoming events: callers await `store`, one writer commits batches."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 on_stored: Callable[[bool], None],
                 write_lock: WriterTurns | None = None, max_batch: int = 500, *,
                 keep_recent: bool = True, on_failure: Callable[[], None] | None = None) -> None:
        self._sessions = sessions
        self._write_lock = write_lock
        self._on_stored = on_stored
        self._on_failure = on_failure
        self._queue: asyncio.Queue[tuple[Envelope, asyncio.Future[bool]]] = asyncio.Queue()
        self._max_batch = max_batch
        #: None in a webhook worker (nothing there processes what it stores) and in an engine
        #: with workers (it reads the documents along with the pending rows).
        self.recent: RecentEvents | None = RecentEvents() if keep_recent else None
        self._task: asyncio.Task[None] | None = None
        #: Monotonic time since which every store succeeded (reset by a failure, i.e. a 503):
        #: webhooks Telnyx could not deliver before then may still be on their way.
        self.healthy_since = time.monotonic()

    def start(self) -> None:
        self.healthy_since = time.monotonic()
        self._task = asyncio.create_task(self._writer(), name="event-store")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def store_failed(self) -> None:
        """Webhooks were refused (503) just now: Telnyx will deliver them again later."""
        self.healthy_since = time.monotonic()

    async def store(self, env: Envelope) -> bool:
        """True when stored now, False when it was a duplicate. Raises when it could not store."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((env, fut))
        return await fut

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                if self._write_lock is not None:
                    async with self._write_lock:
                        inserted = await self._insert([env for env, _ in batch])
                else:
                    inserted = await self._insert([env for env, _ in batch])
            except Exception as exc:  # database down: every waiter answers 503
                self.store_failed()
                if self._on_failure is not None:
                    self._on_failure()
                log.warning("cannot store %d webhook events: %s", len(batch),
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                await asyncio.sleep(0.05)
                continue
            urgent = any(env.event_type in URGENT_EVENTS and env.event_id in inserted
                         for env, _ in batch)
            for env, fut in batch:
                if not fut.done():  # the first of an id stored now is "stored", others repeats
                    fut.set_result(env.event_id in inserted)
                inserted.discard(env.event_id)
            self._on_stored(urgent)

    async def _insert(self, envs: list[Envelope]) -> set[str]:
        now = utcnow()
        # One row per event id, in order of arrival (row ids are the processing order).
        first: dict[str, Envelope] = {}
        for env in envs:
            first.setdefault(env.event_id, env)
        unique = list(first.values())
        bind = self._sessions.kw["bind"]
        if bind.dialect.name == "postgresql":
            # One statement, committed on its own: no BEGIN/COMMIT round trips.
            async with bind.connect() as conn:
                raw = await conn.get_raw_connection()
                try:
                    rows = await self._insert_pg_retrying(raw.driver_connection, unique, now)
                except BaseException:
                    # The driver's error bypasses SQLAlchemy, which would otherwise put a dead
                    # connection (server restarted, backend killed) back into the pool, and a
                    # process that only stores (a webhook worker) would answer 503 for ever.
                    raw.invalidate()
                    raise
        else:
            async with self._sessions() as session, session.begin():
                # executemany with RETURNING: one cached statement whatever the batch size.
                stmt = (sqlite_insert(_EVENTS).on_conflict_do_nothing(index_elements=["event_id"])
                        .returning(_EVENTS.c.id, _EVENTS.c.event_id))
                rows = list((await session.execute(stmt, [{
                    "event_id": env.event_id, "event_type": env.event_type,
                    "call_control_id": _call_control_id(env), "occurred_at": env.occurred_at,
                    "received_at": now, "payload": env.raw, "status": "pending"}
                    for env in unique])).all())
        if self.recent is not None:
            by_id = {env.event_id: env for env in unique}
            for row_id, event_id in rows:
                env = by_id[event_id]
                self.recent.add(row_id, env.raw, len(env.text))
        return {event_id for _, event_id in rows}

    @classmethod
    async def _insert_pg_retrying(cls, conn: Any, envs: list[Envelope], now: datetime
                                  ) -> list[Any]:
        """`_insert_pg`, again if PostgreSQL rolled it back to break a deadlock. Two receivers
        storing the same events cannot deadlock each other any more (`_PG_INSERT` inserts in
        event id order); this stays as the guard for a lock cycle nobody foresaw: the batch is
        stored again rather than answered 503 (Telnyx would repeat it, later)."""
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                return await cls._insert_pg(conn, envs, now)
            except Exception as exc:
                if attempt == STORE_ATTEMPTS or not is_conflict(exc):
                    raise
                log.info("storing %d webhook events met a deadlock with another receiver: "
                         "storing them again", len(envs))
        raise AssertionError("unreachable")

    @staticmethod
    async def _insert_pg(conn: Any, envs: list[Envelope], now: datetime) -> list[Any]:
        """One statement for the whole batch, the bodies stored as they came (no re-encoding)."""
        return list(await conn.fetch(
            _PG_INSERT, [e.event_id for e in envs], [e.event_type for e in envs],
            [_call_control_id(e) for e in envs],
            [naive_utc(e.occurred_at) if e.occurred_at else None for e in envs],
            naive_utc(now), [e.text for e in envs]))


def _call_control_id(env: Envelope) -> str | None:
    return (env.call_control_id or "")[:200] or None


_EVENTS: Table = WebhookEvent.__table__  # type: ignore[assignment]
_PG_INSERT = """
WITH arrived AS MATERIALIZED (
    SELECT nextval('webhook_events_id_seq') AS id, u.e, u.t, u.c, u.o, u.p
    FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::timestamp[], $6::text[])
        WITH ORDINALITY AS u(e, t, c, o, p, n)
    ORDER BY u.n
)
INSERT INTO webhook_events
    (id, event_id, event_type, call_control_id, occurred_at, received_at, payload, status)
SELECT a.id, a.e, a.t, a.c, a.o, $5, a.p::jsonb, 'pending'
FROM arrived AS a
ORDER BY a.e
ON CONFLICT (event_id) DO NOTHING
RETURNING id, event_id
"""
"""Row ids are taken in the order of arrival (the processing order), but the rows are inserted
in the order of their event ids: two receivers storing the same events (Telnyx repeating a
webhook to another worker) then wait on each other's keys in one order and never deadlock."""


class RecentEvents:
    """The documents of the events this process stored lately, by row id: the event processor
    takes them from here instead of reading every payload back (and decoding it again).
    Bounded in count and in bytes; anything not here (older, or stored by another process) is
    read from the table."""

    def __init__(self, limit: int = RECENT_MAX_EVENTS, max_bytes: int = RECENT_MAX_BYTES) -> None:
        self._docs: OrderedDict[int, tuple[dict[str, Any], int]] = OrderedDict()
        self._limit = limit
        self._max_bytes = max_bytes
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, row_id: int, doc: dict[str, Any], size: int) -> None:
        if size > self._max_bytes // 4:
            return  # read back from the table when needed
        self._docs[row_id] = (doc, size)
        self.bytes += size
        while len(self._docs) > self._limit or self.bytes > self._max_bytes:
            _, (_, dropped) = self._docs.popitem(last=False)
            self.bytes -= dropped

    def pop(self, row_id: int) -> dict[str, Any] | None:
        entry = self._docs.pop(row_id, None)
        if entry is None:
            return None
        self.bytes -= entry[1]
        return entry[0]


@dataclass
class EventRow:
    """A stored webhook event being processed."""

    id: int
    event_id: str
    event_type: str
    occurred_at: datetime | None
    payload: dict[str, Any]
    call_control_id: str | None
    attempt_id: int | None = None
    status: str = "processed"
    error: str | None = None


async def take_pending(s: AsyncSession, limit: int, recent: RecentEvents | None, *,
                       only_id: int | None = None) -> list[EventRow]:
    """The oldest pending events (or the one `only_id`), locked for this transaction, with their
    documents: from `recent` when this process stored them, else read from the table.

    Events a call's flow waits on (`events.URGENT_EVENTS`: a person answered, a prompt ended)
    are taken first: behind a backlog (more webhooks than the processor keeps up with), the
    person waiting for the first words does not wait for every hangup that came before. The
    batch is then applied in arrival order (facts are forward-only: a call's events may be
    applied in any order)."""
    # Plain rows, not ORM objects: events are only read here and marked in one bulk UPDATE at
    # the end (the hot path under webhook load).
    columns = [WebhookEvent.id, WebhookEvent.event_id, WebhookEvent.event_type,
               WebhookEvent.occurred_at, WebhookEvent.call_control_id]
    if recent is None:  # webhook workers store most events: read the documents along
        columns.append(WebhookEvent.payload)
    query = select(*columns).where(WebhookEvent.status == "pending")
    if only_id is not None:
        query = query.where(WebhookEvent.id == only_id)
    urgent_first = case((WebhookEvent.event_type.in_(sorted(URGENT_EVENTS)), 0), else_=1)
    rows = sorted((await s.execute(query.order_by(urgent_first, WebhookEvent.id).limit(limit)
                                   .with_for_update(skip_locked=True))).all(),
                  key=lambda r: r.id)
    if not rows:
        return []
    docs = ({r.id: recent.pop(r.id) for r in rows} if recent is not None
            else {r.id: r.payload for r in rows})
    unknown = [i for i, doc in docs.items() if doc is None]
    if unknown:
        docs.update((await s.execute(select(WebhookEvent.id, WebhookEvent.payload)
                                     .where(one_of(s, WebhookEvent.id, unknown)))).all())
    return [EventRow(r.id, r.event_id, r.event_type, r.occurred_at,
                     _as_document(docs[r.id]), r.call_control_id) for r in rows]


def _as_document(doc: Any) -> dict[str, Any]:
    return doc if isinstance(doc, dict) else {}


async def pending_ids(s: AsyncSession, limit: int) -> list[int]:
    """The ids of the oldest pending events (not locked)."""
    return list((await s.scalars(select(WebhookEvent.id).where(WebhookEvent.status == "pending")
                                 .order_by(WebhookEvent.id).limit(limit))).all())


_PG_MARK_EVENTS = """
UPDATE webhook_events AS w SET status = u.s, processed_at = $1, attempt_id = u.a
FROM unnest($2::bigint[], $3::varchar[], $4::bigint[]) AS u(id, s, a) WHERE w.id = u.id
"""


async def mark_events(session: AsyncSession, events: Sequence[EventRow],
                      now: datetime) -> None:
    """Record how each event was processed, in one statement (PostgreSQL) or one executemany."""
    if not events:
        return
    if dialects.is_postgres(session):
        conn = await dialects.raw_connection(session)
        await conn.execute(_PG_MARK_EVENTS, naive_utc(now),
                           [e.id for e in events], [e.status for e in events],
                           [e.attempt_id for e in events])
        return
    await session.execute(update(WebhookEvent), [
        {"id": e.id, "status": e.status, "processed_at": now, "attempt_id": e.attempt_id}
        for e in events])


async def mark_failed(session: AsyncSession, row_id: int, reason: str, now: datetime) -> bool:
    """A pending event that cannot be processed (data the database refuses, a bug): kept as
    `failed` with the reason, so the events after it go on. False if it was no longer pending."""
    result = await session.execute(
        update(WebhookEvent).where(WebhookEvent.id == row_id, WebhookEvent.status == "pending")
        .values(status="failed", processed_at=now, error=reason[:500]))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def pending_count(s: AsyncSession) -> int:
    return int(await s.scalar(select(func.count()).select_from(WebhookEvent).where(
        WebhookEvent.status == "pending")) or 0)
