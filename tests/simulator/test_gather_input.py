"""Keypad prompts: null fields, what is validated (and what is not), the terminating digit, the
documented defaults, and replaying the answers with the same seed."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest

from dialer.simulator import Simulator
from dialer.simulator import calls as calls_module
from dialer.simulator.actions import normalize_action_body, validate_action
from dialer.simulator.calls import Gathering, SimCall
from dialer.simulator.gather import ALL_KEYS, GatherPlan, GatherSpec, gather_rng, plan_gather
from dialer.simulator.ledger import LedgerCall
from dialer.simulator.scenarios import plan_call
from tests.simulator.conftest import Receiver, SimFactory, action, dial

HUMAN = "+15557100001"
SPEAK = {"payload": "Press 1", "voice": "female"}


async def _answered(sim: Simulator, receiver: Receiver, http: aiohttp.ClientSession,
                    to: str = HUMAN, **extra: Any) -> str:
    answer = await dial(http, sim, to, **extra)
    assert answer.status == 200, answer.body
    cid: str = answer.body["data"]["call_control_id"]
    await receiver.wait_event(cid, "call.answered")
    return cid


def _codes(answer: Any) -> list[tuple[str, str]]:
    return [(e["code"], e["source"]["pointer"]) for e in answer.body["errors"]]


# --- 1, 2: a JSON null is a field not given ----------------------------------------------------


async def test_null_optional_fields_take_their_defaults(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    # Every prompt times out (60 s by default: far longer than this test), so each one stays
    # running until the next replaces it.
    sim = await make_sim(speed=10.0, pinned={HUMAN: "human"}, keypad={"timeout": 1.0})
    cid = await _answered(sim, receiver, http)
    first = await action(http, sim, cid, "gather_using_speak", {**SPEAK, "command_id": "g1"})
    assert first.status == 200
    body = {**SPEAK, "minimum_digits": None, "maximum_digits": None, "maximum_tries": None,
            "timeout_millis": None, "inter_digit_timeout_millis": None, "valid_digits": None,
            "terminating_digit": None, "invalid_payload": None, "language": None,
            "voice_settings": None, "client_state": None, "command_id": "g2"}
    answer = await action(http, sim, cid, "gather_using_speak", body)
    assert answer.status == 200, answer.body
    led = sim.find_call(cid)
    assert led is not None
    assert [g["status"] for g in led.gathers] == ["cancelled"]  # g1 replaced by g2
    assert led.actions[-1]["request"] == {**SPEAK, "command_id": "g2"}  # nulls left out
    # The same command_id again: ok, and nothing happens.
    assert (await action(http, sim, cid, "gather_using_speak", body)).status == 200
    assert len(led.gathers) == 1 and len(led.actions) == 2
    audio = await action(http, sim, cid, "gather_using_audio",
                         {"audio_url": None, "media_name": "menu", "invalid_audio_url": None})
    assert audio.status == 200, audio.body
    assert led.actions[-1]["request"] == {"media_name": "menu"}


async def test_null_required_fields_are_missing(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=10.0, pinned={HUMAN: "human"}, keypad={"timeout": 1.0})
    cid = await _answered(sim, receiver, http)
    for name, body, pointer in [
        ("gather_using_speak", {"payload": None, "voice": "female"}, "/payload"),
        ("gather_using_speak", {"payload": "Press 1", "voice": None}, "/voice"),
        ("gather_using_audio", {"audio_url": None}, "/audio_url"),
        ("speak", {"payload": None, "voice": "female"}, "/payload"),
        ("client_state_update", {"client_state": None}, "/client_state"),
    ]:
        answer = await action(http, sim, cid, name, body)
        assert answer.status == 422 and _codes(answer) == [("10004", pointer)], (name, body)
    led = sim.find_call(cid)
    assert led is not None and led.actions == [] and led.gathers == []


async def test_a_refused_command_changes_nothing(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """A command that is refused (422), or that fails (500), neither cancels the prompt running
    nor uses up its command_id: sent again, correct, it is carried out."""
    sim = await make_sim(speed=10.0, pinned={HUMAN: "human"}, keypad={"timeout": 1.0})
    cid = await _answered(sim, receiver, http)
    assert (await action(http, sim, cid, "gather_using_speak", SPEAK)).status == 200
    led = sim.find_call(cid)
    assert led is not None
    bad = await action(http, sim, cid, "gather_using_speak",
                       {**SPEAK, "maximum_digits": 0, "command_id": "g2"})
    assert bad.status == 422
    assert led.gathers == [] and len(led.actions) == 1
    good = await action(http, sim, cid, "gather_using_speak", {**SPEAK, "command_id": "g2"})
    assert good.status == 200
    assert [g["status"] for g in led.gathers] == ["cancelled"] and len(led.actions) == 2


async def test_a_command_that_fails_inside_changes_nothing(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = await make_sim(speed=10.0, pinned={HUMAN: "human"}, keypad={"timeout": 1.0})
    cid = await _answered(sim, receiver, http)
    assert (await action(http, sim, cid, "gather_using_speak", SPEAK)).status == 200
    led = sim.find_call(cid)
    assert led is not None
    real = calls_module.plan_gather

    def broken(*args: Any, **kwargs: Any) -> GatherPlan:
        raise TypeError("boom")

    monkeypatch.setattr(calls_module, "plan_gather", broken)
    failed = await action(http, sim, cid, "gather_using_speak", {**SPEAK, "command_id": "g2"})
    assert failed.status == 500 and failed.body["errors"][0]["code"] == "10007"
    assert led.gathers == [] and len(led.actions) == 1
    monkeypatch.setattr(calls_module, "plan_gather", real)
    again = await action(http, sim, cid, "gather_using_speak", {**SPEAK, "command_id": "g2"})
    assert again.status == 200
    assert [g["status"] for g in led.gathers] == ["cancelled"] and len(led.actions) == 2


async def test_null_keys_are_not_pressed_as_text(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """valid_digits / terminating_digit null: the defaults (every key, '#'), not "None"."""
    sim = await make_sim(speed=20.0, pinned={HUMAN: "human"}, keypad={"valid": 1.0})
    cid = await _answered(sim, receiver, http)
    body = {**SPEAK, "valid_digits": None, "terminating_digit": None, "maximum_digits": 5,
            "timeout_millis": 2000, "maximum_tries": 1}
    assert (await action(http, sim, cid, "gather_using_speak", body)).status == 200
    ended = await receiver.wait_event(cid, "call.gather.ended")
    digits = ended.payload["digits"]
    assert ended.payload["status"] == "valid" and digits and set(digits) <= set("0123456789*")
    led = sim.find_call(cid)
    assert led is not None and led.gathers[0]["pressed"] == digits + "#"


@pytest.mark.fast
def test_normalize_drops_top_level_nulls_only() -> None:
    body = {"a": None, "b": 0, "c": "", "d": False, "voice_settings": {"type": "minimax",
                                                                        "language_boost": None}}
    assert normalize_action_body(body) == {"b": 0, "c": "", "d": False,
                                           "voice_settings": {"type": "minimax",
                                                              "language_boost": None}}
    assert validate_action("speak", {**SPEAK, "voice": "Minimax.speech-02-hd.Wise_Woman",
                                     "voice_settings": body["voice_settings"]}) == []
    assert GatherSpec.from_body({"minimum_digits": None, "timeout_millis": None,
                                 "valid_digits": None, "terminating_digit": None}, 1.0, 0.0) \
        == GatherSpec(prompt_secs=1.0)


# --- 3: the same seed replays the same answers --------------------------------------------------


async def _keypad_answers(sim: Simulator, receiver: Receiver, http: aiohttp.ClientSession,
                          numbers: list[str]) -> list[tuple[str, str, str, str]]:
    body = {**SPEAK, "valid_digits": "123", "maximum_digits": 3, "maximum_tries": 1,
            "timeout_millis": 1000}
    cids = []
    for n, to in enumerate(numbers):
        answer = await dial(http, sim, to, command_id=f"dial-{n}")
        assert answer.status == 200, answer.body
        cids.append(answer.body["data"]["call_control_id"])
    for cid in cids:
        await receiver.wait_event(cid, "call.answered")
    for cid in cids:
        assert (await action(http, sim, cid, "gather_using_speak", body)).status == 200
    out = []
    for cid in cids:
        await receiver.wait_event(cid, "call.gather.ended")
        led = sim.find_call(cid)
        assert led is not None
        g = led.gathers[0]
        out.append((led.to, g["behaviour"], g["digits"], g["pressed"]))
    return out


async def test_the_same_seed_replays_the_keypad_answers(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    numbers = [f"+1555720000{i}" for i in range(8)]
    settings: dict[str, Any] = {"speed": 20.0, "pinned": dict.fromkeys(numbers, "human"),
                                "keypad": {"valid": 1.0, "invalid": 1.0}}
    first = await _keypad_answers(await make_sim(seed=7, **settings), receiver, http, numbers)
    second = await _keypad_answers(await make_sim(seed=7, **settings), receiver, http, numbers)
    assert first == second
    assert len({a[1:] for a in first}) > 2  # the answers vary from call to call
    other = await _keypad_answers(await make_sim(seed=8, **settings), receiver, http, numbers)
    assert other != first


@pytest.mark.fast
def test_gather_rng_depends_on_deterministic_facts_only() -> None:
    def draw(*key: Any) -> float:
        return gather_rng(*key).random()

    assert draw(1, "+15550000001", 0, 0) == draw(1, "+15550000001", 0, 0)
    assert len({draw(1, "+15550000001", 0, 0), draw(2, "+15550000001", 0, 0),
                draw(1, "+15550000002", 0, 0), draw(1, "+15550000001", 1, 0),
                draw(1, "+15550000001", 0, 1)}) == 5


# --- 4: documented defaults ---------------------------------------------------------------------


@pytest.mark.fast
def test_timeout_millis_defaults_to_60000() -> None:
    assert GatherSpec(prompt_secs=2.0).timeout_secs == 60.0
    spec = GatherSpec.from_body({}, 2.0, 0.0)
    assert (spec.timeout_secs, spec.inter_digit_secs, spec.maximum_tries) == (60.0, 5.0, 3)
    assert (spec.minimum_digits, spec.maximum_digits, spec.terminating_digit) == (1, 128, "#")
    plan = plan_gather(GatherSpec.from_body({"maximum_tries": 1}, 2.0, 0.0), random.Random(1),
                       {"timeout": 1.0}, {})
    assert plan.status == "timeout" and plan.end_at == 62.0


# --- 5: the terminating digit -------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize("valid, term", [("12", "#"), ("12#", "#"), ("12", "*"), ("123", "3"),
                                         ("0123456789*#", "#")])
def test_the_terminating_digit_is_never_an_answer(valid: str, term: str) -> None:
    spec = GatherSpec(prompt_secs=2.0, valid_digits=valid, minimum_digits=1, maximum_digits=3,
                      maximum_tries=2, timeout_secs=1.0, terminating_digit=term)
    keypad = {"valid": 1.0, "invalid": 1.0, "timeout": 0.2}
    statuses = set()
    for i in range(400):
        plan = plan_gather(spec, random.Random(i), keypad, {})
        statuses.add(plan.status)
        assert term not in plan.digits, (i, plan)
        keys = [k for _, k in plan.presses]
        if plan.status == "valid":
            assert set(plan.digits) <= set(valid)
            assert (keys[-1] == term) == (len(plan.digits) < spec.maximum_digits)
        if plan.status == "invalid":
            assert len(plan.digits) == 1 and plan.digits not in valid
            assert keys[-1] == term  # the wrong key, then the terminator ends the entry
    assert statuses >= {"valid", "timeout"}
    if set(ALL_KEYS) - set(valid) - {term}:
        assert "invalid" in statuses


@pytest.mark.fast
def test_only_the_terminator_valid_means_nothing_to_press() -> None:
    spec = GatherSpec(prompt_secs=2.0, valid_digits="#", maximum_tries=1, timeout_secs=1.0)
    for i in range(50):
        plan = plan_gather(spec, random.Random(i), {"valid": 1.0}, {})
        assert plan.status == "timeout" and plan.presses == ()


class _Host:
    speed = 1.0
    keypad: tuple[dict[str, float], dict[str, float], float] = ({"valid": 1.0}, {}, 0.05)

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def now(self) -> float:
        return 0.0

    def emit(self, call: SimCall, event_type: str, extra: dict[str, Any], *,
             final: bool) -> None:
        self.events.append((event_type, extra))

    def call_ended(self, call: SimCall) -> None:
        pass


@pytest.mark.fast
@pytest.mark.parametrize("term, pressed, digits", [
    ("*", ["1", "2"], "12"),
    ("*", ["9", "*", "1"], "1"),  # '*' ended the wrong entry; '1' is the one in progress
    ("*", ["1", "#"], "1#"),  # '#' is an ordinary key when '*' terminates
    ("#", ["1", "#"], ""),
])
def test_a_gather_cut_short_reports_the_entry_in_progress(term: str, pressed: list[str],
                                                          digits: str) -> None:
    host = _Host()
    ledger = LedgerCall("v3:x", "leg", "session", None, HUMAN, "+15550001000", "conn", None,
                        "human", "disabled", 0.0)
    call = SimCall(host, ledger, plan_call("human", random.Random(1)), {}, random.Random(1))
    plan = GatherPlan("valid", (), 10.0, "valid", "")
    call._gather = Gathering(plan, term, list(pressed), [])
    call._end_gather("cancelled")
    assert host.events == [("call.gather.ended", {"digits": digits, "status": "cancelled"})]
    assert ledger.gathers[0]["pressed"] == "".join(pressed)


async def test_the_terminating_digit_sent_is_honoured(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=20.0, pinned={HUMAN: "human"}, keypad={"valid": 1.0})
    cid = await _answered(sim, receiver, http)
    body = {**SPEAK, "valid_digits": "123", "terminating_digit": "*", "maximum_digits": 5,
            "timeout_millis": 2000, "maximum_tries": 1}
    assert (await action(http, sim, cid, "gather_using_speak", body)).status == 200
    ended = await receiver.wait_event(cid, "call.gather.ended")
    digits = ended.payload["digits"]
    assert ended.payload["status"] == "valid" and digits and set(digits) <= set("123")
    await asyncio.sleep(0.05)
    keys = [d.payload["digit"] for d in receiver.for_call(cid)
            if d.event_type == "call.dtmf.received"]
    assert sorted(keys) == sorted(digits + "*")
    led = sim.find_call(cid)
    assert led is not None and led.gathers[0]["pressed"] == digits + "*"


# --- 6: what is validated ----------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize("voice", ["male", "female", "Polly.Joanna", "AWS.Polly.Joanna-Neural",
                                   "Azure.en-US-Ava:DragonHDLatestNeural", "Telnyx",
                                   "Telnyx.KokoroTTS.af", "ElevenLabs.eleven_multilingual_v2.x",
                                   "Minimax.speech-02-hd.Wise_Woman", "Rime.Arcana.cove",
                                   "Resemble.Turbo.my_voice", "Inworld.Mini.Loretta",
                                   "FishAudio.s1.abc", "xAI.eve"])
def test_documented_voices_are_accepted(voice: str) -> None:
    for name in ("speak", "gather_using_speak"):
        assert validate_action(name, {**SPEAK, "voice": voice}) == [], (name, voice)


@pytest.mark.fast
@pytest.mark.parametrize("body, expected", [
    ({"voice": "Nonsense.Voice.X"}, [("10032", "/voice")]),
    ({"voice": "Polly."}, [("10032", "/voice")]),
    ({"voice": "Female"}, [("10032", "/voice")]),
    ({"voice": ""}, [("10033", "/voice")]),
    ({"voice_settings": {"type": "bogus"}}, [("10032", "/voice_settings/type")]),
    ({"voice_settings": {}}, [("10004", "/voice_settings/type")]),
    ({"voice_settings": "aws"}, [("10002", "/voice_settings")]),
    ({"voice_settings": {"type": "telnyx", "voice_speed": 5}},
     [("10033", "/voice_settings/voice_speed")]),
    ({"voice_settings": {"type": "azure", "gender": "x"}}, [("10032", "/voice_settings/gender")]),
])
def test_bad_voices_are_refused(body: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    for name in ("speak", "gather_using_speak"):
        problems = validate_action(name, {**SPEAK, **body})
        assert [(p.code, p.pointer) for p in problems] == expected, (name, body)


@pytest.mark.fast
@pytest.mark.parametrize("body", [
    {"voice_settings": {"type": "aws"}},
    {"voice_settings": {"type": "telnyx", "voice_speed": 1.5}},
    {"voice_settings": {"type": "elevenlabs", "api_key_ref": "k", "future_field": 1}},
    {"timeout_millis": 600001}, {"inter_digit_timeout_millis": 600001}, {"maximum_tries": 11},
    {"valid_digits": "0123456789*#0123"}, {"minimum_digits": 128},
])
def test_limits_the_docs_do_not_give_are_not_enforced(body: dict[str, Any]) -> None:
    assert validate_action("gather_using_speak", {**SPEAK, **body}) == []


@pytest.mark.fast
@pytest.mark.parametrize("body, expected", [
    ({"maximum_digits": 0}, [("10033", "/maximum_digits")]),
    ({"minimum_digits": 200}, [("10033", "/minimum_digits")]),
    ({"minimum_digits": 0}, [("10033", "/minimum_digits")]),
    ({"minimum_digits": 4, "maximum_digits": 3}, [("10002", "/maximum_digits")]),
    ({"minimum_digits": 4, "maximum_digits": "3"}, [("10002", "/maximum_digits")]),
    ({"maximum_digits": 200, "minimum_digits": 3}, [("10033", "/maximum_digits")]),
    ({"timeout_millis": 2**31}, [("10033", "/timeout_millis")]),
    ({"timeout_millis": 0}, [("10033", "/timeout_millis")]),
    ({"valid_digits": ""}, [("10002", "/valid_digits")]),
    ({"terminating_digit": "##"}, [("10002", "/terminating_digit")]),
])
def test_one_problem_per_mistake(body: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    problems = validate_action("gather_using_speak", {**SPEAK, **body})
    assert [(p.code, p.pointer) for p in problems] == expected


async def test_only_a_person_presses_keys(make_sim: SimFactory, receiver: Receiver,
                                          http: aiohttp.ClientSession) -> None:
    machine = "+15557100002"
    # Everyone who can press does (valid keys only); the machine answers and never does.
    sim = await make_sim(speed=50.0, pinned={HUMAN: "human", machine: "machine_beep"},
                         keypad={"valid": 1.0})
    ended = {}
    for to in (HUMAN, machine):
        cid = await _answered(sim, receiver, http, to)
        answer = await action(http, sim, cid, "gather_using_speak",
                              {**SPEAK, "valid_digits": "19", "timeout_millis": 1000})
        assert answer.status == 200, answer.body
        ended[to] = await receiver.wait_event(cid, "call.gather.ended")
    assert ended[HUMAN].payload["status"] == "valid"
    assert ended[machine].payload["status"] == "timeout" and not ended[machine].payload["digits"]
