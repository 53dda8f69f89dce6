"""Account limits and dial idempotency: dials per second (rolling window), channels, command_id,
and the dial faults (5xx before/after placing, slow answers)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from dialer.simulator import FaultConfig
from tests.simulator.conftest import Receiver, SimFactory, dial, request


async def test_over_the_rolling_window_is_429_and_places_nothing(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    # 20 dials/s over a rolling 0.5 s window = 10 dials per window.
    sim = await make_sim(cps_limit=20, cps_window_secs=0.5, default_webhook_url=None)
    answers = await asyncio.gather(*(dial(http, sim, f"+1555100{i:04d}") for i in range(15)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * 10 + [429] * 5
    limited = [a for a in answers if a.status == 429]
    for answer in limited:
        assert answer.body["errors"][0]["code"] == "90103"
        assert answer.headers["x-ratelimit-limit"] == "10"
        assert answer.headers["x-ratelimit-remaining"] == "0"
        assert int(answer.headers["x-ratelimit-reset"]) >= 1
    assert len(sim.ledger) == 10
    stats = sim.stats()
    assert stats["rejected_429"] == 5 and stats["calls_placed"] == 10
    assert stats["dials_received"] == 15 and stats["max_dials_in_any_1s"] == 15
    assert stats["max_dials_in_any_100ms"] >= 2
    await asyncio.sleep(0.55)  # the window rolls on: dials are allowed again
    assert (await dial(http, sim, "+15551009999")).status == 200
    assert len(sim.ledger) == 11


async def test_default_limit_is_150_dials_per_rolling_5_seconds(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(cps_limit=30, default_webhook_url=None)
    answers = [await dial(http, sim, f"+1555200{i:04d}") for i in range(151)]
    assert [a.status for a in answers] == [200] * 150 + [429]
    assert len(sim.ledger) == 150


async def test_repeated_command_id_returns_the_first_answer_and_places_nothing(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(default_webhook_url=None)
    first = await dial(http, sim, "+15553000001", command_id="attempt-1", client_state="YQ==")
    again = await dial(http, sim, "+15553000001", command_id="attempt-1", client_state="YQ==")
    other = await dial(http, sim, "+15553000001", command_id="attempt-2")
    assert first.status == again.status == other.status == 200
    assert again.body == first.body
    assert other.body["data"]["call_control_id"] != first.body["data"]["call_control_id"]
    assert len(sim.ledger) == 2 and sim.ledger[0].command_id == "attempt-1"
    assert sim.stats()["duplicate_command_ids"] == 1


async def test_a_429_does_not_burn_the_command_id(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(cps_limit=1, cps_window_secs=0.3, default_webhook_url=None)
    assert (await dial(http, sim, "+15553000002")).status == 200
    assert (await dial(http, sim, "+15553000003", command_id="c-1")).status == 429
    await asyncio.sleep(0.35)
    placed = await dial(http, sim, "+15553000003", command_id="c-1")
    assert placed.status == 200 and len(sim.ledger) == 2


async def test_over_the_channel_limit_the_call_fails_with_sip_403(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(channels=2, speed=20.0, pinned={
        "+15554000001": "human", "+15554000002": "human", "+15554000003": "human"})
    ids = []
    for n in (1, 2, 3):
        answer = await dial(http, sim, f"+1555400000{n}", client_state="eA==")
        assert answer.status == 200  # accepted: the failure comes as webhooks
        ids.append(answer.body["data"]["call_control_id"])
    hangup = await receiver.wait_hangup(ids[2])
    assert receiver.types(ids[2]) == ["call.initiated", "call.hangup"]
    assert hangup.payload["sip_hangup_cause"] == "403"
    assert hangup.payload["hangup_cause"] == "unspecified"
    assert hangup.payload["client_state"] == "eA=="
    assert sim.stats()["channel_limit_failures"] == 1
    assert sim.ledger[2].channel_limited and not sim.ledger[0].channel_limited
    assert sim.stats()["live_calls"] == 2
    # Once a channel frees up, dials succeed again.
    await request(http, "POST", f"{sim.api_url}/calls/{ids[0]}/actions/hangup", {})
    answer = await dial(http, sim, "+15554000001")
    assert answer.status == 200
    await receiver.wait_event(answer.body["data"]["call_control_id"], "call.answered")


async def test_dial_5xx_fault_places_nothing(make_sim: SimFactory,
                                             http: aiohttp.ClientSession) -> None:
    sim = await make_sim(default_webhook_url=None, faults=FaultConfig(dial_5xx=1.0))
    answer = await dial(http, sim, "+15555000001", command_id="x")
    assert answer.status == 500 and answer.body["errors"][0]["code"] == "10007"
    assert sim.ledger == []
    sim.set_faults(FaultConfig())
    assert (await dial(http, sim, "+15555000001", command_id="x")).status == 200
    assert len(sim.ledger) == 1


async def test_dial_5xx_after_place_then_resend_gets_the_first_call(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(faults=FaultConfig(dial_5xx_after_place=1.0),
                         pinned={"+15555000002": "busy"})
    failed = await dial(http, sim, "+15555000002", command_id="attempt-7", client_state="Nw==")
    assert failed.status == 500
    assert len(sim.ledger) == 1  # the call IS placed
    cid = sim.ledger[0].call_control_id
    await receiver.wait_hangup(cid)  # and its webhooks come
    # The re-send with the same command_id returns the real answer of the first dial, even while
    # the fault is still on, and places nothing new.
    again = await dial(http, sim, "+15555000002", command_id="attempt-7", client_state="Nw==")
    assert again.status == 200 and again.body["data"]["call_control_id"] == cid
    assert len(sim.ledger) == 1


async def test_slow_dial_answers_late_but_places_the_call(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(default_webhook_url=None,
                         faults=FaultConfig(dial_slow=1.0, dial_slow_secs=0.3))
    started = time.monotonic()
    answer = await dial(http, sim, "+15555000003", command_id="slow")
    assert answer.status == 200 and time.monotonic() - started >= 0.3
    assert sim.stats()["dial_slow_injected"] == 1 and len(sim.ledger) == 1


async def test_faults_change_at_run_time_over_http(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(default_webhook_url=None)
    base = sim.api_url.removesuffix("/v2")
    answer = await request(http, "POST", base + "/_simulator/faults", {"dial_5xx": 1.0})
    assert answer.status == 200 and answer.body["data"]["dial_5xx"] == 1.0
    assert sim.faults.dial_5xx == 1.0
    assert (await dial(http, sim, "+15555000004")).status == 500
    bad = await request(http, "POST", base + "/_simulator/faults", {"drop": 2})
    assert bad.status == 422 and bad.body["errors"][0]["code"] == "10002"
    unknown = await request(http, "POST", base + "/_simulator/faults", {"explode": 1})
    assert unknown.status == 422
    current = await request(http, "GET", base + "/_simulator/faults")
    assert current.body["data"]["dial_5xx"] == 1.0 and current.body["data"]["drop"] == 0.0
