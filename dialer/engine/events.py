"""Telnyx webhook envelopes: shape checks and the fields the engine needs. Pure."""

from __future__ import annotations

import json
import math
import re
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
    #: The document as JSON text to store: the body itself unless it had to be cleaned.
    text: str = ""

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
    """An ISO time as an aware UTC datetime; None when absent, malformed, or not representable
    in UTC (year 1 at +14:00 would fail later, when stored)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _clean(value: Any) -> Any:
    """Strings PostgreSQL's JSONB refuses (NUL, unpaired surrogates from \\u escapes), with
    those characters replaced by U+FFFD: one such event must not fail its whole batch."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


#: One decoder for every body (json.loads with options builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)


def parse_envelope(body: bytes) -> Envelope:
    # What json.loads does with bytes (UTF-8/16/32, a UTF-8 BOM skipped), with our decoder.
    encoding = json.detect_encoding(body)
    try:
        # ValueError covers bad UTF-8, NaN/Infinity, 1e999 and integers too long to convert.
        decoded = body.decode(encoding, "surrogatepass")
        doc = _DECODER.decode(decoded)
    except (ValueError, RecursionError):
        raise BadEnvelope("body is not JSON") from None
    text = None
    if b"\\u" in body or _UNSTORABLE.search(decoded):  # escaped, or raw surrogate bytes
        doc = _clean(doc)
    elif encoding in ("utf-8", "utf-8-sig"):
        # Stored as it came. (UTF-16/32 JSON, which json.loads reads too, is stored re-encoded.)
        text = decoded
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
    return Envelope(event_id, event_type, parse_time(data.get("occurred_at")), payload, doc,
                    text if text is not None else json.dumps(doc))
