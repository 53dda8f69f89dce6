"""Identifiers and timestamps shaped like Telnyx's."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime


def new_call_control_id() -> str:
    """`v3:` and 54 url-safe base64 characters, like the ids Telnyx hands out."""
    return "v3:" + base64.urlsafe_b64encode(os.urandom(40)).rstrip(b"=").decode("ascii")


def new_uuid() -> str:
    return str(uuid.uuid4())


def iso(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC with microseconds and a Z, as Telnyx writes them."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
