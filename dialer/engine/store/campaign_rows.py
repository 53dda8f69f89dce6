"""The campaigns the event processor reads, parsed once and read again only when they change.

Every batch of events needs its attempts' campaigns (the call flow's settings, the retry policy,
whether the campaign was stopped). Reading and parsing each whole row per batch (its settings and
script documents) was a tenth of the processor's CPU per event; a campaign changes seldom. So
each batch reads only `id, status, updated_at` and reuses the parsed row while `updated_at` is
unchanged: a `campaign set` or a stop is seen by the next batch, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.dialects import one_of
from campaigns.db.models import Campaign
from dialer.engine.store.plain_rows import CampaignRow


class CampaignRows:
    def __init__(self) -> None:
        self._rows: dict[int, tuple[datetime, CampaignRow]] = {}

    async def get(self, s: AsyncSession, ids: Iterable[int]) -> dict[int, CampaignRow]:
        ids = set(ids)
        if not ids:
            return {}
        out: dict[int, CampaignRow] = {}
        stale: set[int] = set()
        for cid, status, updated_at in await s.execute(
                select(Campaign.id, Campaign.status, Campaign.updated_at)
                .where(one_of(s, Campaign.id, ids))):
            cached = self._rows.get(cid)
            if cached is not None and cached[0] == updated_at:
                out[cid] = cached[1]
                # (a status set without a new updated_at, e.g. by hand, is still seen)
                out[cid].__dict__["status"] = status
            else:
                stale.add(cid)
        if stale:
            for row in await CampaignRow.by_ids(s, stale, lock=False):
                out[row.id] = row
                self._rows[row.id] = (row.updated_at, row)
        return out
