"""The webhook receiver: verify, store durably, then acknowledge.

`POST /webhooks/telnyx`: Ed25519 signature and timestamp checked (403, nothing stored), shape
checked (400), unhandled event types acknowledged and ignored (200), everything else stored under
its unique `data.id` before the 200 (a duplicate is acknowledged and ignored). Stores are grouped:
one commit serves every event that arrived meanwhile. When the database cannot store an event the
answer is 503, so Telnyx retries; never a 200 for an event that was not stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from campaigns.db.models import WebhookEvent
from campaigns.db.types import naive_utc, utcnow
from dialer.engine.events import BadEnvelope, Envelope, parse_envelope
from dialer.engine.http_limits import BODY_TIMEOUT_SECS
from dialer.engine.metrics import Metrics
from dialer.telnyx.errors import InvalidSignature
from dialer.telnyx.signatures import WebhookVerifier

log = logging.getLogger("dialer.receiver")

MAX_BODY_BYTES = 256 * 1024
#: The answers' bodies, encoded once (the hot path answers thousands a second).
_BODIES = {text: json.dumps({"result": text}).encode() for text in (
    "ok", "ignored", "body too large", "invalid signature",
    "cannot store the event now; retry")}
WEBHOOK_PATH = "/webhooks/telnyx"


class EventStore:
    """Group commit of incoming events: callers await `store`, one writer commits batches."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], on_stored: Callable[[], None],
                 write_lock: asyncio.Lock | None = None, max_batch: int = 500, *,
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
            for env, fut in batch:
                if not fut.done():  # the first of an id stored now is "stored", others repeats
                    fut.set_result(env.event_id in inserted)
                inserted.discard(env.event_id)
            self._on_stored()

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
                    rows = await self._insert_pg(raw.driver_connection, unique, now)
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
                self.recent.add(row_id, by_id[event_id].raw)
        return {event_id for _, event_id in rows}

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
INSERT INTO webhook_events
    (event_id, event_type, call_control_id, occurred_at, received_at, payload, status)
SELECT u.e, u.t, u.c, u.o, $5, u.p::jsonb, 'pending'
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::timestamp[], $6::text[])
    AS u(e, t, c, o, p)
ON CONFLICT (event_id) DO NOTHING
RETURNING id, event_id
"""


class RecentEvents:
    """The documents of the events this process stored lately, by row id: the event processor
    takes them from here instead of reading every payload back (and decoding it again).
    Bounded; anything not here (older, or stored by another process) is read from the table."""

    def __init__(self, limit: int = 20_000) -> None:
        self._docs: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._limit = limit

    def add(self, row_id: int, doc: dict[str, Any]) -> None:
        self._docs[row_id] = doc
        if len(self._docs) > self._limit:
            self._docs.popitem(last=False)

    def pop(self, row_id: int) -> dict[str, Any] | None:
        return self._docs.pop(row_id, None)


class Receiver:
    def __init__(self, store: EventStore, verifier: WebhookVerifier | None, metrics: Metrics,
                 health: Callable[[], dict[str, Any]], *,
                 on_answer: Callable[[str, float], None] | None = None) -> None:
        self.store = store
        self.verifier = verifier
        self.metrics = metrics
        self.health = health
        #: Told of every webhook answered: (result, seconds); a worker process reports them.
        self.on_answer = on_answer

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(WEBHOOK_PATH, self.webhook)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_view)
        return app

    async def webhook(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            result, response = await self._webhook(request)
        finally:  # timed also when it fails (the client went away mid-request, say)
            seconds = time.perf_counter() - started
            self.metrics.webhook_latency.observe(seconds)
        self.metrics.webhooks.labels(result).inc()
        if self.on_answer is not None:
            self.on_answer(result, seconds)
        return response

    async def _webhook(self, request: web.Request) -> tuple[str, web.Response]:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._answer(413, "too_large", "body too large")
        try:
            async with asyncio.timeout(BODY_TIMEOUT_SECS):  # a slow body holds a connection
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._answer(413, "too_large", "body too large")
        except TimeoutError:
            result, response = self._answer(408, "timeout", "body not received in time")
            response.force_close()
            return result, response
        if self.verifier is not None:
            try:
                self.verifier.verify(body, request.headers)
            except InvalidSignature as exc:
                log.warning("rejected webhook from %s: %s", request.remote, exc)
                return self._answer(403, "forbidden", "invalid signature")
        try:
            env = parse_envelope(body)
        except BadEnvelope as exc:
            return self._answer(400, "bad_request", str(exc))
        if not env.handled:
            return self._answer(200, "ignored", "ignored")
        try:
            fresh = await self.store.store(env)
        except Exception:
            return self._answer(503, "unavailable", "cannot store the event now; retry")
        return self._answer(200, "stored" if fresh else "duplicate", "ok")

    @staticmethod
    def _answer(status: int, result: str, text: str) -> tuple[str, web.Response]:
        body = _BODIES.get(text) or json.dumps({"result": text}).encode()
        return result, web.Response(body=body, status=status, content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response(self.health())

    async def metrics_view(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
