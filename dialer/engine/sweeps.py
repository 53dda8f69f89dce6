"""The sweeps: the engine's periodic work besides claiming, dialing and events.

- often (every 0.2 s, shorter against a fast simulator): flow timers (e.g. the voicemail
  fallback) and settling, in one transaction: they decide the next call action and free contacts
  for retries;
- every 0.5 s: reconciliation, campaign completion, stop --hangup, the idle check;
- every second: recovery (see `recovery`); every 2 s: the heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.due import next_due_at
from campaigns.lifecycle import next_status
from campaigns.names import display
from campaigns.settings import settings_of
from dialer.engine import event_log, flow, script_events
from dialer.engine.attempts import PendingAction, Timing, pending_action
from dialer.engine.clock import Clock, skip_target
from dialer.engine.reconcile import Reconciler
from dialer.engine.settling import Settler
from dialer.engine.state import RunState
from dialer.engine.store import calls as call_store
from dialer.engine.store import campaigns as campaign_store
from dialer.engine.transactions import Transactions

log = logging.getLogger("dialer.engine")

#: Reconciliation, campaign completion, stop --hangup and the idle check run this often.
SLOW_SWEEP_SECS = 0.5
RECOVERY_EVERY_SECS = 1.0
HEARTBEAT_EVERY_SECS = 2.0


class Sweeps:
    def __init__(self, *, tx: Transactions, state: RunState, timing: Timing, settler: Settler,
                 reconciler: Reconciler, on_actions: Callable[[list[PendingAction]], None],
                 recover: Callable[[], Awaitable[None]],
                 heartbeat: Callable[[], Awaitable[None]], exit_when_idle: bool,
                 request_stop: Callable[[], None], clock: Clock,
                 on_skipped: Callable[[], None] = lambda: None,
                 busy_in_memory: Callable[[], int] = lambda: 0) -> None:
        self.tx = tx
        self.clock = clock
        #: A dry run's clock jumped ahead: claim at once.
        self._on_skipped = on_skipped
        #: Dials claimed or being recorded that the database does not show as busy yet.
        self._busy_in_memory = busy_in_memory
        self.state = state
        self.timing = timing
        self.settler = settler
        self.reconciler = reconciler
        self._on_actions = on_actions
        self._recover = recover
        self._heartbeat = heartbeat
        self.exit_when_idle = exit_when_idle
        self._request_stop = request_stop
        #: Attempts of stopped campaigns this process already sent a hangup for.
        self._hung_up: set[int] = set()

    async def run(self) -> None:
        last_heartbeat = 0.0
        last_slow = 0.0
        last_recovery = time.monotonic()
        retrying = self.tx.retrying
        while not self.state.stopping.is_set():
            if self.state.claiming and time.monotonic() - last_recovery > RECOVERY_EVERY_SECS:
                await retrying("recovery", self._recover)
                last_recovery = time.monotonic()
            await retrying("flow timers and settling", self.fast_sweep)
            if time.monotonic() - last_slow >= SLOW_SWEEP_SECS:
                last_slow = time.monotonic()
                await retrying("reconciliation", self.reconciler.run_once)
                await retrying("campaign completion", self.complete_campaigns)
                await retrying("hangups on stop", self.hangup_stopped)
                if self.clock.simulated:
                    await retrying("skipping idle simulated time", self.skip_idle_time)
                if self.exit_when_idle and await retrying("idle check", self.idle):
                    log.info("nothing left to do: stopping")
                    self._request_stop()
                    break
            if time.monotonic() - last_heartbeat > HEARTBEAT_EVERY_SECS:
                await retrying("heartbeat", self._heartbeat)
                last_heartbeat = time.monotonic()
            try:
                await asyncio.wait_for(self.state.stopping.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass

    @property
    def interval(self) -> float:
        """0.2 s in real time; shorter against a fast simulator, whose calls are short."""
        return max(0.02, min(0.2, 5.0 / max(self.timing.scale, self.clock.scale)))

    async def fast_sweep(self) -> None:
        """Flow timers and settling, in one transaction."""
        now = self.clock.now()

        async def _q(s: AsyncSession) -> list[PendingAction]:
            actions = await self._fire_timers(s, now)
            await self.settler.settle(s, await call_store.settling_due(s, now), now)
            return actions
        self._on_actions(await self.tx.run(_q))

    async def _fire_timers(self, s: AsyncSession, now: datetime) -> list[PendingAction]:
        rows = await call_store.timers_due(s, now)
        if not rows:
            return []
        campaigns = await campaign_store.by_ids(s, {a.campaign_id for a in rows})
        actions = []
        for a in rows:
            a.flow_deadline = None
            settings = settings_of(campaigns[a.campaign_id])
            step = flow.timer_fired(a.flow_state, settings)
            if step is None or not a.call_control_id:
                continue
            a.flow_state = step.flow_state
            for act in step.actions:
                actions.append(pending_action(a, act, settings))
        return await script_events.render_actions(s, actions)  # templates per contact

    async def complete_campaigns(self) -> None:
        """A running campaign completes once no contact can be dialed and no call is in flight."""
        async def _q(s: AsyncSession) -> None:
            await campaign_store.cancel_queued_of_stopped(s)
            for c in await campaign_store.running_locked(s):
                if not await campaign_store.finished(s, c.id):
                    continue
                c.status = next_status(c.name, c.status, "complete")
                c.finished_at = self.clock.now()
                log.info("campaign %s completed", display(c.name))
        await self.tx.run(_q)

    async def hangup_stopped(self) -> None:
        """`campaign stop --hangup`: hang up the campaign's live calls. The request stays set
        until none is left, so calls whose id is not known yet, and hangups lost in a crash
        between this commit and their sending, are hung up too (each engine process sends one
        hangup per call, with one command_id: repeats are ignored by Telnyx)."""
        async def _q(s: AsyncSession) -> list[PendingAction]:
            actions: list[PendingAction] = []
            for c in await campaign_store.hangup_requested(s):
                live = await campaign_store.live_attempts(s, c.id)
                for a in live:
                    if a.call_control_id is None or a.id in self._hung_up:
                        continue
                    actions.append(pending_action(a, flow.Action("hangup"), {}, key="hangup-stop"))
                if not live:
                    c.hangup_requested = False
            return actions
        actions = await self.tx.run(_q)
        self._hung_up.update(pa.attempt_id for pa in actions)
        self._on_actions(actions)

    async def skip_idle_time(self) -> None:
        """A dry run with nothing in flight jumps its clock to the next due contact (retries
        hours apart take no wall time)."""
        async def _q(s: AsyncSession) -> tuple[datetime | None, int, int]:
            return (await next_due_at(s), await call_store.busy_count(s),
                    await event_log.pending_count(s))
        due, busy, pending = await self.tx.run(_q)
        target = skip_target(self.clock.now(), due, busy + self._busy_in_memory(), pending,
                             scale=self.clock.scale)
        if target is not None and self.clock.advance_to(target):
            log.info("dry run: nothing in flight, simulated clock moved on to %s",
                     target.isoformat(timespec="seconds"))
            self._on_skipped()

    async def idle(self) -> bool:
        return await self.tx.run(campaign_store.nothing_left)
