"""A dry run's simulator tells simulated time: with the engine's SimulatedClock as its time source,
webhook and call times run at the simulator's speed from the clock's start (a 30 s call lasts
30 s in its webhooks, not 30 s / speed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from dialer.engine.clock import SimulatedClock
from dialer.simulator import Simulator, SimulatorConfig
from tests.simulator.conftest import Receiver, dial

START = datetime(2030, 1, 7, 14, 0, 0, tzinfo=UTC)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)  # Python 3.11 reads the Z


async def test_webhook_times_follow_the_shared_simulated_clock(
        receiver: Receiver, http: aiohttp.ClientSession) -> None:
    speed = 200.0
    clock = SimulatedClock(speed, start=START)
    sim = Simulator(SimulatorConfig(speed=speed, cps_limit=100, channels=10,
                                    default_webhook_url=receiver.url,
                                    pinned={"+15557000001": "human"}),
                    time_source=clock.timestamp)
    await sim.start()
    try:
        answer = await dial(http, sim, "+15557000001")
        assert answer.status == 200, answer.body
        cid = answer.body["data"]["call_control_id"]
        hangup = await receiver.wait_hangup(cid, timeout=10)
    finally:
        await sim.stop()
    initiated = receiver.for_call(cid)[0]
    assert _t(initiated.data["occurred_at"]) >= START
    start, end = _t(hangup.payload["start_time"]), _t(hangup.payload["end_time"])
    assert START <= start < end <= clock.now()
    # a person talks 20-60 simulated seconds: the webhooks say so (with the wall clock as the
    # source they would say ~0.1-0.3 s at this speed)
    assert (end - start) >= timedelta(seconds=20)
    answered = next(d for d in receiver.for_call(cid) if d.event_type == "call.answered")
    assert _t(answered.data["occurred_at"]) <= _t(hangup.data["occurred_at"])
    ledger = sim.find_call(cid)
    assert ledger is not None and ledger.answered_at is not None and ledger.ended_at is not None
    assert ledger.ended_at - ledger.answered_at >= 19.0


async def test_default_time_source_is_the_wall_clock(
        receiver: Receiver, http: aiohttp.ClientSession) -> None:
    before = datetime.now(UTC)
    sim = Simulator(SimulatorConfig(speed=200.0, default_webhook_url=receiver.url,
                                    pinned={"+15557000002": "busy"}))
    await sim.start()
    try:
        answer = await dial(http, sim, "+15557000002")
        cid = answer.body["data"]["call_control_id"]
        hangup = await receiver.wait_hangup(cid, timeout=10)
    finally:
        await sim.stop()
    assert before - timedelta(seconds=1) <= _t(hangup.data["occurred_at"]) <= datetime.now(UTC)
