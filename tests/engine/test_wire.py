"""The dial wire's process (`dialer.engine.wire`, `wire_child`): each armed dial sent in its slot
over real HTTP on 127.0.0.1, or given back (too late, campaign no longer allowed, a request that
cannot be built); the local burst guard; the process ends with the engine and never sends after."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from campaigns.db.migrate import upgrade
from dialer.engine.claims import DialJob
from dialer.engine.runner import Engine, EngineConfig
from dialer.engine.wire import ArmedDial, DialWire, WireLost, WireReport, WireSettings
from dialer.telnyx.dial import DialRequest
from dialer.telnyx.errors import InvalidRequest
from tests.rawhttp import RawApi

# A dial must start within 8 ms of its slot: these need the machine to themselves (a loaded
# host makes a dial miss its slot, correctly, and the test expecting "sent" fail).
pytestmark = pytest.mark.timing


@dataclass
class Telnyx:
    """Stamps each dial when it arrives (time.monotonic(), the slots' clock)."""

    arrivals: dict[str, float] = field(default_factory=dict)
    url: str = ""

    async def calls(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.arrivals[body["command_id"]] = time.monotonic()
        return web.json_response({"data": {
            "call_control_id": f"v3:{body['command_id']}", "call_leg_id": "leg",
            "call_session_id": "session", "client_state": body.get("client_state"),
            "is_alive": False, "record_type": "call"}})


@pytest.fixture
async def telnyx() -> AsyncIterator[Telnyx]:
    fake = Telnyx()
    app = web.Application()
    app.router.add_post("/v2/calls", fake.calls)
    async with TestServer(app, host="127.0.0.1") as server:
        fake.url = str(server.make_url("/v2"))
        yield fake


class Reports:
    def __init__(self) -> None:
        self.got: list[WireReport] = []
        self.changed = asyncio.Event()

    def __call__(self, report: WireReport) -> None:
        self.got.append(report)
        self.changed.set()

    async def wait_for(self, n: int, timeout: float = 10) -> list[WireReport]:
        async def enough() -> None:
            while len(self.got) < n:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(enough(), timeout)
        return self.got

    def kinds(self) -> dict[str, str]:
        return {r.dial.job.command_id: r.kind for r in self.got}


def armed(n: int, at: float, campaign_id: int = 1) -> ArmedDial:
    job = DialJob(n, campaign_id, n, 1, "+14155550100", f"cmd-{n}", "c3RhdGU=")
    return ArmedDial(job, lambda: DialRequest(to=job.phone, from_="+14155550199",
                                              connection_id="conn", command_id=job.command_id,
                                              client_state=job.client_state), at)


@pytest.fixture
async def wire(telnyx: Telnyx) -> AsyncIterator[tuple[DialWire, Reports]]:
    reports = Reports()
    wire = DialWire(WireSettings(telnyx.url, "key"), report=reports)
    await wire.start()
    watching = asyncio.create_task(wire.watch())
    wire.allow(True, frozenset({1, 2}))
    try:
        yield wire, reports
    finally:
        await wire.close()
        await asyncio.wait_for(watching, 10)


async def test_each_dial_is_sent_in_its_slot_and_reported(
        wire: tuple[DialWire, Reports], telnyx: Telnyx) -> None:
    w, reports = wire
    start = time.monotonic() + 0.2
    dials = [armed(n, start + n * 0.02) for n in range(10)]
    w.arm(dials, burst_limit=5)
    got = await reports.wait_for(10)
    assert {r.kind for r in got} == {"sent"}
    assert all(r.result is not None and r.result.call_control_id == f"v3:{r.dial.job.command_id}"
               for r in got)
    for dial in dials:  # none before its slot
        assert telnyx.arrivals[dial.job.command_id] >= dial.at


async def test_a_dial_too_late_for_its_slot_is_given_back_unsent(
        wire: tuple[DialWire, Reports], telnyx: Telnyx) -> None:
    w, reports = wire
    w.arm([armed(1, time.monotonic() - 0.05), armed(2, time.monotonic() + 0.05)], burst_limit=5)
    await reports.wait_for(2)
    assert reports.kinds() == {"cmd-1": "missed", "cmd-2": "sent"}
    assert list(telnyx.arrivals) == ["cmd-2"]


async def test_a_campaign_no_longer_allowed_at_the_slot_sends_nothing(
        wire: tuple[DialWire, Reports], telnyx: Telnyx) -> None:
    w, reports = wire
    at = time.monotonic() + 0.3
    w.arm([armed(1, at, campaign_id=1), armed(2, at + 0.02, campaign_id=2)], burst_limit=5)
    w.allow(True, frozenset({2}))  # campaign 1 paused after its dial was armed
    await reports.wait_for(2)
    assert reports.kinds() == {"cmd-1": "skipped", "cmd-2": "sent"}
    w.arm([armed(3, time.monotonic() + 0.05, campaign_id=2)], burst_limit=5)
    w.allow(False, frozenset({2}))  # the engine stopped claiming
    await reports.wait_for(3)
    assert reports.kinds()["cmd-3"] == "skipped" and set(telnyx.arrivals) == {"cmd-2"}


async def test_armed_dials_to_a_number_just_opted_out_are_withdrawn(
        wire: tuple[DialWire, Reports], telnyx: Telnyx) -> None:
    w, reports = wire
    at = time.monotonic() + 0.3
    listed, other = armed(1, at), armed(2, at + 0.02)
    other.job = replace(other.job, phone="+14155550111")
    w.arm([listed, other], burst_limit=5)
    assert w.withdraw({"+14155550100"}) == 1
    await reports.wait_for(2)
    assert reports.kinds() == {"cmd-1": "withdrawn", "cmd-2": "sent"}
    assert list(telnyx.arrivals) == ["cmd-2"]
    assert w.withdraw({"+14155550100"}) == 0  # reported: nothing armed any more


async def test_a_request_that_cannot_be_built_is_reported_with_its_error(
        wire: tuple[DialWire, Reports]) -> None:
    w, reports = wire
    bad = armed(1, time.monotonic() + 0.05)

    def refuse() -> DialRequest:
        raise InvalidRequest("answering_machine_detection: not a mode")
    bad.request = refuse
    w.arm([bad], burst_limit=5)
    (report,) = await reports.wait_for(1)
    assert report.kind == "sent" and isinstance(report.error, InvalidRequest)


async def test_the_local_guard_never_starts_more_than_the_burst_limit_in_100_ms(
        wire: tuple[DialWire, Reports], telnyx: Telnyx) -> None:
    """Slots closer together than they should ever be (a bug upstream): the guard lets the
    burst limit through and the rest, held past the tolerance, give their slots up."""
    w, reports = wire
    at = time.monotonic() + 0.2
    w.arm([armed(n, at) for n in range(12)], burst_limit=3)
    await reports.wait_for(12)
    kinds = list(reports.kinds().values())
    assert kinds.count("sent") == 3 and kinds.count("missed") == 9
    assert len(telnyx.arrivals) == 3


async def test_errors_of_the_send_come_back_to_the_engine(telnyx: Telnyx) -> None:
    reports = Reports()
    w = DialWire(WireSettings("http://127.0.0.1:9/v2", "key"), report=reports)  # nothing there
    await w.start()
    watching = asyncio.create_task(w.watch())
    w.allow(True, frozenset({1}))
    try:
        w.arm([armed(1, time.monotonic() + 0.02)], burst_limit=5)
        (report,) = await reports.wait_for(1, timeout=30)
        assert report.kind == "sent" and report.error is not None
        assert type(report.error).__name__ == "NotSent"
    finally:
        await w.close()
        await watching


async def test_the_wire_sends_nothing_more_once_the_engine_is_gone(telnyx: Telnyx) -> None:
    """The engine killed: its end of the pipe closes, and the wire's process exits at once,
    whatever it had armed (recovery settles those dials after the restart)."""
    reports = Reports()
    w = DialWire(WireSettings(telnyx.url, "key"), report=reports)
    await w.start()
    w.allow(True, frozenset({1}))
    w.arm([armed(1, time.monotonic() + 0.3)], burst_limit=5)
    proc = w._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # as the kernel does when the engine dies
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    await asyncio.sleep(0.4)
    assert telnyx.arrivals == {}


async def test_an_engine_whose_wire_died_learns_it(telnyx: Telnyx) -> None:
    reports = Reports()
    w = DialWire(WireSettings(telnyx.url, "key"), report=reports)
    await w.start()
    watching = asyncio.create_task(w.watch())
    assert w._proc is not None
    os.kill(w._proc.pid, signal.SIGKILL)
    with pytest.raises(WireLost, match="exit code -9"):
        await asyncio.wait_for(watching, 10)


async def test_an_engine_stops_as_crashed_when_its_wire_dies(tmp_path: Path) -> None:
    """Dials it had armed may have been sent: the engine does not run on without knowing; it
    stops (exit 1, a supervisor restarts it) and recovery settles them after the restart."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    engine = Engine(EngineConfig(database_url=url,
                                 api_url="http://127.0.0.1:9/v2", api_key="k", public_key=None,
                                 insecure_webhooks=True, port=0))
    await engine.start()
    try:
        pid = engine.dispatcher.wire.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(engine.state.stopping.wait(), 10)
        assert engine.crashed is not None and "dial wire" in engine.crashed
        assert engine.health()["status"] == "stopping"
    finally:
        await engine.shutdown()


async def test_what_may_dial_can_be_set_before_the_wire_runs(telnyx: Telnyx) -> None:
    """An engine told to stop while it starts (or a refresh before the wire is up) sets it
    early; the wire's process gets it when it is ready."""
    reports = Reports()
    w = DialWire(WireSettings(telnyx.url, "key"), report=reports)
    w.allow(True, frozenset({1}))
    await w.start()
    watching = asyncio.create_task(w.watch())
    try:
        w.arm([armed(1, time.monotonic() + 0.05)], burst_limit=5)
        await reports.wait_for(1)
        assert reports.kinds() == {"cmd-1": "sent"}
    finally:
        await w.close()
        await watching


async def _dial_three(settings: WireSettings, burst_limit: int) -> float:
    """Starts a wire, waits 0.5 s, arms three dials 0.4 s ahead; returns when it armed them."""
    reports = Reports()
    wire = DialWire(settings, report=reports)
    await wire.start()
    watching = asyncio.create_task(wire.watch())
    wire.allow(True, frozenset({1}))
    try:
        await asyncio.sleep(0.5)
        armed_at = time.monotonic()
        wire.arm([armed(n, armed_at + 0.4 + n * 0.05) for n in range(3)],
                 burst_limit=burst_limit)
        await reports.wait_for(3)
        assert {r.kind for r in reports.got} == {"sent"}
        return armed_at
    finally:
        await wire.close()
        await asyncio.wait_for(watching, 10)


async def test_the_first_dials_find_connections_opened_ahead() -> None:
    """The first arm opens connections for about half a second of dials (5 per dial allowed
    in 100 ms) before the slots come, so no dial waits for a handshake in its slot."""
    async with RawApi() as raw:
        armed_at = await _dial_three(WireSettings(raw.url, "key"), burst_limit=2)
        # 5 x 2, after the arm and before the first slot
        assert len(raw.accepted) == 10 and armed_at < min(raw.accepted)
        assert max(raw.accepted) < armed_at + 0.4
        assert len(raw.arrived) == 3


async def test_the_wire_opens_connections_for_the_account_rate_as_it_starts() -> None:
    async with RawApi() as raw:
        armed_at = await _dial_three(WireSettings(raw.url, "key", account_cps=20),
                                     burst_limit=3)
        # 5 x ceil(20/10)+1 = 15, opened as the wire started, before the first arm, which then
        # finds them idle and opens no more.
        assert len(raw.accepted) == 15 and max(raw.accepted) < armed_at
        assert len(raw.arrived) == 3
