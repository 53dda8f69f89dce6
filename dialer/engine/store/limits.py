"""`rate_limits`: one row per limit (the account's dial rate, each campaign's, the account's
channel lock), shared by every engine on the database and kept across restarts.

A row holds the limit's schedule (`tat`, seconds on the database's clock) and, for the account,
the rate in force: the lowest `--cps` of the live engines. Rows are locked (`FOR UPDATE`) while
a schedule advances, so engines take slots one after another, never the same one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db import dialects
from campaigns.db.models import RateLimit

#: The row locked by every claim transaction: calls in flight are counted under it, so two
#: engines never both take the last free channel.
CHANNELS = "channels"


async def db_now(s: AsyncSession) -> float:
    """Seconds since the epoch on the database's clock (SQLite runs in this process: ours)."""
    if dialects.is_postgres(s):
        value = await s.scalar(text("SELECT extract(epoch FROM clock_timestamp())"))
        return float(value)
    return time.time()


async def lock(s: AsyncSession, keys: Iterable[str]) -> dict[str, RateLimit]:
    """The rows of `keys`, created when missing, locked for this transaction (in key order, so
    that engines locking overlapping sets never deadlock)."""
    wanted = sorted(set(keys))
    rows = {r.key: r for r in await s.scalars(
        select(RateLimit).where(RateLimit.key.in_(wanted)).order_by(RateLimit.key)
        .with_for_update())}
    missing = [k for k in wanted if k not in rows]
    if missing:
        await _insert_missing(s, missing)
        rows = {r.key: r for r in await s.scalars(
            select(RateLimit).where(RateLimit.key.in_(wanted)).order_by(RateLimit.key)
            .with_for_update().execution_options(populate_existing=True))}
    return rows


async def _insert_missing(s: AsyncSession, keys: list[str]) -> None:
    """Rows for new limits; a row another engine created meanwhile is left as it is."""
    if dialects.is_postgres(s):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    await s.execute(insert(RateLimit).values([{"key": k, "tat": 0.0} for k in keys])
                    .on_conflict_do_nothing(index_elements=["key"]))


async def lock_channels(s: AsyncSession) -> None:
    await lock(s, [CHANNELS])


async def set_account_rate(s: AsyncSession, key: str, rate: float | None) -> None:
    row = (await lock(s, [key]))[key]
    row.rate = rate


async def rate_of(s: AsyncSession, key: str) -> float | None:
    value = await s.scalar(select(RateLimit.rate).where(RateLimit.key == key))
    return float(value) if value is not None else None


async def count(s: AsyncSession) -> int:
    return int(await s.scalar(select(func.count()).select_from(RateLimit)) or 0)
