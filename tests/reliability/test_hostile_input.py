"""Hostile input, property-based (hypothesis; bounded, seeded, no deadline).

- Random webhook bodies and headers against the real receiver (`Receiver` + `EventStore` on a real
  database): never a 500; without a valid signature always 403 (413 when too large) and nothing
  stored; with a valid signature, only well-formed events of the types we handle are stored.
- Validly signed events whose payload values have random types and sizes, aimed at a real
  attempt: processing never fails (a poison event would stop all webhook processing, since the
  processor retries its batch) and never moves the attempt backwards.
- Random campaign settings (TOML values: strings, numbers, NaN and infinities, booleans, dates,
  tables, arrays): either refused with a clear InvalidSettings, or accepted, and then the dial body
  the engine builds from them passes our validation and the official OpenAPI CallRequest schema,
  and is plain JSON.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import math
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from campaigns.db.models import AttemptState, CallAttempt, Campaign, WebhookEvent
from campaigns.db.types import utcnow
from campaigns.errors import InvalidSettings
from campaigns.settings import OWN_FIELDS, split_and_validate, with_defaults
from campaigns.telnyx_schema.dial import CAMPAIGN_DIAL_FIELDS, DIAL_FIELDS, NESTED_FIELDS
from campaigns.telnyx_schema.fields import FieldSpec
from dialer.engine.claims import DialJob, claim
from dialer.engine.dispatcher import CampaignView, dial_request
from dialer.engine.events import HANDLED_EVENTS, BadEnvelope, parse_envelope
from dialer.engine.receiver import MAX_BODY_BYTES, WEBHOOK_PATH
from dialer.engine.runner import Engine, EngineConfig
from dialer.telnyx.signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    generate_keypair,
    sign,
)
from tests.engine.helpers import numbers
from tests.engine.helpers import seed as seed_campaign
from tests.openapi import schema_errors
from tests.reliability.conftest import RECEIVER_PRIVATE, RECEIVER_PUBLIC
from tests.reliability.harness import ReceiverRig

SEED = 20240917
PRIVATE, PUBLIC = RECEIVER_PRIVATE, RECEIVER_PUBLIC
OTHER_PRIVATE, _ = generate_keypair()
BOUNDED = settings(max_examples=120, deadline=None, derandomize=False, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------------------- strategies

_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
            | st.sampled_from(["\x00", "\ud800", "v3:" + "x" * 300, "9" * 5000, "", "y" * 70,
                               "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                               "2026-01-02T03:04:05Z", "not a time"]))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Telnyx-shaped envelopes whose every field may be wrong."""
    data: dict[str, Any] = {
        "record_type": draw(st.sampled_from(["event", "call", 5])),
        "id": draw(st.uuids().map(str) | _scalars),
        "event_type": draw(st.sampled_from(sorted(HANDLED_EVENTS)) | _scalars),
        "occurred_at": draw(_scalars),
        "payload": draw(st.dictionaries(
            st.sampled_from(["call_control_id", "call_leg_id", "call_session_id",
                             "client_state", "hangup_cause", "sip_hangup_cause", "end_time",
                             "result", "status", "from", "to"]), _json, max_size=8) | _json),
    }
    doc: dict[str, Any] = {"data": draw(st.just(data) | _json)}
    if draw(st.booleans()):
        doc["meta"] = draw(_json)
    return doc


bodies = (st.binary(max_size=300)
          | _json.map(_dumps)
          | envelopes().map(_dumps)
          | st.sampled_from([b"", b"{", b"[]", b"null", b'{"data": ' + b"1" * 5000 + b"}",
                             (b'{"data": {"id": "x", "event_type": "call.hangup", '
                              b'"payload": {"a": NaN}}}'), b'{"data": ' * 5000, b"\xff\xfe",
                             b"x" * (MAX_BODY_BYTES + 1)]))


@st.composite
def bad_headers(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    """Every way a signature can be wrong (never a valid one)."""
    now = int(time.time())
    kind = draw(st.sampled_from(["none", "no-timestamp", "no-signature", "garbage", "random",
                                 "other-body", "other-key", "stale", "future", "bad-timestamp"]))
    good = sign(PRIVATE, body, now)
    if kind == "none":
        return {}
    if kind == "no-timestamp":
        return {SIGNATURE_HEADER: good[SIGNATURE_HEADER]}
    if kind == "no-signature":
        return {TIMESTAMP_HEADER: str(now)}
    if kind == "garbage":
        latin = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)
        return {SIGNATURE_HEADER: draw(latin), TIMESTAMP_HEADER: draw(latin)}
    if kind == "random":
        sig = base64.b64encode(draw(st.binary(min_size=64, max_size=64))).decode()
        return {SIGNATURE_HEADER: sig, TIMESTAMP_HEADER: str(now)}
    if kind == "other-body":
        return sign(PRIVATE, body + draw(st.binary(min_size=1, max_size=8)), now)
    if kind == "other-key":
        return sign(OTHER_PRIVATE, body, now)
    if kind == "stale":
        return sign(PRIVATE, body, now - draw(st.integers(301, 10**9)))
    if kind == "future":
        return sign(PRIVATE, body, now + draw(st.integers(301, 10**9)))
    ts = draw(st.sampled_from(["", "abc", "-5", "1e9", "١٢٣٤", " ", "9" * 40, f"{now}.5"]))
    return {SIGNATURE_HEADER: good[SIGNATURE_HEADER], TIMESTAMP_HEADER: ts}


# ------------------------------------------------------------------------------- receiver

def test_unsigned_or_forged_webhooks_are_refused_and_change_nothing(
        receiver: ReceiverRig) -> None:
    seen: dict[int, int] = {}

    @seed(SEED)
    @BOUNDED
    @given(data=st.data(), body=bodies)
    def check(data: st.DataObject, body: bytes) -> None:
        headers = data.draw(bad_headers(body))
        status, text = receiver.post(body, {"Content-Type": "application/json", **headers})
        seen[status] = seen.get(status, 0) + 1
        assert status == (413 if len(body) > MAX_BODY_BYTES else 403), (status, text)

    check()
    assert receiver.rows() == []
    assert set(seen) <= {403, 413} and seen.get(403, 0) > 50, seen


def test_signed_random_webhooks_never_fail_and_store_only_good_events(db_url: str) -> None:
    receiver = ReceiverRig(db_url, PUBLIC)
    try:
        _signed_random_webhooks(receiver)
    finally:
        receiver.close()


def _signed_random_webhooks(receiver: ReceiverRig) -> None:
    expected: set[str] = set()
    seen: dict[int, int] = {}

    @seed(SEED)
    @BOUNDED
    @given(body=bodies)
    def check(body: bytes) -> None:
        status, text = receiver.post(body, {"Content-Type": "application/json",
                                            **sign(PRIVATE, body)})
        seen[status] = seen.get(status, 0) + 1
        assert status in (200, 400, 413), (status, text, body[:300])
        try:
            env = parse_envelope(body)
        except BadEnvelope:
            assert status in (400, 413), (status, text)
            return
        if len(body) > MAX_BODY_BYTES:
            assert status == 413
        elif status == 200 and env.handled:
            expected.add(env.event_id)

    check()
    stored = {e for e, _ in receiver.rows()}
    assert stored == expected
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0, seen


# ------------------------------------------------------------------------------- processing

_ORDER = {AttemptState.CREATED: 0, AttemptState.DIALED: 1, AttemptState.ANSWERED: 2,
          AttemptState.ENDED: 3, AttemptState.NOT_PLACED: 4}


_hostile_value = st.one_of(_json, st.text(min_size=15, max_size=300), _scalars)
#: Events that set facts on the attempt, more often than the others.
_FACT_EVENTS = ["call.hangup", "call.answered", "call.machine.premium.detection.ended",
                "call.machine.premium.greeting.ended", "call.playback.ended"]


@st.composite
def hostile_events(draw: st.DrawFn, client_state: str) -> bytes:
    keys = ["call_control_id", "call_leg_id", "call_session_id", "hangup_cause",
            "hangup_source", "sip_hangup_cause", "start_time", "end_time", "result", "status",
            "state", "media_url"]
    if draw(st.booleans()):
        payload = draw(st.dictionaries(st.sampled_from(keys), _hostile_value, max_size=10))
    else:  # every field at once, each of any length
        payload = draw(st.fixed_dictionaries({k: st.text(max_size=8) | st.text(
            min_size=17, max_size=300) for k in keys}))
    payload["client_state"] = client_state
    return _dumps({"data": {
        "record_type": "event", "id": draw(st.uuids()).hex,
        "event_type": draw(st.sampled_from(_FACT_EVENTS * 3 + sorted(HANDLED_EVENTS))),
        "occurred_at": draw(_scalars), "payload": payload}})


def test_signed_events_with_hostile_payloads_never_stop_processing(db_url: str) -> None:
    loop = asyncio.new_event_loop()
    cid = loop.run_until_complete(seed_campaign(db_url, "hostile", numbers(80),
                                                answering_machine_detection="premium"))

    async def setup() -> tuple[Engine, TestClient, list[DialJob]]:
        engine = Engine(EngineConfig(database_url=db_url, api_url="http://127.0.0.1:9/v2",
                                     api_key="k", public_key=PUBLIC, port=0))
        engine.store.start()
        client = TestClient(TestServer(engine.receiver.app(), host="127.0.0.1"))
        await client.start_server()
        async with engine.sessions() as s, s.begin():
            campaign = await s.get(Campaign, cid)
            assert campaign is not None
            claimed = await claim(s, campaign, 80, utcnow(), instance_id="hostile",
                                  per_number_cap=3)
        assert len(claimed.jobs) == 80
        return engine, client, claimed.jobs
    engine, client, jobs = loop.run_until_complete(setup())
    turn = [0]

    async def state(attempt_id: int) -> str:
        async with engine.sessions() as s:
            return str(await s.scalar(select(CallAttempt.state).where(
                CallAttempt.id == attempt_id)))

    async def one(job: DialJob, body: bytes) -> None:
        before = await state(job.attempt_id)
        resp = await client.post(WEBHOOK_PATH, data=body,
                                 headers={"Content-Type": "application/json",
                                          **sign(PRIVATE, body)})
        assert resp.status in (200, 400), (resp.status, await resp.text(), body[:300])
        await asyncio.wait_for(engine.processor.process_pending(), timeout=30)
        after = await state(job.attempt_id)
        assert _ORDER[after] >= _ORDER[before] or after == AttemptState.NOT_PLACED, (
            before, after)
        async with engine.sessions() as s:
            pending = await s.scalar(select(func.count()).select_from(WebhookEvent).where(
                WebhookEvent.status == "pending"))
        assert pending == 0

    @seed(SEED)
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        # A fresh attempt for each example (facts once known are kept, so a used attempt
        # would shield the columns from later values).
        job = jobs[turn[0] % len(jobs)]
        turn[0] += 1
        loop.run_until_complete(one(job, data.draw(hostile_events(job.client_state))))

    try:
        check()
    finally:
        async def close() -> None:
            await client.close()
            await engine.store.stop()
            await engine.client.close()
            await engine.db.dispose()
        loop.run_until_complete(close())
        loop.close()


# ------------------------------------------------------------------------------- settings

_toml_scalar = (st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
                | st.datetimes(timezones=st.none() | st.timezones()) | st.dates() | st.times())
_toml = st.recursive(_toml_scalar, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
_GOOD_STRINGS = {
    "audio_url": "https://example.com/a.mp3", "message_audio_url": "https://example.com/m.mp3",
    "voicemail_audio_url": "https://example.com/v.mp3", "webhook_url": "https://example.com/h",
    "stream_url": "wss://example.com/s", "transfer_to": "+14155550199",
    "billing_group_id": "6a09cdc3-8948-47f0-aa62-74ac943d6c58", "calling_hours": "08:00-21:00",
    "calling_days": "mon-fri", "fallback_timezone": "America/Chicago",
    "send_digits_on_answer": "1w2", "message_text": "Hello there",
}


def _from_spec(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Values near what a field accepts: right type, edges of its range, its enum."""
    name = spec.name.rsplit(".", 1)[-1]
    if spec.enum:
        return st.sampled_from(list(spec.enum))
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind in ("int", "float"):
        lo = int(spec.minimum) - 2 if spec.minimum is not None else -10
        hi = int(spec.maximum) + 2 if spec.maximum is not None else 10**6
        ints = st.integers(min_value=lo, max_value=hi)
        if spec.kind == "int":
            return ints
        return ints | st.floats(min_value=lo, max_value=hi) | st.sampled_from(
            [math.nan, math.inf, -math.inf])
    if spec.kind == "str":
        good = _GOOD_STRINGS.get(name)
        return st.just(good) if good else st.text(max_size=12)
    if spec.kind == "object" and spec.name in NESTED_FIELDS:
        return st.dictionaries(st.sampled_from(sorted(NESTED_FIELDS[spec.name])),
                               st.deferred(lambda: _toml_scalar), max_size=3)
    return _toml


def _value(key: str) -> st.SearchStrategy[Any]:
    """Mostly values of the right shape (so that one bad key does not hide the others), now and
    then anything TOML can hold."""
    spec = OWN_FIELDS.get(key) or DIAL_FIELDS[key]
    if spec.kind == "object" and key in NESTED_FIELDS:
        nested = NESTED_FIELDS[key]
        near: st.SearchStrategy[Any] = st.fixed_dictionaries({}, optional={
            k: _from_spec(s) for k, s in nested.items()})
    elif spec.kind == "object":  # open objects (assistant, ...): their required key, then more
        near = st.builds(lambda extra: {"id": "assistant-1", "url": "wss://example.com/r",
                                        **extra}, st.dictionaries(st.text(max_size=8), _toml,
                                                                  max_size=2))
    else:
        near = _from_spec(spec)
    return st.one_of(near, near, near, _toml)


_KEYS = sorted(set(OWN_FIELDS) | set(CAMPAIGN_DIAL_FIELDS))


@st.composite
def campaign_values(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(_KEYS), max_size=3, unique=True))
    values: dict[str, Any] = {k: draw(_value(k)) for k in keys}
    values["from"] = draw(st.sampled_from(["+14155550100", "+442071838750"]) | _toml)
    values["connection_id"] = draw(st.sampled_from(["conn-1", "1494404757140276705"]) | _toml)
    if draw(st.booleans()):
        values["on_human"] = "play"
        values["message_audio_url"] = "https://example.com/m.mp3"
    return values


@pytest.mark.parametrize(("key", "value"), [
    ("retry_busy_secs", math.nan), ("voicemail_wait_secs", math.nan), ("cps", math.nan),
    ("cps", math.inf), ("sound_modifications", {"pitch": math.nan})])
def test_nan_in_a_number_setting_is_refused(key: str, value: Any) -> None:
    with pytest.raises(InvalidSettings) as info:
        split_and_validate({"from": "+14155550100", "connection_id": "c", key: value})
    assert key in str(info.value)


def test_a_toml_date_inside_an_open_object_is_refused() -> None:
    with pytest.raises(InvalidSettings) as info:
        split_and_validate({"from": "+14155550100", "connection_id": "c",
                            "assistant": {"id": "a", "since": dt.date(2026, 1, 2)}})
    assert "assistant" in str(info.value)


@seed(SEED)
@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(values=campaign_values())
def test_random_campaign_settings_are_refused_clearly_or_dial_validly(
        values: dict[str, Any]) -> None:
    try:
        split = split_and_validate(values)
    except InvalidSettings as exc:
        message = str(exc)
        assert message and ": " in message and "Traceback" not in message
        return
    # Accepted: stored as JSON, turned into the exact dial the engine would send.
    json.dumps(split.dial_settings, allow_nan=False)
    json.dumps(split.settings, allow_nan=False)
    view = CampaignView(1, "c", "running", split.from_number, split.connection_id,
                        dict(split.dial_settings), with_defaults(split.settings))
    job = DialJob(1, 1, 1, 1, "+14155550123", "8d7e6f5a-1b2c-4d3e-9f80-7a6b5c4d3e2f",
                  base64.b64encode(b"dlr1:1:1").decode())
    request = dial_request(job, view, "http://127.0.0.1:8080/webhooks/telnyx")
    request.validate()
    body = request.to_body()
    json.dumps(body, allow_nan=False)
    assert schema_errors("CallRequest", body) == [], (body, schema_errors("CallRequest", body))
    assert not isinstance(body.get("timeout_secs"), (dt.date, dt.time))
