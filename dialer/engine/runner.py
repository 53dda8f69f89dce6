"""`dialer run`: the receiver, the scheduler, the dispatcher and the background sweeps in one
process, all driven by the database.

Tasks:
- scheduler: every tick, for each running campaign, claims what the limits allow right now.
- dispatcher: the only task that waits on the pacer; sends each claimed dial in its slot.
- dial results: recorded in batches (one transaction serves many dials).
- event processor: applies stored webhook events to attempts, runs the call flow.
- sweeps: flow timers, settling, reconciliation, campaign completion, stop --hangup, heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from campaigns import outcomes as o
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.migrate import ensure_current
from campaigns.db.models import (
    AttemptState,
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
    EngineInstance,
    WebhookEvent,
)
from campaigns.db.types import utcnow
from campaigns.lifecycle import next_status
from campaigns.settings import with_defaults
from dialer.engine import flow
from dialer.engine.attempts import (
    DialOutcome,
    PendingAction,
    Timing,
    apply_dial_outcomes,
    apply_event,
    facts_of,
    find_attempts,
    mark_events,
    settle,
)
from dialer.engine.claims import DialJob, claim
from dialer.engine.identity import action_command_id
from dialer.engine.metrics import Metrics
from dialer.engine.pacer import CampaignBudget, Pacer
from dialer.engine.receiver import WEBHOOK_PATH, EventStore, Receiver
from dialer.engine.webhook_workers import WebhookWorkers, WorkerSettings
from dialer.errors import ConfigurationError
from dialer.telnyx.client import TelnyxClient
from dialer.telnyx.dial import DialRequest
from dialer.telnyx.errors import (
    AuthenticationError,
    CallEnded,
    CallNotFound,
    InvalidRequest,
    RateLimited,
    TelnyxError,
)
from dialer.telnyx.signatures import WebhookVerifier

log = logging.getLogger("dialer.engine")

DB_ERRORS = (OperationalError, DBAPIError, OSError, ConnectionError)
INSTANCE_DEAD_SECS = 15.0
RESEND_WINDOW_SECS = 50.0
#: Under load, how long the event processor lets webhooks gather into one transaction.
EVENT_BATCH_WAIT_SECS = 0.025
#: How long dial results gather before they are recorded in one transaction (nothing waits on
#: them: webhooks find their attempt by client_state whether or not the result is recorded).
RESULT_BATCH_WAIT_SECS = 0.1
#: A scheduler tick that found campaigns short of channels waits at least this long before the
#: next one, however often calls end.
MIN_TICK_SECS = 0.05
#: How often the scheduler looks for a started campaign while none runs (well within the 1 s
#: in which `campaign start/resume` must take effect).
IDLE_TICK_SECS = 0.25
#: Webhook events processed per transaction: small enough that one batch does not hold the
#: event loop (and the receiver's acknowledgements) for long.
EVENT_BATCH = 100
#: Reconciliation, campaign completion, stop --hangup and the idle check run this often.
SLOW_SWEEP_SECS = 0.5
#: A `created` attempt of this engine that it no longer tracks is recovered after this long.
ORPHAN_SECS = 5.0
#: A call that is over but whose webhooks may still come is looked at again after this long.
WEBHOOK_RECHECK_SECS = 1.0
RECOVERY_EVERY_SECS = 1.0


def _process_space() -> str:
    """Where process ids mean what they mean here: the host name and the PID namespace (two
    containers sharing a host name, e.g. with host networking, have different namespaces)."""
    host = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return host[:200]
    return f"{host[:150]} {namespace}"[:200]


#: Stored as `engine_instances.hostname`.
PROCESS_SPACE = _process_space()


def _process_gone(process_space: str, pid: int) -> bool:
    """True when an engine instance ran in this process space in a process that no longer
    exists, or under our own pid (then it was a previous process: ids are unique while alive)."""
    if process_space != PROCESS_SPACE:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


@dataclass
class EngineConfig:
    database_url: str
    api_url: str
    api_key: str
    public_key: str | None
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    cps: float = 30.0
    max_concurrent: int = 10
    per_number_cap: int = 3
    #: How often the scheduler claims (each tick is a transaction; it claims for 3 ticks ahead).
    #: Calls that end wake it earlier when a campaign was short of channels.
    tick_secs: float = 0.25
    time_scale: float = 1.0
    insecure_webhooks: bool = False
    #: Stop by itself once no campaign is running or paused and nothing is in flight (demo, tests).
    exit_when_idle: bool = False
    seed: int | None = None
    #: Telnyx retries a webhook it could not deliver (engine down, database down: 503). A call
    #: that Telnyx says is over is only declared to have lost its webhooks once it ended this
    #: long ago AND the receiver has been storing events for this long. Wall-clock (not scaled).
    webhook_grace_secs: float = 15.0
    #: Receiver processes besides the engine's own (PostgreSQL only): they verify, store and
    #: acknowledge webhooks on `webhook_port`; the engine processes what they store.
    webhook_workers: int = 0
    #: The workers' port; None: `port` + 1 (any free port when `port` is 0).
    webhook_port: int | None = None


@dataclass
class CampaignView:
    """What the dispatcher needs of a running campaign (refreshed every tick)."""

    id: int
    name: str
    status: str
    from_number: str
    connection_id: str
    dial_settings: dict[str, Any]
    settings: dict[str, Any]


@dataclass
class EventRow:
    """A stored webhook event being processed."""

    id: int
    event_id: str
    event_type: str
    occurred_at: datetime | None
    payload: dict[str, Any]
    call_control_id: str | None
    attempt_id: int | None = None
    status: str = "processed"


@dataclass
class Stats:
    dials_sent: int = 0
    rate_limited: int = 0
    events_processed: int = 0
    started: float = field(default_factory=time.monotonic)


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.instance_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.timing = Timing(scale=config.time_scale)
        self.metrics = Metrics()
        self.stats = Stats()
        self.pacer = Pacer(config.cps)
        self.rng = random.Random(config.seed)
        # No ping before every checkout (a round trip per transaction, thousands a second under
        # load): a connection that died with its server fails its statement, which invalidates
        # the whole pool, and the caller retries (the receiver answers 503 meanwhile).
        self.db: AsyncEngine = create_engine(config.database_url, pool_pre_ping=False)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.db)
        self.client = TelnyxClient(config.api_url, config.api_key)
        self.campaigns: dict[int, CampaignView] = {}
        self.queues: dict[int, deque[DialJob]] = {}
        self.budgets: dict[int, CampaignBudget] = {}
        self._rr: deque[int] = deque()
        self._dial_results: list[DialOutcome] = []
        #: Attempts this engine claimed (or recovered) whose dial result is not recorded yet.
        self._tracked: set[int] = set()
        #: Attempts of stopped campaigns this process already sent a hangup for.
        self._hung_up: set[int] = set()
        self._results_ready = asyncio.Event()
        self._dispatch_wakeup = asyncio.Event()
        self._claim_wakeup = asyncio.Event()
        self._short_of_channels = False
        self._events_ready = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._actions: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        #: Set at the end of shutdown: the event processor and the result writer finish the
        #: transaction they are in and return (cancelling them mid-transaction logs errors).
        self._closing = False
        self._claiming = True
        self._tasks: list[asyncio.Task[None]] = []
        self._tick_latency = 0.0
        self._busy_events = False
        self._runner: web.AppRunner | None = None
        # SQLite has one writer: transactions of this process take turns here instead of
        # contending in SQLite's busy handler (which sleeps in coarse steps).
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if self.db.dialect.name == "sqlite" else None)
        # With webhook workers the documents are read along with the pending rows (the workers
        # store most events): nothing to keep in memory.
        self.store = EventStore(self.sessions, self._events_ready.set, self._write_lock,
                                keep_recent=not config.webhook_workers)
        verifier = None
        if not config.insecure_webhooks:
            if not config.public_key:
                raise ConfigurationError(
                    "TELNYX_PUBLIC_KEY is not set: webhooks cannot be verified (set it, or run "
                    "with --insecure-webhooks on a trusted network only)")
            try:
                verifier = WebhookVerifier(config.public_key)
            except ValueError:
                raise ConfigurationError("TELNYX_PUBLIC_KEY is not a base64 Ed25519 public key"
                                         ) from None
        else:
            log.warning("INSECURE: webhook signatures are NOT verified (--insecure-webhooks); "
                        "anyone who can reach %s:%s can forge call results",
                        config.host, config.port)
        self.receiver = Receiver(self.store, verifier, self.metrics, self.health)
        self.bound_port: int | None = None
        self.workers: WebhookWorkers | None = None
        if config.webhook_workers:
            if self.db.dialect.name != "postgresql":
                raise ConfigurationError("--webhook-workers needs PostgreSQL (SQLite has one "
                                         "writer: extra processes would only wait for it)")
            port = config.webhook_port
            if port is None:
                port = config.port + 1 if config.port else 0
            if port > 65535 or (port and port == config.port):
                raise ConfigurationError(f"--webhook-port {port}: must differ from --port and "
                                         "be at most 65535")
            self.workers = WebhookWorkers(
                config.webhook_workers,
                WorkerSettings(config.database_url, config.host, port, config.public_key,
                               config.insecure_webhooks),
                on_stored=self._events_ready.set, on_report=self._worker_report,
                on_lost=self.store.store_failed)

    # ------------------------------------------------------------------ lifecycle
    @property
    def webhook_url(self) -> str:
        port = self.bound_port or self.config.port
        if self.workers is not None and self.workers.port is not None:
            port = self.workers.port
        base = self.config.public_url or f"http://{self.config.host}:{port}"
        return base.rstrip("/") + WEBHOOK_PATH

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self._abort_start()
            raise

    async def _abort_start(self) -> None:
        """Undo a start that failed half-way (no worker process or open port left behind)."""
        with contextlib.suppress(Exception):
            if self.workers is not None:
                await self.workers.stop()
        with contextlib.suppress(Exception):
            if self._runner is not None:
                await self._runner.cleanup()
        with contextlib.suppress(Exception):
            await self.store.stop()
        with contextlib.suppress(Exception):
            await self.client.close()
        with contextlib.suppress(Exception):
            await self.db.dispose()

    async def _start(self) -> None:
        await ensure_current(self.db)
        if self.workers is not None:  # first: healthy means webhooks can reach where dials say
            await self.workers.start()
        self._runner = web.AppRunner(self.receiver.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.bound_port = server.sockets[0].getsockname()[1]
        self.store.start()
        await self._heartbeat()
        await self._recover()
        await self._resume_flows()
        for name, coro in [
            ("scheduler", self._scheduler()),
            ("dispatcher", self._dispatcher()),
            ("dial-results", self._result_writer()),
            ("events", self._event_processor()),
            ("sweeps", self._sweeps()),
        ]:
            self._tasks.append(asyncio.create_task(self._guard(name, coro), name=name))
        log.info("engine %s listening on %s:%s, webhooks at %s", self.instance_id,
                 self.config.host, self.bound_port, self.webhook_url)

    async def run_until_stopped(self) -> None:
        await self._stopping.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        self._stopping.set()
        # The scheduler sleeps on this between ticks: it sees the stop at once.
        self._claim_wakeup.set()

    async def shutdown(self) -> None:
        """Stop claiming, release what was claimed but not sent, let dials in flight finish,
        record their results; live calls are tracked again after a restart."""
        self._claiming = False
        self.request_stop()
        if self.workers is not None:
            # First: webhooks that cannot be stored any more are refused (Telnyx retries them),
            # and what the workers stored is processed below or after the restart.
            await self.workers.stop()
        for job_queue in self.queues.values():
            while job_queue:
                self._release(job_queue.popleft())
        if self._sends:
            await asyncio.wait(self._sends, timeout=15)
        self._results_ready.set()
        await asyncio.sleep(0)
        for _ in range(50):
            if not self._dial_results:
                break
            await asyncio.sleep(0.1)
        if self._actions:
            await asyncio.wait(self._actions, timeout=5)
        self._closing = True
        self._results_ready.set()
        self._events_ready.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # The receiver first: requests in flight get their answer from the store, which then has
        # nothing left to write when it stops.
        if self._runner is not None:
            await self._runner.cleanup()
        await self.store.stop()
        await self.client.close()
        try:
            async with self.sessions() as s, s.begin():
                await s.execute(delete(EngineInstance).where(EngineInstance.id == self.instance_id))
        except DB_ERRORS:
            pass
        await self.db.dispose()

    async def _guard(self, name: str, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("engine task %s crashed; stopping", name)
            self.request_stop()

    def health(self) -> dict[str, Any]:
        status = "ok"
        if self.workers is not None and self.workers.alive < self.workers.count:
            status = "degraded"  # a webhook worker is down (being started again)
        return {
            "status": "stopping" if self._stopping.is_set() else status,
            "instance": self.instance_id,
            "campaigns_running": sorted(c.name for c in self.campaigns.values()),
            "dials_sent": self.stats.dials_sent,
            "rate": round(self.pacer.rate, 2),
            **({"webhook_workers": self.workers.alive} if self.workers is not None else {}),
        }

    def _worker_report(self, report: dict[str, Any]) -> None:
        """A webhook worker's answers since its last report, into this engine's metrics."""
        for result, n in report["answers"].items():
            self.metrics.webhooks.labels(result).inc(n)
        for seconds in report["latency"]:
            self.metrics.webhook_latency.observe(seconds)
        if report.get("store_failed"):
            self.store.store_failed()

    async def _retrying(self, what: str, fn: Any) -> Any:
        """Run a database step, waiting out outages: log, back off, reconnect, retry."""
        delay = 0.1
        while True:
            try:
                return await fn()
            except DB_ERRORS as exc:
                if self._stopping.is_set() and not self._claiming:
                    raise
                log.warning("database unavailable during %s (%s); retrying in %.1fs", what,
                            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                            delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------------ recovery
    async def _recover(self) -> None:
        """Attempts in `created` whose dial result nobody will record: claimed by an engine that
        is gone, or by this one but no longer tracked here (the claim committed but its answer
        was lost to a database outage). Dials younger than the command_id window are re-sent
        with the same command_id (Telnyx ignores the repeat if the first one was placed); older
        ones wait for their webhooks or reconciliation. Runs at start and then every second, so
        a dead engine's work is picked up however soon it was restarted."""
        now = utcnow()
        live = await self._live_instances(now)
        tracked = set(self._tracked)
        orphan_before = now - timedelta(seconds=ORPHAN_SECS)

        async def _scan(s: AsyncSession) -> list[DialJob]:
            rows = (await s.scalars(
                select(CallAttempt).where(CallAttempt.state == AttemptState.CREATED,
                                          CallAttempt.reconcile_after.is_(None))
                .with_for_update(skip_locked=True))).all()
            jobs: list[DialJob] = []
            for a in rows:
                if a.claimed_by == self.instance_id:
                    if a.id in tracked or a.id in self._tracked or a.created_at > orphan_before:
                        continue
                elif a.claimed_by in live:
                    continue
                age = (now - a.created_at).total_seconds()
                a.claimed_by = self.instance_id
                if age < RESEND_WINDOW_SECS:
                    jobs.append(DialJob(a.id, a.campaign_id, a.contact_id, a.attempt_no,
                                        a.phone_e164, a.command_id, a.client_state, resend=True,
                                        created_at=a.created_at))
                else:
                    a.reconcile_after = now + self.timing.wait(self.timing.lost_dial_secs)
            return jobs

        jobs = await self._retrying("recovery", lambda: self._tx(_scan))
        if jobs:
            log.info("recovery: re-sending %d dials with their original command_id", len(jobs))
            self._tracked.update(job.attempt_id for job in jobs)
            await self._refresh_campaigns()
            for job in jobs:
                self.queues.setdefault(job.campaign_id, deque()).appendleft(job)
                if job.campaign_id not in self._rr:
                    self._rr.append(job.campaign_id)
            self._dispatch_wakeup.set()

    async def _resume_flows(self) -> None:
        """Actions are sent after the transaction that decided them commits: a crash in between
        loses them (a message never played, a call never hung up). At start, the actions of
        every live call's current flow step are sent again with their original command_id;
        Telnyx ignores those that were already sent."""
        async def _q(s: AsyncSession) -> list[PendingAction]:
            rows = (await s.scalars(select(CallAttempt).where(
                CallAttempt.state.in_((AttemptState.DIALED, AttemptState.ANSWERED)),
                CallAttempt.call_control_id.is_not(None),
                CallAttempt.flow_state.in_(("message", "transfer", "voicemail", "hangup"))))).all()
            campaigns = {c.id: c for c in await s.scalars(select(Campaign).where(
                Campaign.id.in_({a.campaign_id for a in rows})))} if rows else {}
            actions = []
            for a in rows:
                assert a.call_control_id is not None
                settings = with_defaults(campaigns[a.campaign_id].settings or {})
                for act in flow.entry_actions(a.flow_state, settings):
                    actions.append(PendingAction(a.id, a.call_control_id, action_command_id(
                        a.command_id, act.key + str(a.flow_state)), act, settings))
            return actions
        actions: list[PendingAction] = await self._retrying("resuming call flows",
                                                            lambda: self._tx(_q))
        if actions:
            log.info("recovery: re-sending the actions of %d live calls", len(actions))
            self._run_actions(actions)

    async def _live_instances(self, now: datetime) -> set[str]:
        """Instances with a recent heartbeat, except those on this host whose process is gone
        (killed and restarted within INSTANCE_DEAD_SECS): their rows are removed at once, so
        neither their work nor their share of the dial rate waits for the heartbeat to expire."""
        async def _q(s: AsyncSession) -> set[str]:
            cutoff = now - timedelta(seconds=INSTANCE_DEAD_SECS)
            rows = (await s.execute(select(
                EngineInstance.id, EngineInstance.hostname, EngineInstance.pid).where(
                EngineInstance.heartbeat_at > cutoff))).all()
            gone = [i for i, host, pid in rows
                    if i != self.instance_id and _process_gone(host, pid)]
            if gone:
                await s.execute(delete(EngineInstance).where(EngineInstance.id.in_(gone)))
                log.info("engine instance(s) %s on this host are gone", ", ".join(gone))
            return {i for i, _, _ in rows if i not in gone}
        live: set[str] = await self._tx(_q)
        return live

    async def _tx(self, fn: Any) -> Any:
        if self._write_lock is None:
            async with self.sessions() as session, session.begin():
                return await fn(session)
        async with self._write_lock:
            async with self.sessions() as session, session.begin():
                return await fn(session)

    # ------------------------------------------------------------------ scheduler
    async def _refresh_campaigns(self, session: AsyncSession | None = None) -> None:
        async def _q(s: AsyncSession) -> list[Campaign]:
            return list((await s.scalars(select(Campaign).where(
                Campaign.status == CampaignStatus.RUNNING))).all())
        rows = await _q(session) if session is not None else await self._tx(_q)
        current = {}
        for c in rows:
            current[c.id] = CampaignView(c.id, c.name, c.status, c.from_number, c.connection_id,
                                         dict(c.dial_settings or {}), with_defaults(c.settings or {}))
            cps = current[c.id].settings.get("cps")
            # A campaign cps at or above the account's needs no budget of its own.
            self.budgets.setdefault(c.id, CampaignBudget(None)).set_rate(
                cps if cps and cps < self.pacer.adaptive.configured else None)
            if c.id not in self._rr:
                self._rr.append(c.id)
        self.campaigns = current
        # Jobs of campaigns that stopped running are released at once (paused/stopped within 1 s).
        for cid, q in self.queues.items():
            if cid not in current:
                while q:
                    self._release(q.popleft())

    @staticmethod
    async def _in_flight(s: AsyncSession) -> dict[int, int]:
        rows = await s.execute(
            select(CallAttempt.campaign_id, func.count())
            .where(CallAttempt.state.in_(AttemptState.IN_FLIGHT))
            .group_by(CallAttempt.campaign_id))
        return {cid: int(n) for cid, n in rows}

    async def _scheduler(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            self._claim_wakeup.clear()
            await self._retrying("scheduling", self._schedule_once)
            # With no campaign running, look for one a few times a second, not every tick.
            tick = self.config.tick_secs if self.campaigns else max(self.config.tick_secs,
                                                                    IDLE_TICK_SECS)
            # Calls that end while a campaign is short of channels wake the next tick early,
            # but ticks stay at least MIN_TICK_SECS apart.
            early = MIN_TICK_SECS - (time.monotonic() - started)
            if early > 0:
                await asyncio.sleep(early)
            try:
                await asyncio.wait_for(self._claim_wakeup.wait(),
                                       timeout=max(0.0, tick - (time.monotonic() - started)))
            except asyncio.TimeoutError:
                pass

    def _channels_freed(self) -> None:
        """Calls ended or dials were not placed: claim again soon if a campaign was waiting for
        a channel (rather than at the next regular tick)."""
        if self._short_of_channels:
            self._claim_wakeup.set()

    async def _schedule_once(self) -> None:
        """One transaction per tick: see which campaigns run, count calls in flight, and claim
        for each campaign what its limits allow right now (round robin for fairness)."""
        started = time.monotonic()
        jobs: list[DialJob] = await self._tx(self._schedule_tx)
        self._tracked.update(job.attempt_id for job in jobs)
        for job in jobs:
            self.queues.setdefault(job.campaign_id, deque()).append(job)
        if jobs:
            self._dispatch_wakeup.set()
        self._tick_latency = 0.8 * self._tick_latency + 0.2 * (time.monotonic() - started)

    async def _schedule_tx(self, s: AsyncSession) -> list[DialJob]:
        await self._refresh_campaigns(s)
        if not self._claiming or not self.campaigns:
            return []
        in_flight = await self._in_flight(s)
        total = sum(in_flight.values())
        self.metrics.in_flight.set(total)
        account_room = self.config.max_concurrent - total
        self._short_of_channels = account_room <= 0
        order = [cid for cid in self._rr if cid in self.campaigns]
        self._rr.rotate(-1)
        share = self.pacer.rate / max(1, len(order))
        # Claim enough to keep dialing until the next tick lands, however slow the database is
        # right now; never much more, so a pause strands (and releases) little.
        horizon = max(0.3, 3 * self.config.tick_secs, 2.5 * self._tick_latency)
        now = utcnow()
        jobs: list[DialJob] = []
        for cid in order:
            if account_room <= 0:
                self._short_of_channels = True
                break
            view = self.campaigns[cid]
            queued = len(self.queues.get(cid, ()))
            rate = min(share if len(order) > 1 else self.pacer.rate,
                       view.settings.get("cps") or self.pacer.rate)
            room = view.settings["max_concurrent"] - in_flight.get(cid, 0)
            paced = int(rate * horizon) + 1 - queued
            want = min(room, account_room, paced)
            if want < paced:
                self._short_of_channels = True
            if want <= 0:
                continue
            campaign = await s.get(Campaign, cid)
            if campaign is None or campaign.status != CampaignStatus.RUNNING:
                continue
            result = await claim(s, campaign, want, now, instance_id=self.instance_id,
                                 per_number_cap=self.config.per_number_cap)
            for _ in range(result.suppressed):
                self.metrics.outcomes.labels(o.DNC).inc()
            account_room -= len(result.jobs)
            jobs.extend(result.jobs)
        return jobs

    # ------------------------------------------------------------------ dispatcher
    def _next_ready(self, now: float) -> tuple[int | None, float | None]:
        soonest: float | None = None
        for _ in range(len(self._rr)):
            cid = self._rr[0]
            self._rr.rotate(-1)
            q = self.queues.get(cid)
            if not q:
                continue
            ready = self.budgets.get(cid, CampaignBudget(None)).ready_at(now)
            if ready <= now:
                return cid, None
            soonest = ready if soonest is None else min(soonest, ready)
        return None, soonest

    async def _dispatcher(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            cid, soonest = self._next_ready(loop.time())
            if cid is None:
                self.pacer.idle()  # the account's slots meanwhile are not missed dials
                self._dispatch_wakeup.clear()
                timeout = 0.05 if soonest is None else max(0.0, soonest - loop.time())
                try:
                    await asyncio.wait_for(self._dispatch_wakeup.wait(), timeout=timeout)
                except asyncio.TimeoutError:
                    pass
                continue
            await self.pacer.wait()
            q = self.queues.get(cid)
            if not q:
                continue
            job = q.popleft()
            if cid not in self.campaigns or not self._claiming:
                self._release(job)
                continue
            self.budgets.setdefault(cid, CampaignBudget(None)).take(loop.time())
            task = asyncio.create_task(self._send(job, self.campaigns[cid]))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            # Let the send start now, in its slot, rather than after whatever else is ready (the
            # loop runs ready callbacks in order: it starts before this loop takes another slot).
            await asyncio.sleep(0)

    def _release(self, job: DialJob) -> None:
        """A claimed dial that will not be sent (paused/stopped/shutting down): not an attempt.
        A recovered dial may have been placed before the crash: it is never released as not
        placed (its contact could be called twice); its webhooks or reconciliation settle it."""
        if job.resend:
            self._dial_results.append(DialOutcome(job.attempt_id, "failed", sends=0))
        else:
            self._dial_results.append(DialOutcome(
                job.attempt_id, "released", sends=0, error_code="released",
                error_detail="campaign paused or engine stopping"))
        self._results_ready.set()

    def _dial_request(self, job: DialJob, view: CampaignView) -> DialRequest:
        body = dict(view.dial_settings)
        body.setdefault("webhook_url", self.webhook_url)
        body.update({
            "to": job.phone,
            "from": view.from_number,
            "connection_id": view.connection_id,
            "client_state": job.client_state,
            "command_id": job.command_id,
        })
        return DialRequest.from_body(body)

    async def _send(self, job: DialJob, view: CampaignView) -> None:
        self.pacer.started()
        window = None
        if job.resend and job.created_at is not None:
            # Re-sends must reach Telnyx while it still remembers the first send's command_id.
            window = RESEND_WINDOW_SECS - (utcnow() - job.created_at).total_seconds()
            if window <= 0:
                self._release(job)  # to reconciliation: its webhooks, if any, will settle it
                return
        self.stats.dials_sent += 1
        self.metrics.dials_sent.inc()
        result: DialOutcome
        try:
            res = await self.client.dial(self._dial_request(job, view), resend_window_secs=window)
            self.metrics.dials_ok.inc()
            result = DialOutcome(job.attempt_id, "ok", res.call_control_id, res.call_leg_id,
                                 res.call_session_id, sends=res.sends)
        except RateLimited as exc:
            self.stats.rate_limited += 1
            self.metrics.rate_limited.inc()
            self.pacer.on_rate_limited(exc.reset_secs)
            result = DialOutcome(job.attempt_id, "rate_limited", error_code=exc.code,
                                 error_detail=str(exc))
        except AuthenticationError as exc:
            self.metrics.dial_errors.labels("auth").inc()
            result = DialOutcome(job.attempt_id, "auth", error_code=str(exc.status),
                                 error_detail=str(exc))
        except InvalidRequest as exc:
            self.metrics.dial_errors.labels("invalid").inc()
            codes = list(exc.codes)
            result = DialOutcome(job.attempt_id, "invalid", error_code=",".join(codes)[:32],
                                 error_detail=str(exc), codes=codes)
        except TelnyxError as exc:
            self.metrics.dial_errors.labels("failed").inc()
            result = DialOutcome(job.attempt_id, "failed", error_code=str(exc.status or "network"),
                                 error_detail=str(exc))
        except Exception as exc:  # a bug must not strand the attempt: reconciliation takes it
            log.exception("dial of attempt %s failed unexpectedly", job.attempt_id)
            self.metrics.dial_errors.labels("failed").inc()
            result = DialOutcome(job.attempt_id, "failed", error_code="internal",
                                 error_detail=f"{type(exc).__name__}: {exc}")
        self._dial_results.append(result)
        self._results_ready.set()

    async def _result_writer(self) -> None:
        while not self._closing:
            await self._results_ready.wait()
            self._results_ready.clear()
            await asyncio.sleep(RESULT_BATCH_WAIT_SECS)  # let more results join this commit
            # One batch per wait (a backlog of full batches goes at once): results that come
            # in while one commits wait for the next, rather than each forming a tiny batch.
            while self._dial_results:
                batch = self._dial_results[:500]
                now = utcnow()

                async def _apply(s: AsyncSession, batch: list[DialOutcome] = batch,
                                 now: datetime = now) -> list[int]:
                    return await apply_dial_outcomes(s, batch, now, self.timing)
                to_pause = await self._retrying("recording dial results",
                                                lambda: self._tx(_apply))
                del self._dial_results[:len(batch)]
                self._tracked.difference_update(r.attempt_id for r in batch)
                if any(r.kind != "ok" for r in batch):
                    self._channels_freed()
                for cid in to_pause:
                    await self._pause_for_auth(cid)
                if len(batch) < 500:
                    break
            if self._dial_results:
                self._results_ready.set()

    async def _pause_for_auth(self, campaign_id: int) -> None:
        async def _q(s: AsyncSession) -> None:
            c = await s.get(Campaign, campaign_id, with_for_update=True)
            if c is not None and c.status == CampaignStatus.RUNNING:
                c.status = next_status(c.name, c.status, "pause")
                c.last_error = ("Telnyx refused the API key (401/403): fix TELNYX_API_KEY, then "
                                "`dialer campaign resume`")
                log.error("campaign %s paused: %s", c.name, c.last_error)
        await self._retrying("pausing a campaign", lambda: self._tx(_q))

    # ------------------------------------------------------------------ events
    async def _event_processor(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._events_ready.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass
            self._events_ready.clear()
            # Under load, let events that arrive together share one transaction; when quiet,
            # process at once (the call flow's next action waits on this).
            if self._busy_events:
                await asyncio.sleep(EVENT_BATCH_WAIT_SECS)
            while True:
                n, actions = await self._retrying("processing webhooks", self._process_batch)
                self._busy_events = n >= 20
                if n:
                    self._channels_freed()
                self._run_actions(actions)
                if n < EVENT_BATCH:
                    break

    async def _process_batch(self) -> tuple[int, list[PendingAction]]:
        now = utcnow()

        async def _q(s: AsyncSession) -> tuple[int, list[PendingAction]]:
            # Plain rows, not ORM objects: events are only read here and marked in one bulk
            # UPDATE at the end (the hot path under webhook load).
            columns = [WebhookEvent.id, WebhookEvent.event_id, WebhookEvent.event_type,
                       WebhookEvent.occurred_at, WebhookEvent.call_control_id]
            if self.store.recent is None:  # webhook workers: read the documents along
                columns.append(WebhookEvent.payload)
            rows = (await s.execute(
                select(*columns)
                .where(WebhookEvent.status == "pending")
                .order_by(WebhookEvent.id).limit(EVENT_BATCH)
                .with_for_update(skip_locked=True))).all()
            if not rows:
                return 0, []
            events = await self._event_rows(s, rows)
            attempts = await find_attempts(s, events)
            campaigns = {c.id: c for c in await s.scalars(select(Campaign).where(
                Campaign.id.in_({a.campaign_id for a in attempts.values()})))} if attempts else {}
            actions: list[PendingAction] = []
            touched: dict[int, Any] = {}
            orphans = 0
            for ev in events:
                attempt = attempts.get(ev.attempt_id) if ev.attempt_id else None
                if attempt is None:
                    ev.status = "orphan"
                    orphans += 1
                    log.debug("webhook %s (%s) for an unknown call %s kept as orphan",
                              ev.event_id, ev.event_type, ev.call_control_id)
                    continue
                ev.status = "processed"
                campaign = campaigns[attempt.campaign_id]
                data = ev.payload.get("data", {})
                payload = data.get("payload") or {}
                for act in apply_event(attempt, campaign, ev.event_type, payload, ev.occurred_at,
                                       now, self.timing):
                    if attempt.call_control_id:
                        actions.append(PendingAction(
                            attempt.id, attempt.call_control_id,
                            action_command_id(attempt.command_id, act.key + str(attempt.flow_state)),
                            act, with_defaults(campaign.settings or {})))
                touched[attempt.id] = attempt
            due = [a for a in touched.values()
                   if a.state == AttemptState.ENDED and a.settled_at is None
                   and a.settle_after is not None and a.settle_after <= now]
            await self._settle(s, due, now)
            await mark_events(s, events, now)
            if orphans:
                log.info("%d webhook events for calls this database does not know were kept "
                         "as orphans", orphans)
            self.stats.events_processed += len(events)
            return len(events), actions
        result: tuple[int, list[PendingAction]] = await self._tx(_q)
        return result

    async def _event_rows(self, s: AsyncSession, rows: Sequence[Any]) -> list[EventRow]:
        """The locked rows with their documents: from the receiver's memory when this process
        stored them, else (another process, or before a restart) read from the table; with
        webhook workers, read along with the rows."""
        recent = self.store.recent
        docs = ({r.id: recent.pop(r.id) for r in rows} if recent is not None
                else {r.id: r.payload for r in rows})
        unknown = [i for i, doc in docs.items() if doc is None]
        if unknown:
            docs.update((await s.execute(select(WebhookEvent.id, WebhookEvent.payload)
                                         .where(WebhookEvent.id.in_(unknown)))).all())
        return [EventRow(r.id, r.event_id, r.event_type, r.occurred_at, docs[r.id] or {},
                         r.call_control_id) for r in rows]

    async def _settle(self, s: AsyncSession, attempts: list[CallAttempt], now: datetime) -> None:
        if not attempts:
            return
        await settle(s, attempts, now, self.rng)
        for a in attempts:
            if a.outcome:
                self.metrics.outcomes.labels(a.outcome).inc()

    def _run_actions(self, actions: list[PendingAction]) -> None:
        for pa in actions:
            task = asyncio.create_task(self._send_action(pa))
            self._actions.add(task)
            task.add_done_callback(self._actions.discard)

    async def _send_action(self, pa: PendingAction) -> None:
        act, cc, s = pa.action, pa.call_control_id, pa.settings
        try:
            if act.kind == "hangup":
                await self.client.hangup(cc, command_id=pa.command_id)
            elif act.kind == "playback":
                await self.client.playback_start(cc, audio_url=act.audio_url,
                                                 media_name=act.media_name,
                                                 command_id=pa.command_id)
            elif act.kind == "speak":
                await self.client.speak(cc, payload=act.text or "", voice=s.get("voice", "female"),
                                        language=s.get("language", "en-US"),
                                        command_id=pa.command_id)
            elif act.kind == "transfer":
                await self.client.transfer(cc, to=act.to or "", command_id=pa.command_id)
        except (CallEnded, CallNotFound):
            pass  # the call ended first: normal
        except TelnyxError as exc:
            log.warning("action %s on call %s failed: %s", act.kind, cc, exc)

    # ------------------------------------------------------------------ sweeps
    async def _sweeps(self) -> None:
        last_heartbeat = 0.0
        last_slow = 0.0
        last_recovery = time.monotonic()
        while not self._stopping.is_set():
            if self._claiming and time.monotonic() - last_recovery > RECOVERY_EVERY_SECS:
                await self._retrying("recovery", self._recover)
                last_recovery = time.monotonic()
            await self._retrying("flow timers and settling", self._fast_sweep)
            if time.monotonic() - last_slow >= SLOW_SWEEP_SECS:
                last_slow = time.monotonic()
                await self._retrying("reconciliation", self._reconcile)
                await self._retrying("campaign completion", self._complete_campaigns)
                await self._retrying("hangups on stop", self._hangup_stopped)
                if self.config.exit_when_idle and await self._retrying("idle check", self._idle):
                    log.info("nothing left to do: stopping")
                    self.request_stop()
                    break
            if time.monotonic() - last_heartbeat > 2.0:
                await self._retrying("heartbeat", self._heartbeat)
                last_heartbeat = time.monotonic()
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._sweep_interval)
            except asyncio.TimeoutError:
                pass

    @property
    def _sweep_interval(self) -> float:
        """0.2 s in real time; shorter against a fast simulator, whose calls are short."""
        return max(0.02, min(0.2, 5.0 / self.timing.scale))

    async def _fast_sweep(self) -> None:
        """Flow timers and settling, in one transaction: they decide the next call action and
        free contacts for retries, so they run often."""
        now = utcnow()

        async def _q(s: AsyncSession) -> list[PendingAction]:
            actions = await self._fire_timers(s, now)
            rows = list((await s.scalars(select(CallAttempt).where(
                CallAttempt.state == AttemptState.ENDED, CallAttempt.settled_at.is_(None),
                CallAttempt.settle_after <= now).limit(500)
                .with_for_update(skip_locked=True))).all())
            await self._settle(s, rows, now)
            return actions
        self._run_actions(await self._tx(_q))

    async def _fire_timers(self, s: AsyncSession, now: datetime) -> list[PendingAction]:
        rows = (await s.scalars(select(CallAttempt).where(
            CallAttempt.flow_deadline <= now,
            CallAttempt.state.in_(AttemptState.IN_FLIGHT)).limit(200)
            .with_for_update(skip_locked=True))).all()
        actions = []
        for a in rows:
            a.flow_deadline = None
            campaign = await s.get(Campaign, a.campaign_id)
            assert campaign is not None
            settings = with_defaults(campaign.settings or {})
            step = flow.timer_fired(a.flow_state, settings)
            if step is None or not a.call_control_id:
                continue
            a.flow_state = step.flow_state
            for act in step.actions:
                actions.append(PendingAction(a.id, a.call_control_id, action_command_id(
                    a.command_id, act.key + str(a.flow_state)), act, settings))
        return actions

    async def _reconcile(self) -> None:
        """Attempts whose call.hangup never came: ask Telnyx; finalise the ones that are over."""
        now = utcnow()

        async def _due(s: AsyncSession) -> list[tuple[int, str | None, datetime]]:
            rows = await s.execute(select(CallAttempt.id, CallAttempt.call_control_id,
                                          CallAttempt.created_at).where(
                CallAttempt.state.in_(AttemptState.IN_FLIGHT),
                CallAttempt.reconcile_after <= now).limit(50))
            return [(i, cc, created) for i, cc, created in rows]
        due: list[tuple[int, str | None, datetime]] = await self._tx(_due)
        if not due:
            return
        # True: alive, look again later; "wait": over, but its webhooks may still be on their way.
        alive: dict[int, bool | str] = {}

        async def _check(aid: int, cc: str | None, created: datetime) -> None:
            if cc is None:
                # Never heard of this call: the dial's answer was lost and no webhook came.
                if (now - created) < self.timing.wait(self.timing.lost_dial_secs):
                    alive[aid] = True
                else:
                    alive[aid] = False if self._webhooks_overdue(None, now) else "wait"
                return
            try:
                status = await self.client.retrieve_call(cc)
                if status.is_alive:
                    alive[aid] = True
                else:
                    alive[aid] = False if self._webhooks_overdue(status.end_time, now) else "wait"
            except (CallNotFound, CallEnded):
                alive[aid] = False if self._webhooks_overdue(None, now) else "wait"
            except TelnyxError as exc:
                log.info("reconciliation of %s postponed: %s", cc, exc)
        await asyncio.gather(*(_check(*d) for d in due))

        async def _apply(s: AsyncSession) -> None:
            rows = (await s.scalars(select(CallAttempt).where(
                CallAttempt.id.in_(list(alive))).order_by(CallAttempt.id)
                .with_for_update())).all()
            finished = []
            for a in rows:
                if a.state not in AttemptState.IN_FLIGHT:
                    continue
                verdict = alive.get(a.id, True)
                if verdict == "wait":
                    a.reconcile_after = now + timedelta(seconds=WEBHOOK_RECHECK_SECS)
                    continue
                if verdict:
                    a.reconcile_after = now + self.timing.wait(self.timing.reconcile_recheck_secs)
                    continue
                a.state = AttemptState.ENDED
                a.ended_at = a.ended_at or now
                a.error_code = a.error_code or "lost_webhook"
                a.error_detail = a.error_detail or "no call.hangup received; Telnyx says the call is over"
                facts = facts_of(a)
                a.outcome = o.classify(facts) if facts.answered else o.FAILED
                finished.append(a)
            await self._settle(s, finished, now)
        await self._tx(_apply)

    def _webhooks_overdue(self, ended_at: datetime | None, now: datetime) -> bool:
        """Whether the webhooks of a call that is over can no longer be expected: Telnyx retries
        failed deliveries, so after a restart or a database outage (503s) they may still come.
        `ended_at` None: unknown (Telnyx no longer knows the call, or the dial was lost)."""
        grace = self.config.webhook_grace_secs
        if time.monotonic() - self.store.healthy_since < grace:
            return False
        return ended_at is None or (now - ended_at).total_seconds() >= grace

    async def _complete_campaigns(self) -> None:
        async def _q(s: AsyncSession) -> None:
            # A contact still queued in a stopped campaign would wait forever: one re-queued
            # after `stop` (a claimed dial released or refused with 429 just after the stop
            # committed), or one a claim held while `stop` ran (stop skips locked contacts
            # rather than deadlock with the claim). It ends as canceled here.
            await s.execute(update(Contact).where(
                Contact.status == ContactStatus.QUEUED,
                Contact.campaign_id.in_(select(Campaign.id).where(
                    Campaign.status == CampaignStatus.CANCELLED)))
                .values(status=ContactStatus.DONE, outcome=o.CANCELED, next_attempt_at=None,
                        updated_at=utcnow()))
            running = (await s.scalars(select(Campaign).where(
                Campaign.status == CampaignStatus.RUNNING).with_for_update(skip_locked=True))).all()
            for c in running:
                left = await s.scalar(select(func.count()).select_from(Contact).where(
                    Contact.campaign_id == c.id, Contact.status != ContactStatus.DONE))
                if left:
                    continue
                busy = await s.scalar(select(func.count()).select_from(CallAttempt).where(
                    CallAttempt.campaign_id == c.id,
                    CallAttempt.state.in_(AttemptState.IN_FLIGHT)))
                if busy:
                    continue
                c.status = next_status(c.name, c.status, "complete")
                c.finished_at = utcnow()
                log.info("campaign %s completed", c.name)
        await self._tx(_q)

    async def _hangup_stopped(self) -> None:
        """`campaign stop --hangup`: hang up the campaign's live calls. The request stays set
        until none is left, so calls whose id is not known yet, and hangups lost in a crash
        between this commit and their sending, are hung up too (each engine process sends one
        hangup per call, with one command_id: repeats are ignored by Telnyx)."""
        async def _q(s: AsyncSession) -> list[PendingAction]:
            stopped = (await s.scalars(select(Campaign).where(
                Campaign.status == CampaignStatus.CANCELLED, Campaign.hangup_requested.is_(True))
                .with_for_update(skip_locked=True))).all()
            actions: list[PendingAction] = []
            for c in stopped:
                live = (await s.scalars(select(CallAttempt).where(
                    CallAttempt.campaign_id == c.id,
                    CallAttempt.state.in_(AttemptState.IN_FLIGHT)))).all()
                for a in live:
                    if a.call_control_id is None or a.id in self._hung_up:
                        continue
                    actions.append(PendingAction(a.id, a.call_control_id, action_command_id(
                        a.command_id, "hangup-stop"), flow.Action("hangup"), {}))
                if not live:
                    c.hangup_requested = False
            return actions
        actions: list[PendingAction] = await self._tx(_q)
        self._hung_up.update(pa.attempt_id for pa in actions)
        self._run_actions(actions)

    async def _heartbeat(self) -> None:
        now = utcnow()

        async def _q(s: AsyncSession) -> int:
            updated = await s.execute(update(EngineInstance).where(
                EngineInstance.id == self.instance_id).values(heartbeat_at=now))
            if updated.rowcount == 0:  # type: ignore[attr-defined]
                s.add(EngineInstance(id=self.instance_id, hostname=PROCESS_SPACE,
                                     pid=os.getpid(), started_at=now, heartbeat_at=now))
            cutoff = now - timedelta(seconds=INSTANCE_DEAD_SECS)
            await s.execute(delete(EngineInstance).where(EngineInstance.heartbeat_at < cutoff - timedelta(hours=1)))
            live = await s.scalar(select(func.count()).select_from(EngineInstance).where(
                EngineInstance.heartbeat_at > cutoff))
            return max(1, int(live or 1))
        engines = await self._tx(_q)
        # The account's dial rate is shared by every engine on this database.
        self.pacer.set_rate(self.config.cps / engines)

    async def _idle(self) -> bool:
        async def _q(s: AsyncSession) -> bool:
            active = await s.scalar(select(func.count()).select_from(Campaign).where(
                Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.PAUSED))))
            busy = await s.scalar(select(func.count()).select_from(CallAttempt).where(
                CallAttempt.state.in_(AttemptState.IN_FLIGHT)))
            pending = await s.scalar(select(func.count()).select_from(WebhookEvent).where(
                WebhookEvent.status == "pending"))
            unsettled = await s.scalar(select(func.count()).select_from(CallAttempt).where(
                CallAttempt.state == AttemptState.ENDED, CallAttempt.settled_at.is_(None)))
            return not active and not busy and not pending and not unsettled
        result: bool = await self._tx(_q)
        return result


async def run_engine(config: EngineConfig, *, install_signals: bool = True) -> Engine:
    """Run until SIGINT/SIGTERM (a second signal exits at once) or until idle if asked."""
    engine = Engine(config)
    if install_signals:
        loop = asyncio.get_running_loop()
        hits = {"n": 0}

        def _on_signal() -> None:
            hits["n"] += 1
            if hits["n"] > 1:
                log.warning("second signal: exiting now")
                os._exit(130)
            log.info("stopping: no new claims; dials in flight finish; live calls are tracked "
                     "after restart (signal again to exit at once)")
            # No new claims from now on, and a start-up waiting for the database gives up
            # (its retries end once stopping and not claiming).
            engine._claiming = False
            engine.request_stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _on_signal)
    # A signal during start-up (webhook workers take a second or two) stops it right after.
    await engine.start()
    await engine.run_until_stopped()
    return engine
