"""Claiming due contacts: compliance at dial time and attempt rows committed before the dial.

One transaction per claim: due contacts of one campaign are locked (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several engines never claim the same contact; SQLite has one writer), checked
against the DNC list, the calling window in every candidate zone and the attempt caps, and each
that passes gets its attempt row (deterministic command_id, client_state naming the attempt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.db.models import (
    AttemptState,
    CallAttempt,
    Campaign,
    Contact,
    ContactStatus,
    DncNumber,
)
from campaigns.settings import with_defaults
from campaigns.windows import CallingWindow
from dialer.engine.attempts import finish_contact
from dialer.engine.identity import AttemptRef, command_id, encode_client_state


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


@dataclass
class ClaimResult:
    jobs: list[DialJob] = field(default_factory=list)
    deferred: int = 0  # outside the window or at the per-number cap: moved to a later time
    suppressed: int = 0  # DNC at dial time
    closed: int = 0  # done without a call (no common window, attempts exhausted)


async def claim(session: AsyncSession, campaign: Campaign, limit: int, now: datetime, *,
                instance_id: str, per_number_cap: int) -> ClaimResult:
    result = ClaimResult()
    if limit <= 0:
        return result
    contacts = list((await session.scalars(
        select(Contact)
        .where(Contact.campaign_id == campaign.id, Contact.status == ContactStatus.QUEUED,
               Contact.next_attempt_at <= now)
        .order_by(Contact.next_attempt_at, Contact.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )).all())
    if not contacts:
        return result

    settings = with_defaults(campaign.settings or {})
    window = CallingWindow.parse(settings["calling_hours"], settings["calling_days"])
    fallback = settings["fallback_timezone"]
    phones = [c.phone_e164 for c in contacts]
    dnc = set((await session.scalars(
        select(DncNumber.phone_e164).where(DncNumber.phone_e164.in_(phones)))).all())
    recent = await _recent_calls(session, phones, now)

    new_attempts: list[tuple[Contact, CallAttempt]] = []
    for contact in contacts:
        if contact.phone_e164 in dnc:
            finish_contact(contact, o.DNC, now)
            result.suppressed += 1
            continue
        if contact.attempts >= settings["max_attempts"]:
            finish_contact(contact, contact.outcome or o.FAILED, now)
            result.closed += 1
            continue
        zones = contact.timezones or [fallback]
        if not window.is_open(now, zones):
            opening = window.next_opening(now, zones)
            if opening is None:
                finish_contact(contact, o.NO_WINDOW, now)
                result.closed += 1
            else:
                contact.next_attempt_at = opening
                result.deferred += 1
            continue
        count, oldest = recent.get(contact.phone_e164, (0, None))
        if count >= per_number_cap and oldest is not None:
            contact.next_attempt_at = oldest + timedelta(hours=24, seconds=1)
            result.deferred += 1
            continue
        recent[contact.phone_e164] = (count + 1, oldest or now)
        attempt_no = (contact.attempt_seq or 0) + 1
        contact.attempt_seq = attempt_no
        attempt = CallAttempt(
            contact_id=contact.id,
            campaign_id=campaign.id,
            attempt_no=attempt_no,
            phone_e164=contact.phone_e164,
            command_id=command_id(campaign.uid or str(campaign.id), contact.id, attempt_no),
            client_state=encode_client_state(AttemptRef(contact.id, attempt_no)),
            state=AttemptState.CREATED,
            created_at=now,
            claimed_by=instance_id,
        )
        session.add(attempt)
        new_attempts.append((contact, attempt))
        contact.status = ContactStatus.DIALING
        contact.attempts += 1
        contact.next_attempt_at = None
        contact.last_attempt_at = now
        if contact.first_attempt_at is None:
            contact.first_attempt_at = now
        contact.updated_at = now

    await session.flush()
    for contact, attempt in new_attempts:
        contact.last_attempt_id = attempt.id
        result.jobs.append(DialJob(attempt.id, campaign.id, contact.id, attempt.attempt_no,
                                   contact.phone_e164, attempt.command_id, attempt.client_state))
    await session.flush()
    return result


async def _recent_calls(session: AsyncSession, phones: Sequence[str],
                        now: datetime) -> dict[str, tuple[int, datetime | None]]:
    """Calls placed to each number in the last 24 h, across all campaigns."""
    rows = await session.execute(
        select(CallAttempt.phone_e164, func.count(), func.min(CallAttempt.created_at))
        .where(CallAttempt.phone_e164.in_(phones),
               CallAttempt.created_at > now - timedelta(hours=24),
               CallAttempt.state != AttemptState.NOT_PLACED)
        .group_by(CallAttempt.phone_e164)
    )
    out: dict[str, tuple[int, datetime | None]] = {}
    for phone, n, oldest in rows:
        out[phone] = (int(n), oldest)
    return out
