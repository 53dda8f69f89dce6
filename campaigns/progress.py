"""Live progress of a campaign (for `dialer status`): counts, recent dial rate, 429s, ETA."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import AttemptState, CallAttempt, Contact, ContactStatus
from campaigns.db.types import utcnow
from campaigns.service import campaign_counts, get_campaign

RATE_WINDOW_SECS = 60


@dataclass
class Progress:
    name: str
    status: str
    contacts: int
    done: int
    queued: int
    due_now: int
    in_flight: int
    dialed: int
    outcomes: dict[str, int]
    dials_per_sec: float
    rate_limited_recent: int
    eta_secs: float | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def progress(session: AsyncSession, name: str) -> Progress:
    c = await get_campaign(session, name)
    counts = (await campaign_counts(session, [c.id]))[c.id]
    now = utcnow()
    since = now - timedelta(seconds=RATE_WINDOW_SECS)
    in_flight = await session.scalar(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.campaign_id == c.id, CallAttempt.state.in_(AttemptState.IN_FLIGHT))) or 0
    dialed = await session.scalar(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.campaign_id == c.id, CallAttempt.state != AttemptState.NOT_PLACED)) or 0
    recent = await session.scalar(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.campaign_id == c.id, CallAttempt.state != AttemptState.NOT_PLACED,
        CallAttempt.created_at > since)) or 0
    limited = await session.scalar(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.campaign_id == c.id, CallAttempt.state == AttemptState.NOT_PLACED,
        CallAttempt.error_code.in_(("90103", "10011")), CallAttempt.created_at > since)) or 0
    due = await session.scalar(select(func.count()).select_from(Contact).where(
        Contact.campaign_id == c.id, Contact.status == ContactStatus.QUEUED,
        Contact.next_attempt_at <= now)) or 0
    rate = recent / RATE_WINDOW_SECS
    remaining = counts.contacts - counts.done
    eta = remaining / rate if rate > 0 and remaining else (0.0 if not remaining else None)
    return Progress(c.name, c.status, counts.contacts, counts.done,
                    counts.by_status.get(ContactStatus.QUEUED, 0), due, in_flight, dialed,
                    counts.by_outcome, round(rate, 2), limited, eta, c.last_error)
