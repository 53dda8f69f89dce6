"""Numbers put on the DNC list, told to every engine at once (PostgreSQL).

An engine re-checks the DNC list as its dials get their slots, at most half a second ahead
(`dialer.engine.dnc_screen`); a number listed meanwhile by another engine (a keypress opt-out) or
by `dialer dnc add` could still be dialed within that half second. So the transaction that lists
numbers also sends them on a PostgreSQL channel (`pg_notify`, delivered when it commits, never if
it rolls back), and every engine listening withdraws its dials of them at once
(`dialer.engine.dnc_listener`). SQLite has one engine per database: its own processor tells it.
Large lists (an import) are not sent: the reservation's check covers them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db import dialects

CHANNEL = "dialer_dnc"
#: Numbers per notification (a payload stays far under PostgreSQL's 8,000 bytes).
PER_NOTICE = 400
#: More numbers than this in one transaction (an import) are not announced.
MAX_ANNOUNCED = 4000


async def announce(session: AsyncSession, numbers: Iterable[str]) -> None:
    """In the transaction that lists `numbers`: tell every engine when it commits."""
    listed = sorted(set(numbers))
    if not listed or len(listed) > MAX_ANNOUNCED or not dialects.is_postgres(session):
        return
    for i in range(0, len(listed), PER_NOTICE):
        await session.execute(select(func.pg_notify(CHANNEL,
                                                    json.dumps(listed[i:i + PER_NOTICE]))))


def numbers_of(payload: str) -> set[str]:
    """The numbers of a notification's payload (anything else in it ignored)."""
    try:
        value = json.loads(payload)
    except ValueError:
        return set()
    if not isinstance(value, list):
        return set()
    return {n for n in value if isinstance(n, str) and 0 < len(n) <= 20}
