"""Scenario choice and timelines: each scenario under each AMD mode, determinism, durations."""

from __future__ import annotations

import itertools
from collections import Counter

import aiohttp
import pytest

from dialer.simulator.config import DEFAULT_MIX, SCENARIOS
from dialer.simulator.scenarios import call_rng, choose_scenario, plan_call
from tests.simulator.conftest import Receiver, SimFactory, dial

AMD_MODES = ("disabled", "detect", "detect_beep", "detect_words", "greeting_end", "premium")
ANSWERING = ("human", "machine_beep", "machine_no_beep", "fax", "silence")

# (scenario, mode) -> expected AMD events after call.answered, as (event_type, result)
DET = "call.machine.detection.ended"
GREET = "call.machine.greeting.ended"
PDET = "call.machine.premium.detection.ended"
PGREET = "call.machine.premium.greeting.ended"


def expected_amd(scenario: str, mode: str,
                 premium_human: str | None = None) -> list[tuple[str, str]]:
    if mode == "disabled" or scenario not in ANSWERING:
        return []
    if mode == "premium":
        result = {"human": premium_human, "machine_beep": "machine", "machine_no_beep": "machine",
                  "fax": "fax_detected", "silence": "silence"}[scenario]
        out = [(PDET, str(result))]
        if scenario == "machine_beep":
            out.append((PGREET, "beep_detected"))
        return out
    result = {"human": "human", "fax": "not_sure", "silence": "not_sure"}.get(scenario, "machine")
    out = [(DET, result)]
    if scenario == "machine_beep" and mode != "detect":
        out.append((GREET, "beep_detected"))
    if scenario == "machine_no_beep" and mode == "greeting_end":
        out.append((GREET, "ended"))
    if scenario == "machine_no_beep" and mode == "detect_words":
        out.append((GREET, "not_sure"))
    return out


EXPECTED_HANGUP = {
    "human": ("normal_clearing", "callee", "200"),
    "machine_beep": ("normal_clearing", "callee", "200"),
    "machine_no_beep": ("normal_clearing", "callee", "200"),
    "fax": ("normal_clearing", "callee", "200"),
    "silence": ("normal_clearing", "callee", "200"),
    "busy": ("user_busy", "callee", "486"),
    "rejected": ("call_rejected", "callee", "603"),
    "not_found": ("not_found", "callee", "404"),
    "no_answer": ("timeout", "caller", "487"),
}


@pytest.mark.parametrize("scenario,mode", list(itertools.product(SCENARIOS, AMD_MODES)))
def test_plan_amd_events_per_mode(scenario: str, mode: str) -> None:
    for nth in range(5):
        plan = plan_call(scenario, call_rng(7, "+15551230000", nth), amd_mode=mode)
        got = [(e.event_type, e.result) for e in plan.amd_events]
        human = got[0][1] if scenario == "human" and mode == "premium" else None
        expected = expected_amd(scenario, mode, human)
        if scenario == "machine_beep" and mode == "premium" and got and got[0][0] == PGREET:
            expected = [(PGREET, "beep_detected")]  # beep before detection ended: greeting only
        assert got == expected
        if human is not None:
            assert human in ("human_residence", "human_business")
        assert (plan.hangup.cause, plan.hangup.source, plan.hangup.sip) == EXPECTED_HANGUP[scenario]
        assert (plan.answer_at is not None) == (scenario in ANSWERING)
        times = [e.at for e in plan.amd_events]
        assert times == sorted(times)
        if plan.answer_at is not None:
            assert 2.0 <= plan.answer_at <= 10.0
            assert all(plan.answer_at < t < plan.hangup.at for t in times)


def test_realistic_durations() -> None:
    for nth in range(50):
        human = plan_call("human", call_rng(1, "+15550000000", nth))
        assert human.answer_at is not None and 20 <= human.hangup.at - human.answer_at <= 60
        machine = plan_call("machine_beep", call_rng(1, "+15550000000", nth),
                            amd_mode="detect_beep")
        beep = next(e.at for e in machine.amd_events if e.result == "beep_detected")
        assert 25 <= machine.hangup.at - beep <= 36
        assert machine.answer_at is not None and 3 <= beep - machine.answer_at <= 8.5
    assert plan_call("no_answer", call_rng(1, "+1", 0), timeout_secs=45).hangup.at == 45


def test_no_answer_cause_follows_retry_on_timeout() -> None:
    rng = call_rng(1, "+15550000000", 0)
    assert plan_call("no_answer", rng, retry_on_timeout=False).hangup.cause == "no_answer"
    assert plan_call("no_answer", rng, retry_on_timeout=True).hangup.cause == "timeout"


def test_ringing_longer_than_timeout_is_not_answered() -> None:
    plans = [plan_call("human", call_rng(3, "+15550000000", n), timeout_secs=5) for n in range(40)]
    unanswered = [p for p in plans if p.answer_at is None]
    assert unanswered and len(unanswered) < len(plans)
    assert all(p.hangup.cause == "timeout" and p.hangup.at == 5 for p in unanswered)


def test_time_limit_cuts_the_call() -> None:
    plans = [plan_call("human", call_rng(3, "+15550000000", n), time_limit_secs=30)
             for n in range(40)]
    limited = [p for p in plans if p.hangup.cause == "time_limit"]
    assert limited
    assert all(p.answer_at is not None and p.hangup.at == pytest.approx(p.answer_at + 30)
               for p in limited)


def test_scenario_choice_is_deterministic_and_follows_the_mix() -> None:
    def pick(seed: int, nth: int, number: str = "+15550000001") -> str:
        return choose_scenario(call_rng(seed, number, nth), number, DEFAULT_MIX, {})

    assert [pick(1, n) for n in range(30)] == [pick(1, n) for n in range(30)]
    assert [pick(1, n) for n in range(30)] != [pick(2, n) for n in range(30)]
    assert len({pick(1, n) for n in range(30)}) > 1  # retries to one number vary
    counts = Counter(pick(5, 0, f"+1555{i:07d}") for i in range(4000))
    for name, weight in DEFAULT_MIX.items():
        assert counts[name] / 4000 == pytest.approx(weight, abs=0.03)
    pinned = {"+15550000001": "fax"}
    assert {choose_scenario(call_rng(1, "+15550000001", n), "+15550000001", DEFAULT_MIX, pinned)
            for n in range(10)} == {"fax"}


async def test_every_scenario_under_every_amd_mode_end_to_end(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """54 real calls over HTTP; each call's webhooks arrive in order with the expected results."""
    combos = list(itertools.product(SCENARIOS, AMD_MODES))
    pinned = {f"+1555700{i:04d}": scenario for i, (scenario, _) in enumerate(combos)}
    sim = await make_sim(speed=200.0, pinned=pinned)
    calls: dict[str, tuple[str, str]] = {}
    for i, (scenario, mode) in enumerate(combos):
        answer = await dial(http, sim, f"+1555700{i:04d}", answering_machine_detection=mode,
                            client_state="c3RhdGU=")
        assert answer.status == 200, answer.body
        calls[answer.body["data"]["call_control_id"]] = (scenario, mode)
    assert await sim.wait_idle(timeout=15)
    for cid, (scenario, mode) in calls.items():
        deliveries = receiver.for_call(cid)
        types = [d.event_type for d in deliveries]
        assert types[0] == "call.initiated" and types[-1] == "call.hangup", (scenario, mode, types)
        assert deliveries[0].payload["direction"] == "outgoing"
        assert deliveries[0].payload["state"] == "bridging"
        amd = [(d.event_type, d.payload["result"]) for d in deliveries if "machine" in d.event_type]
        human = amd[0][1] if scenario == "human" and mode == "premium" else None
        expected = expected_amd(scenario, mode, human)
        if scenario == "machine_beep" and mode == "premium" and amd and amd[0][0] == PGREET:
            expected = [(PGREET, "beep_detected")]
        assert amd == expected, (scenario, mode)
        answered = scenario in ANSWERING
        assert ("call.answered" in types) == answered
        if answered:
            assert types[1] == "call.answered"
        hangup = deliveries[-1].payload
        assert (hangup["hangup_cause"], hangup["hangup_source"], hangup["sip_hangup_cause"]) == \
            EXPECTED_HANGUP[scenario]
        assert all(d.payload["client_state"] == "c3RhdGU=" for d in deliveries)
        ledger = sim.find_call(cid)
        assert ledger is not None and ledger.scenario == scenario and ledger.amd_mode == mode
        assert ledger.hangup_cause == hangup["hangup_cause"]
        assert [e["id"] for e in ledger.events] == [d.data["id"] for d in deliveries]


async def test_same_seed_replays_the_same_calls(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    numbers = [f"+1555800{i:04d}" for i in range(20)] * 2  # each number twice: nth 0 and 1
    runs = []
    for _ in range(2):
        sim = await make_sim(seed=42, default_webhook_url=None)
        for number in numbers:
            assert (await dial(http, sim, number)).status == 200
        runs.append([c.scenario for c in sim.ledger])
    assert runs[0] == runs[1]
    other = await make_sim(seed=43, default_webhook_url=None)
    for number in numbers:
        await dial(http, other, number)
    assert [c.scenario for c in other.ledger] != runs[0]
