"""Attempt rows the sweeps and recovery look for: flow timers due, ended calls to settle,
calls to reconcile with Telnyx, dials nobody will record, live calls whose actions to resend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.dialects import one_of
from campaigns.db.models import AttemptState, CallAttempt

#: Flow states whose entry actions are sent again after a restart (and every script step,
#: "s<step>.<try>").
RESUMABLE_FLOW_STATES = ("message", "transfer", "voicemail", "hangup", "optout")


async def timers_due(s: AsyncSession, now: datetime, limit: int = 200) -> Sequence[CallAttempt]:
    return (await s.scalars(select(CallAttempt).where(
        CallAttempt.flow_deadline <= now,
        CallAttempt.state.in_(AttemptState.IN_FLIGHT)).limit(limit)
        .with_for_update(skip_locked=True))).all()


async def settling_due(s: AsyncSession, now: datetime, limit: int = 500) -> list[CallAttempt]:
    return list((await s.scalars(select(CallAttempt).where(
        CallAttempt.state == AttemptState.ENDED, CallAttempt.settled_at.is_(None),
        CallAttempt.settle_after <= now).limit(limit)
        .with_for_update(skip_locked=True))).all())


async def busy_count(s: AsyncSession) -> int:
    """Attempts in flight or ended but not settled yet."""
    return int(await s.scalar(select(func.count()).select_from(CallAttempt).where(or_(
        CallAttempt.state.in_(AttemptState.IN_FLIGHT),
        (CallAttempt.state == AttemptState.ENDED) & CallAttempt.settled_at.is_(None)))) or 0)


async def reconcile_due(s: AsyncSession, now: datetime, limit: int = 50
                        ) -> list[tuple[int, str | None, datetime]]:
    rows = await s.execute(select(CallAttempt.id, CallAttempt.call_control_id,
                                  CallAttempt.created_at).where(
        CallAttempt.state.in_(AttemptState.IN_FLIGHT),
        CallAttempt.reconcile_after <= now).limit(limit))
    return [(i, cc, created) for i, cc, created in rows]


async def lock_by_ids(s: AsyncSession, ids: Sequence[int]) -> Sequence[CallAttempt]:
    return (await s.scalars(select(CallAttempt).where(one_of(s, CallAttempt.id, ids))
                            .order_by(CallAttempt.id).with_for_update())).all()


async def created_unreconciled(s: AsyncSession) -> Sequence[CallAttempt]:
    """Attempts claimed whose dial result is not recorded (and not handed to reconciliation)."""
    return (await s.scalars(
        select(CallAttempt).where(CallAttempt.state == AttemptState.CREATED,
                                  CallAttempt.reconcile_after.is_(None))
        .with_for_update(skip_locked=True))).all()


async def live_in_flow(s: AsyncSession) -> Sequence[CallAttempt]:
    return (await s.scalars(select(CallAttempt).where(
        CallAttempt.state.in_((AttemptState.DIALED, AttemptState.ANSWERED)),
        CallAttempt.call_control_id.is_not(None),
        or_(CallAttempt.flow_state.in_(RESUMABLE_FLOW_STATES),
            CallAttempt.flow_state.like("s%.%"))))).all()
