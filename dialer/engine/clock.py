"""The engine's clock: real time, or simulated time for dry runs.

A dry run (`dialer run --simulate --speed X`) plays a campaign against the in-process simulator,
whose calls run X times faster than real ones. If the engine kept real time, a retry an hour
away would really wait an hour. With a `SimulatedClock` every time the engine reads (claims,
retry delays, voicemail waits, settle graces, calling windows and days, the per-number cap's
24 h) is simulated time, running X times faster than the wall clock, and the clock can jump
ahead when nothing is happening (`skip_target`): a campaign whose retries are hours apart
finishes in minutes, and its stored times read as the real campaign's would (a 20 s call lasts
20 s, retries an hour apart are an hour apart).

A real run uses `RealClock`: time is never scaled and never jumps.

Times are aware UTC datetimes (as `campaigns.db.types.utcnow`). Durations the engine *sleeps*
(asyncio) are wall seconds: `clock.to_wall(simulated_seconds)` converts.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from dialer.errors import ConfigurationError

#: Skip ahead only when the next due contact is at least this far away in wall time at the
#: clock's speed: shorter waits are simply waited (jumping would gain nothing and would make
#: the dry run's timeline jumpy).
MIN_SKIP_WALL_SECS = 1.0


@runtime_checkable
class Clock(Protocol):
    """What the engine reads time from."""

    #: How many seconds of this clock pass per wall-clock second (1 for real time).
    scale: float

    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...

    def to_wall(self, seconds: float) -> float:
        """Wall-clock seconds that `seconds` of this clock take (for asyncio sleeps)."""
        ...

    def advance_to(self, t: datetime) -> bool:
        """Jump forward to `t` if this clock may jump and `t` is ahead; whether it moved."""
        ...

    @property
    def simulated(self) -> bool:
        """True for a dry run's clock: stored times are not real times."""
        ...


class RealClock:
    """Wall-clock time. Never scaled, never jumps."""

    scale = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def to_wall(self, seconds: float) -> float:
        return seconds

    def advance_to(self, t: datetime) -> bool:
        return False  # real time cannot be skipped

    @property
    def simulated(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "RealClock()"


class SimulatedClock:
    """Time that runs `speed` times faster than the wall clock from `start` (default: the real
    time at creation), and can jump forward (`advance_to`). Monotonic: never goes back, even if
    the system clock does (it counts with `time.monotonic`). Safe to read from several threads
    (the simulator and the engine share one in a dry run)."""

    def __init__(self, speed: float, start: datetime | None = None, *,
                 skip_idle: bool = True,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """`skip_idle` False: `advance_to` never jumps (the dry run takes its full time /
        speed; `dialer run --simulate --no-skip-idle`). `monotonic`: the wall-clock source
        (tests pass a fake one)."""
        if not (speed > 0 and math.isfinite(speed)):
            raise ConfigurationError(f"the simulated clock's speed must be > 0, got {speed!r}")
        if start is not None and start.tzinfo is None:
            raise ConfigurationError("the simulated clock's start must be an aware datetime")
        self.scale = float(speed)
        self._origin = (start or datetime.now(UTC)).astimezone(UTC)
        self._monotonic = monotonic
        self._mono0 = monotonic()
        #: Simulated seconds skipped by advance_to, added to the elapsed ones.
        self._skipped = 0.0
        self._lock = threading.Lock()
        self.skip_idle = skip_idle

    @property
    def simulated(self) -> bool:
        return True

    @property
    def skipped(self) -> timedelta:
        """How much simulated time was jumped over so far."""
        return timedelta(seconds=self._skipped)

    def _elapsed(self) -> float:
        return (self._monotonic() - self._mono0) * self.scale + self._skipped

    def now(self) -> datetime:
        with self._lock:
            return self._origin + timedelta(seconds=self._elapsed())

    def timestamp(self) -> float:
        """now() as POSIX seconds (the simulator's time source)."""
        return self.now().timestamp()

    def to_wall(self, seconds: float) -> float:
        return seconds / self.scale

    def advance_to(self, t: datetime) -> bool:
        if t.tzinfo is None:
            raise ValueError("advance_to needs an aware datetime")
        if not self.skip_idle:
            return False
        with self._lock:
            ahead = (t - self._origin).total_seconds() - self._elapsed()
            if ahead <= 0:
                return False
            self._skipped += ahead
            return True

    def __repr__(self) -> str:
        return f"SimulatedClock(speed={self.scale:g}, now={self.now().isoformat()})"


def skip_target(now: datetime, next_due: datetime | None, in_flight: int, pending_events: int,
                *, scale: float = 1.0,
                min_wall_secs: float = MIN_SKIP_WALL_SECS) -> datetime | None:
    """Where a dry run's clock may jump to when the engine is idle, or None to keep ticking.

    Jump only when nothing could happen before `next_due` (the earliest queued contact of a
    running campaign, `next_due_at`): no call in flight and no attempt waiting to settle
    (`in_flight` counts both: created/dialed/answered, and ended but not settled, whose settle
    grace or flow timer must run in simulated time), no stored webhook event left to process
    (`pending_events`), and `next_due` at least `min_wall_secs` of wall time away at the clock's
    `scale`. Nothing queued (`next_due` None): nothing to jump to, the campaign completes."""
    if in_flight > 0 or pending_events > 0 or next_due is None:
        return None
    if (next_due - now).total_seconds() / scale < min_wall_secs:
        return None
    return next_due
