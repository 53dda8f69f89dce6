"""Operator blackout dates (`dialer rules blackout ...`): no calls on a date, in every state or
in the listed ones. Applied on the contact's local date in every candidate zone."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import BlackoutDate
from campaigns.errors import AlreadyExists, InvalidSettings, NotFound

_STATE = re.compile(r"^[A-Z]{2}$")


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidSettings(f"{text!r} is not a date like 2026-12-24 (YYYY-MM-DD)") from None


def parse_states(text: str | None) -> str:
    """'la, ms' -> 'LA,MS' (sorted); '' for every state."""
    if not text:
        return ""
    states = sorted({s.strip().upper() for s in text.split(",") if s.strip()})
    bad = [s for s in states if not _STATE.match(s)]
    if bad:
        raise InvalidSettings(f"{', '.join(bad)}: states are 2-letter codes like LA,MS")
    return ",".join(states)


async def add_blackout(session: AsyncSession, day: date, states: str,
                       note: str | None = None) -> BlackoutDate:
    existing = await session.scalar(select(BlackoutDate).where(
        BlackoutDate.day == day, BlackoutDate.states == states))
    if existing is not None:
        raise AlreadyExists(f"a blackout on {day.isoformat()}"
                            f"{' for ' + states if states else ''} already exists")
    row = BlackoutDate(day=day, states=states, note=note)
    session.add(row)
    await session.flush()
    return row


async def list_blackouts(session: AsyncSession) -> list[BlackoutDate]:
    return list((await session.scalars(select(BlackoutDate).order_by(
        BlackoutDate.day, BlackoutDate.states))).all())


async def remove_blackout(session: AsyncSession, day: date, states: str | None) -> int:
    """Remove the blackout(s) of `day` (only the one for `states` when given)."""
    query = select(BlackoutDate).where(BlackoutDate.day == day)
    if states is not None:
        query = query.where(BlackoutDate.states == states)
    rows = (await session.scalars(query)).all()
    if not rows:
        raise NotFound(f"no blackout on {day.isoformat()}"
                       f"{' for ' + states if states else ''}")
    for row in rows:
        await session.delete(row)
    return len(rows)
