"""The event processor: applies stored webhook events to their attempts and runs the call flow.

Events are taken from the event log in arrival order, a batch per transaction: each finds its
attempt (client_state, else call_control_id), merges its facts, advances the call flow (the
actions it decides are sent after the commit), and ended calls whose facts are all in settle at
once. An event for a call this database does not know is kept as `orphan`.

A batch that fails for any reason but a database outage is taken apart: its events are processed
one per transaction, and the one that fails is kept as `failed` with the reason, so a poison
event (a value the database refuses, a bug) never stops the events after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import AttemptState
from campaigns.settings import settings_of
from dialer.engine import event_log, script_events
from dialer.engine.attempts import (
    PendingAction,
    Timing,
    apply_event,
    find_attempts,
    pending_action,
)
from dialer.engine.clock import Clock
from dialer.engine.dispatcher import Stats
from dialer.engine.settling import Settler
from dialer.engine.state import RunState
from dialer.engine.store.campaign_rows import CampaignRows
from dialer.engine.store.plain_rows import write_changes
from dialer.engine.transactions import Transactions, describe, is_outage

log = logging.getLogger("dialer.engine")

#: Under load, how long the processor lets webhooks gather into one transaction (an event a
#: call flow waits on ends the wait: measured at 100 calls/s with a script, first words p99
#: 246-252 ms when every batch waited, 155-179 ms when urgent ones did not).
EVENT_BATCH_WAIT_SECS = 0.025
#: How long stored events that no call flow waits on (`events.URGENT_EVENTS`) may wait for
#: company: at low rates each webhook would otherwise be its own transaction (at 30 calls/s,
#: ~100 transactions a second for what 10 can do). An urgent event ends the wait at once.
LAZY_BATCH_SECS = 0.1
#: Events per transaction: small enough that one batch does not hold the event loop (and the
#: receiver's acknowledgements) for long.
EVENT_BATCH = 100


class EventProcessor:
    def __init__(self, *, tx: Transactions, state: RunState, timing: Timing, settler: Settler,
                 recent: Callable[[], event_log.RecentEvents | None], stats: Stats,
                 on_actions: Callable[[list[PendingAction]], None],
                 on_processed: Callable[[], None], clock: Clock,
                 on_opt_outs: Callable[[set[str]], None] | None = None) -> None:
        self.tx = tx
        self.clock = clock
        self.state = state
        self.timing = timing
        self.settler = settler
        self._recent = recent
        self.stats = stats
        self._on_actions = on_actions
        #: Told after a batch changed something (calls may have ended: channels freed).
        self._on_processed = on_processed
        #: Told the numbers a batch put on the DNC list by keypress, once committed (this
        #: engine's dials of them not sent yet are withdrawn at once).
        self._on_opt_outs = on_opt_outs
        self.ready = asyncio.Event()
        #: Set when an event a call flow waits on was stored.
        self.urgent = asyncio.Event()
        self._busy = False
        self._campaigns = CampaignRows()

    def notify(self, urgent: bool) -> None:
        """Events were stored; `urgent`: one a call's next command waits on."""
        if urgent:
            self.urgent.set()
        self.ready.set()

    async def run(self) -> None:
        while not self.state.closing:
            try:
                await asyncio.wait_for(self.ready.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass
            self.ready.clear()
            # Let events that arrive together share one transaction (under load a little, when
            # quiet a little longer), but not once an event a call's next command waits on is
            # stored: that ends the wait at once.
            if not self.urgent.is_set() and not self.state.closing:
                wait = EVENT_BATCH_WAIT_SECS if self._busy else LAZY_BATCH_SECS
                try:
                    await asyncio.wait_for(self.urgent.wait(), timeout=wait)
                except asyncio.TimeoutError:
                    pass
            self.urgent.clear()
            while True:
                n = await self.process_pending()
                self._busy = n >= 20
                if n < EVENT_BATCH:
                    break

    async def process_pending(self) -> int:
        """Process one batch of pending events (taken apart if it fails); returns how many
        events were handled."""
        try:
            n = await self.tx.retrying("processing webhooks", self._batch)
        except Exception as exc:
            if is_outage(exc):  # only when stopping: the rest waits for the next start
                raise
            log.warning("a batch of webhook events failed (%s): processing them one by one",
                        describe(exc))
            n = await self._one_by_one()
        return n

    async def _batch(self, only_id: int | None = None) -> int:
        n, actions, opted = await self.tx.run(lambda s: self._apply(s, only_id))
        if opted and self._on_opt_outs is not None:
            self._on_opt_outs(opted)
        if n:
            self._on_processed()
        self._on_actions(actions)
        return n

    async def _one_by_one(self) -> int:
        ids = await self.tx.run_retrying("processing webhooks",
                                         lambda s: event_log.pending_ids(s, EVENT_BATCH))
        for row_id in ids:
            try:
                await self.tx.retrying("processing webhooks", partial(self._batch, row_id))
            except Exception as exc:
                if is_outage(exc):
                    raise
                reason = describe(exc)
                log.error("webhook event row %s cannot be processed, kept as failed: %s",
                          row_id, reason)
                await self.tx.run_retrying(
                    "recording a failed webhook",
                    partial(event_log.mark_failed, row_id=row_id, reason=reason,
                            now=self.clock.now()))
        return len(ids)

    async def _apply(self, s: AsyncSession, only_id: int | None
                     ) -> tuple[int, list[PendingAction], set[str]]:
        """One batch in transaction `s`: the events handled, the actions to send after the
        commit, and the numbers it puts on the DNC list (keypress opt-outs)."""
        now = self.clock.now()
        events = await event_log.take_pending(s, EVENT_BATCH, self._recent(), only_id=only_id)
        if not events:
            return 0, [], set()
        attempts = await find_attempts(s, events)
        campaigns = await self._campaigns.get(s, {a.campaign_id for a in attempts.values()})
        notes = script_events.Notes()
        actions: list[PendingAction] = []
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
            payload = data.get("payload") if isinstance(data, dict) else None
            if not isinstance(payload, dict):
                payload = {}
            for act in apply_event(attempt, campaign, ev.event_type, payload, ev.occurred_at,
                                   now, self.timing, notes):
                if attempt.call_control_id:
                    actions.append(pending_action(attempt, act, settings_of(campaign)))
        # Script responses and keypress opt-outs (DNC) in this same transaction; templates.
        opted = set(notes.opt_outs)
        actions = await script_events.flush(s, notes, actions, now)
        due = [a for a in attempts.values()
               if a.state == AttemptState.ENDED and a.settled_at is None
               and a.settle_after is not None and a.settle_after <= now]
        await self.settler.settle(s, due, now, campaigns)
        await write_changes(s, list(attempts.values()), now)
        await event_log.mark_events(s, events, now)
        if orphans:
            log.info("%d webhook events for calls this database does not know were kept "
                     "as orphans", orphans)
        self.stats.events_processed += len(events)
        return len(events), actions, opted
