"""What the simulator did: one `LedgerCall` per call placed, and the server-wide counters.

The ledger is the ground truth a dry run is checked against (e.g. "no number was called twice",
"every answered human heard the message"); `GET /_simulator/calls` serves it as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class LedgerCall:
    """One call the simulator placed. Times are Unix seconds (wall clock).

    `events` lists every webhook generated for the call, in generation order, as
    `{"id", "event_type", "occurred_at", "delivery"}` where delivery is one of `pending`, `ok`,
    `failed` (gave up after the last retry), `dropped` (fault injection) or `undeliverable`
    (no webhook URL). `actions` lists the call-control commands carried out (not the refused or
    repeated ones), as `{"action", "at", ...the command's main parameters, "request"}`, `request`
    being the whole body as validated (top-level nulls left out). `deliveries_ok` /
    `deliveries_failed` count webhook POSTs that got a 2xx / a non-2xx or connection error (a
    duplicate delivery is a second POST); `deliveries_dropped` counts events never delivered
    (dropped or given up)."""

    call_control_id: str
    call_leg_id: str
    call_session_id: str
    command_id: str | None
    to: str
    from_: str
    connection_id: str
    client_state: str | None
    scenario: str
    amd_mode: str
    dialed_at: float
    webhook_url: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    hangup_cause: str | None = None
    hangup_source: str | None = None
    sip_hangup_cause: str | None = None
    amd_result: str | None = None
    greeting_result: str | None = None
    channel_limited: bool = False
    actions: list[dict[str, Any]] = field(default_factory=list)
    playback_completed: bool = False
    speak_completed: bool = False
    #: Every keypad prompt's end, in order: `{"status", "digits", "pressed", "behaviour", "at",
    #: "client_state"}`: what the callee pressed and how the gather ended.
    gathers: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries_ok: int = 0
    deliveries_failed: int = 0
    deliveries_dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; `from_` becomes `from` as in Telnyx payloads."""
        out = asdict(self)
        out["from"] = out.pop("from_")
        return out


@dataclass
class Stats:
    """Counters since the simulator started (see `Simulator.stats()` for the derived ones)."""

    dials_received: int = 0
    dials_accepted: int = 0
    calls_placed: int = 0
    rejected_401: int = 0
    rejected_400: int = 0
    rejected_422: int = 0
    rejected_429: int = 0
    duplicate_command_ids: int = 0
    channel_limit_failures: int = 0
    dial_5xx_injected: int = 0
    dial_5xx_after_place_injected: int = 0
    dial_slow_injected: int = 0
    actions_received: int = 0
    actions_rejected: int = 0
    calls_ended: int = 0
    webhooks_generated: int = 0
    webhooks_sent: int = 0
    webhook_delivery_failures: int = 0
    webhooks_dropped: int = 0
    webhooks_given_up: int = 0
    webhooks_undeliverable: int = 0
    webhooks_duplicated: int = 0
    webhooks_reordered: int = 0
    webhooks_delayed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
