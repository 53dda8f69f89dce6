"""Pacing invariants of the schedules (pure): never more than the rate in any sliding second,
never more than ceil(rate/10)+1 in any 100 ms, for the account and each campaign, however the
reservations are batched, interleaved by engines, delayed by the send tolerance and the arrival
jitter; the local guard counts when dials started."""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.engine import slots as sl
from dialer.engine.pacer import AdaptiveRate
from dialer.engine.wire_child import StartStampedThrottler

pytestmark = pytest.mark.fast


def max_in_window(times: list[float], width: float) -> int:
    """Most instants in any half-open window [t, t + width) (how Telnyx counts per second)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + width) - i for i, t in enumerate(times)),
               default=0)


def arrivals(slots: list[float], rng: random.Random) -> list[float]:
    """Where Telnyx sees the dials: each sent up to the tolerance after its slot and travelling
    a varying time (a constant latency changes no window)."""
    return [t + rng.uniform(0, sl.SEND_TOLERANCE_SECS) + rng.uniform(0, sl.ARRIVAL_JITTER_SECS)
            for t in slots]


@pytest.mark.parametrize("rate", [1, 2.5, 10, 20, 30, 100, 300])
def test_one_campaign_at_the_account_rate(rate: float) -> None:
    account = sl.Schedule(0.0, rate)
    got: list[float] = []
    now = 0.0
    while now < 10:
        got += [s.at for s in sl.plan(now, account, {1: None}, {1: 50}, 0.5)]
        now += 0.1
    seen = arrivals(got, random.Random(1))
    assert max_in_window(seen, 1.0) <= max(1, math.floor(rate))
    assert max_in_window(seen, 0.1) <= sl.burst_limit(rate)
    floor = max(1, math.floor(rate))
    assert len(got) >= (0.95 if rate >= 300 else 0.97) * floor * 9.5  # the achieved rate


def test_a_campaign_below_the_account_keeps_its_own_rate() -> None:
    account, own = sl.Schedule(0.0, 30), sl.Schedule(0.0, 20)
    got = []
    for step in range(100):
        got += [s.at for s in sl.plan(step * 0.1, account, {1: own}, {1: 10}, 0.5)]
    assert max_in_window(arrivals(got, random.Random(2)), 1.0) <= 20
    assert len(got) >= 0.97 * 20 * 9.5


def test_two_campaigns_share_the_account_without_holes() -> None:
    account = sl.Schedule(0.0, 20)
    a, b = sl.Schedule(0.0, 10), sl.Schedule(0.0, 15)
    by: dict[int, list[float]] = {1: [], 2: []}
    for step in range(100):
        for slot in sl.plan(step * 0.1, account, {1: a, 2: b}, {1: 5, 2: 5}, 0.5):
            by[slot.campaign_id].append(slot.at)
    rng = random.Random(3)
    assert max_in_window(arrivals(by[1], rng), 1.0) <= 10
    assert max_in_window(arrivals(by[2], rng), 1.0) <= 15
    both = arrivals(by[1] + by[2], rng)
    assert max_in_window(both, 1.0) <= 20
    assert len(both) >= 0.97 * 20 * 9.5  # the account's rate is used, not lost between them


@settings(max_examples=150, deadline=None)
@given(rate=st.sampled_from([1, 3, 7, 20, 30, 55, 100]),
       own=st.none() | st.sampled_from([0.5, 2, 5, 10, 15, 25]),
       steps=st.lists(st.tuples(st.floats(0.0, 0.4), st.integers(1, 40),
                                st.sampled_from([0.05, 0.25, 0.5, 1.0]),
                                st.sampled_from([0, 1])), min_size=5, max_size=60),
       seed=st.integers(0, 1000))
def test_never_over_any_limit_however_reservations_interleave(
        rate: int, own: float | None, steps: list[tuple[float, int, float, int]],
        seed: int) -> None:
    """Engines reserving at random moments, random batch sizes and horizons, for one campaign
    with its own rate and one without (the schedules are shared, as rows in the database)."""
    account = sl.Schedule(0.0, rate)
    campaigns: dict[int, sl.Schedule | None] = {
        1: sl.Schedule(0.0, own) if own else None, 2: None}
    by: dict[int, list[float]] = {1: [], 2: []}
    now = 0.0
    for gap, n, horizon, which in steps:
        now += gap
        cid = 1 + which
        for slot in sl.plan(now, account, campaigns, {cid: n}, horizon):
            assert slot.at >= now
            by[slot.campaign_id].append(slot.at)
    rng = random.Random(seed)
    seen = arrivals(by[1] + by[2], rng)
    assert max_in_window(seen, 1.0) <= rate
    assert max_in_window(seen, 0.1) <= sl.burst_limit(rate)
    if own:
        assert max_in_window(arrivals(by[1], rng), 1.0) <= max(1, math.floor(own))


def test_a_lower_rate_applies_to_every_slot_after_the_change() -> None:
    account, own = sl.Schedule(0.0, 30), sl.Schedule(0.0, 20)
    got = []
    for step in range(50):
        got += [s.at for s in sl.plan(step * 0.1, account, {1: own}, {1: 10}, 0.5)]
    changed = 5.0
    own.rate = 5  # `campaign set --cps 5` committed at 5.0 s
    for step in range(50, 150):
        got += [s.at for s in sl.plan(step * 0.1, account, {1: own}, {1: 10}, 0.5)]
    after = [t for t in arrivals(got, random.Random(4)) if t >= changed + 1.0]
    assert max_in_window(after, 1.0) <= 5


def test_a_429_postpones_the_shared_schedule() -> None:
    account = sl.Schedule(10.0, 20)
    sl.postpone(account, 12.5)
    slots = sl.plan(10.0, account, {1: None}, {1: 3}, 5.0)
    assert slots[0].at == 12.5


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        sl.interval(0)
    with pytest.raises(ValueError):
        sl.interval(math.nan)


def test_adaptive_rate_backs_off_and_recovers() -> None:
    rate = AdaptiveRate(20)
    rate.on_rate_limited(0.0)
    assert rate.current == 10 and rate.factor == 0.5
    for t in range(1, 40):
        rate.tick(float(t))
    assert rate.current == 20


async def test_the_guard_counts_when_dials_started_not_when_granted() -> None:
    """A slot granted at once but started 60 ms later: the next slots beyond the limit wait
    for 100 ms after the start, not after the grant."""
    throttler = StartStampedThrottler(rate_limit=2, period=0.1, retry_interval=0.001)
    t0 = time.monotonic()
    await throttler.acquire()
    await asyncio.sleep(0.06)
    throttler.started(time.monotonic())  # the first dial started late
    await throttler.acquire()
    throttler.started(time.monotonic())
    await throttler.acquire()  # the third must wait until the first start is 100 ms old
    assert time.monotonic() - t0 >= 0.16 - 0.005
