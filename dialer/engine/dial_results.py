"""Dial results, recorded in batches (one transaction serves many dials).

Nothing waits on them: webhooks find their attempt by client_state whether or not the dial's
result is recorded yet. A 401/403 pauses the campaign (a bad key must not burn the list).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import CampaignStatus
from campaigns.lifecycle import next_status
from campaigns.names import display
from dialer.engine.attempts import DialOutcome, Timing, apply_dial_outcomes
from dialer.engine.clock import Clock
from dialer.engine.state import RunState
from dialer.engine.store import campaigns as campaign_store
from dialer.engine.transactions import Transactions

log = logging.getLogger("dialer.engine")

#: How long dial results gather before they are recorded in one transaction.
RESULT_BATCH_WAIT_SECS = 0.1
BATCH = 500


class DialResults:
    def __init__(self, *, tx: Transactions, state: RunState, timing: Timing,
                 on_recorded: Callable[[list[DialOutcome]], None], clock: Clock) -> None:
        self.tx = tx
        self.clock = clock
        self.state = state
        self.timing = timing
        #: Told of each batch once committed (tracking, channels freed).
        self._on_recorded = on_recorded
        self._pending: list[DialOutcome] = []
        self._ready = asyncio.Event()

    def add(self, outcome: DialOutcome) -> None:
        self._pending.append(outcome)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def wake(self) -> None:
        self._ready.set()

    async def drain(self, tries: int = 50) -> None:
        """Let what is pending be recorded (at shutdown)."""
        self._ready.set()
        await asyncio.sleep(0)
        for _ in range(tries):
            if not self._pending:
                return
            await asyncio.sleep(0.1)

    async def run(self) -> None:
        while not self.state.closing:
            await self._ready.wait()
            self._ready.clear()
            await asyncio.sleep(RESULT_BATCH_WAIT_SECS)  # let more results join this commit
            # One batch per wait (a backlog of full batches goes at once): results that come
            # in while one commits wait for the next, rather than each forming a tiny batch.
            while self._pending:
                batch = self._pending[:BATCH]
                now = self.clock.now()

                async def _apply(s: AsyncSession, batch: list[DialOutcome] = batch,
                                 now: datetime = now) -> list[int]:
                    return await apply_dial_outcomes(s, batch, now, self.timing)
                to_pause = await self.tx.run_retrying("recording dial results", _apply)
                del self._pending[:len(batch)]
                self._on_recorded(batch)
                for cid in to_pause:
                    await self._pause_for_auth(cid)
                if len(batch) < BATCH:
                    break
            if self._pending:
                self._ready.set()

    async def _pause_for_auth(self, campaign_id: int) -> None:
        async def _q(s: AsyncSession) -> None:
            c = await campaign_store.lock(s, campaign_id)
            if c is not None and c.status == CampaignStatus.RUNNING:
                c.status = next_status(c.name, c.status, "pause")
                c.last_error = ("Telnyx refused the API key (401/403): fix TELNYX_API_KEY, then "
                                "`dialer campaign resume`")
                log.error("campaign %s paused: %s", display(c.name), c.last_error)
        await self.tx.run_retrying("pausing a campaign", _q)
