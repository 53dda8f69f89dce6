"""The campaign state machine (DESIGN.md): draft -> running <-> paused -> completed, and
draft|running|paused -> cancelled. Pure."""

from __future__ import annotations

from campaigns.db.models import CampaignStatus as S
from campaigns.errors import IllegalTransition

#: action -> (states it applies to, resulting state)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({S.DRAFT}), S.RUNNING),
    "pause": (frozenset({S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.RUNNING),
    "stop": (frozenset({S.DRAFT, S.RUNNING, S.PAUSED}), S.CANCELLED),
    # Only the engine completes a campaign, when nothing is left to dial and nothing is in flight.
    "complete": (frozenset({S.RUNNING}), S.COMPLETED),
}

_HINTS = {
    ("start", S.PAUSED): "use `dialer campaign resume`",
    ("start", S.RUNNING): "it is already running",
    ("resume", S.RUNNING): "it is already running",
    ("resume", S.DRAFT): "use `dialer campaign start`",
    ("pause", S.PAUSED): "it is already paused",
    ("pause", S.DRAFT): "it has not been started",
}


def next_status(name: str, current: str, action: str) -> str:
    allowed, target = TRANSITIONS[action]
    if current in allowed:
        return target
    hint = _HINTS.get((action, current))
    if hint is None and current in (S.COMPLETED, S.CANCELLED):
        hint = f"a {current} campaign cannot change any more; create a new one"
    suffix = f": {hint}" if hint else ""
    raise IllegalTransition(f"cannot {action} campaign {name!r}, which is {current}{suffix}")
