"""Signed `call.gather.ended` events with absurd digits and statuses (long, NUL, non-digits,
non-strings) aimed at attempts in the middle of a script: processing never stops, and nothing
but keypad keys is ever recorded; only the exact opt-out key puts the number on the DNC list."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from campaigns.db.models import AttemptResponse, CallAttempt, Campaign, DncNumber, WebhookEvent
from campaigns.db.types import utcnow
from dialer.engine.claims import claim
from dialer.engine.identity import AttemptRef, decode_client_state, encode_client_state
from dialer.engine.receiver import WEBHOOK_PATH
from dialer.engine.runner import Engine, EngineConfig
from dialer.telnyx.signatures import generate_keypair, sign
from tests.engine.helpers import numbers
from tests.engine.helpers import seed as seed_campaign
from tests.engine.test_scripts_e2e import SETTINGS

PRIVATE, PUBLIC = generate_keypair()
KEYS = set("0123456789*#")
_digits = (st.text(max_size=40) | st.text(min_size=200, max_size=6000)
           | st.sampled_from(["\x00", "1\x00", "9" * 5000, "１", "9 ", " 9", "99", "1#", "\ud800"])
           | st.none() | st.integers() | st.floats() | st.booleans()
           | st.lists(st.text(max_size=3), max_size=3)
           | st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2))
_status = st.sampled_from(["valid", "invalid", "timeout", "call_hangup", "cancelled"]) | \
    st.text(max_size=40) | st.none() | st.integers() | st.floats() \
    | st.lists(st.text(max_size=3), max_size=2)
CONTACTS = 100
FIRST_PROMPT = "s1.1.1"  # step start (s1), try 1, the call's first prompt
#: Flow states an attempt may be in after one answer to its first prompt.
AFTER = {"s1.2.2", "s1.1.2", "s0.1.2", "transfer", "optout", "hangup", "done", FIRST_PROMPT}


def test_absurd_digits_never_stop_processing(db_url: str) -> None:
    loop = asyncio.new_event_loop()
    cid = loop.run_until_complete(seed_campaign(db_url, "hostile-keys", numbers(CONTACTS),
                                                **SETTINGS))

    async def setup() -> tuple[Engine, TestClient, list[Any]]:
        engine = Engine(EngineConfig(database_url=db_url, api_url="http://127.0.0.1:9/v2",
                                     api_key="k", public_key=PUBLIC, port=0))
        engine.store.start()
        client = TestClient(TestServer(engine.receiver.app(), host="127.0.0.1"))
        await client.start_server()
        async with engine.sessions() as s, s.begin():
            campaign = await s.get(Campaign, cid)
            assert campaign is not None
            claimed = await claim(s, campaign, CONTACTS, utcnow(), instance_id="h",
                                  per_number_cap=3)
            # Every call answered and at the script's first prompt.
            await s.execute(update(CallAttempt).values(state="answered", flow_state=FIRST_PROMPT,
                                                       script_completed=False))
        return engine, client, claimed.jobs
    engine, client, jobs = loop.run_until_complete(setup())
    turn = [0]

    async def one(job: Any, digits: Any, status: Any) -> None:
        ref = decode_client_state(job.client_state)
        assert ref is not None
        body = json.dumps({"data": {"record_type": "event", "id": f"ev-{turn[0]}",
                                    "event_type": "call.gather.ended",
                                    "occurred_at": "2026-01-02T03:04:05Z",
                                    "payload": {"digits": digits, "status": status,
                                                "client_state": encode_client_state(
                                                    AttemptRef(ref.contact_id, ref.attempt_no),
                                                    FIRST_PROMPT)}}}).encode()
        resp = await client.post(WEBHOOK_PATH, data=body, headers={
            "Content-Type": "application/json", **sign(PRIVATE, body)})
        assert resp.status in (200, 400), (resp.status, await resp.text())
        await asyncio.wait_for(engine.processor.process_pending(), timeout=30)
        async with engine.sessions() as s:
            unfinished = await s.scalar(select(func.count()).select_from(WebhookEvent).where(
                WebhookEvent.status.in_(("pending", "failed"))))
            # Processed, not set aside as an event the processor failed on.
            assert unfinished == 0, (digits, status)
            attempt = await s.get(CallAttempt, job.attempt_id)
            assert attempt is not None and attempt.flow_state in AFTER, attempt.flow_state
            rows = (await s.scalars(select(AttemptResponse).where(
                AttemptResponse.attempt_id == job.attempt_id))).all()
            dnc = await s.scalar(select(func.count()).select_from(DncNumber).where(
                DncNumber.phone_e164 == job.phone))
        for r in rows:
            assert r.digits is None or (set(r.digits) <= KEYS and len(r.digits) <= 32)
            if r.status == "valid":
                assert r.digits in ("1", "2", "9")
        opted = digits == "9" and status == "valid"
        assert bool(dnc) == opted, (digits, status)
        if digits in ("1", "2") and status == "valid":
            answers = [(r.digits, r.status) for r in rows if r.status != "reached"]
            assert answers == [(digits, "valid")]
        seen.update(r.status for r in rows)

    seen: set[str] = set()

    @seed(20261203)
    @settings(max_examples=50, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(digits=_digits, status=_status)
    # The paths that change something, and values a random draw may miss.
    @example(digits="9", status="valid")
    @example(digits="1", status="valid")
    @example(digits="2", status="valid")
    @example(digits="", status="timeout")
    @example(digits="\x00", status="valid")
    @example(digits="1\x00", status="valid")
    @example(digits="９", status="valid")
    @example(digits="٩", status="valid")
    @example(digits="9 ", status="valid")
    @example(digits=" 9", status="valid")
    @example(digits={"9": "9"}, status="valid")
    @example(digits=9.0, status="valid")
    @example(digits=True, status="valid")
    @example(digits="9", status={"valid": 1})
    @example(digits="9", status=1.5)
    @example(digits="9", status="VALID")
    def check(digits: Any, status: Any) -> None:
        job = jobs[turn[0]]  # a fresh attempt each time, at its first prompt
        turn[0] += 1
        loop.run_until_complete(one(job, digits, status))

    try:
        check()
        assert {"valid", "invalid", "unknown"} <= seen, seen
    finally:
        async def close() -> None:
            await client.close()
            await engine.store.stop()
            await engine.client.close()
            await engine.db.dispose()
        loop.run_until_complete(close())
        loop.close()
