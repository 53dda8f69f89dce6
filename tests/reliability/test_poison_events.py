"""One poison webhook must not stop the engine: a validly signed event whose values the database
refuses (ids past their columns) or that trips a bug is kept as failed (or orphan) with its
reason, and every event after it is processed; the engine keeps running and says it is healthy."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import CallAttempt, Campaign, WebhookEvent
from campaigns.db.types import utcnow
from dialer.engine import processor as processor_module
from dialer.engine.claims import DialJob, claim
from dialer.engine.receiver import WEBHOOK_PATH
from dialer.engine.runner import Engine, EngineConfig
from dialer.telnyx.signatures import generate_keypair, sign
from tests.engine.helpers import numbers, seed, wait_for

PRIVATE, PUBLIC = generate_keypair()

POISON_STATES = ["dlr1:1:99999999999999999999999", "dlr1:99999999999999999999999:1",
                 "dlr1:1:2147483648", "dlr1:9223372036854775808:1", "dlr1:-1:1"]


def _event(event_type: str, client_state: str, **payload: Any) -> bytes:
    return json.dumps({"data": {
        "record_type": "event", "id": str(uuid.uuid4()), "event_type": event_type,
        "occurred_at": utcnow().isoformat(),
        "payload": {"call_control_id": f"v3:{uuid.uuid4().hex}", "client_state": client_state,
                    **payload}}}).encode()


async def _post(port: int, body: bytes) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}{WEBHOOK_PATH}", data=body,
            headers={"Content-Type": "application/json", **sign(PRIVATE, body)}) as resp:
        return resp.status


async def _claimed(db_url: str, cid: int, n: int) -> list[DialJob]:
    db = create_engine(db_url)
    try:
        async with session_factory(db)() as s, s.begin():
            campaign = await s.get(Campaign, cid)
            assert campaign is not None
            result = await claim(s, campaign, n, utcnow(), instance_id="elsewhere",
                                 per_number_cap=3)
            return result.jobs
    finally:
        await db.dispose()


async def _statuses(db_url: str) -> dict[str, str]:
    db = create_engine(db_url)
    try:
        async with session_factory(db)() as s:
            rows = await s.execute(select(WebhookEvent.event_id, WebhookEvent.status))
            return {e: st for e, st in rows}
    finally:
        await db.dispose()


async def _engine(db_url: str) -> Engine:
    engine = Engine(EngineConfig(database_url=db_url, api_url="http://127.0.0.1:9/v2",
                                 api_key="k", public_key=PUBLIC, port=0))
    await engine.start()
    return engine


async def test_poison_client_states_never_stop_processing(db_url: str) -> None:
    cid = await seed(db_url, "poison", numbers(3), start=False)
    jobs = await _claimed(db_url, cid, 3)
    engine = await _engine(db_url)
    try:
        assert engine.bound_port is not None
        port = engine.bound_port
        for state in POISON_STATES:
            poison = _event("call.hangup", base64.b64encode(state.encode()).decode(),
                            hangup_cause="normal_clearing")
            assert await _post(port, poison) == 200
        good = [_event("call.initiated", job.client_state) for job in jobs]
        for body in good:
            assert await _post(port, body) == 200
        good_ids = {json.loads(b)["data"]["id"] for b in good}

        async def _all_done() -> bool:
            statuses = await _statuses(db_url)
            return "pending" not in statuses.values()
        await wait_for(_all_done, timeout=30)
        statuses = await _statuses(db_url)
        assert all(statuses[i] == "processed" for i in good_ids), statuses
        assert set(statuses.values()) <= {"processed", "orphan", "failed"}
        db = create_engine(db_url)
        async with session_factory(db)() as s:
            states = set((await s.scalars(select(CallAttempt.state))).all())
        await db.dispose()
        assert states == {"dialed"}
        assert not engine.state.stopping.is_set() and engine.crashed is None
        assert engine.health()["status"] == "ok"
    finally:
        await engine.shutdown()


async def test_an_event_that_trips_a_bug_is_kept_as_failed(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong with one event (here: a bug met by one event type), it is kept as
    `failed` with the reason, the events around it are processed, the engine runs on."""
    cid = await seed(db_url, "buggy", numbers(4), start=False)
    jobs = await _claimed(db_url, cid, 4)
    real_apply = processor_module.apply_event

    def apply_event(attempt: Any, campaign: Any, event_type: str, *args: Any) -> Any:
        if event_type == "call.answered":
            raise KeyError("a bug met by this event")
        return real_apply(attempt, campaign, event_type, *args)
    monkeypatch.setattr(processor_module, "apply_event", apply_event)
    engine = await _engine(db_url)
    try:
        assert engine.bound_port is not None
        bodies = [_event("call.initiated", jobs[0].client_state),
                  _event("call.answered", jobs[1].client_state),
                  _event("call.initiated", jobs[2].client_state),
                  _event("call.initiated", jobs[3].client_state)]
        await asyncio.gather(*(_post(engine.bound_port, b) for b in bodies))
        ids = [json.loads(b)["data"]["id"] for b in bodies]

        async def _done() -> bool:
            return "pending" not in (await _statuses(db_url)).values()
        await wait_for(_done, timeout=30)
        statuses = await _statuses(db_url)
        assert [statuses[i] for i in ids] == ["processed", "failed", "processed", "processed"]
        db = create_engine(db_url)
        async with session_factory(db)() as s:
            error = await s.scalar(select(WebhookEvent.error).where(
                WebhookEvent.event_id == ids[1]))
        await db.dispose()
        assert error is not None and "KeyError" in error
        assert engine.crashed is None and not engine.state.stopping.is_set()
    finally:
        await engine.shutdown()
