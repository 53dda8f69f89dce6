"""Settings of the Telnyx simulator: limits, speed, call scenarios and fault injection.

Everything here is plain data; `load_scenarios_file` reads the `[mix]` / `[numbers]` file that
`dialer simulator --scenarios FILE` accepts. Bad settings raise ValueError, wrong types included
(they come from files, flags and JSON, and callers report any ValueError as the user's mistake).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

#: Every call scenario the simulator can play (see `dialer.simulator.scenarios`).
SCENARIOS: tuple[str, ...] = (
    "human",
    "machine_beep",
    "machine_no_beep",
    "fax",
    "silence",
    "busy",
    "no_answer",
    "rejected",
    "not_found",
)

#: A plausible outcome mix for consumer numbers called during the day.
DEFAULT_MIX: dict[str, float] = {
    "human": 0.45,
    "machine_beep": 0.15,
    "machine_no_beep": 0.05,
    "fax": 0.01,
    "silence": 0.03,
    "busy": 0.06,
    "no_answer": 0.17,
    "rejected": 0.04,
    "not_found": 0.04,
}


@dataclass
class FaultConfig:
    """Fault injection, each a probability in 0..1 (all off by default).

    - duplicate: a webhook is delivered twice (same event id).
    - reorder: a webhook is held back and delivered after the next event of its call (so e.g.
      `call.hangup` can arrive before `call.answered`), or after `reorder_hold_secs` if that
      event is slower to come (it may wait for an answer to the held one: deliveries overtake
      each other in flight, a `call.answered` is not held until the hangup).
    - delay: a webhook waits `delay_secs` before delivery (its call's later webhooks wait behind
      it: order is kept).
    - drop: a webhook is never delivered (recorded as dropped).
    - dial_5xx: the dial answers 500 and places nothing.
    - dial_5xx_after_place: the call is placed but the dial answers 500 (a re-send with the same
      command_id gets the real answer).
    - dial_slow: the dial answer waits `dial_slow_secs` (the call is placed first).

    Seconds here are wall-clock seconds, not scaled by the simulator's speed.
    """

    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_hold_secs: float = 0.5
    delay: float = 0.0
    delay_secs: float = 2.0
    drop: float = 0.0
    dial_5xx: float = 0.0
    dial_5xx_after_place: float = 0.0
    dial_slow: float = 0.0
    dial_slow_secs: float = 2.0

    PROBABILITIES: ClassVar[tuple[str, ...]] = (
        "duplicate", "reorder", "delay", "drop", "dial_5xx", "dial_5xx_after_place", "dial_slow",
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"fault {f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"fault {f.name} must be a finite number, got {value!r}")
            setattr(self, f.name, float(value))
            if f.name in self.PROBABILITIES and not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {f.name} is a probability: 0..1, got {value!r}")
            if f.name.endswith("_secs") and value < 0:
                raise ValueError(f"fault {f.name} must be >= 0, got {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON-like data; unknown keys and bad values raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown fault setting(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        return cls(**dict(values))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: What a person does at each keypad prompt (relative weights).
DEFAULT_KEYPAD: dict[str, float] = {"valid": 0.82, "invalid": 0.06, "timeout": 0.08,
                                    "hangup": 0.04}
KEYPAD_BEHAVIOURS = tuple(DEFAULT_KEYPAD)


def validate_weights(what: str, weights: Mapping[str, Any], known: tuple[str, ...] | None
                     ) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, weight in weights.items():
        if known is not None and name not in known:
            raise ValueError(f"unknown {what} {name!r} (known: {', '.join(known)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of {what} {name!r} must be a number >= 0, got {weight!r}")
        out[str(name)] = float(weight)
    if out and sum(out.values()) <= 0:
        raise ValueError(f"the {what} weights need one positive weight")
    return out


@dataclass
class SimulatorConfig:
    """How the simulator behaves. Durations of simulated calls are divided by `speed`; the rate
    limit window, webhook retries and fault delays are wall-clock (they model the network and the
    account, not the call)."""

    host: str = "127.0.0.1"
    port: int = 0
    #: When set, requests must carry `Authorization: Bearer <api_key>`; otherwise any Bearer token.
    api_key: str | None = None
    #: Base64 Ed25519 private seed that signs webhooks; a fresh key pair is generated when None.
    private_key_b64: str | None = None
    #: Dials per second of the account, counted over a rolling `cps_window_secs` window.
    cps_limit: int = 30
    cps_window_secs: float = 5.0
    #: Concurrent calls (channels) of the account.
    channels: int = 10
    speed: float = 1.0
    seed: int = 0
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    #: E.164 number -> scenario, overriding the mix for that number.
    pinned: dict[str, str] = field(default_factory=dict)
    #: Where webhooks go when a dial has no webhook_url (None: recorded, not delivered).
    default_webhook_url: str | None = None
    webhook_max_attempts: int = 20
    #: First retry delay; doubles per attempt up to `webhook_retry_max_secs` (20 attempts take
    #: about 2.5 minutes with the defaults, so a receiver that restarts catches up).
    webhook_retry_secs: float = 0.5
    webhook_retry_max_secs: float = 10.0
    #: Timeout of one webhook POST.
    webhook_timeout_secs: float = 10.0
    #: Webhook POSTs in flight at once (all calls together).
    webhook_concurrency: int = 64
    #: How long an ended call still answers `GET /v2/calls/{id}` (Telnyx: 10 minutes). Wall-clock.
    call_retention_secs: float = 600.0
    #: Largest request body accepted (bigger ones get 413).
    max_body_bytes: int = 1024 * 1024
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: At a keypad prompt a person presses a valid key, an invalid one, waits until the gather
    #: times out, or hangs up during the prompt (weights; see DEFAULT_KEYPAD).
    keypad: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KEYPAD))
    #: Relative weights of the valid keys ("1" = 3 makes 1 three times as likely as a key not
    #: named); unnamed valid keys weigh 1.
    key_weights: dict[str, float] = field(default_factory=dict)
    #: Share of people who press the only key of a prompt that accepts one key (a message that
    #: listens for its opt-out key): most just listen.
    single_key_press: float = 0.05

    def __post_init__(self) -> None:
        if not self.speed > 0 or not math.isfinite(self.speed):
            raise ValueError(f"speed must be a positive number, got {self.speed!r}")
        if self.cps_limit < 1:
            raise ValueError(f"cps_limit must be at least 1, got {self.cps_limit!r}")
        if not self.cps_window_secs > 0:
            raise ValueError(f"cps_window_secs must be positive, got {self.cps_window_secs!r}")
        if self.channels < 0:
            raise ValueError(f"channels must be >= 0, got {self.channels!r}")
        if self.webhook_max_attempts < 1:
            raise ValueError("webhook_max_attempts must be at least 1")
        if self.webhook_concurrency < 1:
            raise ValueError("webhook_concurrency must be at least 1")
        self.mix = validate_mix(self.mix)
        self.pinned = validate_pinned(self.pinned)
        self.keypad = validate_weights("keypad behaviour", self.keypad, KEYPAD_BEHAVIOURS)
        if not self.keypad:
            raise ValueError("the keypad behaviours need one positive weight")
        self.key_weights = validate_weights("key", self.key_weights, tuple("0123456789*#"))
        if not 0.0 <= self.single_key_press <= 1.0:
            raise ValueError(f"single_key_press is a probability: 0..1, got "
                             f"{self.single_key_press!r}")

    @property
    def dials_per_window(self) -> int:
        """Dials allowed in one rolling window (30/s over 5 s = 150)."""
        return max(1, int(self.cps_limit * self.cps_window_secs))


def validate_mix(mix: Mapping[str, Any]) -> dict[str, float]:
    """Check scenario names and weights; weights need not sum to 1 (they are relative)."""
    out: dict[str, float] = {}
    for name, weight in mix.items():
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r} in mix (known: {', '.join(SCENARIOS)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"weight of scenario {name!r} must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of scenario {name!r} must be >= 0, got {weight!r}")
        out[name] = float(weight)
    if not out or sum(out.values()) <= 0:
        raise ValueError("the scenario mix needs at least one scenario with a positive weight")
    return out


def validate_pinned(pinned: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, scenario in pinned.items():
        if not isinstance(number, str) or not isinstance(scenario, str):
            raise ValueError(f"pinned numbers map a number to a scenario name, got {number!r}")
        if scenario not in SCENARIOS:
            raise ValueError(
                f"unknown scenario {scenario!r} for {number} (known: {', '.join(SCENARIOS)})"
            )
        out[number] = scenario
    return out


def _read_scenarios(path: str | Path) -> tuple[Path, dict[str, Any]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read scenarios file {p}: {exc.strerror or exc}") from exc
    data: Any
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"scenarios file {p} is not valid {p.suffix or 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"scenarios file {p} must hold a [mix] and/or [numbers] table")
    unknown = sorted(set(data) - {"mix", "numbers", "keypad", "keys"})
    if unknown:
        raise ValueError(f"scenarios file {p}: unknown table(s) {', '.join(unknown)}; "
                         "expected [mix], [numbers], [keypad] and [keys]")
    return p, data


def load_scenarios_file(path: str | Path) -> tuple[dict[str, float], dict[str, str]]:
    """Read a scenarios file: TOML (or JSON when it ends in .json) with a `[mix]` table of
    scenario -> weight and a `[numbers]` table of "+E164" -> scenario. Either table may be
    missing (the default mix / no pinned numbers). Raises ValueError with a readable message.
    (Its `[keypad]` and `[keys]` tables are read by `load_keypad_file`.)

    ```toml
    [mix]
    human = 0.6
    no_answer = 0.4
    [numbers]
    "+15550000001" = "busy"
    [keypad]                  # what people do at keypad prompts (weights)
    valid = 0.8
    timeout = 0.2
    [keys]                    # which valid keys they press (weights; others weigh 1)
    "1" = 3
    ```
    """
    p, data = _read_scenarios(path)
    mix_raw = data.get("mix", DEFAULT_MIX)
    numbers_raw = data.get("numbers", {})
    if not isinstance(mix_raw, dict) or not isinstance(numbers_raw, dict):
        raise ValueError(f"scenarios file {p}: [mix] and [numbers] must be tables")
    try:
        return validate_mix(mix_raw), validate_pinned(numbers_raw)
    except ValueError as exc:
        raise ValueError(f"scenarios file {p}: {exc}") from exc


def load_keypad_file(path: str | Path) -> dict[str, dict[str, float]]:
    """The `[keypad]` and `[keys]` tables of a scenarios file as SimulatorConfig keyword
    arguments (`keypad`, `key_weights`); absent tables are left out."""
    p, data = _read_scenarios(path)
    out: dict[str, dict[str, float]] = {}
    for table, arg, known in (("keypad", "keypad", KEYPAD_BEHAVIOURS),
                              ("keys", "key_weights", tuple("0123456789*#"))):
        if table in data:
            if not isinstance(data[table], dict):
                raise ValueError(f"scenarios file {p}: [{table}] must be a table")
            try:
                out[arg] = validate_weights(table.rstrip("s") if table == "keys" else
                                            "keypad behaviour", data[table], known)
            except ValueError as exc:
                raise ValueError(f"scenarios file {p}: {exc}") from exc
    return out
