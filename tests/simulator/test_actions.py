"""Call-control commands: effects, webhooks, client_state semantics, validation and call state."""

from __future__ import annotations

import asyncio

import aiohttp

from dialer.simulator import Simulator
from tests.simulator.conftest import Receiver, SimFactory, action, dial, request

HUMAN = "+15556000001"
RINGING = "+15556000002"  # no_answer: rings until the timeout


async def _answered_call(sim: Simulator, receiver: Receiver, http: aiohttp.ClientSession,
                         **extra: object) -> str:
    answer = await dial(http, sim, HUMAN, **extra)
    assert answer.status == 200, answer.body
    cid: str = answer.body["data"]["call_control_id"]
    await receiver.wait_event(cid, "call.answered")
    return cid


async def _sim(make_sim: SimFactory) -> Simulator:
    # speed 10: a person talks 2-6 s of real time, plenty for a few commands; a prompt lasts 0.6 s.
    return await make_sim(speed=10.0, pinned={HUMAN: "human", RINGING: "no_answer"})


async def test_hangup_ends_the_call_then_commands_get_90018(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await _sim(make_sim)
    cid = await _answered_call(sim, receiver, http)
    ok = await action(http, sim, cid, "hangup", {"client_state": "Ynll"})
    assert ok.status == 200 and ok.body == {"data": {"result": "ok"}}
    hangup = await receiver.wait_hangup(cid)
    assert hangup.payload["hangup_cause"] == "normal_clearing"
    assert hangup.payload["hangup_source"] == "caller"
    assert hangup.payload["client_state"] == "Ynll"  # a command's client_state applies at once
    for name, body in [("hangup", {}), ("speak", {"payload": "x", "voice": "female"}),
                       ("playback_start", {"audio_url": "https://e.com/a.wav"})]:
        again = await action(http, sim, cid, name, body)
        assert again.status == 422 and again.body["errors"][0]["code"] == "90018", name
    status = await request(http, "GET", f"{sim.api_url}/calls/{cid}")
    data = status.body["data"]
    assert data["is_alive"] is False and data["end_time"] and data["start_time"]
    assert isinstance(data["call_duration"], int)
    ledger = sim.find_call(cid)
    assert ledger is not None and [a["action"] for a in ledger.actions] == ["hangup"]


async def test_hangup_while_ringing_is_originator_cancel(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await _sim(make_sim)
    cid = (await dial(http, sim, RINGING)).body["data"]["call_control_id"]
    played = await action(http, sim, cid, "playback_start", {"audio_url": "https://e.com/a.wav"})
    assert played.status == 422 and played.body["errors"][0]["code"] == "90034"
    assert (await action(http, sim, cid, "hangup")).status == 200
    hangup = await receiver.wait_hangup(cid)
    assert receiver.types(cid) == ["call.initiated", "call.hangup"]
    assert hangup.payload["hangup_cause"] == "originator_cancel"


async def test_unknown_call_and_unknown_action(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await _sim(make_sim)
    unknown = await action(http, sim, "v3:nope", "hangup")
    assert unknown.status == 422 and unknown.body["errors"][0]["code"] == "90015"
    missing = await request(http, "GET", f"{sim.api_url}/calls/v3:nope")
    assert missing.status == 404 and missing.body["errors"][0]["code"] == "10005"
    cid = (await dial(http, sim, RINGING)).body["data"]["call_control_id"]
    bogus = await action(http, sim, cid, "fly_to_the_moon")
    assert bogus.status == 404 and bogus.body["errors"]


async def test_playback_runs_to_completion_or_is_cut_by_hangup(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await _sim(make_sim)
    cid = await _answered_call(sim, receiver, http)
    url = "https://example.com/message.mp3"
    assert (await action(http, sim, cid, "playback_start", {"audio_url": url})).status == 200
    ended = await receiver.wait_event(cid, "call.playback.ended")
    started = next(d for d in receiver.for_call(cid) if d.event_type == "call.playback.started")
    assert started.payload["media_url"] == url and started.payload["overlay"] is False
    assert ended.payload["status"] == "completed" and ended.payload["media_url"] == url
    assert ended.at - started.at >= 0.5  # 6 s of audio at speed 10
    # A second playback, cut short by our hangup: ended with call_hangup, before call.hangup.
    assert (await action(http, sim, cid, "playback_start", {"media_name": "promo"})).status == 200
    await asyncio.sleep(0.05)
    assert (await action(http, sim, cid, "hangup")).status == 200
    await receiver.wait_hangup(cid)
    types = receiver.types(cid)
    assert types[-3:] == ["call.playback.started", "call.playback.ended", "call.hangup"]
    last_ended = [d for d in receiver.for_call(cid) if d.event_type == "call.playback.ended"][-1]
    assert last_ended.payload["status"] == "call_hangup"
    assert last_ended.payload["media_name"] == "promo"
    ledger = sim.find_call(cid)
    assert ledger is not None and ledger.playback_completed
    assert ledger.actions[0]["action"] == "playback_start" and ledger.actions[0]["audio_url"] == url


async def test_playback_stop_cancels_and_speak_completes(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await _sim(make_sim)
    cid = await _answered_call(sim, receiver, http)
    assert (await action(http, sim, cid, "playback_start",
                         {"audio_url": "https://e.com/a.wav", "loop": "infinity"})).status == 200
    assert (await action(http, sim, cid, "playback_stop")).status == 200
    stopped = await receiver.wait_event(cid, "call.playback.ended")
    assert stopped.payload["status"] == "cancelled"
    spoken = await action(http, sim, cid, "speak",
                          {"payload": "Your appointment is tomorrow", "voice": "female"})
    assert spoken.status == 200
    ended = await receiver.wait_event(cid, "call.speak.ended")
    assert ended.payload["status"] == "completed"
    ledger = sim.find_call(cid)
    assert ledger is not None and ledger.speak_completed and not ledger.playback_completed


async def test_client_state_update_applies_to_later_webhooks(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await _sim(make_sim)
    cid = await _answered_call(sim, receiver, http, client_state="b2xk")
    assert receiver.for_call(cid)[0].payload["client_state"] == "b2xk"
    assert (await action(http, sim, cid, "client_state_update", {"client_state": "bmV3"},
                         method="PUT")).status == 200
    assert (await action(http, sim, cid, "hangup")).status == 200
    hangup = await receiver.wait_hangup(cid)
    assert hangup.payload["client_state"] == "bmV3"
    ledger = sim.find_call(cid)
    assert ledger is not None and ledger.client_state == "b2xk"  # as sent on dial


async def test_transfer_then_the_call_ends_normally(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=100.0, pinned={HUMAN: "human"})
    cid = await _answered_call(sim, receiver, http)
    assert (await action(http, sim, cid, "transfer", {"to": "+15557770000"})).status == 200
    hangup = await receiver.wait_hangup(cid, timeout=5)
    assert hangup.payload["hangup_cause"] == "normal_clearing"
    ledger = sim.find_call(cid)
    assert ledger is not None and ledger.actions[0] == {**ledger.actions[0], "to": "+15557770000"}


async def test_command_id_on_a_command_is_applied_once(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await _sim(make_sim)
    cid = await _answered_call(sim, receiver, http)
    body = {"payload": "Hello", "voice": "female", "command_id": "say-1"}
    assert (await action(http, sim, cid, "speak", body)).status == 200
    assert (await action(http, sim, cid, "speak", body)).status == 200
    await receiver.wait_event(cid, "call.speak.ended")
    await asyncio.sleep(0.3)
    assert receiver.types(cid).count("call.speak.started") == 1


async def test_command_bodies_are_validated(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await _sim(make_sim)
    cid = await _answered_call(sim, receiver, http)
    cases = [
        ("playback_start", {}, [("10004", "/audio_url")]),
        ("playback_start", {"audio_url": "https://e.com/a.wav", "media_name": "x"},
         [("10002", "/media_name")]),
        ("playback_start", {"audio_url": "ftp://nope"}, [("10002", "/audio_url")]),
        ("playback_start", {"audio_url": "https://e.com/a.wav", "loop": 0}, [("10002", "/loop")]),
        ("playback_start", {"audio_url": "https://e.com/a.wav", "audio_type": "ogg"},
         [("10032", "/audio_type")]),
        ("speak", {"payload": "hi"}, [("10004", "/voice")]),
        ("speak", {}, [("10004", "/payload"), ("10004", "/voice")]),
        ("speak", {"payload": 5, "voice": "female"}, [("10002", "/payload")]),
        ("transfer", {}, [("10004", "/to")]),
        ("transfer", {"to": "5551234"}, [("10016", "/to")]),
        ("transfer", {"to": "+15551234567", "timeout_secs": 1}, [("10033", "/timeout_secs")]),
        ("client_state_update", {}, [("10004", "/client_state")]),
        ("hangup", {"client_state": "not base64!"}, [("10002", "/client_state")]),
    ]
    for name, body, expected in cases:
        answer = await action(http, sim, cid, name, body)
        assert answer.status == 422, (name, body, answer.body)
        got = [(e["code"], e["source"]["pointer"]) for e in answer.body["errors"]]
        assert got == expected, (name, body, got)
    ledger = sim.find_call(cid)
    assert ledger is not None and ledger.actions == []  # nothing was carried out
    assert ledger.ended_at is None


async def test_get_forgets_a_call_after_the_retention_time(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(call_retention_secs=0.2, pinned={"+15556000009": "busy"})
    cid = (await dial(http, sim, "+15556000009")).body["data"]["call_control_id"]
    await receiver.wait_hangup(cid)
    assert (await request(http, "GET", f"{sim.api_url}/calls/{cid}")).status == 200
    await asyncio.sleep(0.25)
    assert (await request(http, "GET", f"{sim.api_url}/calls/{cid}")).status == 404
    late = await action(http, sim, cid, "hangup")  # still known as ended, not as unknown
    assert late.status == 422 and late.body["errors"][0]["code"] == "90018"
