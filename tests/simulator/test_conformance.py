"""Conformance with Telnyx: every response and webhook validates against the official OpenAPI
document, and the official `telnyx` SDK works unchanged against the simulator."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import aiohttp
import pytest
import telnyx

from dialer.simulator import FaultConfig, Simulator
from dialer.telnyx.errors import InvalidSignature
from dialer.telnyx.signatures import WebhookVerifier
from tests.openapi import assert_response_valid, assert_webhook_valid, webhook_validators
from tests.simulator.conftest import (
    CONNECTION,
    FROM,
    Receiver,
    SimFactory,
    action,
    dial,
    request,
)

CALLS = "/calls"
CALL = "/calls/{call_control_id}"


def _act(name: str) -> str:
    return f"/calls/{{call_control_id}}/actions/{name}"


async def test_dial_get_and_action_responses_match_the_openapi(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=20.0, pinned={"+15551110001": "human", "+15551110002": "busy"})
    answer = await dial(http, sim, "+15551110001", client_state="YWJj", record="record-from-answer")
    assert answer.status == 200
    assert_response_valid(CALLS, "post", 200, answer.body)
    data = answer.body["data"]
    assert data["is_alive"] is False and data["record_type"] == "call"
    assert data["client_state"] == "YWJj"
    assert data["call_control_id"].startswith("v3:")
    assert set(data["call_control_id"][3:]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    cid = data["call_control_id"]

    status = await request(http, "GET", f"{sim.api_url}/calls/{cid}")
    assert status.status == 200 and status.body["data"]["is_alive"] is True
    assert_response_valid(CALL, "get", 200, status.body)

    await receiver.wait_event(cid, "call.answered")
    for name, body in [
        ("playback_start", {"audio_url": "https://example.com/a.mp3"}),
        ("playback_stop", {}),
        ("speak", {"payload": "Hello there", "voice": "female", "language": "en-US"}),
        ("client_state_update", {"client_state": "ZGVm"}),
        ("transfer", {"to": "+15559990000"}),
        ("hangup", {}),
    ]:
        method = "put" if name == "client_state_update" else "post"
        answer = await action(http, sim, cid, name, body, method=method.upper())
        assert answer.status == 200, (name, answer.body)
        assert answer.body == {"data": {"result": "ok"}}
        assert_response_valid(_act(name), method, 200, answer.body)

    ended = await request(http, "GET", f"{sim.api_url}/calls/{cid}")
    assert ended.body["data"]["is_alive"] is False and "end_time" in ended.body["data"]
    assert ended.body["data"]["client_state"] == "ZGVm"
    assert_response_valid(CALL, "get", 200, ended.body)

    # Error bodies: every one is a Telnyx `Errors` document.
    errors = [
        (CALLS, "post", await request(http, "POST", sim.api_url + "/calls", {"to": "123"})),
        (CALL, "get", await request(http, "GET", f"{sim.api_url}/calls/v3:nope")),
        (_act("hangup"), "post", await action(http, sim, cid, "hangup")),
        (_act("hangup"), "post", await action(http, sim, "v3:unknown", "hangup")),
        (CALLS, "post", await request(http, "POST", sim.api_url + "/calls", raw=b"{nope")),
    ]
    for path, method, answer in errors:
        assert answer.status >= 400
        assert_response_valid(path, method, answer.status, answer.body)
        assert answer.body["errors"] and all("code" in e and "title" in e
                                             for e in answer.body["errors"])
    sim.set_faults(FaultConfig(dial_5xx=1.0))
    failed = await dial(http, sim, "+15551110002")
    assert failed.status == 500 and failed.body["errors"][0]["code"] == "10007"
    assert_response_valid(CALLS, "post", 500, failed.body)


async def test_every_webhook_matches_the_openapi(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    pinned = {"+15552220001": "human", "+15552220002": "machine_beep", "+15552220003": "human",
              "+15552220004": "machine_no_beep", "+15552220005": "busy"}
    sim = await make_sim(speed=50.0, pinned=pinned, keypad={"valid": 1.0})
    human = (await dial(http, sim, "+15552220001", client_state="aGk=",
                        answering_machine_detection="premium")).body["data"]["call_control_id"]
    for number, mode in [("+15552220002", "detect_words"), ("+15552220002", "premium"),
                         ("+15552220004", "greeting_end"), ("+15552220005", "detect")]:
        assert (await dial(http, sim, number, client_state="aGk=",
                           answering_machine_detection=mode)).status == 200
    speaker = (await dial(http, sim, "+15552220003",
                          answering_machine_detection="detect")).body["data"]["call_control_id"]
    await receiver.wait_event(human, "call.machine.premium.detection.ended")
    assert (await action(http, sim, human, "playback_start",
                         {"media_name": "greeting", "client_state": "aGk="})).status == 200
    await receiver.wait_event(human, "call.playback.ended")
    await receiver.wait_event(speaker, "call.answered")
    assert (await action(http, sim, speaker, "speak",
                         {"payload": "Hi", "voice": "male"})).status == 200
    await receiver.wait_event(speaker, "call.speak.ended")
    assert (await action(http, sim, speaker, "gather_using_speak", {
        "payload": "Press 1", "voice": "male", "valid_digits": "12", "maximum_digits": 1,
        "timeout_millis": 5000})).status == 200
    await receiver.wait_event(speaker, "call.gather.ended")
    assert await sim.wait_idle(timeout=10)

    seen: set[str] = set()
    for delivery in receiver.deliveries:
        body = copy.deepcopy(delivery.body)
        payload = body["data"]["payload"]
        if payload["call_control_id"] == speaker:
            # Telnyx sends client_state null when none was given; the schema types it as a string.
            assert payload["client_state"] is None
            del payload["client_state"]
        assert_webhook_valid(body)
        assert body["data"]["record_type"] == "event"
        assert body["meta"] == {"attempt": 1, "delivered_to": receiver.url}
        for key in ("call_control_id", "call_leg_id", "call_session_id", "connection_id", "from",
                    "to"):
            assert payload[key], key
        assert payload["connection_id"] == CONNECTION and payload["from"] == FROM
        seen.add(delivery.event_type)
    assert seen == set(webhook_validators())  # all 11 event types of the document were exercised


def _sdk(sim: Simulator, api_key: str = "KEY-sim") -> telnyx.Telnyx:
    return telnyx.Telnyx(api_key=api_key, base_url=sim.api_url, max_retries=0)


async def test_official_sdk_works_unchanged(
    make_sim: SimFactory, receiver: Receiver
) -> None:
    sim = await make_sim(speed=20.0, pinned={"+15553330001": "human"})

    def dial_and_check() -> str:
        client = _sdk(sim)
        dialed = client.calls.dial(connection_id=CONNECTION, from_=FROM, to="+15553330001",
                                   client_state="YWJj", command_id="sdk-1")
        assert dialed.data is not None
        cid = dialed.data.call_control_id
        assert cid.startswith("v3:") and dialed.data.is_alive is False
        status = client.calls.retrieve_status(cid)
        assert status.data is not None and status.data.call_control_id == cid
        return cid

    cid = await asyncio.to_thread(dial_and_check)
    await receiver.wait_event(cid, "call.answered")

    def act(cid: str) -> None:
        client = _sdk(sim)
        assert client.calls.actions.start_playback(cid, audio_url="https://e.com/a.wav").data
        assert client.calls.actions.stop_playback(cid).data
        assert client.calls.actions.speak(cid, payload="Hello", voice="female").data
        assert client.calls.actions.update_client_state(cid, client_state="eHl6").data
        result = client.calls.actions.hangup(cid)
        assert result.data is not None and result.data.result == "ok"
        status = client.calls.retrieve_status(cid)
        assert status.data is not None and status.data.is_alive is False

    await asyncio.to_thread(act, cid)
    hangup = await receiver.wait_hangup(cid)
    assert hangup.payload["hangup_source"] == "caller"
    assert hangup.payload["client_state"] == "eHl6"


async def test_sdk_exceptions_for_errors(make_sim: SimFactory) -> None:
    sim = await make_sim(cps_limit=1, cps_window_secs=1.0, api_key="right-key")

    def run() -> None:
        client = _sdk(sim, "right-key")
        with pytest.raises(telnyx.UnprocessableEntityError) as invalid:
            client.calls.dial(connection_id=CONNECTION, from_="5550001", to="+15553330002",
                              timeout_secs=1)
        assert invalid.value.status_code == 422
        codes = {(e["code"], e["source"]["pointer"]) for e in invalid.value.body["errors"]}  # type: ignore[index]
        assert codes == {("10016", "/from"), ("10033", "/timeout_secs")}
        client.calls.dial(connection_id=CONNECTION, from_=FROM, to="+15553330002")
        with pytest.raises(telnyx.RateLimitError) as limited:
            client.calls.dial(connection_id=CONNECTION, from_=FROM, to="+15553330003")
        assert limited.value.status_code == 429
        assert limited.value.body["errors"][0]["code"] == "90103"  # type: ignore[index]
        assert limited.value.response.headers["x-ratelimit-remaining"] == "0"
        with pytest.raises(telnyx.AuthenticationError):
            _sdk(sim, "wrong-key").calls.dial(connection_id=CONNECTION, from_=FROM,
                                              to="+15553330004")
        with pytest.raises(telnyx.NotFoundError):
            client.calls.retrieve_status("v3:does-not-exist")
        with pytest.raises(telnyx.UnprocessableEntityError) as unknown:
            client.calls.actions.hangup("v3:does-not-exist")
        assert unknown.value.body["errors"][0]["code"] == "90015"  # type: ignore[index]

    await asyncio.to_thread(run)
    assert len(sim.ledger) == 1


async def test_sdk_webhook_verifier_accepts_signed_and_rejects_tampered(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(pinned={"+15554440001": "busy"})
    cid = (await dial(http, sim, "+15554440001")).body["data"]["call_control_id"]
    await receiver.wait_hangup(cid)
    client = _sdk(sim)
    ours = WebhookVerifier(sim.public_key_b64)
    for delivery in receiver.for_call(cid):
        text = delivery.raw.decode()
        event: Any = client.webhooks.unwrap(text, headers=delivery.headers, key=sim.public_key_b64)
        assert event.data.id == delivery.data["id"]
        ours.verify(delivery.raw, delivery.headers)
        tampered = text.replace(cid, cid[:-2] + "xx")
        with pytest.raises(ValueError):
            client.webhooks.unwrap(tampered, headers=delivery.headers, key=sim.public_key_b64)
        with pytest.raises(InvalidSignature):
            ours.verify(tampered.encode(), delivery.headers)
    assert json.loads(receiver.for_call(cid)[-1].raw)["data"]["event_type"] == "call.hangup"


async def test_fixed_private_key_gives_a_fixed_public_key(make_sim: SimFactory) -> None:
    from dialer.telnyx.signatures import generate_keypair

    private, public = generate_keypair()
    sim = await make_sim(private_key_b64=private)
    assert sim.public_key_b64 == public
