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
    # Keypad: one per prompt (script steps, the message's opt-out). The per-key
    # call.dtmf.received is not stored: the gather's end carries every digit.
    "call.gather.ended",
})


#: Events a call's flow waits on (its next command follows them): processed at once. The
#: others (a call started, ended, a prompt began) wait up to `processor.LAZY_BATCH_SECS` to
#: share a transaction with the events that come after them.
URGENT_EVENTS = HANDLED_EVENTS - {"call.initiated", "call.hangup", "call.playback.started",
                                  "call.speak.started"}


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


def _clean_str(value: str) -> str:
    return _UNSTORABLE.sub("\ufffd", value)


def _clean(value: Any) -> Any:
    """Strings PostgreSQL's JSONB refuses (NUL, unpaired surrogates from \\u escapes), with
    those characters replaced by U+FFFD: one such event must not fail its whole batch.

    Iterative, in place: a body nested deeper than Python's recursion limit is valid JSON (the
    decoder reads it) and must not make the receiver fail with a RecursionError."""
    if isinstance(value, str):
        return _clean_str(value)
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = _clean_str(item)
                elif isinstance(item, (list, dict)):
                    stack.append(item)
        elif isinstance(node, dict):
            if any(isinstance(k, str) and _UNSTORABLE.search(k) for k in node):
                items = list(node.items())
                node.clear()
                for k, v in items:  # a cleaned key that collides: the later value wins
                    node[_clean_str(k)] = v
            for k, item in node.items():
                if isinstance(item, str):
                    node[k] = _clean_str(item)
                elif isinstance(item, (list, dict)):
                    stack.append(item)
    return value


#: Telnyx's envelopes nest four or five levels; ours are refused beyond this.
MAX_DEPTH = 32


def _depth(doc: Any) -> int:
    """How deeply arrays and objects nest in `doc` (iterative: any depth the decoder read)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1)
                         for child in (node.values() if isinstance(node, dict) else node))
    return deepest


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
    # Deeper documents are not Telnyx's, and every recursive step after this one (the JSON
    # column's encoder, reading it back) would fail on them: refused here, as a 400.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth(doc) > MAX_DEPTH:
        raise BadEnvelope(f"nested deeper than {MAX_DEPTH} levels")
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
