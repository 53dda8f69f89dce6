"""Helpers for engine tests: seed campaigns and contacts, run an engine against the simulator."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import CallAttempt, Campaign, Contact, ContactStatus
from campaigns.db.types import utcnow
from campaigns.service import change_status, create_campaign
from dialer.aio import loop_in_thread
from dialer.engine.runner import Engine, EngineConfig
from dialer.simulator.config import FaultConfig, SimulatorConfig
from dialer.simulator.server import Simulator

#: Any hour of any day: the engine tests run whenever CI does (no federal floor or state rules).
ALL_DAY = {"calling_hours": "00:00-24:00", "calling_days": "mon-sun", "compliance_rules": "off"}
FAST_RETRY = {"retry_busy_secs": 0.2, "retry_no_answer_secs": 0.2, "retry_machine_secs": 0.2,
              "retry_silence_secs": 0.2, "retry_failed_secs": 0.2, "retry_rejected_secs": 0.2,
              "retry_jitter_secs": 0}


def numbers(n: int, start: int = 0) -> list[str]:
    """Valid US numbers (San Francisco 415-2xx exchanges)."""
    return [f"+1415{200 + (i // 10000) % 800:03d}{i % 10000:04d}" for i in range(start, start + n)]


async def seed(url: str, name: str, phones: Sequence[str], start: bool = True,
               **settings: Any) -> int:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            values = {"from": "+14155550100", "connection_id": "conn-1", **ALL_DAY, **settings}
            c = await create_campaign(s, name, values)
            now = utcnow()
            s.add_all([Contact(campaign_id=c.id, phone_e164=p, phone_raw=p,
                               timezones=["America/Los_Angeles"], timezone_source="number",
                               custom_fields={}, status=ContactStatus.QUEUED, next_attempt_at=now)
                       for p in phones])
            if start:
                await change_status(s, name, "start")
            return c.id
    finally:
        await engine.dispose()


async def contacts_of(url: str, campaign_id: int) -> list[Contact]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.scalars(select(Contact).where(
                Contact.campaign_id == campaign_id).order_by(Contact.id))).all())
    finally:
        await engine.dispose()


async def attempts_of(url: str) -> list[CallAttempt]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.scalars(select(CallAttempt).order_by(CallAttempt.id))).all())
    finally:
        await engine.dispose()


async def campaign_status(url: str, campaign_id: int) -> str:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            c = await s.get(Campaign, campaign_id)
            assert c is not None
            return c.status
    finally:
        await engine.dispose()


@dataclass
class Rig:
    sim: SimulatorThread
    engine: Engine


class SimulatorThread:
    """The simulator on a thread of its own with its own event loop, as Telnyx is a server of
    its own: it stamps each dial when the dial arrives, even while the engine under test holds
    the test's event loop (the engine sends dials from its own thread, `dialer.engine.wire`;
    stamped on the test's loop, dials sent on time during a busy stretch would be stamped
    together at its end). Attributes are the simulator's; calls that read its state run on its
    loop."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def start(self) -> None:
        # The thread stamps arrivals: it must get the interpreter soon when the engine's main
        # loop (same process) holds it; 2 ms instead of the default 5 between switches.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.002))
        self._loop, self._thread = loop_in_thread("simulator")
        await asyncio.wrap_future(self._call(self._sim.start()))

    async def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        await asyncio.wrap_future(self._call(self._sim.stop()))
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10)

    async def wait_idle(self, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wrap_future(self._call(self._sim.wait_idle(*args, **kwargs)))

    def stats(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return self._sim.stats()
        result: dict[str, Any] = self._call(read()).result(timeout=10)
        return result


@asynccontextmanager
async def rig(url: str, *, speed: float = 100.0, cps: float = 50, max_concurrent: int = 20,
              mix: dict[str, float] | None = None, pinned: dict[str, str] | None = None,
              faults: FaultConfig | None = None, sim_cps: int | None = None,
              sim_cps_window_secs: float | None = None, channels: int | None = None,
              seed: int = 1, **engine_kw: Any) -> AsyncIterator[Rig]:
    sim_kw: dict[str, Any] = {}
    if sim_cps_window_secs is not None:
        sim_kw["cps_window_secs"] = sim_cps_window_secs
    if mix is not None:
        sim_kw["mix"] = mix
    sim = Simulator(SimulatorConfig(cps_limit=sim_cps or int(cps), channels=channels or 1000,
                                    speed=speed, seed=seed, pinned=pinned or {},
                                    faults=faults or FaultConfig(), **sim_kw))
    sim = SimulatorThread(sim)
    await sim.start()
    config = EngineConfig(database_url=url, api_url=sim.api_url, api_key="test-key",
                          public_key=sim.public_key_b64, port=0, cps=cps,
                          max_concurrent=max_concurrent, time_scale=speed, seed=seed,
                          **engine_kw)
    engine = Engine(config)
    await engine.start()
    try:
        yield Rig(sim, engine)
    finally:
        await engine.shutdown()
        await sim.stop()


async def wait_for(predicate: Any, timeout: float = 60.0, poll: float = 0.2) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(poll)


def expected_outcome(scenario: str, amd: str) -> str:
    """The outcome a call of this simulator scenario must end with under an AMD mode."""
    unanswered = {"busy": "busy", "no_answer": "no_answer", "rejected": "rejected",
                  "not_found": "invalid_number"}
    if scenario in unanswered:
        return unanswered[scenario]
    if amd == "disabled":
        return "human"
    if scenario == "human":
        return "human"
    if scenario.startswith("machine"):
        return "machine"
    if scenario == "fax":
        return "fax" if amd == "premium" else "silence"
    return "silence"


def check_one_call_per_attempt(sim: Simulator, attempts: Sequence[CallAttempt], *,
                               unanswered_5xx_may_lack_a_call: bool = False) -> None:
    """The ledger and the attempts agree one to one: no attempt has two calls, no call is
    without its attempt, and every placed attempt has its call.

    `unanswered_5xx_may_lack_a_call`: with a simulator that answers 500 without placing the
    call, a dial whose every send (four) got that answer has no call, yet the engine cannot
    know it was not placed: it ends `failed` with the 5xx as its error (at 15% per send, one
    attempt in ~2,000; which attempt draws it depends on the order of the sends)."""
    by_cmd: dict[str, int] = {}
    for call in sim.ledger:
        assert call.command_id, "every dial carries a command_id"
        by_cmd[call.command_id] = by_cmd.get(call.command_id, 0) + 1
    doubles = {k: v for k, v in by_cmd.items() if v > 1}
    assert not doubles, f"attempts with two calls: {doubles}"
    placed = {a.command_id for a in attempts if a.state != "not_placed"
              and not (unanswered_5xx_may_lack_a_call and a.command_id not in by_cmd
                       and (a.error_code or "").startswith("5") and a.outcome == "failed")}
    odd = set(by_cmd) ^ placed
    assert not odd, (sorted(odd), [(a.command_id, a.state, a.error_code, a.dial_sends,
                                    a.command_id in by_cmd) for a in attempts
                                   if a.command_id in odd])


def max_in_window(times: Sequence[float], width: float = 1.0) -> int:
    """Most instants in any half-open window [t, t + width) (how Telnyx counts per second)."""
    import bisect
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + width) - i for i, t in enumerate(ordered)),
               default=0)


def windows_over(times: Sequence[float], rate: float) -> list[str]:
    """What is over the limits of `rate` among arrival times: any 1 s window over
    floor(rate), any 100 ms window over ceil(rate/10) + 1 (empty when none)."""
    import math

    from dialer.engine.slots import burst_limit
    problems = []
    per_second, per_tenth = max_in_window(times, 1.0), max_in_window(times, 0.1)
    if per_second > max(1, math.floor(rate)):
        import bisect
        ordered = sorted(times)
        i = max(range(len(ordered)), key=lambda i: bisect.bisect_left(ordered, ordered[i] + 1) - i)
        window = ordered[i:bisect.bisect_left(ordered, ordered[i] + 1)]
        gaps = [round(b - a, 4) for a, b in zip(window, window[1:], strict=False)]
        problems.append(f"{per_second} dials in one second against {rate:g} (gaps {gaps})")
    if per_tenth > burst_limit(rate):
        problems.append(f"{per_tenth} dials in 100 ms against {burst_limit(rate)}")
    return problems
