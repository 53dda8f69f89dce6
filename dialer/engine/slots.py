"""Dial slots from schedules kept per limit: the account's and each campaign's (pure).

Each limit is a GCRA-style schedule with no burst: its *theoretical arrival time* (`tat`) is the
earliest instant its next dial may happen, and every dial moves it on by the limit's interval.
A dial falls under two limits (the account and its campaign) and takes the first instant both
allow: `max(now, account.tat, campaign.tat)`. When several campaigns wait, the slot goes to the
one that can use it first, so the account's schedule has no holes while any campaign is ready.

The schedules live in the database (`store.limits`); every engine advances them in a
transaction, so a restarted or a second engine continues the same schedule instead of starting
its own. Times are seconds on the database's clock.

Why the interval is a little longer than 1/rate: Telnyx counts dials when they arrive. A dial is
sent at most `SEND_TOLERANCE_SECS` after its slot (later, it gives the slot up and takes a new
one) and its travel time varies: together a spread J of arrivals around their slots. With dials
`interval` apart, a half-open window of width W at the far end holds k dials only if
(k - 1) * interval < W + J, so it holds at most `limit` when interval >= (W + J) / limit. Both
windows are kept: 1 s under floor(rate) with J = `SPREAD_SECS` (25 ms: measured on this 2-core
machine with three engines, PostgreSQL and the simulator sharing it, arrivals strayed up to
~20 ms from their slots), and 100 ms under ceil(rate/10) + 1 with J = `BURST_SPREAD_SECS`
(12 ms). The schedule then dials at 97.6% of the rate at 20 to 100 per second; at 300, where the
100 ms bound leaves 3.3 ms for the spread, at 92%. `dialer run --pacing-margin-ms` sets J for
the 1 s window (a quiet network and host can take less, a busy one needs more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: How late after its slot a dial may still start; a later dial takes a new slot.
SEND_TOLERANCE_SECS = 0.008
#: The variation of the time from a dial's start to its arrival at Telnyx that the spacing
#: absorbs (docs/engine.md: measured on loopback at 100 cps, p99.9 under 2 ms).
ARRIVAL_JITTER_SECS = 0.004
#: The spread J of arrivals around their slots that the 1 s windows absorb (tolerance included).
SPREAD_SECS = 0.025
#: The spread the 100 ms windows absorb.
BURST_SPREAD_SECS = SEND_TOLERANCE_SECS + ARRIVAL_JITTER_SECS

ACCOUNT = "account"


def campaign_key(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


def interval(rate: float, spread: float = SPREAD_SECS) -> float:
    """Seconds between two dials under a limit of `rate` per second (see the module doc). A
    1 s window can only hold whole dials: a rate of 2.5 allows 2 in any window."""
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"a rate must be positive and finite, not {rate!r}")
    per_second = math.floor(rate) if rate >= 1 else rate
    return max((1.0 + spread) / per_second,
               (0.1 + min(spread, BURST_SPREAD_SECS)) / burst_limit(rate))


def burst_limit(rate: float) -> int:
    """Dials allowed in any 100 ms window: ceil(rate/10) + 1 (even spacing plus one)."""
    return math.ceil(rate / 10) + 1


@dataclass
class Schedule:
    """One limit's schedule: the earliest instant of its next dial and its rate."""

    tat: float
    rate: float
    spread: float = SPREAD_SECS

    def next_at(self, now: float) -> float:
        return max(self.tat, now)

    def take(self, at: float) -> None:
        self.tat = max(self.tat, at) + interval(self.rate, self.spread)


@dataclass(frozen=True)
class Slot:
    campaign_id: int
    at: float


def plan(now: float, account: Schedule, campaigns: dict[int, Schedule | None],
         demand: dict[int, int], horizon: float) -> list[Slot]:
    """Slots for up to `demand[c]` dials of each campaign, none later than `now + horizon`,
    in time order; advances `account` and the campaign schedules (None: the campaign has no
    rate of its own below the account's). A slot is never earlier than `now`."""
    left = {cid: n for cid, n in demand.items() if n > 0}
    slots: list[Slot] = []
    until = now + horizon
    while left:
        base = account.next_at(now)
        best: tuple[float, int] | None = None
        for cid in sorted(left):
            own = campaigns.get(cid)
            at = base if own is None else max(base, own.next_at(now))
            if best is None or at < best[0]:
                best = (at, cid)
        assert best is not None
        at, cid = best
        if at > until:
            break
        account.take(at)
        own = campaigns.get(cid)
        if own is not None:
            own.take(at)
        slots.append(Slot(cid, at))
        left[cid] -= 1
        if not left[cid]:
            del left[cid]
    return slots


def postpone(schedule: Schedule, until: float) -> None:
    """No dial under this limit before `until` (a 429's reset hint)."""
    schedule.tat = max(schedule.tat, until)
