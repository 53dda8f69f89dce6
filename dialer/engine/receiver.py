"""The webhook receiver: verify, store durably, then acknowledge.

`POST /webhooks/telnyx`: Ed25519 signature and timestamp checked (403, nothing stored), shape
checked (400), unhandled event types acknowledged and ignored (200), everything else stored under
its unique `data.id` before the 200 (a duplicate is acknowledged and ignored). Stores are grouped:
one commit serves every event that arrived meanwhile. When the database cannot store an event the
answer is 503, so Telnyx retries; never a 200 for an event that was not stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from campaigns.db.models import WebhookEvent
from campaigns.db.types import utcnow
from dialer.engine.events import BadEnvelope, Envelope, parse_envelope
from dialer.engine.metrics import Metrics
from dialer.telnyx.errors import InvalidSignature
from dialer.telnyx.signatures import WebhookVerifier

log = logging.getLogger("dialer.receiver")

MAX_BODY_BYTES = 256 * 1024
WEBHOOK_PATH = "/webhooks/telnyx"


class EventStore:
    """Group commit of incoming events: callers await `store`, one writer commits batches."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], on_stored: Callable[[], None],
                 write_lock: asyncio.Lock | None = None, max_batch: int = 500) -> None:
        self._sessions = sessions
        self._write_lock = write_lock
        self._on_stored = on_stored
        self._queue: asyncio.Queue[tuple[Envelope, asyncio.Future[bool]]] = asyncio.Queue()
        self._max_batch = max_batch
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

    async def store(self, env: Envelope) -> bool:
        """True when stored now, False when it was a duplicate. Raises when it could not store."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((env, fut))
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
                self.healthy_since = time.monotonic()
                log.warning("cannot store %d webhook events: %s", len(batch),
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                await asyncio.sleep(0.05)
                continue
            for env, fut in batch:
                if not fut.done():
                    fut.set_result(env.event_id in inserted)
            self._on_stored()

    async def _insert(self, envs: list[Envelope]) -> set[str]:
        now = utcnow()
        rows: dict[str, dict[str, Any]] = {}
        for env in envs:
            rows.setdefault(env.event_id, {
                "event_id": env.event_id,
                "event_type": env.event_type,
                "call_control_id": (env.call_control_id or "")[:200] or None,
                "occurred_at": env.occurred_at,
                "received_at": now,
                "payload": env.raw,
                "status": "pending",
            })
        async with self._sessions() as session, session.begin():
            dialect = (await session.connection()).dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            # executemany with RETURNING: one cached statement whatever the batch size.
            stmt = (insert(WebhookEvent).on_conflict_do_nothing(index_elements=["event_id"])
                    .returning(WebhookEvent.event_id))
            result = await session.execute(stmt, list(rows.values()))
            return set(result.scalars().all())


class Receiver:
    def __init__(self, store: EventStore, verifier: WebhookVerifier | None, metrics: Metrics,
                 health: Callable[[], dict[str, Any]]) -> None:
        self.store = store
        self.verifier = verifier
        self.metrics = metrics
        self.health = health

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(WEBHOOK_PATH, self.webhook)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_view)
        return app

    async def webhook(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await self._webhook(request)
        finally:
            self.metrics.webhook_latency.observe(time.perf_counter() - started)

    async def _webhook(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._answer(413, "too_large", "body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._answer(413, "too_large", "body too large")
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

    def _answer(self, status: int, result: str, text: str) -> web.Response:
        self.metrics.webhooks.labels(result).inc()
        return web.json_response({"result": text}, status=status)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response(self.health())

    async def metrics_view(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
