"""Campaign rows as the engine's loops need them: the running ones, their calls in flight,
completion, a pause after an authentication failure, stop --hangup and stopped leftovers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.db.dialects import one_of
from campaigns.db.models import (
    AttemptState,
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
    WebhookEvent,
)
from campaigns.db.types import utcnow
from campaigns.settings import CampaignSettings


async def running(s: AsyncSession) -> list[Campaign]:
    return list((await s.scalars(select(Campaign).where(
        Campaign.status == CampaignStatus.RUNNING))).all())


async def in_flight_by_campaign(s: AsyncSession) -> dict[int, int]:
    """Attempts holding a channel, per campaign."""
    rows = await s.execute(
        select(CallAttempt.campaign_id, func.count())
        .where(CallAttempt.state.in_(AttemptState.IN_FLIGHT))
        .group_by(CallAttempt.campaign_id))
    return {cid: int(n) for cid, n in rows}


async def by_ids(s: AsyncSession, ids: set[int]) -> dict[int, Campaign]:
    if not ids:
        return {}
    return {c.id: c for c in await s.scalars(select(Campaign).where(one_of(s, Campaign.id, ids)))}


async def cancel_queued_of_stopped(s: AsyncSession) -> None:
    """A contact still queued in a stopped campaign would wait forever: one re-queued after
    `stop` (a claimed dial released or refused with 429 just after the stop committed), or one a
    claim held while `stop` ran (stop skips locked contacts rather than deadlock with the
    claim). It ends as canceled."""
    await s.execute(update(Contact).where(
        Contact.status == ContactStatus.QUEUED,
        Contact.campaign_id.in_(select(Campaign.id).where(
            Campaign.status == CampaignStatus.CANCELLED)))
        .values(status=ContactStatus.DONE, outcome=o.CANCELED, next_attempt_at=None,
                updated_at=utcnow()))


async def running_locked(s: AsyncSession) -> Sequence[Campaign]:
    return (await s.scalars(select(Campaign).where(
        Campaign.status == CampaignStatus.RUNNING).with_for_update(skip_locked=True))).all()


async def finished(s: AsyncSession, campaign_id: int) -> bool:
    """No contact left to dial and no call in flight."""
    left = await s.scalar(select(func.count()).select_from(Contact).where(
        Contact.campaign_id == campaign_id, Contact.status != ContactStatus.DONE))
    if left:
        return False
    busy = await s.scalar(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.campaign_id == campaign_id, CallAttempt.state.in_(AttemptState.IN_FLIGHT)))
    return not busy


async def hangup_requested(s: AsyncSession) -> Sequence[Campaign]:
    return (await s.scalars(select(Campaign).where(
        Campaign.status == CampaignStatus.CANCELLED, Campaign.hangup_requested.is_(True))
        .with_for_update(skip_locked=True))).all()


async def live_attempts(s: AsyncSession, campaign_id: int) -> Sequence[CallAttempt]:
    return (await s.scalars(select(CallAttempt).where(
        CallAttempt.campaign_id == campaign_id,
        CallAttempt.state.in_(AttemptState.IN_FLIGHT)))).all()


async def lock(s: AsyncSession, campaign_id: int) -> Campaign | None:
    return await s.get(Campaign, campaign_id, with_for_update=True)


async def nothing_left(s: AsyncSession) -> bool:
    """No campaign running or paused, no call in flight, no event pending, nothing to settle:
    an engine asked to exit when idle may stop."""
    active = await s.scalar(select(func.count()).select_from(Campaign).where(
        Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.PAUSED))))
    busy = await s.scalar(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.state.in_(AttemptState.IN_FLIGHT)))
    pending = await s.scalar(select(func.count()).select_from(WebhookEvent).where(
        WebhookEvent.status == "pending"))
    unsettled = await s.scalar(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.state == AttemptState.ENDED, CallAttempt.settled_at.is_(None)))
    return not active and not busy and not pending and not unsettled


async def cps_of(s: AsyncSession, ids: set[int]) -> dict[int, float | None]:
    """Each campaign's own `cps` as committed now (a `campaign set` is followed at once)."""
    if not ids:
        return {}
    rows = await s.execute(select(Campaign.id, Campaign.settings)
                           .where(one_of(s, Campaign.id, ids)))
    return {cid: CampaignSettings(settings).cps for cid, settings in rows}
