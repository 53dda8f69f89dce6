"""Deterministic identities of an attempt: its `command_id` and the `client_state` it carries.

`client_state` is what lets every webhook find its attempt even when the dial's HTTP response was
lost; `command_id` is what makes a re-sent dial safe (Telnyx ignores repeats within 60 s).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("6f1d7c1e-8a51-4f0b-9a34-2d6f0c7b5e11")
_PREFIX = "dlr1"


@dataclass(frozen=True)
class AttemptRef:
    contact_id: int
    attempt_no: int


def command_id(campaign_uid: str, contact_id: int, attempt_no: int) -> str:
    """The same for every send of one attempt (stored with it); different in every database:
    `campaign_uid` is random per campaign (Telnyx deduplicates command_ids per account)."""
    return str(uuid.uuid5(_NAMESPACE, f"{campaign_uid}:{contact_id}:{attempt_no}"))


def action_command_id(attempt_command_id: str, action: str) -> str:
    """A per-action command_id, so a repeated action after a crash is ignored by Telnyx."""
    return str(uuid.uuid5(_NAMESPACE, f"{attempt_command_id}:{action}"))


def encode_client_state(ref: AttemptRef, tag: str | None = None) -> str:
    """`tag` (a call-flow state, no colon) marks the webhooks a command causes as its own: a
    `call.gather.ended` says which prompt it answers even when it arrives late or twice."""
    raw = f"{_PREFIX}:{ref.contact_id}:{ref.attempt_no}"
    if tag:
        raw += ":" + tag.replace(":", ".")
    return base64.b64encode(raw.encode()).decode("ascii")


def client_state_tag(value: str | None) -> str | None:
    """The tag of a client_state (see encode_client_state), or None."""
    text = _decoded(value)
    parts = text.split(":", 3) if text else []
    return parts[3] if len(parts) == 4 and parts[0] == _PREFIX else None


def _decoded(value: str | None) -> str | None:
    if not value or len(value) > 200:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def decode_client_state(value: str | None) -> AttemptRef | None:
    """The attempt a client_state names, or None when it is not ours (or garbled)."""
    text = _decoded(value)
    if text is None:
        return None
    parts = text.split(":", 3)
    if len(parts) < 3 or parts[0] != _PREFIX:
        return None
    try:
        return AttemptRef(int(parts[1]), int(parts[2]))
    except ValueError:
        return None
