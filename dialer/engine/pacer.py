"""Dial pacing: slots reserved from the schedules in the database.

`SlotBook.reserve` takes, in one transaction, the slots that the queued dials need from the
account's schedule and their campaigns' (`slots.plan`), on the database's clock, and turns them
into this process's loop time. Every engine on the database, and every restart, continues the
same schedules: no limit is kept only in one process's memory.

Also here, `AdaptiveRate`: after a 429 this engine asks for slots at a lower rate (and pushes the
shared schedule past the reset hint), then recovers 10% of the configured rate every 2 s. (The
local guard, the last line should anything ever start dials closer together than their slots,
is in the dial wire: `wire_child.StartStampedThrottler`.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.engine import slots as sl
from dialer.engine.store import campaigns as campaign_store
from dialer.engine.store import instances as instance_store
from dialer.engine.store import limits as limit_store
from dialer.engine.transactions import Transactions

#: Slots start at least this long after the reservation's clock reading (its commit must land
#: first); raised to 1.5x the measured reservation time.
MIN_LEAD_SECS = 0.005
#: A clock-offset reading with a short round trip is trusted for this long.
OFFSET_MAX_AGE_SECS = 30.0
#: The longest a 429's reset hint pushes the shared schedule.
MAX_POSTPONE_SECS = 5.0


#: A step run first in a reservation's transaction: the demand to serve (campaign -> dials).
Screen = Callable[[AsyncSession], Awaitable[dict[int, int]]]


@dataclass
class AdaptiveRate:
    """The rate in force: the configured one, lowered on 429s and recovered gradually."""

    configured: float
    current: float = 0.0
    backoff_factor: float = 0.5
    recover_step: float = 0.1  # fraction of the configured rate regained per recovery period
    recover_period: float = 2.0
    _last_change: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.current = self.configured

    def on_rate_limited(self, now: float, reset_secs: float | None = None) -> None:
        self.current = max(self.configured * 0.05, self.current * self.backoff_factor, 0.2)
        self._last_change = now + (reset_secs or 0.0)

    def tick(self, now: float) -> None:
        if self.current >= self.configured:
            self.current = self.configured
            return
        if now - self._last_change >= self.recover_period:
            self.current = min(self.configured, self.current + self.configured * self.recover_step)
            self._last_change = now

    @property
    def factor(self) -> float:
        return self.current / self.configured if self.configured else 1.0


@dataclass(frozen=True)
class LocalSlot:
    """A reserved dial instant in this process's `time.monotonic()` seconds."""

    at: float
    campaign_id: int

    def __lt__(self, other: LocalSlot) -> bool:
        return (self.at, self.campaign_id) < (other.at, other.campaign_id)


class SlotBook:
    """This engine's view of the shared schedules: reserves slots, follows the account's rate
    (the lowest `--cps` of the live engines), backs off after 429s."""

    def __init__(self, tx: Transactions, cps: float, spread: float = sl.SPREAD_SECS) -> None:
        self.tx = tx
        #: The spread of arrivals around their slots that the 1 s windows absorb.
        self.spread = spread
        #: This engine's `--cps`; the account's rate in force is the lowest of the engines'.
        self.own_cps = cps
        self.account_cps = cps
        self.adaptive = AdaptiveRate(cps)
        self._postpone: float | None = None
        self._latency = 0.0
        #: The database clock minus this host's (seconds), from the reading with the shortest
        #: round trip lately: a reading delayed on its way back (a busy host) does not shift
        #: the slots, since slots are kept on the database's clock.
        self._offset = 0.0
        self._offset_rtt = math.inf
        self._offset_at = -math.inf
        self.reservations = 0

    @property
    def rate(self) -> float:
        """The account rate this engine dials at now (after any 429 back-off)."""
        return self.account_cps * self.adaptive.factor

    def follow_account(self, cps: float) -> None:
        """The lowest `--cps` of the live engines (heartbeats)."""
        cps = min(cps, self.own_cps)
        self.account_cps = cps

    def on_rate_limited(self, reset_secs: float | None) -> None:
        self.adaptive.on_rate_limited(time.monotonic(), reset_secs)
        self._postpone = max(self._postpone or 0.0,
                             min(reset_secs or 0.0, MAX_POSTPONE_SECS))

    async def reserve(self, demand: dict[int, int], horizon: float,
                      first: Screen | None = None) -> list[LocalSlot]:
        """Slots for up to `demand[c]` dials of each campaign within `horizon` seconds.
        `first` runs at the start of the same transaction, before any row is locked, and gives
        the demand to serve instead (the DNC re-check: `dnc_screen.py`)."""
        self.adaptive.tick(time.monotonic())
        planned, read_at = await self.tx.run(
            lambda s: self._reserve(s, demand, horizon, first), urgent=True)
        if read_at is None:
            return []
        # From the clock reading (locks held by then) to the commit: how far ahead of the
        # reading the first slot must be so that it is still ahead once the slots are ours.
        self._latency = 0.8 * self._latency + 0.2 * (time.monotonic() - read_at)
        self.reservations += 1
        # Each slot in monotonic time: now, plus how far the slot is from the database's now.
        db_now = time.time() + self._offset
        here = time.monotonic()
        return [LocalSlot(here + (p.at - db_now), p.campaign_id) for p in planned]

    def _observe(self, before: float, db_now: float, after: float) -> None:
        """A clock reading taken between `before` and `after` (this host's time.time())."""
        rtt = after - before
        if rtt <= self._offset_rtt * 1.5 or after - self._offset_at > OFFSET_MAX_AGE_SECS:
            self._offset = db_now - (before + after) / 2
            self._offset_rtt = rtt
            self._offset_at = after

    async def _reserve(self, s: AsyncSession, demand: dict[int, int], horizon: float,
                       first: Screen | None) -> tuple[list[sl.Slot], float | None]:
        screened_at = time.monotonic()
        if first is not None:
            demand = await first(s)
            if not demand:
                return [], None
        keys = [sl.ACCOUNT, *(sl.campaign_key(cid) for cid in demand)]
        rows = await limit_store.lock(s, keys)
        before = time.time()
        now = await limit_store.db_now(s)
        after = time.time()
        self._observe(before, now, after)
        read_at = time.monotonic()
        rates = await campaign_store.cps_of(s, set(demand))
        # The lowest --cps of the live engines, as committed now: an engine that joins with a
        # lower one is followed from the next reservation of every engine.
        lowest = await instance_store.lowest_cps(s)
        if lowest is not None:
            self.follow_account(lowest)
        account = sl.Schedule(rows[sl.ACCOUNT].tat, self.rate, self.spread)
        if self._postpone:
            sl.postpone(account, now + self._postpone)
            self._postpone = None
        own: dict[int, sl.Schedule | None] = {}
        for cid in demand:
            cps = rates.get(cid)
            own[cid] = (sl.Schedule(rows[sl.campaign_key(cid)].tat, cps, self.spread)
                        if cps and math.isfinite(cps) and cps > 0 else None)
        lead = max(MIN_LEAD_SECS, 1.5 * self._latency)
        # No slot later than `horizon` after the DNC check above: a number listed more than that
        # (plus the send tolerance) before a dial starts is never dialed (docs/engine.md).
        horizon = max(0.0, horizon - lead - (read_at - screened_at))
        planned = sl.plan(now + lead, account, own, demand, horizon)
        if planned:
            rows[sl.ACCOUNT].tat = account.tat
            for cid, sched in own.items():
                if sched is not None:
                    rows[sl.campaign_key(cid)].tat = sched.tat
                    rows[sl.campaign_key(cid)].rate = sched.rate
        return planned, read_at
