"""What happens on a simulated call: the scenario and its timeline, as pure functions.

A call's scenario and every duration in it come from one random generator seeded by
(seed, destination number, nth call to that number): a rerun with the same seed replays the same
calls, while a retry to the same number may meet another scenario.

Times in a `CallPlan` are simulated seconds after the dial; the running call divides them by the
simulator's speed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Scenarios in which somebody (or something) picks up.
ANSWERING = frozenset({"human", "machine_beep", "machine_no_beep", "fax", "silence"})
MACHINES = frozenset({"machine_beep", "machine_no_beep"})
STANDARD_AMD = frozenset({"detect", "detect_beep", "detect_words", "greeting_end"})

# Telnyx AMD defaults (REFERENCE.md), in milliseconds.
_TOTAL_ANALYSIS_MS = 3500
_GREETING_SILENCE_MS = 1500

#: Seconds a playback of one audio file lasts (the simulator does not download audio).
PLAYBACK_SECS = 6.0
#: After `detect_words` detects a machine, the greeting event comes on a beep or after this long.
DETECT_WORDS_GREETING_TIMEOUT_SECS = 30.0


@dataclass(frozen=True)
class Hangup:
    at: float
    cause: str
    source: str
    sip: str


@dataclass(frozen=True)
class AmdEvent:
    at: float
    event_type: str
    result: str


@dataclass(frozen=True)
class CallPlan:
    """The call's timeline if the caller does nothing: answer, AMD events, the far end's hangup."""

    scenario: str
    answer_at: float | None
    amd_events: tuple[AmdEvent, ...]
    hangup: Hangup


def call_rng(seed: int, number: str, nth: int) -> random.Random:
    """The generator of the `nth` (0-based) call to `number`: stable across runs and platforms."""
    digest = hashlib.sha256(f"{seed}|{number}|{nth}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def choose_scenario(
    rng: random.Random, number: str, mix: Mapping[str, float], pinned: Mapping[str, str]
) -> str:
    """A pinned number always gets its scenario; otherwise a weighted draw from the mix.

    The draw happens even for a pinned number so the durations that follow do not depend on
    whether the number is pinned."""
    names = sorted(mix)
    draw = rng.random() * sum(mix[n] for n in names)
    chosen = names[-1]
    for name in names:
        draw -= mix[name]
        if draw < 0 and mix[name] > 0:
            chosen = name
            break
    return pinned.get(number, chosen)


def _amd_ms(config: Mapping[str, Any] | None, key: str, default: int) -> float:
    value = (config or {}).get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        value = default
    return float(value) / 1000.0


def plan_call(
    scenario: str,
    rng: random.Random,
    *,
    amd_mode: str = "disabled",
    amd_config: Mapping[str, Any] | None = None,
    timeout_secs: int = 30,
    time_limit_secs: int = 14400,
    retry_on_timeout: bool = True,
) -> CallPlan:
    """The timeline of one call. Durations follow common carrier experience: ringing 2-10 s,
    a person talks 20-60 s, a greeting lasts 3-8 s, a machine records ~30 s after its beep."""
    timeout_cause = "timeout" if retry_on_timeout else "no_answer"
    no_answer = Hangup(float(timeout_secs), timeout_cause, "caller", "487")
    if scenario == "busy":
        return CallPlan(
            scenario, None, (), Hangup(rng.uniform(0.5, 3.0), "user_busy", "callee", "486")
        )
    if scenario == "rejected":
        return CallPlan(
            scenario, None, (), Hangup(rng.uniform(2.0, 8.0), "call_rejected", "callee", "603")
        )
    if scenario == "not_found":
        return CallPlan(
            scenario, None, (), Hangup(rng.uniform(0.3, 1.5), "not_found", "callee", "404")
        )
    if scenario == "no_answer":
        return CallPlan(scenario, None, (), no_answer)
    if scenario not in ANSWERING:
        raise ValueError(f"unknown scenario {scenario!r}")

    ring = rng.uniform(2.0, 10.0)
    greeting = rng.uniform(3.0, 8.0)  # drawn for every answering scenario: keeps draws aligned
    talk = rng.uniform(20.0, 60.0)
    tail = rng.uniform(0.0, 1.0)  # a spare draw used to vary detection times
    if ring >= timeout_secs:
        return CallPlan(scenario, None, (), no_answer)

    answer = ring
    greeting_end = answer + greeting
    beep_at = greeting_end + 0.3 if scenario == "machine_beep" else None
    if scenario == "human":
        end = answer + talk
    elif scenario == "machine_beep":
        assert beep_at is not None
        end = beep_at + 25.0 + talk / 6.0  # ~30 s of recording after the beep
    elif scenario == "machine_no_beep":
        end = greeting_end + 35.0 + talk / 6.0
    elif scenario == "fax":
        end = answer + 20.0 + talk / 3.0
    else:  # silence
        end = answer + 15.0 + talk / 2.0
    hangup = Hangup(end, "normal_clearing", "callee", "200")
    if end - answer > time_limit_secs:
        hangup = Hangup(answer + time_limit_secs, "time_limit", "caller", "200")

    events = _amd_events(scenario, amd_mode, amd_config, answer, greeting_end, beep_at, tail)
    return CallPlan(scenario, answer, tuple(e for e in events if e.at < hangup.at), hangup)


def _amd_events(
    scenario: str,
    mode: str,
    config: Mapping[str, Any] | None,
    answer: float,
    greeting_end: float,
    beep_at: float | None,
    tail: float,
) -> list[AmdEvent]:
    """The AMD webhooks of each mode, per REFERENCE.md ("Which AMD webhooks each mode sends")."""
    if mode == "disabled" or mode not in STANDARD_AMD | {"premium"}:
        return []
    total = _amd_ms(config, "total_analysis_time_millis", _TOTAL_ANALYSIS_MS)
    if scenario == "human":
        detected = answer + min(total, 0.8 + 1.7 * tail)  # "Hello?" then a pause
    elif scenario in MACHINES:
        detected = answer + min(total, total * (0.6 + 0.4 * tail))
    elif scenario == "fax":
        detected = answer + min(total, 1.5 + tail)
    else:  # silence: the whole analysis time passes without a word
        detected = answer + total

    if mode == "premium":
        premium_result = {
            "human": "human_residence" if tail < 0.7 else "human_business",
            "machine_beep": "machine",
            "machine_no_beep": "machine",
            "fax": "fax_detected",
            "silence": "silence",
        }[scenario]
        out = []
        # A beep heard before detection ends replaces the detection event.
        if beep_at is None or beep_at > detected:
            out.append(AmdEvent(detected, "call.machine.premium.detection.ended", premium_result))
        if beep_at is not None:
            out.append(AmdEvent(beep_at, "call.machine.premium.greeting.ended", "beep_detected"))
        return out

    result = "human" if scenario == "human" else "machine" if scenario in MACHINES else "not_sure"
    out = [AmdEvent(detected, "call.machine.detection.ended", result)]
    if result != "machine" or mode == "detect":
        return out
    greeting_event = "call.machine.greeting.ended"
    after = detected + 0.05
    if beep_at is not None:
        out.append(AmdEvent(max(beep_at, after), greeting_event, "beep_detected"))
    elif mode == "greeting_end":
        silence = _amd_ms(config, "greeting_silence_duration_millis", _GREETING_SILENCE_MS)
        out.append(AmdEvent(max(greeting_end + silence, after), greeting_event, "ended"))
    elif mode == "detect_words":
        out.append(AmdEvent(detected + DETECT_WORDS_GREETING_TIMEOUT_SECS, greeting_event,
                            "not_sure"))
    return out  # detect_beep without a beep: nothing more


def speak_secs(payload: str) -> float:
    """How long text-to-speech of `payload` lasts: ~2.5 words a second, at least 1.5 s."""
    return max(1.5, len(payload.split()) / 2.5)
