"""Dial results, recorded in batches (one transaction serves many dials).

Nothing waits on them: webhooks find their attempt by client_state whether or not the dial's
result is recorded yet. A 401/403 pauses the campaign (a bad key must not burn the list). A dial
not sent because its number went on the DNC list after the claim ends its contact as `dnc`, as
the claim would have (`dnc_screen.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.compliance.decide import DNC
from campaigns.db.dialects import one_of
from campaigns.db.models import AttemptState, CallAttempt, CampaignStatus, Contact, ContactStatus
from campaigns.lifecycle import next_status
from campaigns.names import display
from dialer.engine.attempts import (
    DialOutcome,
    Timing,
    advance,
    finish_contact,
    first_reconcile,
)
from dialer.engine.clock import Clock
from dialer.engine.state import RunState
from dialer.engine.store import campaigns as campaign_store
from dialer.engine.transactions import Transactions

log = logging.getLogger("dialer.engine")

#: How long dial results gather before they are recorded in one transaction.
RESULT_BATCH_WAIT_SECS = 0.1
BATCH = 500


class DialResults:
    def __init__(self, *, tx: Transactions, state: RunState, timing: Timing,
                 on_recorded: Callable[[list[DialOutcome]], None], clock: Clock) -> None:
        self.tx = tx
        self.clock = clock
        self.state = state
        self.timing = timing
        #: Told of each batch once committed (tracking, channels freed).
        self._on_recorded = on_recorded
        self._pending: list[DialOutcome] = []
        self._ready = asyncio.Event()

    def add(self, outcome: DialOutcome) -> None:
        self._pending.append(outcome)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def wake(self) -> None:
        self._ready.set()

    async def drain(self, tries: int = 50) -> None:
        """Let what is pending be recorded (at shutdown)."""
        self._ready.set()
        await asyncio.sleep(0)
        for _ in range(tries):
            if not self._pending:
                return
            await asyncio.sleep(0.1)

    async def run(self) -> None:
        while not self.state.closing:
            await self._ready.wait()
            self._ready.clear()
            await asyncio.sleep(RESULT_BATCH_WAIT_SECS)  # let more results join this commit
            # One batch per wait (a backlog of full batches goes at once): results that come
            # in while one commits wait for the next, rather than each forming a tiny batch.
            while self._pending:
                batch = self._pending[:BATCH]
                now = self.clock.now()

                async def _apply(s: AsyncSession, batch: list[DialOutcome] = batch,
                                 now: datetime = now) -> list[int]:
                    return await apply_dial_outcomes(s, batch, now, self.timing)
                to_pause = await self.tx.run_retrying("recording dial results", _apply)
                del self._pending[:len(batch)]
                self._on_recorded(batch)
                for cid in to_pause:
                    await self._pause_for_auth(cid)
                if len(batch) < BATCH:
                    break
            if self._pending:
                self._ready.set()

    async def _pause_for_auth(self, campaign_id: int) -> None:
        async def _q(s: AsyncSession) -> None:
            c = await campaign_store.lock(s, campaign_id)
            if c is not None and c.status == CampaignStatus.RUNNING:
                c.status = next_status(c.name, c.status, "pause")
                c.last_error = ("Telnyx refused the API key (401/403): fix TELNYX_API_KEY, then "
                                "`dialer campaign resume`")
                log.error("campaign %s paused: %s", display(c.name), c.last_error)
        await self.tx.run_retrying("pausing a campaign", _q)


async def apply_dial_outcomes(session: AsyncSession, results: Sequence[DialOutcome],
                              now: datetime, timing: Timing) -> list[int]:
    """Record dial results; returns the ids of campaigns to pause (authentication failures)."""
    if not results:
        return []
    by_id = {r.attempt_id: r for r in results}
    attempts = {a.id: a for a in await session.scalars(
        select(CallAttempt).where(one_of(session, CallAttempt.id, by_id)).order_by(CallAttempt.id)
        .with_for_update())}
    # Only a failed dial changes its contact in Python; an accepted one (the common case) moves
    # its contact from `dialing` to `in_call` in one statement below, without loading it.
    failed = {a.contact_id for a in attempts.values()
              if by_id[a.id].kind != "ok" and a.state == AttemptState.CREATED}
    contacts = {c.id: c for c in await session.scalars(
        select(Contact).where(one_of(session, Contact.id, failed))
        .order_by(Contact.id).with_for_update())} if failed else {}
    campaigns = await campaign_store.by_ids(session, {a.campaign_id for a in attempts.values()})
    to_pause: set[int] = set()
    in_call: list[tuple[int, int]] = []
    for attempt_id, r in by_id.items():
        attempt = attempts.get(attempt_id)
        if attempt is None:
            continue
        campaign = campaigns[attempt.campaign_id]
        attempt.dial_sends = max(attempt.dial_sends or 0, r.sends)
        if r.kind != "dnc":
            attempt.dial_sent_at = attempt.dial_sent_at or now
        if r.kind == "ok":
            if attempt.call_control_id is None:
                attempt.call_control_id = r.call_control_id
            attempt.call_leg_id = attempt.call_leg_id or r.call_leg_id
            attempt.call_session_id = attempt.call_session_id or r.call_session_id
            attempt.dialed_at = attempt.dialed_at or now
            advance(attempt, AttemptState.DIALED)
            if attempt.state != AttemptState.ENDED and attempt.reconcile_after is None:
                attempt.reconcile_after = first_reconcile(campaign, now, timing)
            in_call.append((attempt.contact_id, attempt.id))
            continue
        if attempt.state != AttemptState.CREATED:
            # Webhooks already proved a call exists: the error response was for a placed call.
            continue
        contact = contacts[attempt.contact_id]
        attempt.error_code = r.error_code
        attempt.error_detail = (r.error_detail or "")[:2000] or None
        if r.kind == "dnc":
            # Listed after the claim: no call, and the contact ends as a claim would end it.
            _not_placed(attempt, o.DNC, now)
            if contact.last_attempt_id == attempt.id and contact.status == ContactStatus.DIALING:
                contact.attempts = max(0, contact.attempts - 1)
                contact.deferred_reason, contact.deferred_until = DNC, None
                finish_contact(contact, o.DNC, now)
        elif r.kind in ("rate_limited", "released", "auth", "not_sent"):
            # Not an attempt: no call was placed. The contact goes back to the queue at once.
            _not_placed(attempt, None, now)
            if contact.last_attempt_id == attempt.id and contact.status == ContactStatus.DIALING:
                contact.attempts = max(0, contact.attempts - 1)
                if campaign.status == CampaignStatus.CANCELLED:
                    # Stopped meanwhile: `stop` cancelled the queued contacts, not this one.
                    finish_contact(contact, o.CANCELED, now)
                else:
                    contact.status = ContactStatus.QUEUED
                    contact.next_attempt_at = now
            if r.kind == "auth":
                to_pause.add(campaign.id)
        elif r.kind == "invalid":
            outcome = o.dial_error_outcome(422, r.codes)
            _not_placed(attempt, outcome, now)
            if contact.last_attempt_id == attempt.id:
                finish_contact(contact, outcome, now)
        else:
            # 5xx or network after the bounded re-sends: the call may or may not exist. Webhooks
            # (client_state) will tell; if none come, reconciliation finalises it as failed.
            attempt.reconcile_after = now + timing.wait(timing.lost_dial_secs)
    if in_call:
        await session.execute(
            update(Contact)
            .where(tuple_(Contact.id, Contact.last_attempt_id).in_(sorted(in_call)),
                   Contact.status == ContactStatus.DIALING)
            .values(status=ContactStatus.IN_CALL, updated_at=now)
            .execution_options(synchronize_session=False))
    return sorted(to_pause)


def _not_placed(attempt: CallAttempt, outcome: str | None, now: datetime) -> None:
    attempt.state = AttemptState.NOT_PLACED
    attempt.outcome = outcome
    attempt.settled_at = now
    attempt.reconcile_after = None
