"""Dial pacing: never more than the rate in any sliding 1 s window, spread evenly.

Two layers:
- `EvenSpacer` schedules dial instants at least 1/rate apart (on absolute times, so loop jitter
  does not lower the rate) and never lets a stall turn into a burst.
- asyncio-throttle is the hard guard: one `Throttler(rate, 1 s)` and one
  `Throttler(ceil(rate/10), 100 ms)`. Only the single dispatcher task ever waits on them, so their
  10 ms polling costs nothing, and the spacer in front means they almost never have to wait.

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


#: How far behind schedule the spacer may catch up at once. Timer and loop latency make every
#: wake-up a little late; slots keep their absolute times so the rate does not drift down, but a
#: long stall is forgotten rather than turned into a burst (the hard guards bound it anyway).
MAX_CATCH_UP_SECS = 0.02


class EvenSpacer:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0

    @property
    def interval(self) -> float:
        return 1.0 / (self.rate * SAFETY)

    def reserve(self, now: float) -> float:
        """Reserve the next dial instant; returns it (it may be slightly in the past)."""
        slot = max(self._next, now - min(MAX_CATCH_UP_SECS, 3 * self.interval))
        self._next = slot + self.interval
        return slot

    def ready_at(self, now: float) -> float:
        return max(now - min(MAX_CATCH_UP_SECS, 3 * self.interval), self._next)


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
        self._second = Throttler(rate_limit=max(1, math.floor(rate)), period=1.0,
                                 retry_interval=0.002)
        self._tenth = Throttler(rate_limit=max(1, math.ceil(rate / 10)), period=0.1,
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
        # Push the next slot out by the reset hint so that we do not hit the wall again at once.
        if reset_secs:
            self._spacer._next = max(self._spacer._next, time.monotonic() + min(reset_secs, 5.0))

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
        self._spacer = EvenSpacer(rate) if rate else None

    def set_rate(self, rate: float | None) -> None:
        if not rate:
            self._spacer = None
        elif self._spacer is None:
            self._spacer = EvenSpacer(rate)
        else:
            self._spacer.rate = rate

    def ready_at(self, now: float) -> float:
        return now if self._spacer is None else self._spacer.ready_at(now)

    def take(self, now: float) -> None:
        if self._spacer is not None:
            self._spacer.reserve(now)
