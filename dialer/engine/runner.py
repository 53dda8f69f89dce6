"""`dialer run`: the engine, a thin shell that wires its parts and runs them as tasks.

Parts, one module each (see docs/engine.md for the picture):
- `receiver` (HTTP) -> `event_log` (stored) -> `processor` (facts, call flow) -> `actions`;
- `scheduler` (claims, 1 tx per tick) -> `dispatcher` (pacer, sends) -> `dial_results`;
- `sweeps` (flow timers, settling, `reconcile`, completion, stop --hangup, idle, heartbeat);
- `recovery` (instances, dead engines' dials, resumed call flows);
- `transactions` (one transaction per step, outages waited out); SQL in `store/`.
Every state that matters lives in the database; nothing here is more than wiring and lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import uuid
from typing import Any

from aiohttp import web

from campaigns.db import dialects
from campaigns.db.engine import create_engine
from campaigns.db.migrate import ensure_current
from dialer import short_gc
from dialer.engine import dnc_listener
from dialer.engine.actions import ActionRunner
from dialer.engine.attempts import DialOutcome, Timing
from dialer.engine.config import EngineConfig, webhook_verifier, webhook_workers_for
from dialer.engine.dial_results import DialResults
from dialer.engine.dispatcher import CampaignView, DialQueue, Dispatcher, Stats
from dialer.engine.event_log import EventStore
from dialer.engine.http_limits import start_site
from dialer.engine.metrics import Metrics
from dialer.engine.pacer import SlotBook
from dialer.engine.processor import EventProcessor
from dialer.engine.receiver import WEBHOOK_PATH, Receiver
from dialer.engine.reconcile import Reconciler
from dialer.engine.recovery import PROCESS_SPACE, Instances, Recovery
from dialer.engine.scheduler import Scheduler
from dialer.engine.settling import Settler
from dialer.engine.state import RunState
from dialer.engine.store.instances import AccountLimits
from dialer.engine.sweeps import Sweeps
from dialer.engine.transactions import Transactions, describe
from dialer.engine.wire import WireSettings
from dialer.telnyx.client import TelnyxClient

__all__ = ["PROCESS_SPACE", "CampaignView", "Engine", "EngineConfig", "run_engine"]

log = logging.getLogger("dialer.engine")


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.instance_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.clock = config.clock
        # A dry run's clock runs fast: durations pass in its time, not divided by a scale.
        self.timing = (Timing(scale=1.0, wall_scale=self.clock.scale) if self.clock.simulated
                       else Timing(scale=config.time_scale))
        self.metrics = Metrics()
        self.stats = Stats()
        self.state = RunState()
        # No ping before every checkout (a round trip per transaction, thousands a second under
        # load): a connection that died with its server fails its statement, which invalidates
        # the whole pool, and the caller retries (the receiver answers 503 meanwhile).
        self.db = create_engine(config.database_url, pool_pre_ping=False)
        self.tx = Transactions(self.db, keep_retrying=self.state.keep_retrying)
        self.book = SlotBook(self.tx, config.cps, config.pacing_margin_secs)
        self.sessions = self.tx.sessions
        self.client = TelnyxClient(config.api_url, config.api_key)
        self.actions = ActionRunner(self.client, self.metrics.first_words.observe)
        settler = Settler(self.metrics, random.Random(config.seed))

        # Webhooks: receiver -> event log -> processor -> attempts.
        # With webhook workers the documents are read along with the pending rows (the workers
        # store most events): nothing to keep in memory.
        self.store = EventStore(self.sessions, self._events_stored, self.tx.write_lock,
                                keep_recent=not config.webhook_workers)
        self.receiver = Receiver(self.store, webhook_verifier(config), self.metrics, self.health)
        self.processor = EventProcessor(
            tx=self.tx, state=self.state, timing=self.timing, settler=settler,
            recent=lambda: self.store.recent, stats=self.stats, on_actions=self.actions.run,
            on_processed=self._channels_freed, clock=self.clock, on_opt_outs=self._opted_out)
        self.workers = webhook_workers_for(
            config, postgres=dialects.is_postgres(self.db), on_stored=self._events_stored,
            on_report=self._worker_report, on_lost=self.store.store_failed)

        # Dials: scheduler -> dial queue -> dispatcher -> dial results.
        self.results = DialResults(tx=self.tx, state=self.state, timing=self.timing,
                                   on_recorded=self._dials_recorded, clock=self.clock)
        self.queue = DialQueue(self.results.add)
        self.scheduler = Scheduler(
            tx=self.tx, state=self.state, queue=self.queue, book=self.book,
            metrics=self.metrics, instance_id=self.instance_id, tick_secs=config.tick_secs,
            max_concurrent=config.max_concurrent, per_number_cap=config.per_number_cap,
            clock=self.clock)
        self.dispatcher = Dispatcher(
            queue=self.queue, book=self.book,
            wire=WireSettings(config.api_url, config.api_key, config.cps),
            tx=self.tx, state=self.state, views=self.scheduler.view,
            running=lambda: self.scheduler.campaigns.keys(), webhook_url=lambda: self.webhook_url,
            record=self.results.add, metrics=self.metrics, stats=self.stats, clock=self.clock)
        self.scheduler.on_refreshed = self.dispatcher.sync_allowed

        # Periodic work and recovery.
        self.instances = Instances(self.tx, self.instance_id, config.cps, config.max_concurrent,
                                   self._account_limits)
        self.recovery = Recovery(tx=self.tx, instances=self.instances, queue=self.queue,
                                 timing=self.timing, refresh_campaigns=self.scheduler.refresh,
                                 on_actions=self.actions.run, clock=self.clock)
        reconciler = Reconciler(tx=self.tx, client=self.client, timing=self.timing,
                                settler=settler, grace_secs=config.webhook_grace_secs,
                                healthy_since=lambda: self.store.healthy_since,
                                clock=self.clock)
        self.sweeps = Sweeps(tx=self.tx, state=self.state, timing=self.timing, settler=settler,
                             reconciler=reconciler, on_actions=self.actions.run,
                             recover=self.recovery.recover, heartbeat=self.instances.heartbeat,
                             exit_when_idle=config.exit_when_idle, request_stop=self.request_stop,
                             clock=self.clock, on_skipped=self.scheduler.wakeup.set,
                             busy_in_memory=lambda: len(self.queue.tracked) + self.results.pending)
        self._tasks: list[asyncio.Task[None]] = []
        self._gc: asyncio.Task[None] | None = None
        self._wire_started: asyncio.Task[None] | None = None
        #: Every task runs (dialing included): `/healthz` says "starting" until then.
        self._running = False
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    # ------------------------------------------------------------------ wiring callbacks
    def _events_stored(self, urgent: bool) -> None:
        self.processor.notify(urgent)

    def _channels_freed(self) -> None:
        self.scheduler.channels_freed()

    def _opted_out(self, numbers: set[str]) -> None:
        self.dispatcher.withdraw_numbers(numbers)

    def _dials_recorded(self, batch: list[DialOutcome]) -> None:
        self.queue.recorded(r.attempt_id for r in batch)
        if any(r.kind != "ok" for r in batch):
            self.scheduler.channels_freed()

    def _account_limits(self, limits: AccountLimits) -> None:
        """The limits the live engines agree on (the lowest of each) apply to this one too."""
        self.book.follow_account(limits.cps)
        self.scheduler.follow_account(limits.max_concurrent)

    def _worker_report(self, report: dict[str, Any]) -> None:
        """A webhook worker's answers since its last report, into this engine's metrics."""
        for result, n in report["answers"].items():
            self.metrics.webhooks.labels(result).inc(n)
        for seconds in report["latency"]:
            self.metrics.webhook_latency.observe(seconds)
        if report.get("store_failed"):
            self.store.store_failed()

    # ------------------------------------------------------------------ lifecycle
    @property
    def webhook_url(self) -> str:
        port = self.bound_port or self.config.port
        if self.workers is not None and self.workers.port is not None:
            port = self.workers.port
        base = self.config.public_url or f"http://{self.config.host}:{port}"
        return base.rstrip("/") + WEBHOOK_PATH

    @property
    def crashed(self) -> str | None:
        """What crashed, when a task of the engine stopped it on an unexpected error."""
        return self.state.crashed

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
            if self._wire_started is not None:
                await self._wire_started
        with contextlib.suppress(Exception):
            await self.dispatcher.close()
        with contextlib.suppress(Exception):
            await self.client.close()
        with contextlib.suppress(Exception):
            await self.db.dispose()

    async def _start(self) -> None:
        # The dial wire's process starts (~0.4 s, mostly imports) while the rest starts.
        self._wire_started = asyncio.create_task(self.dispatcher.start())
        await ensure_current(self.db)
        if self.workers is not None:  # first: healthy means webhooks can reach where dials say
            await self.workers.start()
        # http_limits: header/body timeouts, connection cap, one-line logs of bad requests.
        self._runner, self.bound_port = await start_site(
            self.receiver.app(), self.config.host, self.config.port)
        self.store.start()
        await self.tx.retrying("heartbeat", self.instances.heartbeat)
        await self.recovery.recover()
        await self.recovery.resume_flows()
        await self._wire_started
        for name, coro in [
            ("scheduler", self.scheduler.run()),
            ("dispatcher", self.dispatcher.run()),
            ("dial-results", self.results.run()),
            ("events", self.processor.run()),
            ("sweeps", self.sweeps.run()),
            *([("dnc-listener", dnc_listener.listen(self.db, self.state.stopping,
                                                    self.dispatcher.withdraw_numbers))]
              if dialects.is_postgres(self.db) else []),
        ]:
            self._tasks.append(asyncio.create_task(self.guard(name, coro), name=name))
        # Start-up's objects collected and frozen now, before the tasks run; then no long
        # collector pauses in the main loop (webhooks answered, call flows): short_gc.
        short_gc.settle()
        self._gc = asyncio.create_task(short_gc.keep_pauses_short(), name="short-gc")
        self._running = True
        log.info("engine %s listening on %s:%s, webhooks at %s", self.instance_id,
                 self.config.host, self.bound_port, self.webhook_url)

    async def run_until_stopped(self) -> None:
        await self.state.stopping.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        self.state.stopping.set()
        # The scheduler sleeps on this between ticks: it sees the stop at once.
        self.scheduler.wakeup.set()

    def stop_claiming(self) -> None:
        """No new claims from now on; a start-up waiting for the database gives up."""
        self.state.claiming = False
        self.dispatcher.sync_allowed()
        self.request_stop()

    async def shutdown(self) -> None:
        """Stop claiming, release what was claimed but not sent, let dials in flight finish,
        record their results; live calls are tracked again after a restart."""
        self.stop_claiming()
        if self.workers is not None:
            # First: webhooks that cannot be stored any more are refused (Telnyx retries them),
            # and what the workers stored is processed below or after the restart.
            await self.workers.stop()
        self.queue.release_all()
        self.dispatcher.release_resends()
        await self.dispatcher.wait_for_sends(timeout=15)
        await self.dispatcher.close()
        await self.results.drain()
        await self.actions.wait(timeout=5)
        self.state.closing = True
        self.results.wake()
        self.processor.ready.set()
        if self._gc is not None:
            self._gc.cancel()
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
        with contextlib.suppress(Exception):
            await self.instances.remove_self()
        await self.db.dispose()

    async def guard(self, name: str, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("engine task %s crashed; stopping", name)
            self.state.crashed = f"{name}: {describe(exc)}"
            self.request_stop()

    def health(self) -> dict[str, Any]:
        status = "ok" if self._running else "starting"
        if self.workers is not None and self.workers.alive < self.workers.count:
            status = "degraded"  # a webhook worker is down (being started again)
        if self.state.crashed:
            status = "failed"
        return {
            "status": "stopping" if self.state.stopping.is_set() else status,
            "instance": self.instance_id,
            "campaigns_running": sorted(c.name for c in self.scheduler.campaigns.values()),
            "dials_sent": self.stats.dials_sent,
            "rate": round(self.book.rate, 2),
            **({"webhook_workers": self.workers.alive} if self.workers is not None else {}),
        }


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
            engine.stop_claiming()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _on_signal)
    # A signal during start-up (webhook workers take a second or two) stops it right after.
    await engine.start()
    await engine.run_until_stopped()
    return engine
