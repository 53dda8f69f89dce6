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
from typing import Any

from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.compliance.decide import DNC
from campaigns.db.dialects import one_of
from campaigns.db.models import (
    AttemptState,
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
)
from campaigns.lifecycle import next_status
from campaigns.names import display
from dialer.engine.attempts import (
    DialOutcome,
    Timing,
    advanced,
    finish_contact,
    reconcile_from,
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
    """Record dial results; returns the ids of campaigns to pause (authentication failures).

    Every attempt of the batch is locked first, in id order (as every transaction that locks
    attempts does). Accepted dials, nearly all of them, are then written with one executemany
    from plain rows (no ORM objects: at low rates, loading and flushing them was most of a
    batch's CPU); the others take the ORM path below, their contacts with them."""
    if not results:
        return []
    by_id = {r.attempt_id: r for r in results}
    rows = {row.id: row for row in await session.execute(
        select(*_RESULT_COLUMNS).where(one_of(session, _ATTEMPTS.c.id, by_id))
        .order_by(_ATTEMPTS.c.id).with_for_update())}
    accepted = [r for r in by_id.values() if r.kind == "ok" and r.attempt_id in rows]
    in_call = await _record_accepted(session, accepted, rows, now, timing)
    others = [r for r in by_id.values() if r.kind != "ok" and r.attempt_id in rows]
    to_pause = await _record_not_accepted(session, others, now, timing) if others else []
    if in_call:
        await session.execute(
            update(Contact)
            .where(tuple_(Contact.id, Contact.last_attempt_id).in_(sorted(in_call)),
                   Contact.status == ContactStatus.DIALING)
            .values(status=ContactStatus.IN_CALL, updated_at=now)
            .execution_options(synchronize_session=False))
    return to_pause


_ATTEMPTS: Table = CallAttempt.__table__  # type: ignore[assignment]
_RESULT_COLUMNS = [_ATTEMPTS.c[name] for name in (
    "id", "campaign_id", "contact_id", "state", "dial_sends", "dial_sent_at", "call_control_id",
    "call_leg_id", "call_session_id", "dialed_at", "reconcile_after")]
#: What an accepted dial writes (the values worked out from the locked row, as the ORM path
#: would: first values kept, the state moved forward only).
_ACCEPTED = (update(_ATTEMPTS).where(_ATTEMPTS.c.id == bindparam("b_id")).values(
    dial_sends=bindparam("b_sends"), dial_sent_at=bindparam("b_sent_at"),
    call_control_id=bindparam("b_cc"), call_leg_id=bindparam("b_leg"),
    call_session_id=bindparam("b_session"), dialed_at=bindparam("b_dialed_at"),
    state=bindparam("b_state"), reconcile_after=bindparam("b_reconcile")))


async def _record_accepted(session: AsyncSession, accepted: list[DialOutcome],
                           rows: dict[int, Any], now: datetime,
                           timing: Timing) -> list[tuple[int, int]]:
    """Accepted dials onto their locked rows; returns (contact id, attempt id) of each."""
    if not accepted:
        return []
    settings: dict[int, dict[str, Any] | None] = dict((await session.execute(
        select(Campaign.id, Campaign.dial_settings).where(one_of(
            session, Campaign.id, {rows[r.attempt_id].campaign_id for r in accepted})))).all())
    params = []
    in_call = []
    for r in sorted(accepted, key=lambda r: r.attempt_id):
        row = rows[r.attempt_id]
        state = advanced(row.state, AttemptState.DIALED)
        reconcile = row.reconcile_after
        if state != AttemptState.ENDED and reconcile is None:
            reconcile = reconcile_from(settings.get(row.campaign_id), now, timing)
        params.append({
            "b_id": row.id, "b_sends": max(row.dial_sends or 0, r.sends),
            "b_sent_at": row.dial_sent_at or now,
            "b_cc": row.call_control_id if row.call_control_id is not None
            else r.call_control_id,
            "b_leg": row.call_leg_id or r.call_leg_id,
            "b_session": row.call_session_id or r.call_session_id,
            "b_dialed_at": row.dialed_at or now, "b_state": state,
            "b_reconcile": reconcile})
        in_call.append((row.contact_id, row.id))
    await session.execute(_ACCEPTED, params)
    return in_call


async def _record_not_accepted(session: AsyncSession, results: Sequence[DialOutcome],
                               now: datetime, timing: Timing) -> list[int]:
    """Dials refused, not sent or of unknown outcome (ORM: rare, and each one moves its
    contact); returns the campaigns to pause."""
    by_id = {r.attempt_id: r for r in results}
    attempts = {a.id: a for a in await session.scalars(
        select(CallAttempt).where(one_of(session, CallAttempt.id, by_id)).order_by(CallAttempt.id)
        .with_for_update())}
    failed = {a.contact_id for a in attempts.values() if a.state == AttemptState.CREATED}
    contacts = {c.id: c for c in await session.scalars(
        select(Contact).where(one_of(session, Contact.id, failed))
        .order_by(Contact.id).with_for_update())} if failed else {}
    campaigns = await campaign_store.by_ids(session, {a.campaign_id for a in attempts.values()})
    to_pause: set[int] = set()
    for attempt_id, r in by_id.items():
        attempt = attempts.get(attempt_id)
        if attempt is None:
            continue
        campaign = campaigns[attempt.campaign_id]
        attempt.dial_sends = max(attempt.dial_sends or 0, r.sends)
        if r.kind != "dnc":
            attempt.dial_sent_at = attempt.dial_sent_at or now
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
    return sorted(to_pause)


def _not_placed(attempt: CallAttempt, outcome: str | None, now: datetime) -> None:
    attempt.state = AttemptState.NOT_PLACED
    attempt.outcome = outcome
    attempt.settled_at = now
    attempt.reconcile_after = None
