"""Real processes for the reliability tests, and the audit every test ends with.

- `SimProcess`: `dialer simulator` as a standalone process (fixed key pair, fixed seed); its ledger
  (`GET /_simulator/calls`) is the ground truth.
- `EngineProcess`: `dialer run` as a process on a fixed port, killed with SIGKILL and restarted.
- `DbProbe`: cheap read-only polling of the database (plain sqlite3 / asyncpg, so that the probe
  never takes SQLite's write lock the way the project's `BEGIN IMMEDIATE` sessions do).
- `audit()`: the claims we make, checked against the ledger and the database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.engine import make_url

from campaigns import outcomes as o
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import WebhookEvent
from dialer.engine.event_log import EventStore
from dialer.engine.metrics import Metrics
from dialer.engine.receiver import WEBHOOK_PATH, Receiver
from dialer.telnyx.signatures import WebhookVerifier
from tests.engine.helpers import attempts_of, contacts_of, expected_outcome

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
DETECTION = ("call.machine.detection.ended", "call.machine.premium.detection.ended")
GREETING = ("call.machine.greeting.ended", "call.machine.premium.greeting.ended")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """The pids of a process's children alive now (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return out


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DIALER_", "TELNYX_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Proc:
    """A child process whose output goes to a log file."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
                                      env=env, start_new_session=True)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._log.close()

    def terminate(self, timeout: float = 30.0) -> int:
        if self.alive():
            os.kill(self.popen.pid, signal.SIGTERM)
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            rc = self.popen.wait(timeout=10)
        self._log.close()
        return rc

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class SimProcess:
    """`python -m dialer.cli.main simulator ...` on a free port."""

    def __init__(self, workdir: Path, *, speed: float, seed: int, private_key: str,
                 channels: int = 1000, cps_limit: int = 200, retry_secs: float = 0.2,
                 retry_max_secs: float = 1.0, max_attempts: int = 200,
                 api_key: str | None = None, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api_url = self.base + "/v2"
        cmd = [PY, "-m", "dialer.cli.main", "simulator", "--port", str(self.port),
               "--speed", str(speed), "--seed", str(seed), "--channels", str(channels),
               "--cps-limit", str(cps_limit), "--webhook-retry-secs", str(retry_secs),
               "--webhook-retry-max-secs", str(retry_max_secs),
               "--webhook-max-attempts", str(max_attempts), *extra]
        # Secrets (the signing key, a required API key) in the environment, not on the command line.
        env = {"DIALER_SIMULATOR_PRIVATE_KEY": private_key}
        if api_key:
            env["DIALER_SIMULATOR_API_KEY"] = api_key
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.proc = Proc(cmd, workdir / "simulator.log", _env(env))
        self.http: aiohttp.ClientSession | None = None

    async def start(self, timeout: float = 30.0) -> None:
        """Wait until it answers; on failure the process is stopped (never left behind)."""
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                          headers=self._headers)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.proc.alive():
                    raise AssertionError(f"simulator exited:\n{self.proc.output()[-3000:]}")
                try:
                    await self.stats()
                    return
                except (aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.1)
            raise AssertionError("simulator did not start")
        except BaseException:
            await self.stop()
            raise

    async def _get(self, path: str) -> Any:
        assert self.http is not None
        async with self.http.get(self.base + path) as resp:
            resp.raise_for_status()
            return (await resp.json())["data"]

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._get("/_simulator/stats")
        return data

    async def calls(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self._get("/_simulator/calls")
        return data

    async def set_faults(self, **faults: float) -> dict[str, Any]:
        assert self.http is not None
        async with self.http.post(self.base + "/_simulator/faults", json=faults) as resp:
            resp.raise_for_status()
            data: dict[str, Any] = (await resp.json())["data"]
            return data

    async def wait_idle(self, timeout: float = 60.0) -> None:
        """No call alive and no webhook waiting for delivery (or retry)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = await self.stats()
            if st["live_calls"] == 0 and st["webhooks_in_flight_calls"] == 0:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"simulator not idle after {timeout}s: {await self.stats()}")

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        self.proc.terminate(timeout=15)


class EngineProcess:
    """`python -m dialer.cli.main --database-url URL run ...` on a fixed port; restartable."""

    def __init__(self, workdir: Path, db_url: str, sim: SimProcess, public_key: str, *,
                 port: int | None = None, time_scale: float = 1.0, cps: float = 30,
                 max_concurrent: int = 20, api_key: str = "k", api_key_in_env: bool = False,
                 extra: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.cmd = [PY, "-m", "dialer.cli.main", "--database-url", db_url, "run",
                    "--port", str(self.port), "--api-url", sim.api_url,
                    "--public-key", public_key, "--cps", str(cps),
                    "--max-concurrent", str(max_concurrent), "--time-scale", str(time_scale),
                    *extra]
        env = {}
        if api_key_in_env:
            env["TELNYX_API_KEY"] = api_key
        else:
            self.cmd[self.cmd.index("run") + 1:self.cmd.index("run") + 1] = ["--api-key", api_key]
        self.env = _env(env)
        self.runs: list[Proc] = []
        self.current: Proc | None = None

    def spawn(self) -> Proc:
        n = len(self.runs) + 1
        self.current = Proc(self.cmd, self.workdir / f"engine-{n:02d}.log", self.env)
        self.runs.append(self.current)
        return self.current

    async def wait_healthy(self, timeout: float = 40.0) -> None:
        assert self.current is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if not self.current.alive():
                    raise AssertionError(
                        f"engine exited (rc {self.current.popen.returncode}):\n"
                        f"{self.current.output()[-4000:]}")
                try:
                    async with http.get(self.base + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("engine did not become healthy")

    def kill9(self) -> None:
        assert self.current is not None
        self.current.kill9()

    def stop(self, timeout: float = 30.0) -> int:
        assert self.current is not None
        return self.current.terminate(timeout)

    def logs(self) -> str:
        return "\n".join(p.output() for p in self.runs)


class DbProbe:
    """Read-only polling of the test database."""

    def __init__(self, url: str) -> None:
        u = make_url(url)
        self.sqlite = u.get_backend_name() == "sqlite"
        self._path = u.database
        self._dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
        self._sq: sqlite3.Connection | None = None
        self._pg: asyncpg.Connection | None = None

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        if self.sqlite:
            if self._sq is None:
                self._sq = sqlite3.connect(str(self._path), timeout=30, isolation_level=None)
            return [tuple(r) for r in self._sq.execute(sql).fetchall()]
        try:
            if self._pg is None or self._pg.is_closed():
                self._pg = await asyncpg.connect(self._dsn, timeout=5)
            return [tuple(r) for r in await self._pg.fetch(sql, timeout=10)]
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if self._pg is not None and not self._pg.is_closed():
                self._pg.terminate()
            self._pg = None
            raise

    async def val(self, sql: str) -> Any:
        rows = await self.fetch(sql)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        if self._sq is not None:
            self._sq.close()
        if self._pg is not None:
            await self._pg.close()


async def wait_until(predicate: Any, timeout: float, poll: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {what}")
        await asyncio.sleep(poll)


# ------------------------------------------------------------------------------------ audit

def outcome_from_delivered(call: dict[str, Any], stored: Collection[str] = ()) -> str:
    """The outcome the facts that actually reached the receiver support (events dropped or given
    up on are unknown to the engine): the hangup's cause, AMD results, answer.

    `stored`: event ids in `webhook_events`. An engine killed after committing an event but
    before its 200 went out leaves the event pending in the simulator's ledger, yet stored:
    it reached the product, and any engine may process it."""
    ok = {e["event_type"] for e in call["events"] if reached(e, stored)}
    amd = call["amd_result"] if ok & set(DETECTION) else None
    greeting = call["greeting_result"] if ok & set(GREETING) else None
    hung = "call.hangup" in ok
    cause = call["hangup_cause"] if hung else None
    sip = call["sip_hangup_cause"] if hung else None
    answered = o.was_answered("call.answered" in ok, cause, sip, amd)
    facts = o.CallFacts(answered=answered, amd_result=amd, greeting_result=greeting,
                        hangup_cause=cause, sip_hangup_cause=sip,
                        hangup_source=call["hangup_source"] if hung else None)
    if hung or answered:
        return o.classify(facts)
    return o.FAILED  # reconciliation: Telnyx says it is over, and nothing else is known


def strict_outcome(call: dict[str, Any], amd: str) -> str:
    if call["channel_limited"]:
        return o.FAILED
    return expected_outcome(call["scenario"], amd)


def reached(event: dict[str, Any], stored: Collection[str]) -> bool:
    return event["delivery"] == "ok" or event["id"] in stored


def lossy(call: dict[str, Any], stored: Collection[str] = ()) -> bool:
    return not all(reached(e, stored) for e in call["events"])


@dataclass
class Figures:
    contacts: int = 0
    calls: int = 0
    attempts_placed: int = 0
    attempts_not_placed: int = 0
    events_generated: int = 0
    events_delivered: int = 0
    events_lost: int = 0
    events_stored: int = 0
    #: Stored, yet pending in the simulator: the engine died between its commit and its 200.
    events_stored_unacknowledged: int = 0
    orphan_events: int = 0
    lost_webhook_attempts: int = 0
    voicemails_left: int = 0
    double_calls: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (f"{self.contacts} contacts, {self.calls} calls, {self.attempts_placed} attempts "
                f"placed (+{self.attempts_not_placed} not placed), {self.events_stored} webhooks "
                f"stored of {self.events_generated} generated ({self.events_lost} lost by faults, "
                f"{self.events_stored_unacknowledged} stored but unacknowledged, "
                f"{self.orphan_events} orphans), {self.lost_webhook_attempts} finalised by "
                f"reconciliation, {self.voicemails_left} voicemails, double calls: "
                f"{self.double_calls}, outcomes {self.outcomes}")


async def audit(db_url: str, campaign_id: int, calls: list[dict[str, Any]], *, amd: str,
                max_attempts: int, allow_losses: bool = False,
                foreign_events: frozenset[str] = frozenset()) -> Figures:
    """Everything the product promises about a finished campaign, against the ledger."""
    probe = DbProbe(db_url)
    try:
        events = await probe.fetch("SELECT event_id, status, event_type FROM webhook_events")
        status = await probe.val(f"SELECT status FROM campaigns WHERE id = {campaign_id}")
    finally:
        await probe.close()
    contacts = await contacts_of(db_url, campaign_id)
    attempts = [a for a in await attempts_of(db_url) if a.campaign_id == campaign_id]
    fig = Figures(contacts=len(contacts), calls=len(calls))
    problems: list[str] = []

    # The campaign finished and every contact ended exactly once.
    if status != "completed":
        problems.append(f"campaign is {status}, not completed")
    not_done = [c.id for c in contacts if c.status != "done"]
    if not_done:
        problems.append(f"{len(not_done)} contacts not done: {not_done[:10]}")

    # One call per attempt, and one attempt per call (by command_id).
    by_cmd = Counter(c["command_id"] for c in calls)
    doubles = {k: n for k, n in by_cmd.items() if n > 1}
    fig.double_calls = sum(n - 1 for n in doubles.values())
    if doubles:
        problems.append(f"attempts with two calls: {doubles}")
    placed = {a.command_id: a for a in attempts if a.state != "not_placed"}
    fig.attempts_placed = len(placed)
    fig.attempts_not_placed = len(attempts) - len(placed)
    if set(by_cmd) != set(placed):
        extra_calls = set(by_cmd) - set(placed)
        missing = set(placed) - set(by_cmd)
        problems.append(f"ledger and attempts differ: {len(extra_calls)} calls without a placed "
                        f"attempt {sorted(extra_calls)[:5]}, {len(missing)} placed attempts "
                        f"without a call {sorted(missing)[:5]}")
    ledger = {c["command_id"]: c for c in calls}
    events = [e for e in events if e[0] not in foreign_events]
    stored = {eid: st for eid, st, _ in events}
    fig.events_stored_unacknowledged = sum(
        1 for c in calls for e in c["events"] if e["delivery"] == "pending" and e["id"] in stored)

    # No contact called more than its attempts allow; attempts counted right.
    per_number = Counter(c["to"] for c in calls)
    for c in contacts:
        n = per_number.get(c.phone_e164, 0)
        if n > max_attempts:
            problems.append(f"contact {c.id} called {n} times (max_attempts {max_attempts})")
        if c.attempts != n:
            problems.append(f"contact {c.id}: attempts {c.attempts} but {n} calls in the ledger")

    # Every attempt's outcome is what its call supports; the contact carries the last one.
    last_placed: dict[int, Any] = {}
    for a in sorted(attempts, key=lambda a: a.attempt_no):
        if a.state == "not_placed":
            if a.outcome not in (None, o.INVALID_NUMBER, o.FAILED):
                problems.append(f"attempt {a.id} not placed with outcome {a.outcome}")
            continue
        last_placed[a.contact_id] = a
        call = ledger.get(a.command_id)
        if call is None:
            continue
        if a.state != "ended" or a.settled_at is None:
            problems.append(f"attempt {a.id} is {a.state}, settled {a.settled_at}")
        if a.call_control_id != call["call_control_id"]:
            problems.append(f"attempt {a.id}: call_control_id {a.call_control_id} is not the "
                            f"ledger's {call['call_control_id']}")
        if a.error_code == "lost_webhook":
            fig.lost_webhook_attempts += 1
        if allow_losses and lossy(call, stored):
            want = outcome_from_delivered(call, stored)
        else:
            want = strict_outcome(call, amd)
            if not call["channel_limited"] and want != outcome_from_delivered(call, stored):
                problems.append(f"audit self-check: {call['scenario']} -> {want} vs "
                                f"{outcome_from_delivered(call, stored)}")
        if a.outcome != want:
            problems.append(
                f"attempt {a.id} ({call['scenario']}, amd {call['amd_result']}/"
                f"{call['greeting_result']}, hangup {call['hangup_cause']}): outcome "
                f"{a.outcome} ({a.error_code}), ledger supports {want}; deliveries "
                f"{[(e['event_type'], e['delivery']) for e in call['events']]}")
        if a.voicemail_left:
            fig.voicemails_left += 1
            if a.outcome != o.MACHINE or not call["playback_completed"]:
                problems.append(f"attempt {a.id}: voicemail_left but outcome {a.outcome}, "
                                f"playback_completed {call['playback_completed']}")
    for c in contacts:
        last = last_placed.get(c.id)
        if last is not None and c.outcome != last.outcome:
            problems.append(f"contact {c.id}: outcome {c.outcome}, last attempt {last.outcome}")
    fig.outcomes = dict(Counter(c.outcome for c in contacts))

    # Every webhook the receiver acknowledged was stored once and processed.
    fig.events_stored = len(stored)
    if len(stored) != len(events):
        problems.append("webhook_events has a repeated event id")
    delivered = {e["id"] for c in calls for e in c["events"] if e["delivery"] == "ok"}
    generated = {e["id"] for c in calls for e in c["events"]}
    fig.events_generated = len(generated)
    fig.events_delivered = len(delivered)
    fig.events_lost = sum(1 for c in calls for e in c["events"]
                          if e["delivery"] in ("dropped", "failed"))
    pending_in_ledger = [e["id"] for c in calls for e in c["events"] if e["delivery"] == "pending"]
    if pending_in_ledger and not allow_losses:  # losses: still retried to a dead engine
        problems.append(f"{len(pending_in_ledger)} webhooks still pending in the simulator")
    if not allow_losses and fig.events_lost:
        problems.append(f"{fig.events_lost} webhooks were never delivered")
    if delivered - set(stored):
        problems.append(f"{len(delivered - set(stored))} acknowledged webhooks are not stored: "
                        f"{sorted(delivered - set(stored))[:5]}")
    if set(stored) - generated:
        problems.append(f"{len(set(stored) - generated)} stored webhooks the simulator never sent")
    by_status = Counter(stored.values())
    fig.orphan_events = by_status.get("orphan", 0)
    if set(by_status) - {"processed", "orphan"}:
        problems.append(f"webhook events not processed: {dict(by_status)}")

    if problems:
        raise AssertionError(f"{len(problems)} problems:\n" + "\n".join(problems[:40]))
    return fig


# ------------------------------------------------------------------ in-process engine + simulator

def ledger_dicts(sim: Any) -> list[dict[str, Any]]:
    """The in-process simulator's ledger as `GET /_simulator/calls` serves it."""
    return [c.as_dict() for c in sim.ledger]


@dataclass
class InProc:
    sim: Any
    engine: Any
    config: Any


async def start_inproc(url: str, *, speed: float, sim: dict[str, Any] | None = None,
                       engine: dict[str, Any] | None = None, port: int | None = None,
                       existing_sim: Any = None) -> InProc:
    """A simulator (webhook retries every <= 1 s, many attempts) and an engine in this process;
    a fixed `port` lets a second engine take over the first one's webhooks."""
    from dialer.engine.runner import Engine, EngineConfig
    from dialer.simulator.config import SimulatorConfig
    from dialer.simulator.server import Simulator

    if existing_sim is None:
        sim_kw: dict[str, Any] = {"speed": speed, "seed": 1, "channels": 1000, "cps_limit": 200,
                                  "webhook_retry_secs": 0.2, "webhook_retry_max_secs": 1.0,
                                  "webhook_max_attempts": 200, **(sim or {})}
        simulator = Simulator(SimulatorConfig(**sim_kw))
        await simulator.start()
    else:
        simulator = existing_sim
    eng_kw: dict[str, Any] = {"cps": 30, "max_concurrent": 20, "time_scale": speed, "seed": 1,
                              **(engine or {})}
    config = EngineConfig(database_url=url, api_url=simulator.api_url, api_key="test-key",
                          public_key=simulator.public_key_b64, port=port or free_port(), **eng_kw)
    eng = Engine(config)
    await eng.start()
    return InProc(simulator, eng, config)


async def campaign_done(url: str, campaign_id: int) -> bool:
    probe = DbProbe(url)
    try:
        return bool(await probe.val(
            f"SELECT status FROM campaigns WHERE id = {campaign_id}") == "completed")
    finally:
        await probe.close()


async def pending_events(url: str) -> int:
    probe = DbProbe(url)
    try:
        return int(await probe.val(
            "SELECT count(*) FROM webhook_events WHERE status = 'pending'"))
    finally:
        await probe.close()


async def finish_inproc(url: str, campaign_id: int, rig: InProc, timeout: float = 90) -> None:
    """Wait for completion, for the simulator to deliver everything, and for processing."""
    async def done() -> bool:
        return await campaign_done(url, campaign_id)
    await wait_until(done, timeout, poll=0.3, what="campaign completed")
    assert await rig.sim.wait_idle(timeout=60), rig.sim.stats()

    async def drained() -> bool:
        return await pending_events(url) == 0
    await wait_until(drained, 30, what="no pending webhook events")


def signed_post(private_key: str, body: bytes, timestamp: int | None = None
                ) -> dict[str, str]:
    from dialer.telnyx.signatures import sign

    return {"Content-Type": "application/json", **sign(private_key, body, timestamp)}


def event_body(event_type: str = "call.hangup", event_id: str | None = None,
               payload: dict[str, Any] | None = None) -> bytes:
    import json
    import uuid

    return json.dumps({
        "data": {"record_type": "event", "event_type": event_type,
                 "id": event_id or str(uuid.uuid4()), "occurred_at": "2026-01-02T03:04:05Z",
                 "payload": payload if payload is not None else {
                     "call_control_id": "v3:test", "client_state": None,
                     "hangup_cause": "normal_clearing", "sip_hangup_cause": "200"}},
        "meta": {"attempt": 1, "delivered_to": "http://127.0.0.1/webhooks/telnyx"},
    }, separators=(",", ":")).encode()


# ------------------------------------------------------------------ the receiver alone

class ReceiverRig:
    """The real webhook receiver (verifier + group-commit store) on a real database, served by
    aiohttp's test server on 127.0.0.1, driven from synchronous (hypothesis) tests."""

    def __init__(self, url: str, public_key: str) -> None:
        self.url = url
        self.public_key = public_key
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        self.db = create_engine(self.url)
        self.sessions = session_factory(self.db)
        self.store = EventStore(self.sessions, lambda urgent: None)
        self.store.start()
        self.metrics = Metrics()
        receiver = Receiver(self.store, WebhookVerifier(self.public_key), self.metrics,
                            dict)
        self.client = TestClient(TestServer(receiver.app(), host="127.0.0.1"))
        await self.client.start_server()

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async def _go() -> tuple[int, Any]:
            resp = await self.client.post(WEBHOOK_PATH, data=body, headers=headers)
            text = await resp.text()
            return resp.status, text
        return self.loop.run_until_complete(_go())

    def rows(self) -> list[tuple[str, str]]:
        async def _go() -> list[tuple[str, str]]:
            async with self.sessions() as s:
                return [(e, t) for e, t in (await s.execute(
                    select(WebhookEvent.event_id, WebhookEvent.event_type))).all()]
        return self.loop.run_until_complete(_go())

    def close(self) -> None:
        async def _go() -> None:
            await self.client.close()
            await self.store.stop()
            await self.db.dispose()
        self.loop.run_until_complete(_go())
        self.loop.close()
