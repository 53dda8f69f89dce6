"""`engine_instances`: one row per running engine, kept alive by its heartbeat."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import EngineInstance


async def beat(s: AsyncSession, instance_id: str, host: str, pid: int, now: datetime,
               dead_after: timedelta) -> int:
    """Record this engine's heartbeat (registering it the first time), forget rows dead for an
    hour; returns how many engines are alive."""
    updated = await s.execute(update(EngineInstance).where(
        EngineInstance.id == instance_id).values(heartbeat_at=now))
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        s.add(EngineInstance(id=instance_id, hostname=host, pid=pid, started_at=now,
                             heartbeat_at=now))
    cutoff = now - dead_after
    await s.execute(delete(EngineInstance).where(
        EngineInstance.heartbeat_at < cutoff - timedelta(hours=1)))
    live = await s.scalar(select(func.count()).select_from(EngineInstance).where(
        EngineInstance.heartbeat_at > cutoff))
    return max(1, int(live or 1))


async def recent(s: AsyncSession, since: datetime) -> list[tuple[str, str, int]]:
    """(id, process space, pid) of the engines that beat since `since`."""
    rows = (await s.execute(select(EngineInstance.id, EngineInstance.hostname,
                                   EngineInstance.pid).where(
        EngineInstance.heartbeat_at > since))).all()
    return [(i, host, pid) for i, host, pid in rows]


async def remove(s: AsyncSession, ids: list[str]) -> None:
    if ids:
        await s.execute(delete(EngineInstance).where(EngineInstance.id.in_(ids)))
