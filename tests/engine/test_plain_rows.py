"""Plain rows (`dialer/engine/store/plain_rows.py`): what changed is written, nothing else, and
the campaign rows are read again once a campaign changes. A real SQLite file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import Campaign, Contact
from campaigns.db.types import utcnow
from dialer.engine.store.campaign_rows import CampaignRows
from dialer.engine.store.plain_rows import ContactRow, write_changes
from tests.engine.helpers import seed

pytestmark = pytest.mark.fast


async def test_only_changed_rows_are_written_with_their_changes_and_updated_at(
        sqlite_url: str) -> None:
    await seed(sqlite_url, "rows", ["+14155550101", "+14155550102", "+14155550103"],
               start=False)
    db = create_engine(sqlite_url)
    later = utcnow() + timedelta(hours=1)
    try:
        async with session_factory(db)() as s, s.begin():
            before = {c.id: c.updated_at for c in await s.scalars(select(Contact))}
            rows = await ContactRow.load(s)
            assert [r.id for r in rows] == sorted(before)
            rows[0].status = "done"
            rows[0].outcome = "busy"
            rows[1].status = rows[1].status  # the same value: not a change
            assert rows[0].changed == {"status", "outcome"} and not rows[1].changed
            assert await write_changes(s, rows, later) == 1
            assert not rows[0].changed  # written
            with pytest.raises(AttributeError):
                rows[2].first_name = "x"  # not a column this row loaded
        async with session_factory(db)() as s:
            after = {c.id: c for c in await s.scalars(select(Contact))}
        first, second, third = (after[r.id] for r in rows)
        assert (first.status, first.outcome, first.updated_at) == ("done", "busy", later)
        assert second.updated_at == before[second.id] and third.status == "queued"
    finally:
        await db.dispose()


async def test_campaign_rows_are_parsed_once_and_read_again_when_the_campaign_changes(
        sqlite_url: str) -> None:
    cid = await seed(sqlite_url, "cached", ["+14155550101"], start=False)
    db = create_engine(sqlite_url)
    cache = CampaignRows()
    try:
        async with session_factory(db)() as s, s.begin():
            first = (await cache.get(s, [cid]))[cid]
            assert (await cache.get(s, [cid]))[cid] is first  # unchanged: the same parsed row
        async with session_factory(db)() as s, s.begin():
            await s.execute(update(Campaign).where(Campaign.id == cid).values(
                settings={**first.settings, "max_attempts": 7}))
        async with session_factory(db)() as s, s.begin():
            again = (await cache.get(s, [cid]))[cid]
        assert again is not first and again.parsed_settings.max_attempts == 7
    finally:
        await db.dispose()
