"""Fixtures: a webhook receiver (a real aiohttp server on 127.0.0.1), simulators, an HTTP client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from dialer.simulator import Simulator, SimulatorConfig

FROM = "+15550001000"
CONNECTION = "1684641123236054244"


@dataclass
class Delivery:
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    at: float

    @property
    def data(self) -> dict[str, Any]:
        return self.body["data"]

    @property
    def event_type(self) -> str:
        return str(self.data["event_type"])

    @property
    def payload(self) -> dict[str, Any]:
        return self.data["payload"]


@dataclass
class Receiver:
    """Collects webhooks; `fail_next` makes the next N deliveries answer 500."""

    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="down")
        self.deliveries.append(Delivery(json.loads(raw), raw, dict(request.headers),
                                        asyncio.get_running_loop().time()))
        return web.Response(text="ok")

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/webhooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def for_call(self, call_control_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.payload.get("call_control_id") == call_control_id]

    def types(self, call_control_id: str) -> list[str]:
        return [d.event_type for d in self.for_call(call_control_id)]

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {len(self.deliveries)} "
                                     f"deliveries: {[d.event_type for d in self.deliveries]}")
            await asyncio.sleep(0.01)

    async def wait_event(self, call_control_id: str, event_type: str,
                         timeout: float = 5.0) -> Delivery:
        await self.wait_for(lambda: event_type in self.types(call_control_id), timeout,
                            f"{event_type} of {call_control_id}")
        return next(d for d in self.for_call(call_control_id) if d.event_type == event_type)

    async def wait_hangup(self, call_control_id: str, timeout: float = 5.0) -> Delivery:
        return await self.wait_event(call_control_id, "call.hangup", timeout)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def make_sim(receiver: Receiver) -> AsyncIterator[SimFactory]:
    """Start simulators with fast test defaults; keyword arguments override SimulatorConfig."""
    sims: list[Simulator] = []

    async def factory(**overrides: Any) -> Simulator:
        settings: dict[str, Any] = {
            "speed": 100.0, "cps_limit": 1000, "channels": 1000,
            "default_webhook_url": receiver.url,
            "webhook_retry_secs": 0.02, "webhook_retry_max_secs": 0.2,
        }
        settings.update(overrides)
        sim = Simulator(SimulatorConfig(**settings))
        await sim.start()
        sims.append(sim)
        return sim

    try:
        yield factory
    finally:
        for sim in sims:
            await sim.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer test-key"}) as session:
        yield session


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]  # case-insensitive


async def request(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None, *,
    raw: bytes | None = None, headers: dict[str, str] | None = None,
) -> Answer:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    async with session.request(method, url, data=data, headers=hdrs) as resp:
        text = await resp.read()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Answer(resp.status, parsed, CIMultiDict(resp.headers))


def dial_body(to: str, **extra: Any) -> dict[str, Any]:
    return {"connection_id": CONNECTION, "from": FROM, "to": to, **extra}


async def dial(session: aiohttp.ClientSession, sim: Simulator, to: str, **extra: Any) -> Answer:
    return await request(session, "POST", sim.api_url + "/calls", dial_body(to, **extra))


async def action(
    session: aiohttp.ClientSession, sim: Simulator, cid: str, name: str, body: Any = None,
    method: str = "POST",
) -> Answer:
    return await request(session, method, f"{sim.api_url}/calls/{cid}/actions/{name}",
                         body if body is not None else {})
