"""Reconciliation: calls whose `call.hangup` never came are looked up at Telnyx
(`GET /v2/calls/{id}`) and the ones that are over are finalised.

Telnyx retries a webhook it could not deliver (engine down, database down: 503), so a call that
Telnyx says is over is declared to have lost its webhooks only once it ended `webhook_grace_secs`
ago AND the receiver has been storing events for that long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.db.models import AttemptState
from dialer.engine.attempts import Timing, facts_of
from dialer.engine.clock import Clock
from dialer.engine.settling import Settler
from dialer.engine.store import calls as call_store
from dialer.engine.transactions import Transactions
from dialer.telnyx.client import TelnyxClient
from dialer.telnyx.errors import CallEnded, CallNotFound, TelnyxError

log = logging.getLogger("dialer.engine")

#: A call that is over but whose webhooks may still come is looked at again after this long.
WEBHOOK_RECHECK_SECS = 1.0

#: True: alive, look again later; False: over, finalise; "wait": over, webhooks may still come.
Verdict = bool | str


class Reconciler:
    def __init__(self, *, tx: Transactions, client: TelnyxClient, timing: Timing,
                 settler: Settler, grace_secs: float,
                 healthy_since: Callable[[], float], clock: Clock) -> None:
        self.tx = tx
        self.clock = clock
        self.client = client
        self.timing = timing
        self.settler = settler
        self.grace_secs = grace_secs
        #: Monotonic time since which every webhook was stored (none refused with a 503).
        self._healthy_since = healthy_since

    async def run_once(self) -> None:
        now = self.clock.now()
        due = await self.tx.run(lambda s: call_store.reconcile_due(s, now))
        if not due:
            return
        verdicts: dict[int, Verdict] = {}

        async def _check(aid: int, cc: str | None, created: datetime) -> None:
            verdict = await self._verdict(cc, created, now)
            if verdict is not None:
                verdicts[aid] = verdict
        await asyncio.gather(*(_check(*d) for d in due))
        await self.tx.run(lambda s: self._apply(s, verdicts, now))

    async def _verdict(self, cc: str | None, created: datetime, now: datetime
                       ) -> Verdict | None:
        if cc is None:
            # Never heard of this call: the dial's answer was lost and no webhook came.
            if (now - created) < self.timing.wait(self.timing.lost_dial_secs):
                return True
            return False if self.webhooks_overdue(None, now) else "wait"
        try:
            status = await self.client.retrieve_call(cc)
        except (CallNotFound, CallEnded):
            return False if self.webhooks_overdue(None, now) else "wait"
        except TelnyxError as exc:
            log.info("reconciliation of %s postponed: %s", cc, exc)
            return None
        if status.is_alive:
            return True
        return False if self.webhooks_overdue(status.end_time, now) else "wait"

    async def _apply(self, s: AsyncSession, verdicts: dict[int, Verdict], now: datetime) -> None:
        finished = []
        for a in await call_store.lock_by_ids(s, list(verdicts)):
            if a.state not in AttemptState.IN_FLIGHT:
                continue
            verdict = verdicts.get(a.id, True)
            if verdict == "wait":
                a.reconcile_after = now + timedelta(
                    seconds=WEBHOOK_RECHECK_SECS * self.clock.scale)
                continue
            if verdict:
                a.reconcile_after = now + self.timing.wait(self.timing.reconcile_recheck_secs)
                continue
            a.state = AttemptState.ENDED
            a.ended_at = a.ended_at or now
            a.error_code = a.error_code or "lost_webhook"
            a.error_detail = (a.error_detail
                              or "no call.hangup received; Telnyx says the call is over")
            facts = facts_of(a)
            a.outcome = o.classify(facts) if facts.answered else o.FAILED
            finished.append(a)
        await self.settler.settle(s, finished, now)

    def webhooks_overdue(self, ended_at: datetime | None, now: datetime) -> bool:
        """Whether the webhooks of a call that is over can no longer be expected.
        `ended_at` None: unknown (Telnyx no longer knows the call, or the dial was lost)."""
        if time.monotonic() - self._healthy_since() < self.grace_secs:
            return False
        return ended_at is None or self.clock.to_wall(
            (now - ended_at).total_seconds()) >= self.grace_secs
