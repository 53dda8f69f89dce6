"""Live progress of a campaign (for `dialer status`): counts, recent dial rate, 429s, ETA, when
the next queued contact is due and why it waits, and whether an engine is running."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import AttemptState, CallAttempt, CampaignStatus, Contact, ContactStatus
from campaigns.db.types import aware_utc, utcnow
from campaigns.due import engines_seen, next_due
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
    #: When the next queued contact can be dialed, why it waits (due, window, cap, retry,
    #: scheduled), and the sentence for people; None when nothing is queued.
    next_due_at: datetime | None = None
    next_due_reason: str | None = None
    next_due: str | None = None
    #: Engines with a recent heartbeat on this database, seconds since the last heartbeat.
    engines_live: int = 0
    engine_last_seen_secs: float | None = None
    #: What the engine is doing, in words ("no engine seen for 40 s: is `dialer run` running?").
    engine: str = ""
    #: Played by a dry run: times are simulated times.
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["next_due_at"] = self.next_due_at.isoformat() if self.next_due_at else None
        return d


def engine_activity(seen_text: str, live: int, in_flight: int, due_now: int, queued: int,
                    next_due: str | None, status: str) -> str:
    """One line on what the engine is doing (pure)."""
    if not live and status in ("completed", "stopped"):
        return f"no engine running (the campaign is {status})"
    if not live:
        return seen_text
    if status != "running":
        return f"{seen_text}; campaign {status}"
    if in_flight or due_now:
        return f"{seen_text}; dialing"
    if queued and next_due:
        return f"{seen_text}; waiting: next contact {next_due}"
    return f"{seen_text}; finishing"


async def progress(session: AsyncSession, name: str, now: datetime | None = None) -> Progress:
    c = await get_campaign(session, name)
    counts = (await campaign_counts(session, [c.id]))[c.id]
    now = now or utcnow()
    wall = now  # engines' heartbeats are wall-clock times, even in a dry run
    if c.dry_run:
        # A dry run's stored times are simulated and run ahead of the wall clock: measure the
        # recent rate and what is due at its latest attempt.
        latest = await session.scalar(select(func.max(CallAttempt.created_at)).where(
            CallAttempt.campaign_id == c.id))
        if latest is not None and latest > now:
            now = latest
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
    # A campaign dialing for less than the window: its rate over the time it has dialed.
    began = aware_utc(await session.scalar(select(func.min(CallAttempt.created_at)).where(
        CallAttempt.campaign_id == c.id, CallAttempt.created_at > since)))
    window = RATE_WINDOW_SECS if began is None else min(
        RATE_WINDOW_SECS, max(1.0, (now - began).total_seconds()))
    rate = recent / window
    remaining = counts.contacts - counts.done
    eta = remaining / rate if rate > 0 and remaining else (0.0 if not remaining else None)
    # Not before the last queued contact is due (a cap or a retry can hold one until tomorrow).
    last_due = aware_utc(await session.scalar(select(func.max(Contact.next_attempt_at)).where(
        Contact.campaign_id == c.id, Contact.status == ContactStatus.QUEUED)))
    if remaining and last_due is not None and last_due > now:
        eta = max(eta or 0.0, (last_due - now).total_seconds())
    if c.status != CampaignStatus.RUNNING and remaining:
        eta = None  # paused (or a draft): it will not finish by itself
    queued = counts.by_status.get(ContactStatus.QUEUED, 0)
    nxt = await next_due(session, c, now) if queued else None
    seen = await engines_seen(session, wall)
    return Progress(c.name, c.status, counts.contacts, counts.done, queued, due, in_flight,
                    dialed, counts.by_outcome, round(rate, 2), limited, eta, c.last_error,
                    next_due_at=nxt.at if nxt else None,
                    next_due_reason=nxt.reason if nxt else None,
                    next_due=nxt.text if nxt else None,
                    engines_live=seen.live,
                    engine_last_seen_secs=None if seen.last_seen_secs is None
                    else round(seen.last_seen_secs, 1),
                    engine=engine_activity(seen.text, seen.live, in_flight, due, queued,
                                           nxt.text if nxt else None, c.status),
                    dry_run=bool(c.dry_run))

