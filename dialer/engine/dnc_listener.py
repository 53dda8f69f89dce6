"""The engine's ear on `campaigns.dnc_events.CHANNEL` (PostgreSQL): numbers another engine (or
`dialer dnc add`) just put on the DNC list are withdrawn from this engine's dials at once.

Best effort on top of the reservation's own check: while the database is away or the connection
is lost, the listener tries again every few seconds and the 0.5 s bound of `dnc_screen` holds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from campaigns.dnc_events import CHANNEL, numbers_of

log = logging.getLogger("dialer.engine")

#: Seconds between looks at whether the connection still lives, and before trying again.
CHECK_SECS = 1.0
RETRY_SECS = 3.0


async def listen(db: AsyncEngine, stopping: asyncio.Event,
                 on_numbers: Callable[[set[str]], None]) -> None:
    """Until `stopping`: hold one connection LISTENing and pass each notification's numbers on."""
    def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        numbers = numbers_of(payload)
        if numbers:
            on_numbers(numbers)

    warned = False
    while not stopping.is_set():
        try:
            async with db.connect() as conn:
                pg: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's
                await pg.add_listener(CHANNEL, heard)
                warned = False
                try:
                    while not stopping.is_set() and not pg.is_closed():
                        await _wait(stopping, CHECK_SECS)
                finally:
                    with contextlib.suppress(Exception):
                        await pg.remove_listener(CHANNEL, heard)
        except Exception as exc:  # the database away: the reservation's check still holds
            if not warned:
                log.warning("not listening for DNC changes of other engines (%s): trying again; "
                            "meanwhile their dials are checked as they get their slots",
                            type(exc).__name__)
                warned = True
        await _wait(stopping, RETRY_SECS)


async def _wait(event: asyncio.Event, secs: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), secs)
