"""Deterministic identities of an attempt: its `command_id` and the `client_state` it carries.

`client_state` is what lets every webhook find its attempt even when the dial's HTTP response was
lost; `command_id` is what makes a re-sent dial safe (Telnyx ignores repeats within 60 s).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Any

_NAMESPACE = uuid.UUID("6f1d7c1e-8a51-4f0b-9a34-2d6f0c7b5e11")
_PREFIX = "dlr1"
#: The columns' ranges: contact ids are BIGINT (SQLite INTEGER), attempt numbers INTEGER. An id
#: outside them is not ours, and binding it would fail the event processor's whole batch.
MAX_CONTACT_ID = 2**63 - 1
MAX_ATTEMPT_NO = 2**31 - 1
#: Plain ASCII decimal without sign, blanks, underscores or leading zeros (int() takes all of
#: those, and any Unicode digits too; we never write them).
_DECIMAL = re.compile(r"[1-9][0-9]{0,18}")


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


def tagged_client_state(client_state: str, tag: str | None) -> str | None:
    """The attempt's `client_state` with `tag` (None when it does not name an attempt)."""
    ref = decode_client_state(client_state)
    return encode_client_state(ref, tag) if ref is not None else None


def client_state_tag(value: str | None) -> str | None:
    """The tag of a client_state (see encode_client_state), or None."""
    text = _decoded(value)
    parts = text.split(":", 3) if text else []
    return parts[3] if len(parts) == 4 and parts[0] == _PREFIX else None


def _decoded(value: Any) -> str | None:
    if not isinstance(value, str) or not value or len(value) > 200:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _positive(text: str, limit: int) -> int | None:
    if _DECIMAL.fullmatch(text) is None:
        return None
    number = int(text)
    return number if number <= limit else None


def decode_client_state(value: Any) -> AttemptRef | None:
    """The attempt a client_state names, or None when it is not ours (garbled, not a string,
    or naming ids no row of ours can have). Any value a webhook carries is safe to pass."""
    text = _decoded(value) if isinstance(value, str) else None
    if text is None:
        return None
    parts = text.split(":", 3)
    if len(parts) < 3 or parts[0] != _PREFIX:
        return None
    contact_id = _positive(parts[1], MAX_CONTACT_ID)
    attempt_no = _positive(parts[2], MAX_ATTEMPT_NO)
    if contact_id is None or attempt_no is None:
        return None
    return AttemptRef(contact_id, attempt_no)
