"""The webhook receiver (HTTP only): verify, have the event log store it, then acknowledge.

`POST /webhooks/telnyx`: Ed25519 signature and timestamp checked (403, nothing stored), shape
checked (400), unhandled event types acknowledged and ignored (200), everything else stored under
its unique `data.id` before the 200 (a duplicate is acknowledged and ignored) by the event log
(`event_log.EventStore`, group commit). When the database cannot store an event the answer is
503, so Telnyx retries; never a 200 for an event that was not stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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


class EventSink(Protocol):
    """Where verified events go (`event_log.EventStore`): durably stored before the answer."""

    async def store(self, env: Envelope) -> bool:
        """True when stored now, False for a duplicate; raises when it could not store."""
        ...


class Receiver:
    def __init__(self, store: EventSink, verifier: WebhookVerifier | None, metrics: Metrics,
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
        """200 with the engine's status; 503 while it is still starting (webhooks are already
        received then, but nothing is dialed yet)."""
        health = self.health()
        return web.json_response(health, status=503 if health.get("status") == "starting"
                                 else 200)

    async def metrics_view(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
