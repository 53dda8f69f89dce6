"""Telnyx webhook envelopes: shape checks and the fields the engine needs. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

HANDLED_EVENTS = frozenset({
    "call.initiated",
    "call.answered",
    "call.hangup",
    "call.machine.detection.ended",
    "call.machine.greeting.ended",
    "call.machine.premium.detection.ended",
    "call.machine.premium.greeting.ended",
    "call.playback.started",
    "call.playback.ended",
    "call.speak.started",
    "call.speak.ended",
})


class BadEnvelope(ValueError):
    """Not JSON, or not the shape of a Telnyx webhook."""


@dataclass(frozen=True)
class Envelope:
    event_id: str
    event_type: str
    occurred_at: datetime | None
    payload: dict[str, Any]
    raw: dict[str, Any]

    @property
    def call_control_id(self) -> str | None:
        v = self.payload.get("call_control_id")
        return v if isinstance(v, str) else None

    @property
    def client_state(self) -> str | None:
        v = self.payload.get("client_state")
        return v if isinstance(v, str) else None

    @property
    def handled(self) -> bool:
        return self.event_type in HANDLED_EVENTS


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def parse_envelope(body: bytes) -> Envelope:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadEnvelope("body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise BadEnvelope("no data object")
    data = doc["data"]
    event_id, event_type = data.get("id"), data.get("event_type")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
        raise BadEnvelope("data.id missing or malformed")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 64:
        raise BadEnvelope("data.event_type missing or malformed")
    payload = data.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadEnvelope("data.payload is not an object")
    return Envelope(event_id, event_type, parse_time(data.get("occurred_at")), payload, doc)
