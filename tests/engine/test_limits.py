"""Limits measured where Telnyx measures them: at the simulator, by arrival time (its ledger).
A campaign's own rate below the account's, two campaigns sharing an account, and a rate lowered
while the campaign runs (every engine follows `campaign set` within a second)."""

from __future__ import annotations

import asyncio
import time

import pytest

from campaigns.db.engine import create_engine, session_factory
from campaigns.service import update_settings
from dialer.simulator.config import FaultConfig
from tests.engine.helpers import (
    attempts_of,
    campaign_status,
    check_one_call_per_attempt,
    numbers,
    rig,
    seed,
    wait_for,
    windows_over,
)

#: Rates are measured by arrival time at the simulator: these run alone on the machine.
pytestmark = pytest.mark.timing


def _arrivals(sim: object, phones: set[str]) -> list[float]:
    return [c.dialed_at for c in sim.ledger if c.to in phones]  # type: ignore[attr-defined]


async def test_a_campaign_below_the_account_keeps_its_own_rate(db_url: str) -> None:
    phones = numbers(90)
    await seed(db_url, "below", phones, max_attempts=1, cps=20, max_concurrent=200)
    async with rig(db_url, mix={"busy": 1}, cps=30, max_concurrent=300, speed=30) as r:
        await wait_for(lambda: _placed(r.sim, 90), timeout=60, poll=0.1)
        stats = r.sim.stats()
        arrivals = _arrivals(r.sim, set(phones))
    assert stats["rejected_429"] == 0
    assert windows_over(arrivals, 20) == []
    check_one_call_per_attempt(r.sim, await attempts_of(db_url))


async def test_two_campaigns_share_the_account(db_url: str) -> None:
    a, b = numbers(50), numbers(75, start=1000)
    await seed(db_url, "ten", a, max_attempts=1, cps=10, max_concurrent=200)
    await seed(db_url, "fifteen", b, max_attempts=1, cps=15, max_concurrent=200)
    async with rig(db_url, mix={"busy": 1}, cps=20, max_concurrent=300, speed=30) as r:
        await wait_for(lambda: _placed(r.sim, 125), timeout=60, poll=0.1)
        stats = r.sim.stats()
        ten, fifteen = _arrivals(r.sim, set(a)), _arrivals(r.sim, set(b))
    assert stats["rejected_429"] == 0
    assert windows_over(ten, 10) == []
    assert windows_over(fifteen, 15) == []
    assert windows_over(ten + fifteen, 20) == []
    # Both dialed while the other did: the account's rate was shared, not taken in turns.
    assert min(fifteen) < max(ten) and min(ten) < max(fifteen)


async def test_dials_sent_again_take_slots_of_their_own(db_url: str) -> None:
    """A dial answered 500 (placed or not) is sent again with its command_id. Telnyx counts
    every request, so each re-send takes a slot like any dial: the simulator, counting every
    POST /calls on arrival (re-sends and repeats of a command_id included), never sees more
    than the rate."""
    phones = numbers(100)
    cid = await seed(db_url, "resent", phones, max_attempts=1, max_concurrent=300)
    faults = FaultConfig(dial_5xx=0.2, dial_5xx_after_place=0.2)
    async with rig(db_url, mix={"busy": 1}, cps=20, max_concurrent=300, speed=30,
                   faults=faults) as r:
        async def completed() -> bool:
            return await campaign_status(db_url, cid) == "completed"
        await wait_for(completed, timeout=90, poll=0.1)
        stats = r.sim.stats()
    assert stats["dial_5xx_injected"] > 0 and stats["duplicate_command_ids"] > 0
    assert stats["dials_received"] > len(phones)  # the re-sends
    assert stats["max_dials_in_any_1s"] <= 20 and stats["max_dials_in_any_100ms"] <= 3, stats
    check_one_call_per_attempt(r.sim, await attempts_of(db_url),
                               unanswered_5xx_may_lack_a_call=True)


async def test_a_lowered_rate_is_followed_within_a_second(db_url: str) -> None:
    phones = numbers(400)
    await seed(db_url, "lowered", phones, max_attempts=1, cps=20, max_concurrent=400)
    async with rig(db_url, mix={"busy": 1}, cps=30, max_concurrent=400, speed=30) as r:
        await wait_for(lambda: _placed(r.sim, 30), timeout=30, poll=0.05)
        db = create_engine(db_url)
        try:
            async with session_factory(db)() as s, s.begin():
                await update_settings(s, "lowered", {"cps": 5})
            changed = time.time()  # committed
        finally:
            await db.dispose()
        await asyncio.sleep(4.5)
        arrivals = _arrivals(r.sim, set(phones))
    before = [t for t in arrivals if t < changed]
    after = [t for t in arrivals if t >= changed + 1.0]
    assert windows_over(before, 20) == []
    assert len(after) >= 10, "the campaign kept dialing after the change"
    assert windows_over(after, 5) == [], [
        round(t - changed, 3) for t in arrivals if t >= changed - 0.5]


async def _placed_async(sim: object, n: int) -> bool:
    return len(sim.ledger) >= n  # type: ignore[attr-defined]


def _placed(sim: object, n: int):  # type: ignore[no-untyped-def]
    return _placed_async(sim, n)
