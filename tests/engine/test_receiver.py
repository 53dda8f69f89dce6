"""The webhook receiver over real HTTP: verified, stored, then acknowledged; idempotent."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import WebhookEvent
from dialer.engine.runner import Engine, EngineConfig
from dialer.telnyx.signatures import generate_keypair, sign

PRIVATE, PUBLIC = generate_keypair()


def envelope(event_type: str = "call.answered", event_id: str | None = None,
             **payload: Any) -> bytes:
    body = {"data": {"record_type": "event", "event_type": event_type,
                     "id": event_id or str(uuid.uuid4()),
                     "occurred_at": "2026-01-02T03:04:05.123456Z",
                     "payload": {"call_control_id": "v3:unknown", "client_state": None,
                                 **payload}},
            "meta": {"attempt": 1, "delivered_to": "http://127.0.0.1/webhooks/telnyx"}}
    return json.dumps(body).encode()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[Engine]:
    e = Engine(EngineConfig(database_url=db_url, api_url="http://127.0.0.1:9/v2", api_key="k",
                            public_key=PUBLIC, port=0))
    await e.start()
    try:
        yield e
    finally:
        await e.shutdown()


async def post(engine: Engine, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{engine.bound_port}/webhooks/telnyx"
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers) as r:
        return r.status, await r.text()


async def stored(url: str) -> dict[str, str]:
    db = create_engine(url)
    try:
        async with session_factory(db)() as s:
            rows = await s.execute(select(WebhookEvent.event_id, WebhookEvent.status))
            return {i: st for i, st in rows}
    finally:
        await db.dispose()


async def test_signed_event_is_stored_once(engine: Engine, db_url: str) -> None:
    body = envelope(event_id="evt-1")
    assert (await post(engine, body, sign(PRIVATE, body)))[0] == 200
    assert (await post(engine, body, sign(PRIVATE, body)))[0] == 200  # duplicate: 200, once
    events = await stored(db_url)
    assert list(events) == ["evt-1"]


@pytest.mark.parametrize("encode", [
    lambda text: text.encode(),                          # as Telnyx sends it
    lambda text: b"\xef\xbb\xbf" + text.encode(),       # with a UTF-8 BOM
    lambda text: text.encode("utf-16"),                  # JSON that json.loads reads too
    lambda text: text.replace("caf\u00e9", "caf\\u00e9\\u0000").encode(),  # escapes to clean
    # a raw (CESU-8) surrogate, which json reads but the database refuses
    lambda text: text.replace("caf\u00e9", "caf\u00e9\ud800").encode("utf-8", "surrogatepass"),
], ids=["utf8", "bom", "utf16", "escapes", "raw-surrogate"])
async def test_stored_payload_is_the_document_received(engine: Engine, db_url: str,
                                                       encode: Any) -> None:
    """Bodies are stored as received when they can be, re-encoded when they cannot (another
    encoding, characters the database refuses): either way the stored JSON is the document."""
    text = envelope(event_id="evt-doc", note="caf\u00e9").decode().replace(
        "caf\\u00e9", "caf\u00e9")
    body = encode(text)
    assert (await post(engine, body, sign(PRIVATE, body)))[0] == 200
    db = create_engine(db_url)
    try:
        async with session_factory(db)() as s:
            payload = await s.scalar(select(WebhookEvent.payload))
    finally:
        await db.dispose()
    assert payload["data"]["id"] == "evt-doc"
    assert payload["data"]["payload"]["note"] in ("caf\u00e9", "caf\u00e9\ufffd")


async def test_events_of_one_commit_keep_their_order_of_arrival(engine: Engine,
                                                                  db_url: str) -> None:
    """Row ids are the processing order: a group commit stores its events in the order they
    arrived, each id once (a duplicate in the same batch is the first one's)."""
    from dialer.engine.events import parse_envelope

    envs = [parse_envelope(envelope(event_id=i)) for i in ("b", "a", "c", "a", "d")]
    assert await engine.store._insert(envs) == {"a", "b", "c", "d"}
    db = create_engine(db_url)
    try:
        async with session_factory(db)() as s:
            rows = (await s.execute(select(WebhookEvent.event_id)
                                    .order_by(WebhookEvent.id))).scalars().all()
    finally:
        await db.dispose()
    assert rows == ["b", "a", "c", "d"]


async def test_unknown_call_is_kept_as_orphan(engine: Engine, db_url: str) -> None:
    body = envelope("call.hangup", event_id="evt-orphan", hangup_cause="normal_clearing")
    assert (await post(engine, body, sign(PRIVATE, body)))[0] == 200
    for _ in range(50):
        if (await stored(db_url)).get("evt-orphan") == "orphan":
            break
        await _sleep(0.1)
    assert (await stored(db_url))["evt-orphan"] == "orphan"


@pytest.mark.parametrize("case", ["unsigned", "forged", "other_key", "stale", "future",
                                  "tampered"])
async def test_bad_signatures_are_refused_and_change_nothing(engine: Engine, db_url: str,
                                                             case: str) -> None:
    body = envelope()
    headers = sign(PRIVATE, body)
    if case == "unsigned":
        headers = {}
    elif case == "forged":
        headers["telnyx-signature-ed25519"] = "A" * 88
    elif case == "other_key":
        other, _ = generate_keypair()
        headers = sign(other, body)
    elif case == "stale":
        headers = sign(PRIVATE, body, timestamp=int(time.time()) - 301)
    elif case == "future":
        headers = sign(PRIVATE, body, timestamp=int(time.time()) + 400)
    elif case == "tampered":
        body = body.replace(b"call.answered", b"call.hangup")
    status, _ = await post(engine, body, headers)
    assert status == 403
    assert await stored(db_url) == {}


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"data": 1}', b'{"data": {"id": 5}}',
                                  b'{"data": {"id": "x", "event_type": "call.hangup", '
                                  b'"payload": []}}'])
async def test_malformed_bodies_are_400(engine: Engine, db_url: str, body: bytes) -> None:
    status, _ = await post(engine, body, sign(PRIVATE, body))
    assert status == 400
    assert await stored(db_url) == {}


async def test_unhandled_event_type_is_acknowledged_and_ignored(engine: Engine,
                                                                db_url: str) -> None:
    body = envelope("call.recording.saved")
    assert (await post(engine, body, sign(PRIVATE, body)))[0] == 200
    assert await stored(db_url) == {}


async def test_oversized_body_is_refused(engine: Engine, db_url: str) -> None:
    body = envelope(padding="x" * 400_000)
    status, _ = await post(engine, body, sign(PRIVATE, body))
    assert status == 413
    assert await stored(db_url) == {}


async def test_health_and_metrics(engine: Engine) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{engine.bound_port}/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with s.get(f"http://127.0.0.1:{engine.bound_port}/metrics") as r:
            text = await r.text()
            assert "dialer_dials_sent_total" in text and "dialer_webhook_ack_seconds" in text


async def test_count_helper(db_url: str) -> None:
    db = create_engine(db_url)
    try:
        async with session_factory(db)() as s:
            assert await s.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    finally:
        await db.dispose()


async def _sleep(secs: float) -> None:
    import asyncio

    await asyncio.sleep(secs)
