"""The scheduler: every tick, one transaction sees which campaigns run, counts the calls in
flight and claims for each campaign what its limits allow right now (round robin for fairness).

It claims enough to keep the dispatcher busy until the next tick lands, never much more, so a
pause strands (and releases) little. Calls that end while a campaign is short of channels wake
it early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.db.models import Campaign, CampaignStatus
from campaigns.settings import settings_of
from dialer.engine.claims import DialJob, claim
from dialer.engine.clock import Clock
from dialer.engine.dispatcher import CampaignView, DialQueue
from dialer.engine.metrics import Metrics
from dialer.engine.pacer import SlotBook
from dialer.engine.state import RunState
from dialer.engine.store import campaigns as campaign_store
from dialer.engine.store import limits as limit_store
from dialer.engine.transactions import Transactions

#: A tick that found campaigns short of channels waits at least this long before the next one,
#: however often calls end.
MIN_TICK_SECS = 0.05
#: How often the scheduler looks for a started campaign while none runs (well within the 1 s
#: in which `campaign start/resume` must take effect).
IDLE_TICK_SECS = 0.25


class Scheduler:
    def __init__(self, *, tx: Transactions, state: RunState, queue: DialQueue, book: SlotBook,
                 metrics: Metrics, instance_id: str, tick_secs: float, max_concurrent: int,
                 per_number_cap: int, clock: Clock) -> None:
        self.tx = tx
        self.clock = clock
        self.state = state
        self.queue = queue
        self.book = book
        self.metrics = metrics
        self.instance_id = instance_id
        self.tick_secs = tick_secs
        self.max_concurrent = max_concurrent
        self.own_max_concurrent = max_concurrent
        self.per_number_cap = per_number_cap
        #: The running campaigns as of the last tick.
        self.campaigns: dict[int, CampaignView] = {}
        self.wakeup = asyncio.Event()
        self._short_of_channels = False
        self._tick_latency = 0.0
        #: Called after each refresh of the running campaigns (the dial wire follows them).
        self.on_refreshed: Callable[[], None] = lambda: None

    def follow_account(self, max_concurrent: int) -> None:
        """The lowest `--max-concurrent` of the live engines (heartbeats)."""
        self.max_concurrent = min(max_concurrent, self.own_max_concurrent)

    def view(self, campaign_id: int) -> CampaignView | None:
        return self.campaigns.get(campaign_id)

    def channels_freed(self) -> None:
        """Calls ended or dials were not placed: claim again soon if a campaign was waiting for
        a channel (rather than at the next regular tick)."""
        if self._short_of_channels:
            self.wakeup.set()

    async def run(self) -> None:
        while not self.state.stopping.is_set():
            started = time.monotonic()
            self.wakeup.clear()
            await self.tx.retrying("scheduling", self.tick)
            # With no campaign running, look for one a few times a second, not every tick.
            tick = self.tick_secs if self.campaigns else max(self.tick_secs, IDLE_TICK_SECS)
            # Calls that end while a campaign is short of channels wake the next tick early,
            # but ticks stay at least MIN_TICK_SECS apart.
            early = MIN_TICK_SECS - (time.monotonic() - started)
            if early > 0:
                await asyncio.sleep(early)
            try:
                await asyncio.wait_for(self.wakeup.wait(),
                                       timeout=max(0.0, tick - (time.monotonic() - started)))
            except asyncio.TimeoutError:
                pass

    async def tick(self) -> None:
        """One transaction: refresh the running campaigns and claim for them."""
        started = time.monotonic()
        jobs = await self.tx.run(self._claim_tx)
        self.queue.push(jobs)
        self._tick_latency = 0.8 * self._tick_latency + 0.2 * (time.monotonic() - started)

    async def refresh(self, session: AsyncSession | None = None) -> dict[int, Campaign]:
        """The running campaigns (their rows, by id); dials queued for a campaign that stopped
        running are released at once (paused/stopped within 1 s)."""
        rows = (await campaign_store.running(session) if session is not None
                else await self.tx.run(campaign_store.running))
        current = {}
        for c in rows:
            current[c.id] = CampaignView(
                c.id, c.name, c.status, c.from_number, c.connection_id,
                dict(c.dial_settings or {}), settings_of(c))
            self.queue.serve(c.id)
        self.campaigns = current
        self.queue.release_all(keep=lambda cid: cid in current)
        self.on_refreshed()
        return {c.id: c for c in rows}

    async def _claim_tx(self, s: AsyncSession) -> list[DialJob]:
        campaigns = await self.refresh(s)
        if not self.state.claiming or not self.campaigns:
            return []
        # Claims of every engine take turns here, so the calls in flight counted below are all
        # the calls in flight: two engines never both take the last free channel.
        await limit_store.lock_channels(s)
        in_flight = await campaign_store.in_flight_by_campaign(s)
        total = sum(in_flight.values())
        self.metrics.in_flight.set(total)
        account_room = self.max_concurrent - total
        self._short_of_channels = account_room <= 0
        order = [cid for cid in self.queue.order() if cid in self.campaigns]
        rate_now = self.book.rate
        share = rate_now / max(1, len(order))
        # Claim enough to keep dialing until the next tick lands, however slow the database is
        # right now; never much more, so a pause strands (and releases) little.
        horizon = max(0.3, 3 * self.tick_secs, 2.5 * self._tick_latency)
        now = self.clock.now()
        jobs: list[DialJob] = []
        for cid in order:
            if account_room <= 0:
                self._short_of_channels = True
                break
            view = self.campaigns[cid]
            rate = min(share if len(order) > 1 else rate_now,
                       view.settings.get("cps") or rate_now)
            room = view.settings["max_concurrent"] - in_flight.get(cid, 0)
            paced = int(rate * horizon) + 1 - self.queue.queued(cid)
            want = min(room, account_room, paced)
            if want < paced:
                self._short_of_channels = True
            if want <= 0:
                continue
            campaign = campaigns.get(cid)
            if campaign is None or campaign.status != CampaignStatus.RUNNING:
                continue
            result = await claim(s, campaign, want, now, instance_id=self.instance_id,
                                 per_number_cap=self.per_number_cap)
            for _ in range(result.suppressed):
                self.metrics.outcomes.labels(o.DNC).inc()
            account_room -= len(result.jobs)
            jobs.extend(result.jobs)
        return jobs
