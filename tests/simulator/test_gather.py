"""Keypad prompts in the simulator: validation, the person's seeded answers, webhooks, ledger."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from dialer.simulator.config import load_keypad_file
from dialer.simulator.gather import GatherSpec, plan_gather
from tests.simulator.conftest import Receiver, SimFactory, action, dial

HUMAN = "+15557000001"
SPEAK = {"payload": "Press 1 or 2", "voice": "female", "valid_digits": "12",
         "minimum_digits": 1, "maximum_digits": 1, "maximum_tries": 1, "timeout_millis": 3000}


@pytest.mark.fast
def test_plans_follow_the_mix() -> None:
    spec = GatherSpec(prompt_secs=3.0, valid_digits="129", minimum_digits=1, maximum_digits=1,
                      maximum_tries=1, timeout_secs=5.0)
    keypad = {"valid": 0.7, "invalid": 0.1, "timeout": 0.1, "hangup": 0.1}
    plans = [plan_gather(spec, random.Random(i), keypad, {"1": 5.0}) for i in range(2000)]
    by = Counter(p.behaviour for p in plans)
    assert 1250 < by["valid"] < 1550 and all(by[b] > 100 for b in ("invalid", "timeout", "hangup"))
    keys = Counter(p.digits for p in plans if p.behaviour == "valid")
    assert set(keys) == {"1", "2", "9"} and keys["1"] > 3 * keys["2"]
    for p in plans:
        if p.behaviour == "valid":
            assert p.status == "valid" and [k for _, k in p.presses] == [p.digits]
        elif p.behaviour == "invalid":
            assert p.status == "invalid" and p.digits not in "129"
        elif p.behaviour == "timeout":
            assert p.status == "timeout" and p.presses == () and p.end_at == 8.0
        else:
            assert p.hangup and p.end_at < 3.0
        assert all(a <= p.end_at for a, _ in p.presses)


@pytest.mark.fast
def test_tries_and_multi_digit() -> None:
    spec = GatherSpec(prompt_secs=2.0, valid_digits="0123456789#", minimum_digits=2,
                      maximum_digits=4, maximum_tries=3, timeout_secs=1.0)
    for i in range(200):
        p = plan_gather(spec, random.Random(i), {"valid": 1, "timeout": 1}, {})
        assert p.tries <= 3
        if p.status == "valid":
            assert 2 <= len(p.digits) <= 4 and "#" not in p.digits


async def test_gather_answers_and_ledger(make_sim: SimFactory, receiver: Receiver,
                                         http: aiohttp.ClientSession) -> None:
    sim = await make_sim(speed=20.0, pinned={HUMAN: "human"}, keypad={"valid": 1.0},
                         key_weights={"2": 1.0, "1": 0.0})
    cid = (await dial(http, sim, HUMAN)).body["data"]["call_control_id"]
    await receiver.wait_event(cid, "call.answered")
    ok = await action(http, sim, cid, "gather_using_speak", {**SPEAK, "client_state": "Z2F0"})
    assert ok.status == 200
    ended = await receiver.wait_event(cid, "call.gather.ended")
    assert ended.payload["status"] == "valid" and ended.payload["digits"] == "2"
    assert ended.payload["client_state"] == "Z2F0"
    dtmf = await receiver.wait_event(cid, "call.dtmf.received")
    assert dtmf.payload["digit"] == "2"
    led = sim.find_call(cid)
    assert led is not None and led.gathers[0]["digits"] == "2"
    assert led.gathers[0]["status"] == "valid" and led.gathers[0]["pressed"] == "2"
    assert led.actions[-1]["action"] == "gather_using_speak"
    await action(http, sim, cid, "hangup")
    await receiver.wait_hangup(cid)
    again = await action(http, sim, cid, "gather_using_speak", SPEAK)
    assert again.status == 422 and again.body["errors"][0]["code"] == "90018"


async def test_hangup_mid_prompt_ends_the_gather(make_sim: SimFactory, receiver: Receiver,
                                                 http: aiohttp.ClientSession) -> None:
    sim = await make_sim(speed=20.0, pinned={HUMAN: "human"}, keypad={"hangup": 1.0})
    cid = (await dial(http, sim, HUMAN)).body["data"]["call_control_id"]
    await receiver.wait_event(cid, "call.answered")
    assert (await action(http, sim, cid, "gather_using_audio",
                         {"audio_url": "https://e.com/menu.wav", "valid_digits": "1"})
            ).status == 200
    await receiver.wait_hangup(cid)
    ended = await receiver.wait_event(cid, "call.gather.ended")
    assert ended.payload["status"] == "call_hangup"
    led = sim.find_call(cid)
    assert led is not None and led.gathers == [
        {**led.gathers[0], "status": "call_hangup", "digits": "", "behaviour": "hangup"}]
    assert led.hangup_source == "callee"


@pytest.mark.parametrize("name, body, code", [
    ("gather_using_speak", {"voice": "female"}, "10004"),
    ("gather_using_speak", {**SPEAK, "valid_digits": "12a"}, "10002"),
    ("gather_using_speak", {**SPEAK, "minimum_digits": 3, "maximum_digits": 2}, "10002"),
    ("gather_using_speak", {**SPEAK, "maximum_digits": 500}, "10033"),
    ("gather_using_speak", {**SPEAK, "payload": "x" * 3001}, "10033"),
    ("gather_using_audio", {"valid_digits": "1"}, "10004"),
    ("gather_using_audio", {"audio_url": "https://e.com/a.wav", "media_name": "m"}, "10002"),
])
async def test_bad_gathers_are_refused(make_sim: SimFactory, receiver: Receiver,
                                       http: aiohttp.ClientSession, name: str,
                                       body: dict[str, object], code: str) -> None:
    sim = await make_sim(speed=20.0, pinned={HUMAN: "human"})
    cid = (await dial(http, sim, HUMAN)).body["data"]["call_control_id"]
    await receiver.wait_event(cid, "call.answered")
    answer = await action(http, sim, cid, name, body)
    assert answer.status == 422, answer.body
    assert code in [e["code"] for e in answer.body["errors"]]


@pytest.mark.fast
def test_a_prompt_with_one_key_is_mostly_listened_to() -> None:
    spec = GatherSpec(prompt_secs=2.0, valid_digits="9", minimum_digits=1, maximum_digits=1,
                      maximum_tries=1, timeout_secs=1.0)
    plans = [plan_gather(spec, random.Random(i), {"valid": 1.0}, {}, 0.05) for i in range(1000)]
    pressed = sum(p.digits == "9" for p in plans)
    assert 20 < pressed < 90 and all(p.status in ("valid", "timeout") for p in plans)


@pytest.mark.fast
def test_keypad_tables_of_a_scenarios_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[mix]\nhuman = 1\n[keypad]\nvalid = 3\nhangup = 1\n[keys]\n"1" = 5\n')
    assert load_keypad_file(path) == {"keypad": {"valid": 3.0, "hangup": 1.0},
                                      "key_weights": {"1": 5.0}}
    path.write_text('[keypad]\nshout = 1\n')
    with pytest.raises(ValueError, match="unknown keypad behaviour 'shout'"):
        load_keypad_file(path)
