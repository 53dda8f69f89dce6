"""`engine_instances`: one row per running engine, kept alive by its heartbeat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import EngineInstance
from campaigns.db.types import utcnow
from campaigns.due import ENGINE_LIVE_SECS


@dataclass(frozen=True)
class AccountLimits:
    """What the live engines agree on: the lowest of their `--cps` and `--max-concurrent`."""

    engines: int
    cps: float
    max_concurrent: int
    #: Whether some engine asked for more than the limits in force.
    disagree: bool


async def beat(s: AsyncSession, instance_id: str, host: str, pid: int, now: datetime,
               dead_after: timedelta, cps: float, max_concurrent: int) -> AccountLimits:
    """Record this engine's heartbeat and limits (registering it the first time), forget rows
    dead for an hour; returns the account limits of the live engines."""
    updated = await s.execute(update(EngineInstance).where(
        EngineInstance.id == instance_id).values(heartbeat_at=now, cps=cps,
                                                  max_concurrent=max_concurrent))
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        s.add(EngineInstance(id=instance_id, hostname=host, pid=pid, started_at=now,
                             heartbeat_at=now, cps=cps, max_concurrent=max_concurrent))
        await s.flush()
    cutoff = now - dead_after
    await s.execute(delete(EngineInstance).where(
        EngineInstance.heartbeat_at < cutoff - timedelta(hours=1)))
    return await account_limits(s, cutoff) or AccountLimits(1, cps, max_concurrent, False)


async def account_limits(s: AsyncSession, since: datetime) -> AccountLimits | None:
    """The limits of the engines that beat since `since` (None when none did)."""
    row = (await s.execute(select(
        func.count(), func.min(EngineInstance.cps), func.max(EngineInstance.cps),
        func.min(EngineInstance.max_concurrent), func.max(EngineInstance.max_concurrent))
        .where(EngineInstance.heartbeat_at > since))).one()
    n, low, high, low_ch, high_ch = row
    if not n or low is None or low_ch is None:
        return None
    return AccountLimits(int(n), float(low), int(low_ch), high != low or high_ch != low_ch)


async def recent(s: AsyncSession, since: datetime) -> list[tuple[str, str, int]]:
    """(id, process space, pid) of the engines that beat since `since`."""
    rows = (await s.execute(select(EngineInstance.id, EngineInstance.hostname,
                                   EngineInstance.pid).where(
        EngineInstance.heartbeat_at > since))).all()
    return [(i, host, pid) for i, host, pid in rows]


async def remove(s: AsyncSession, ids: list[str]) -> None:
    if ids:
        await s.execute(delete(EngineInstance).where(EngineInstance.id.in_(ids)))


async def lowest_cps(s: AsyncSession) -> float | None:
    """The lowest `--cps` of the engines alive now."""
    value = await s.scalar(select(func.min(EngineInstance.cps)).where(
        EngineInstance.heartbeat_at > utcnow() - timedelta(seconds=ENGINE_LIVE_SECS)))
    return float(value) if value is not None else None
