"""Calling windows local to the contact, across all of its candidate time zones.

A contact whose number maps to several zones may be called only when the window is open in every
one of them; `next_opening` finds the earliest such instant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class WindowError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class CallingWindow:
    start_minute: int  # minutes after local midnight, inclusive
    end_minute: int  # exclusive; 1440 = end of day
    days: frozenset[int]  # 0 = Monday

    @classmethod
    @lru_cache(maxsize=256)
    def parse(cls, hours: str, days: str) -> CallingWindow:
        """The window of a campaign's settings (parsed once per distinct pair: the engine asks
        for it for every claim and every settled attempt; the window is immutable)."""
        m = _HOURS_RE.match(hours or "")
        if not m:
            raise WindowError("calling_hours",
                              f"{hours!r} is not HH:MM-HH:MM (e.g. 09:00-20:00, 00:00-24:00)")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440:
            raise WindowError("calling_hours", f"{hours!r} has an impossible time")
        if end <= start:
            raise WindowError("calling_hours",
                              f"{hours!r}: the end must be after the start (same local day)")
        return cls(start, end, parse_days(days))

    def is_open_local(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start_minute <= minute < self.end_minute

    def is_open(self, instant: datetime, zones: Sequence[str]) -> bool:
        """Open now in every zone (an empty list is never open: the caller supplies a fallback)."""
        if not zones:
            return False
        return all(self.is_open_local(instant.astimezone(zone(z))) for z in zones)

    def next_opening(self, instant: datetime, zones: Sequence[str],
                     horizon_days: int = 9) -> datetime | None:
        """The earliest instant >= `instant` at which the window is open in every zone, or None
        when the zones never share an opening within the horizon."""
        if self.is_open(instant, zones):
            return instant
        candidates = sorted(c for c in self._openings(instant, zones, horizon_days) if c > instant)
        for candidate in candidates:
            if self.is_open(candidate, zones):
                return candidate
        return None

    def _openings(self, instant: datetime, zones: Iterable[str],
                  horizon_days: int) -> Iterable[datetime]:
        start = time(self.start_minute // 60, self.start_minute % 60)
        for name in zones:
            tz = zone(name)
            local_day = instant.astimezone(tz).date()
            for offset in range(-1, horizon_days + 1):
                day = local_day + timedelta(days=offset)
                if day.weekday() in self.days:
                    local = datetime.combine(day, start, tzinfo=tz)
                    yield local.astimezone(timezone.utc)


def parse_days(text: str) -> frozenset[int]:
    """'mon-sat', 'mon,wed,fri', 'mon-fri,sun', 'all' -> weekday numbers."""
    text = (text or "").strip().lower()
    if text in ("all", "daily", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = DAY_NAMES.index(lo.strip()[:3])
            b = DAY_NAMES.index(hi.strip()[:3]) if sep else a
        except ValueError:
            raise WindowError("calling_days",
                              f"{text!r}: days are mon, tue, wed, thu, fri, sat, sun, as ranges "
                              "(mon-fri) or lists (mon,wed,fri)") from None
        if b < a:
            days.update(range(a, 7))
            days.update(range(0, b + 1))
        else:
            days.update(range(a, b + 1))
    if not days:
        raise WindowError("calling_days", f"{text!r} names no day")
    return frozenset(days)
