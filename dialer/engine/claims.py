"""Claiming due contacts: compliance at dial time and attempt rows committed before the dial.

One transaction per claim: due contacts of one campaign are locked (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several engines never claim the same contact; SQLite has one writer), decided by
`campaigns.compliance.decide` (DNC and registry, consent, the effective window of every candidate
zone and state, holidays, blackouts, the lowest matching cap: docs/compliance.md), and each that
passes gets its attempt row (deterministic command_id, client_state naming the attempt) holding
the decision record. A deferred contact records why it waits and until when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.compliance.decide import (
    BLOCKED,
    CONSENT,
    DEFERRED,
    DNC,
    NO_WINDOW,
    REGISTRY,
    RecentCalls,
    decide,
)
from campaigns.compliance.store import campaign_context, facts_for, screen
from campaigns.db.models import AttemptState, CallAttempt, Campaign, Contact, ContactStatus
from campaigns.settings import settings_of
from dialer.engine.attempts import finish_contact
from dialer.engine.identity import AttemptRef, command_id, encode_client_state
from dialer.engine.store.plain_rows import ClaimedContactRow, write_changes

log = logging.getLogger("dialer.engine.claims")


@dataclass(frozen=True)
class DialJob:
    """A claimed attempt waiting for its dial slot."""

    attempt_id: int
    campaign_id: int
    contact_id: int
    attempt_no: int
    phone: str
    command_id: str
    client_state: str
    #: Recovered after a crash: the dial may already have been sent (and the call placed), so
    #: it is re-sent with its command_id, and never released as "not placed".
    resend: bool = False
    #: When the attempt was claimed (recovered dials: re-sends must stay inside Telnyx's
    #: command_id memory, which began with the first send).
    created_at: datetime | None = None
    #: Sends of this dial before this one (a re-send after a 5xx or a lost answer).
    sends: int = 0


@dataclass
class ClaimResult:
    jobs: list[DialJob] = field(default_factory=list)
    deferred: int = 0  # outside the window, a holiday or blackout, or at the cap: moved later
    suppressed: int = 0  # DNC or registry at dial time
    closed: int = 0  # done without a call (no window, no consent, attempts exhausted)
    #: Why the campaign was not claimed at all (a stale registry copy), or None.
    stopped: str | None = None


#: The last time each campaign's "stopped" reason was logged (once per 10 minutes), by uid.
_stop_logged: dict[str, datetime] = {}


async def claim(session: AsyncSession, campaign: Campaign, limit: int, now: datetime, *,
                instance_id: str, per_number_cap: int) -> ClaimResult:
    """Claim up to `limit` due contacts of `campaign`: each is decided by
    `campaigns.compliance.decide` in this transaction and, when allowed, gets its attempt row
    with the decision record."""
    result = ClaimResult()
    if limit <= 0:
        return result
    settings = settings_of(campaign)
    ctx = await campaign_context(session, settings, per_number_cap, now)
    key = campaign.uid or str(campaign.id)
    if ctx.stopped:
        result.stopped = ctx.stopped
        last = _stop_logged.get(key)
        if last is None or now - last > timedelta(minutes=10) or now < last:
            _stop_logged[key] = now
            log.warning("campaign %r is not dialed: %s", campaign.name, ctx.stopped)
        return result
    _stop_logged.pop(key, None)
    t = Contact.__table__.c
    contacts = [ClaimedContactRow(r._mapping) for r in await session.execute(
        ClaimedContactRow.select_columns()
        .where(t.campaign_id == campaign.id, t.status == ContactStatus.QUEUED,
               t.next_attempt_at <= now)
        .order_by(t.next_attempt_at, t.id)
        .limit(limit)
        .with_for_update(skip_locked=True))]
    if not contacts:
        return result

    phones = [c.phone_e164 for c in contacts]
    screening = await screen(session, phones, now)
    dnc, registry, recent = screening.dnc, screening.registry, screening.recent

    new_attempts: list[tuple[ClaimedContactRow, dict[str, Any]]] = []
    for contact in contacts:
        facts = facts_for(contact, ctx.fallback_zone, dnc, registry)
        if contact.attempts >= settings["max_attempts"] and not (facts.on_dnc
                                                                  or facts.on_registry):
            finish_contact(contact, contact.outcome or o.FAILED, now)
            result.closed += 1
            continue
        calls = recent.get(contact.phone_e164, RecentCalls())
        decision = decide(facts, ctx.campaign, ctx.rules, now, calls)
        if decision.verdict == BLOCKED:
            contact.deferred_reason, contact.deferred_until = decision.reason, None
            finish_contact(contact, _BLOCKED_OUTCOME[decision.reason or ""], now)
            if decision.reason in (DNC, REGISTRY):
                result.suppressed += 1
            else:
                result.closed += 1
            continue
        if decision.verdict == DEFERRED:
            contact.next_attempt_at = decision.until
            contact.deferred_reason, contact.deferred_until = decision.reason, decision.until
            result.deferred += 1
            continue
        recent[contact.phone_e164] = RecentCalls(calls.count + 1, calls.oldest or now)
        attempt_no = (contact.attempt_seq or 0) + 1
        contact.attempt_seq = attempt_no
        new_attempts.append((contact, dict(
            contact_id=contact.id,
            campaign_id=campaign.id,
            attempt_no=attempt_no,
            phone_e164=contact.phone_e164,
            command_id=command_id(campaign.uid or str(campaign.id), contact.id, attempt_no),
            client_state=encode_client_state(AttemptRef(contact.id, attempt_no)),
            state=AttemptState.CREATED,
            created_at=now,
            claimed_by=instance_id,
            decision=decision.record,
        )))
        contact.status = ContactStatus.DIALING
        contact.attempts += 1
        contact.next_attempt_at = None
        contact.deferred_reason = contact.deferred_until = None
        contact.last_attempt_at = now
        if contact.first_attempt_at is None:
            contact.first_attempt_at = now
        contact.updated_at = now

    if new_attempts:
        # One INSERT .. RETURNING for the batch, ids in the order of the rows given (the
        # columns' defaults fill the rest, as they did for ORM objects).
        a = cast(Table, CallAttempt.__table__)
        ids = (await session.scalars(
            insert(a).returning(a.c.id, sort_by_parameter_order=True),
            [row for _, row in new_attempts])).all()
        for (contact, row), attempt_id in zip(new_attempts, ids, strict=True):
            contact.last_attempt_id = attempt_id
            result.jobs.append(DialJob(attempt_id, campaign.id, contact.id, row["attempt_no"],
                                       contact.phone_e164, row["command_id"],
                                       row["client_state"]))
    await write_changes(session, contacts, now)
    return result


#: The outcome a contact is closed with when the decision blocks it.
_BLOCKED_OUTCOME = {DNC: o.DNC, REGISTRY: o.REGISTRY, CONSENT: o.NO_CONSENT,
                    NO_WINDOW: o.NO_WINDOW}
