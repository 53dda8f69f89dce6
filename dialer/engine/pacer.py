"""Dial pacing: never more than the rate in any sliding 1 s window, spread evenly.

Two layers:
- `EvenSpacer` schedules dial instants 1/rate apart (on absolute times, so loop jitter does not
  lower the rate); slots a busy loop missed are made up a little faster, never as a burst.
- asyncio-throttle is the hard guard: one `Throttler(rate, 1 s)` and one
  `Throttler(ceil(rate/10) + 1, 100 ms)`. Only the single dispatcher task ever waits on them, so
  their polling costs nothing, and the spacer in front means they almost never have to wait.

`AdaptiveRate` lowers the rate after a 429 and recovers it step by step.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from asyncio_throttle import Throttler

#: Pace slightly under the limit: HTTP latency jitter must not push two dials into one window on
#: Telnyx's side.
SAFETY = 0.995


#: How far behind its even schedule the spacer stays in debt. Timer and loop latency make every
#: wake-up a little late, and a busy event loop stalls now and then (tens of ms); the slots so
#: lost are made up by dialing slightly faster afterwards (see `catch_up_interval`), but never
#: beyond the sliding second that the hard guard enforces, so a longer debt is forgotten.
MAX_BEHIND_SECS = 1.0

#: A campaign's own cps has no hard guard behind its spacer: it makes up at most this much.
CAMPAIGN_MAX_BEHIND_SECS = 0.02


def burst_limit(rate: float) -> int:
    """Dials allowed in any 100 ms window: ceil(rate/10) + 1 (even spacing plus one)."""
    return math.ceil(rate / 10) + 1


class EvenSpacer:
    """Dial instants on an even grid 1/rate apart (absolute times, so loop jitter does not lower
    the rate). Slots missed while the loop was busy are caught up by spacing the next dials
    `catch_up_interval` apart (a little closer than the grid, never closer than 100 ms /
    (burst_limit - 0.5), so no 100 ms window gets more than `burst_limit`), never as a burst."""

    def __init__(self, rate: float, max_behind: float = MAX_BEHIND_SECS) -> None:
        self.rate = rate
        self.max_behind = max_behind
        self._next = -math.inf
        self._last = -math.inf

    @property
    def interval(self) -> float:
        return 1.0 / (self.rate * SAFETY)

    @property
    def catch_up_interval(self) -> float:
        return min(self.interval, 0.1 / (burst_limit(self.rate) - 0.5))

    def _on_grid(self, now: float) -> float:
        """The next slot of the even schedule, at most `max_behind` in the past (the first
        dial has no missed slots before it)."""
        return max(self._next, now - self.max_behind) if self._next > -math.inf else now

    def ready_at(self, now: float) -> float:
        return max(self._on_grid(now), self._last + self.catch_up_interval)

    def reserve(self, now: float) -> float:
        """Reserve the next dial instant; returns it (it may be slightly in the past)."""
        on_grid = self._on_grid(now)
        slot = max(on_grid, self._last + self.catch_up_interval)
        self._next = on_grid + self.interval
        self._last = max(slot, now)
        return slot

    def idle(self, now: float) -> None:
        """Nothing was waiting to be dialed: slots not used meanwhile are not a debt."""
        self._next = max(self._next, now)

    def postpone(self, until: float) -> None:
        """No slot before `until` (a 429's reset hint), and no debt carried past it."""
        self._next = max(self._next, until)
        self._last = max(self._last, until - self.catch_up_interval)


class StartStampedThrottler(Throttler):
    """An asyncio-throttle `Throttler` whose log holds when each dial *started*, not when its
    slot was granted. A dial task can start a little after its slot (the event loop runs what
    was ready first), so two dials could start closer together than their slots were; with
    start times in the log, every later slot is checked against when dials really began, and no
    window of start times holds more than `rate_limit`."""

    def started(self, at: float) -> None:
        """The dial granted last started at `at` (time.monotonic(); dials start in the order
        they were granted)."""
        if self._task_logs:
            self._task_logs[-1] = max(self._task_logs[-1], at)


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


class Pacer:
    """The account-wide pacer that the single dispatcher waits on before every dial."""

    def __init__(self, rate: float) -> None:
        self.adaptive = AdaptiveRate(rate)
        self._spacer = EvenSpacer(rate)
        self._build_guards(rate)

    def _build_guards(self, rate: float) -> None:
        self._guard_rate = rate
        self._second = StartStampedThrottler(rate_limit=max(1, math.floor(rate)), period=1.0,
                                             retry_interval=0.002)
        self._tenth = StartStampedThrottler(rate_limit=burst_limit(rate), period=0.1,
                                            retry_interval=0.002)

    @property
    def rate(self) -> float:
        return self.adaptive.current

    def set_rate(self, rate: float) -> None:
        """Change the configured account rate (e.g. when the number of engines changes)."""
        if rate != self.adaptive.configured:
            self.adaptive = AdaptiveRate(rate)
            self._spacer.rate = rate
            self._build_guards(rate)

    def on_rate_limited(self, reset_secs: float | None) -> None:
        self.adaptive.on_rate_limited(time.monotonic(), reset_secs)
        self._spacer.rate = self.adaptive.current
        # No catching up on missed slots after a 429, and no slot before the reset hint.
        self._spacer.postpone(asyncio.get_running_loop().time() + min(reset_secs or 0.0, 5.0))

    def idle(self) -> None:
        """The dispatcher has nothing to dial right now (see `EvenSpacer.idle`)."""
        self._spacer.idle(asyncio.get_running_loop().time())

    def started(self) -> float:
        """The dial granted by the last `wait` starts now (call before any other `wait`).
        Returns the time recorded (time.monotonic())."""
        now = time.monotonic()
        self._second.started(now)
        self._tenth.started(now)
        return now

    async def wait(self) -> None:
        """Wait for the next dial slot."""
        loop = asyncio.get_running_loop()
        self.adaptive.tick(time.monotonic())
        self._spacer.rate = self.adaptive.current
        slot = self._spacer.reserve(loop.time())
        delay = slot - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await self._second.acquire()
        await self._tenth.acquire()


class CampaignBudget:
    """A campaign's own cps (lower than the account's): a non-blocking check for the dispatcher."""

    def __init__(self, rate: float | None) -> None:
        self._spacer = EvenSpacer(rate, CAMPAIGN_MAX_BEHIND_SECS) if rate else None

    def set_rate(self, rate: float | None) -> None:
        if not rate:
            self._spacer = None
        elif self._spacer is None:
            self._spacer = EvenSpacer(rate, CAMPAIGN_MAX_BEHIND_SECS)
        else:
            self._spacer.rate = rate

    def ready_at(self, now: float) -> float:
        return now if self._spacer is None else self._spacer.ready_at(now)

    def take(self, now: float) -> None:
        if self._spacer is not None:
            self._spacer.reserve(now)
