"""When the next queued contact is due, and why it waits; whether an engine is running.

For `dialer status` (an operator looking at a campaign that seems to do nothing) and for a dry
run's idle skip-ahead (`next_due_at`).

Why a contact waits is read from the contact when the engine recorded it (a `defer_reason`
column, when the schema has one), and otherwise inferred from what the engine leaves behind:
- the calling window is closed in one of its zones at the time it is due (or its due time is
  exactly a window opening): "window opens at T";
- a call to the same number exactly 24 h (+1 s) before its due time: the per-number cap, "cap
  until T";
- a previous attempt ended with an outcome that is retried: "retry (no_answer) at T".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import (
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
    EngineInstance,
)
from campaigns.settings import settings_of
from campaigns.windows import CallingWindow, WindowError

#: An engine whose heartbeat is older than this is gone (the engine's INSTANCE_DEAD_SECS).
ENGINE_LIVE_SECS = 15.0
#: The claim defers a capped contact to its number's oldest call of the last 24 h + this.
CAP_DEFER = timedelta(hours=24, seconds=1)
#: Queued contacts looked at to find the one due first once windows are taken into account.
CANDIDATES = 20

#: Reason kinds, in `NextDue.reason`.
DUE, WINDOW, CAP, RETRY, SCHEDULED = "due", "window", "cap", "retry", "scheduled"


@dataclass(frozen=True)
class NextDue:
    """The next queued contact: when it can be dialed, and why not before."""

    at: datetime
    #: due (now), window, cap, retry, scheduled, or the engine's own recorded reason
    reason: str
    text: str


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def explain_wait(now: datetime, next_attempt_at: datetime, *, window: CallingWindow | None,
                 zones: Sequence[str], last_outcome: str | None, capped: bool = False,
                 defer_reason: str | None = None) -> NextDue:
    """Why a queued contact waits until when (pure). `capped`: a call to its number was placed
    exactly CAP_DEFER before `next_attempt_at`; `defer_reason`: the reason the engine recorded,
    when it records one (it wins over inference)."""
    at = max(now, next_attempt_at)
    if window is not None and zones and not window.is_open(at, zones):
        opening = window.next_opening(at, zones)
        if opening is None:
            return NextDue(at, WINDOW, "its zones never share an open window (ends as no_window)")
        return NextDue(opening, WINDOW, f"window opens at {_fmt(opening)}")
    if defer_reason and next_attempt_at > now:
        kind = next((k for k in (WINDOW, CAP, RETRY) if k in defer_reason.lower()), defer_reason)
        label = {WINDOW: "window opens at", CAP: "cap until", RETRY: "retry at"}.get(
            kind, f"{defer_reason} until")
        return NextDue(at, kind, f"{label} {_fmt(at)}")
    if next_attempt_at <= now:
        return NextDue(at, DUE, "due now")
    if capped:
        return NextDue(at, CAP, f"cap until {_fmt(at)} (calls per number in 24 h)")
    if window is not None and zones and not window.is_open(at - timedelta(seconds=1), zones):
        return NextDue(at, WINDOW, f"window opens at {_fmt(at)}")
    if last_outcome:
        return NextDue(at, RETRY, f"retry ({last_outcome}) at {_fmt(at)}")
    return NextDue(at, SCHEDULED, f"scheduled at {_fmt(at)}")


async def next_due_at(session: AsyncSession) -> datetime | None:
    """The earliest `next_attempt_at` of a queued contact of a running campaign (None: nothing
    queued). A dry run's clock may jump there when nothing is in flight."""
    value: datetime | None = await session.scalar(
        select(func.min(Contact.next_attempt_at)).where(
            Contact.status == ContactStatus.QUEUED,
            Contact.campaign_id.in_(select(Campaign.id).where(
                Campaign.status == CampaignStatus.RUNNING))))
    return value


async def next_due(session: AsyncSession, campaign: Campaign, now: datetime) -> NextDue | None:
    """The campaign's next queued contact to become dialable, with why it waits (None: none
    queued)."""
    reason_col: Any = getattr(Contact, "defer_reason", None)  # when the schema records it
    columns: list[Any] = [Contact.phone_e164, Contact.next_attempt_at, Contact.timezones,
                          Contact.outcome]
    if reason_col is not None:
        columns.append(reason_col)
    rows = (await session.execute(
        select(*columns).where(Contact.campaign_id == campaign.id,
                               Contact.status == ContactStatus.QUEUED,
                               Contact.next_attempt_at.is_not(None))
        .order_by(Contact.next_attempt_at, Contact.id).limit(CANDIDATES))).all()
    if not rows:
        return None
    settings = settings_of(campaign)
    try:
        window: CallingWindow | None = CallingWindow.parse(settings["calling_hours"],
                                                           settings["calling_days"])
    except WindowError:
        window = None
    best: NextDue | None = None
    for row in rows:
        phone, at, zones, outcome = row[0], row[1], row[2], row[3]
        capped = at > now and bool(await session.scalar(
            select(func.count()).select_from(CallAttempt).where(
                CallAttempt.phone_e164 == phone,
                CallAttempt.created_at.between(at - CAP_DEFER - timedelta(seconds=1),
                                               at - CAP_DEFER + timedelta(seconds=1)))))
        due = explain_wait(now, at, window=window,
                           zones=zones or [settings["fallback_timezone"]], last_outcome=outcome,
                           capped=capped, defer_reason=row[4] if len(row) > 4 else None)
        if best is None or due.at < best.at:
            best = due
        if due.reason == DUE:
            break
    return best


@dataclass(frozen=True)
class EngineSeen:
    """Engines running on this database, from their heartbeats."""

    live: int
    #: Seconds since the latest heartbeat of any engine (None: no engine ever ran here, or its
    #: row was cleaned up).
    last_seen_secs: float | None
    #: The account's limits in force: the lowest `--cps` / `--max-concurrent` of the live
    #: engines, and the highest (they differ when the engines disagree).
    cps: tuple[float, float] | None = None
    channels: tuple[int, int] | None = None

    @property
    def limits_text(self) -> str:
        if self.cps is None or self.channels is None:
            return ""
        (cps, top), (ch, ch_top) = self.cps, self.channels
        text = f"account limits {cps:g} dials/s, {ch} channels"
        if top != cps or ch_top != ch:
            text += (f" (the engines disagree: {cps:g}-{top:g} dials/s, {ch}-{ch_top} "
                     "channels; the lowest wins)")
        return text

    @property
    def text(self) -> str:
        if self.live:
            running = f"{self.live} engine{'s' if self.live > 1 else ''} running"
            return f"{running}; {self.limits_text}" if self.limits_text else running
        if self.last_seen_secs is None:
            return "no engine running: is `dialer run` running?"
        return f"no engine seen for {self.last_seen_secs:.0f} s: is `dialer run` running?"


async def engines_seen(session: AsyncSession, now: datetime) -> EngineSeen:
    cutoff = now - timedelta(seconds=ENGINE_LIVE_SECS)
    live = await session.scalar(select(func.count()).select_from(EngineInstance).where(
        EngineInstance.heartbeat_at > cutoff)) or 0
    last: datetime | None = await session.scalar(select(func.max(EngineInstance.heartbeat_at)))
    age = None if last is None else max(0.0, (now - last).total_seconds())
    low, high, low_ch, high_ch = (await session.execute(select(
        func.min(EngineInstance.cps), func.max(EngineInstance.cps),
        func.min(EngineInstance.max_concurrent), func.max(EngineInstance.max_concurrent))
        .where(EngineInstance.heartbeat_at > cutoff))).one()
    cps = (float(low), float(high)) if low is not None and high is not None else None
    channels = (int(low_ch), int(high_ch)) if low_ch is not None and high_ch is not None else None
    return EngineSeen(int(live), age, cps, channels)
