"""Settling ended attempts (outcome, retry or done), counted in the engine's metrics."""

from __future__ import annotations

import random
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import CallAttempt
from dialer.engine.attempts import settle
from dialer.engine.metrics import Metrics


class Settler:
    def __init__(self, metrics: Metrics, rng: random.Random) -> None:
        self.metrics = metrics
        self.rng = rng

    async def settle(self, s: AsyncSession, attempts: list[CallAttempt], now: datetime) -> None:
        if not attempts:
            return
        await settle(s, attempts, now, self.rng)
        for a in attempts:
            if a.outcome:
                self.metrics.outcomes.labels(a.outcome).inc()
