"""The engine's clock (real or simulated for dry runs) and the dry run's skip-ahead rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialer.engine.clock import Clock, RealClock, SimulatedClock, skip_target
from dialer.errors import ConfigurationError

pytestmark = pytest.mark.fast

T0 = datetime(2026, 5, 5, 15, 0, 0, tzinfo=UTC)


class FakeWall:
    """A wall clock (monotonic seconds) the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_real_clock_is_wall_time_and_never_jumps() -> None:
    clock = RealClock()
    assert isinstance(clock, Clock)
    before = datetime.now(UTC)
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)
    assert clock.scale == 1.0 and clock.to_wall(30.0) == 30.0
    assert clock.advance_to(now + timedelta(days=1)) is False
    assert clock.now() < now + timedelta(hours=1)
    assert clock.simulated is False


def test_simulated_clock_runs_speed_times_faster() -> None:
    wall = FakeWall()
    clock = SimulatedClock(50, start=T0, monotonic=wall)
    assert isinstance(clock, Clock) and clock.simulated
    assert clock.now() == T0
    wall.t += 2.0  # two wall seconds
    assert clock.now() == T0 + timedelta(seconds=100)
    assert clock.timestamp() == (T0 + timedelta(seconds=100)).timestamp()
    assert clock.scale == 50 and clock.to_wall(3600) == 72.0


def test_simulated_clock_jumps_forward_only() -> None:
    wall = FakeWall()
    clock = SimulatedClock(10, start=T0, monotonic=wall)
    target = T0 + timedelta(hours=1)
    assert clock.advance_to(target) is True
    assert clock.now() == target and clock.skipped == timedelta(hours=1)
    wall.t += 1.0  # time keeps running from where it jumped to
    assert clock.now() == target + timedelta(seconds=10)
    assert clock.advance_to(T0) is False  # never backwards
    assert clock.now() == target + timedelta(seconds=10)


def test_simulated_clock_without_skip_never_jumps() -> None:
    clock = SimulatedClock(10, start=T0, skip_idle=False, monotonic=FakeWall())
    assert clock.advance_to(T0 + timedelta(hours=1)) is False
    assert clock.now() == T0


def test_simulated_clock_defaults_to_now_and_checks_its_arguments() -> None:
    before = datetime.now(UTC)
    clock = SimulatedClock(20)
    assert clock.now() >= before
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ConfigurationError):
            SimulatedClock(bad)
    with pytest.raises(ConfigurationError):
        SimulatedClock(2, start=datetime(2026, 1, 1))  # naive
    with pytest.raises(ValueError):
        clock.advance_to(datetime(2030, 1, 1))


def test_skip_target_rule() -> None:
    hour = T0 + timedelta(hours=1)
    # idle, next contact an hour away: jump there
    assert skip_target(T0, hour, 0, 0) == hour
    assert skip_target(T0, hour, 0, 0, scale=50) == hour
    # something in flight, or webhooks still to process, or nothing queued: no jump
    assert skip_target(T0, hour, 1, 0) is None
    assert skip_target(T0, hour, 0, 3) is None
    assert skip_target(T0, None, 0, 0) is None
    # due now or already late: nothing to skip
    assert skip_target(T0, T0, 0, 0) is None
    assert skip_target(T0, T0 - timedelta(seconds=5), 0, 0) is None
    # a short wait at this speed is simply waited (30 s at x50 is 0.6 wall seconds)
    assert skip_target(T0, T0 + timedelta(seconds=30), 0, 0, scale=50) is None
    assert skip_target(T0, T0 + timedelta(seconds=60), 0, 0, scale=50) == T0 + timedelta(
        seconds=60)
