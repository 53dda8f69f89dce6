"""Settling ended attempts (outcome, retry or done), counted in the engine's metrics."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.engine.attempts import settle
from dialer.engine.metrics import Metrics
from dialer.engine.row_types import AttemptFields, CampaignFields


class Settler:
    def __init__(self, metrics: Metrics, rng: random.Random) -> None:
        self.metrics = metrics
        self.rng = rng

    async def settle(self, s: AsyncSession, attempts: Sequence[AttemptFields], now: datetime,
                     campaigns: Mapping[int, CampaignFields] | None = None) -> None:
        if not attempts:
            return
        await settle(s, attempts, now, self.rng, campaigns)
        for a in attempts:
            if a.outcome:
                self.metrics.outcomes.labels(a.outcome).inc()
