"""Rolling-window counting: the account's dials-per-second limit, and peak-rate measurement."""

from __future__ import annotations

from collections import deque


class RollingWindow:
    """At most `limit` acquisitions in any `window` seconds (Telnyx: 150 dials per rolling 5 s).

    A refused acquisition is not counted: a 429 places no call and uses no budget."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def _purge(self, now: float) -> None:
        times, edge = self._times, now - self.window
        while times and times[0] <= edge:
            times.popleft()

    def try_acquire(self, now: float) -> bool:
        self._purge(now)
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True

    def remaining(self, now: float) -> int:
        self._purge(now)
        return max(0, self.limit - len(self._times))

    def reset_after(self, now: float) -> float:
        """Seconds until one more acquisition would succeed (0 when one would now)."""
        self._purge(now)
        if len(self._times) < self.limit:
            return 0.0
        return max(0.0, self._times[0] + self.window - now)


class PeakMeter:
    """The largest number of events seen in any sliding `window` seconds (exact: the maximum is
    reached at an event, so counting the window that ends at each event suffices)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.peak = 0
        self._times: deque[float] = deque()

    def record(self, now: float) -> None:
        times, edge = self._times, now - self.window
        times.append(now)
        while times[0] <= edge:
            times.popleft()
        self.peak = max(self.peak, len(times))
