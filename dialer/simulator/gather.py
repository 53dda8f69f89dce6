"""What a simulated person does at a keypad prompt (gather_using_speak / gather_using_audio), as a
pure plan: which keys they press and when, and how the gather ends.

Telnyx's behaviour as documented (REFERENCE.md "Keypad input"): the prompt is interrupted by the
first key; a gather ends when `maximum_digits` keys were pressed, on the terminating digit, or
after `timeout_millis` without a key; digits outside `valid_digits` (or too few) make it
`invalid`; no input replays the prompt up to `maximum_tries` times. The terminating digit ends the
entry and is never part of `digits`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALL_KEYS = "0123456789*#"


@dataclass(frozen=True)
class GatherSpec:
    """The gather command's parameters, with Telnyx's defaults."""

    prompt_secs: float
    valid_digits: str = ALL_KEYS
    minimum_digits: int = 1
    maximum_digits: int = 128
    maximum_tries: int = 3
    timeout_secs: float = 60.0
    inter_digit_secs: float = 5.0
    terminating_digit: str = "#"
    invalid_prompt_secs: float = 0.0

    @classmethod
    def from_body(cls, body: Mapping[str, Any], prompt_secs: float,
                  invalid_prompt_secs: float) -> GatherSpec:
        """From a validated command body; a field absent or null takes its documented default."""
        def get(name: str, default: Any) -> Any:
            value = body.get(name)
            return default if value is None else value

        return cls(prompt_secs=prompt_secs,
                   valid_digits=str(get("valid_digits", ALL_KEYS)),
                   minimum_digits=int(get("minimum_digits", 1)),
                   maximum_digits=int(get("maximum_digits", 128)),
                   maximum_tries=int(get("maximum_tries", 3)),
                   timeout_secs=int(get("timeout_millis", 60000)) / 1000.0,
                   inter_digit_secs=int(get("inter_digit_timeout_millis", 5000)) / 1000.0,
                   terminating_digit=str(get("terminating_digit", "#")),
                   invalid_prompt_secs=invalid_prompt_secs)


@dataclass(frozen=True)
class GatherPlan:
    """Key presses as (seconds after the command, key), and the end: at `end_at` either the
    gather ends with (`status`, `digits`), or (`hangup`) the person hangs up."""

    behaviour: str  # valid | invalid | timeout | hangup
    presses: tuple[tuple[float, str], ...]
    end_at: float
    status: str
    digits: str
    hangup: bool = False
    tries: int = 1
    notes: dict[str, Any] = field(default_factory=dict)


def gather_rng(seed: int, number: str, call_nth: int, prompt_nth: int) -> random.Random:
    """The generator of the `prompt_nth` (0-based) keypad prompt of the `call_nth` call to
    `number`, the facts a call's scenario is drawn from (`scenarios.call_rng`): a rerun with the
    same seed and the same dials replays the same answers (nothing random, such as the
    call_control_id, goes in)."""
    digest = hashlib.sha256(f"gather|{seed}|{number}|{call_nth}|{prompt_nth}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = sorted(weights)
    draw = rng.random() * sum(weights[n] for n in names)
    for name in names:
        draw -= weights[name]
        if draw < 0 and weights[name] > 0:
            return name
    return next(n for n in reversed(names) if weights[n] > 0)


def plan_gather(spec: GatherSpec, rng: random.Random, keypad: Mapping[str, float],
                key_weights: Mapping[str, float], single_key_press: float = 0.05) -> GatherPlan:
    """One person's answer to one gather, try after try. A prompt that accepts one key only (a
    message that listens for its opt-out key) is a message, not a menu: people listen to it,
    and only `single_key_press` of them press the key."""
    t = 0.0
    # The terminating digit ends an entry: it is never one of the keys entered (valid or not).
    term = spec.terminating_digit
    valid_keys = "".join(k for k in dict.fromkeys(spec.valid_digits) if k != term)
    invalid_keys = "".join(k for k in ALL_KEYS if k not in spec.valid_digits and k != term)
    for attempt in range(1, max(1, spec.maximum_tries) + 1):
        prompt = spec.prompt_secs if attempt == 1 or not spec.invalid_prompt_secs \
            else spec.prompt_secs + spec.invalid_prompt_secs
        behaviour = _weighted(rng, keypad)
        if len(valid_keys) == 1 and behaviour in ("valid", "invalid"):
            behaviour = "valid" if rng.random() < single_key_press else "timeout"
        if (behaviour == "invalid" and not invalid_keys) or (behaviour == "valid"
                                                             and not valid_keys):
            behaviour = "timeout"  # nothing to press (the only valid key is the terminator)
        last = attempt >= spec.maximum_tries
        if behaviour == "hangup":
            return GatherPlan("hangup", (), t + prompt * rng.uniform(0.2, 0.9), "call_hangup",
                              "", hangup=True, tries=attempt)
        if behaviour == "timeout":
            t += prompt + spec.timeout_secs
            if last:
                return GatherPlan("timeout", (), t, "timeout", "", tries=attempt)
            continue
        first = t + rng.uniform(0.3 * prompt, prompt + min(2.0, 0.8 * spec.timeout_secs))
        if behaviour == "valid":
            n = spec.minimum_digits if spec.maximum_digits == spec.minimum_digits \
                else rng.randint(spec.minimum_digits, min(spec.maximum_digits,
                                                          spec.minimum_digits + 3))
            weights = {k: key_weights.get(k, 1.0) for k in valid_keys}
            if sum(weights.values()) <= 0:
                weights = dict.fromkeys(valid_keys, 1.0)
            keys = [_weighted(rng, weights) for _ in range(n)]
        else:
            keys = [rng.choice(invalid_keys)]
        presses, at = [], first
        for key in keys:
            presses.append((at, key))
            at += rng.uniform(0.3, 0.8)
        digits = "".join(keys)
        end = presses[-1][0]
        if len(keys) < spec.maximum_digits:
            if spec.terminating_digit:
                end = at
                presses.append((end, spec.terminating_digit))
            else:
                end += spec.inter_digit_secs
        if behaviour == "valid":
            return GatherPlan("valid", tuple(presses), end, "valid", digits, tries=attempt)
        # A wrong key: the invalid prompt, then another try (or the end, as `invalid`).
        if last:
            return GatherPlan("invalid", tuple(presses), end, "invalid", digits, tries=attempt)
        t = end
        earlier = presses
        rest = plan_gather(GatherSpec(**{**spec.__dict__, "maximum_tries":
                                         spec.maximum_tries - attempt}), rng, keypad, key_weights,
                           single_key_press)
        shifted = tuple((t + a, k) for a, k in rest.presses)
        return GatherPlan(rest.behaviour, tuple(earlier) + shifted, t + rest.end_at, rest.status,
                          rest.digits, hangup=rest.hangup, tries=attempt + rest.tries)
    raise AssertionError("unreachable")  # pragma: no cover
