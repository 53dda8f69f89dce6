"""Pacing invariants: never more than the rate in any sliding second, never more than
ceil(rate/10)+1 in any 100 ms, slots a busy loop missed made up without a burst."""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time

import pytest

from dialer.engine.pacer import (
    CampaignBudget,
    EvenSpacer,
    Pacer,
    StartStampedThrottler,
    burst_limit,
)


def max_in_window(times: list[float], width: float) -> int:
    """Most instants in any closed window [t, t + width]."""
    times = sorted(times)
    return max((bisect.bisect_right(times, t + width) - i for i, t in enumerate(times)),
               default=0)


def run_spacer(spacer: EvenSpacer, secs: float, stall: float, every: float) -> list[float]:
    """A dispatcher on a fake clock that dials at each slot; every `every` seconds the loop
    stalls for `stall` seconds, so the dispatcher asks for its next slot late. (A dial that
    starts late after its slot is the guards' business: see the StartStampedThrottler tests.)"""
    now, dials, next_stall = 0.0, [], every
    while now < secs:
        if now >= next_stall:
            now += stall
            next_stall += every
        now = max(now, spacer.reserve(now))
        dials.append(now)
    return dials


@pytest.mark.parametrize("rate", [1, 10, 30, 100, 300])
def test_even_spacing_without_stalls(rate: float) -> None:
    dials = run_spacer(EvenSpacer(rate), 10, 0.0, math.inf)
    assert max_in_window(dials, 0.1) <= burst_limit(rate)
    assert max_in_window(dials, 1.0) <= rate + 1  # the spacer alone; the guards make it `rate`
    assert len(dials) >= 0.99 * rate * 10


@pytest.mark.parametrize("rate", [10, 30, 100, 300])
def test_slots_missed_in_stalls_are_made_up_without_bursts(rate: float) -> None:
    # A 10 ms stall every 500 ms costs 2% of the slots unless they are made up (making up is
    # at most ~2% faster at 300 cps: 31 per 100 ms against 30).
    dials = run_spacer(EvenSpacer(rate), 20, 0.01, 0.5)
    gaps = [b - a for a, b in zip(dials, dials[1:])]
    assert max_in_window(dials, 0.1) <= burst_limit(rate)
    assert min(gaps) >= EvenSpacer(rate).catch_up_interval - 1e-9
    assert len(dials) >= 0.99 * rate * 20


def test_idle_time_is_not_a_debt() -> None:
    spacer = EvenSpacer(100)
    spacer.reserve(0.0)
    spacer.idle(5.0)  # nothing to dial for five seconds
    slots = [spacer.reserve(5.0 + i * 0.001) for i in range(10)]
    gaps = [b - a for a, b in zip(slots, slots[1:])]
    assert min(gaps) >= spacer.interval - 1e-9


def test_a_429_drops_the_debt_and_waits_for_the_reset() -> None:
    spacer = EvenSpacer(100)
    spacer.reserve(0.0)
    spacer.postpone(2.0)
    slots = [spacer.reserve(1.0) for _ in range(3)]
    assert slots[0] >= 2.0
    assert slots[1] - slots[0] >= spacer.interval - 1e-9


def test_campaign_budget_does_not_catch_up_beyond_its_rate() -> None:
    budget = CampaignBudget(5)
    taken, now = [], 0.0
    while now < 10:
        now = max(now, budget.ready_at(now)) + 0.04  # a late dispatcher
        budget.take(now)
        taken.append(now)
    assert max_in_window(taken, 1.0) <= 5 + 1


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


@pytest.mark.parametrize("rate", [20, 100])
async def test_pacer_never_over_the_limits_when_sends_start_late(rate: float) -> None:
    """The dispatcher's pattern with a busy loop: each send task starts when the loop gets to
    it, sometimes late (blocking callbacks); the recorded start times stay within the limits."""
    pacer = Pacer(rate)
    rng = random.Random(7)
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    def busy() -> None:  # a synchronous chunk of work holding the loop (ORM flush, ...)
        time.sleep(rng.choice([0.0, 0.0, 0.005, 0.02, 0.045]))
        if loop.time() < deadline:
            loop.call_later(rng.uniform(0, 0.05), busy)

    async def send() -> None:
        starts.append(pacer.started())

    deadline = loop.time() + 2.5
    loop.call_soon(busy)
    tasks = []
    while loop.time() < deadline:
        await pacer.wait()
        tasks.append(asyncio.create_task(send()))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert max_in_window(starts, 1.0) <= math.floor(rate)
    assert max_in_window(starts, 0.1) <= burst_limit(rate)


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast
