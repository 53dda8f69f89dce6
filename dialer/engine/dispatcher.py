"""The dispatcher: the dial queue, and the one task that sends each claimed dial in its slot.

The scheduler puts claimed attempts on the queue (per campaign, served round robin); the
dispatcher waits on the pacer for the account's next slot and on each campaign's budget for its
own, then sends the dial as a task. What came back goes to `DialResults`, which records it.
Nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from campaigns.db.types import utcnow
from dialer.engine.attempts import DialOutcome
from dialer.engine.claims import DialJob
from dialer.engine.metrics import Metrics
from dialer.engine.pacer import CampaignBudget, Pacer
from dialer.engine.state import RunState
from dialer.telnyx.client import TelnyxClient
from dialer.telnyx.dial import DialRequest
from dialer.telnyx.errors import (
    AuthenticationError,
    InvalidRequest,
    NotSent,
    RateLimited,
    TelnyxError,
)

log = logging.getLogger("dialer.engine")

#: Telnyx remembers a command_id for 60 s: a re-sent dial must reach it well within that.
RESEND_WINDOW_SECS = 50.0
#: After a dial that could not be sent at all (connection refused, DNS), no dial for this long.
NOT_SENT_PAUSE_SECS = 1.0


@dataclass
class CampaignView:
    """What the dispatcher needs of a running campaign (refreshed every tick)."""

    id: int
    name: str
    status: str
    from_number: str
    connection_id: str
    dial_settings: dict[str, Any]
    settings: dict[str, Any]


@dataclass
class Stats:
    dials_sent: int = 0
    rate_limited: int = 0
    events_processed: int = 0
    started: float = field(default_factory=time.monotonic)


class DialQueue:
    """Claimed dials waiting for their slot, per campaign, with each campaign's own budget.

    `tracked` holds the attempts this engine claimed (or recovered) whose dial result is not
    recorded yet: recovery leaves them alone."""

    def __init__(self, record: Callable[[DialOutcome], None]) -> None:
        self._queues: dict[int, deque[DialJob]] = {}
        self._order: deque[int] = deque()
        self.budgets: dict[int, CampaignBudget] = {}
        self.tracked: set[int] = set()
        #: Where the result of a dial that will not be sent goes (`DialResults.add`).
        self._record = record
        self.wakeup = asyncio.Event()

    def queued(self, campaign_id: int) -> int:
        return len(self._queues.get(campaign_id, ()))

    def order(self) -> list[int]:
        """Campaigns in round-robin order; the next call starts one further on."""
        order = list(self._order)
        self._order.rotate(-1)
        return order

    def serve(self, campaign_id: int) -> None:
        if campaign_id not in self._order:
            self._order.append(campaign_id)

    def push(self, jobs: Iterable[DialJob], *, front: bool = False) -> None:
        added = False
        for job in jobs:
            self.tracked.add(job.attempt_id)
            q = self._queues.setdefault(job.campaign_id, deque())
            q.appendleft(job) if front else q.append(job)
            self.serve(job.campaign_id)
            added = True
        if added:
            self.wakeup.set()

    def budget(self, campaign_id: int) -> CampaignBudget:
        return self.budgets.setdefault(campaign_id, CampaignBudget(None))

    def next_ready(self, now: float) -> tuple[int | None, float | None]:
        """A campaign whose budget allows a dial now, else when the soonest one will."""
        soonest: float | None = None
        for _ in range(len(self._order)):
            cid = self._order[0]
            self._order.rotate(-1)
            if not self._queues.get(cid):
                continue
            ready = self.budget(cid).ready_at(now)
            if ready <= now:
                return cid, None
            soonest = ready if soonest is None else min(soonest, ready)
        return None, soonest

    def pop(self, campaign_id: int) -> DialJob | None:
        q = self._queues.get(campaign_id)
        return q.popleft() if q else None

    def release_all(self, keep: Callable[[int], bool] = lambda cid: False) -> None:
        """Release the queued dials of every campaign for which `keep` is false."""
        for cid, q in self._queues.items():
            if keep(cid):
                continue
            while q:
                self.release(q.popleft())

    def release(self, job: DialJob) -> None:
        """A claimed dial that will not be sent (paused/stopped/shutting down): not an attempt.
        A recovered dial may have been placed before the crash: it is never released as not
        placed (its contact could be called twice); its webhooks or reconciliation settle it."""
        if job.resend:
            self._record(DialOutcome(job.attempt_id, "failed", sends=0))
        else:
            self._record(DialOutcome(job.attempt_id, "released", sends=0, error_code="released",
                                     error_detail="campaign paused or engine stopping"))

    def recorded(self, attempt_ids: Iterable[int]) -> None:
        """Their dial results are recorded: recovery may look at them again."""
        self.tracked.difference_update(attempt_ids)


def dial_request(job: DialJob, view: CampaignView, webhook_url: str) -> DialRequest:
    """The dial for one claimed attempt: the campaign's dial settings, then the attempt's own
    fields (the webhook URL unless the campaign sets its own)."""
    body = dict(view.dial_settings)
    body.setdefault("webhook_url", webhook_url)
    body.update({
        "to": job.phone,
        "from": view.from_number,
        "connection_id": view.connection_id,
        "client_state": job.client_state,
        "command_id": job.command_id,
    })
    return DialRequest.from_body(body)


class Dispatcher:
    def __init__(self, *, queue: DialQueue, pacer: Pacer, client: TelnyxClient,
                 state: RunState, views: Callable[[int], CampaignView | None],
                 webhook_url: Callable[[], str], record: Callable[[DialOutcome], None],
                 metrics: Metrics, stats: Stats) -> None:
        self.queue = queue
        self.pacer = pacer
        self.client = client
        self.state = state
        self._views = views
        self._webhook_url = webhook_url
        self._record = record
        self.metrics = metrics
        self.stats = stats
        self._sends: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.state.stopping.is_set():
            cid, soonest = self.queue.next_ready(loop.time())
            if cid is None:
                self.pacer.idle()  # the account's slots meanwhile are not missed dials
                self.queue.wakeup.clear()
                timeout = 0.05 if soonest is None else max(0.0, soonest - loop.time())
                try:
                    await asyncio.wait_for(self.queue.wakeup.wait(), timeout=timeout)
                except asyncio.TimeoutError:
                    pass
                continue
            await self.pacer.wait()
            job = self.queue.pop(cid)
            if job is None:
                continue
            view = self._views(cid)
            if view is None or not self.state.claiming:
                self.queue.release(job)
                continue
            self.queue.budget(cid).take(loop.time())
            task = asyncio.create_task(self.send(job, view))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            # Let the send start now, in its slot, rather than after whatever else is ready (the
            # loop runs ready callbacks in order: it starts before this loop takes another slot).
            await asyncio.sleep(0)

    async def wait_for_sends(self, timeout: float) -> None:
        if self._sends:
            await asyncio.wait(self._sends, timeout=timeout)

    async def send(self, job: DialJob, view: CampaignView) -> None:
        self.pacer.started()
        window = None
        if job.resend and job.created_at is not None:
            # Re-sends must reach Telnyx while it still remembers the first send's command_id.
            window = RESEND_WINDOW_SECS - (utcnow() - job.created_at).total_seconds()
            if window <= 0:
                self.queue.release(job)  # to reconciliation: its webhooks, if any, will settle it
                return
        self.stats.dials_sent += 1
        self.metrics.dials_sent.inc()
        self._record(await self._outcome(job, view, window))

    async def _outcome(self, job: DialJob, view: CampaignView,
                       window: float | None) -> DialOutcome:
        try:
            request = dial_request(job, view, self._webhook_url())
            res = await self.client.dial(request, resend_window_secs=window)
            self.metrics.dials_ok.inc()
            return DialOutcome(job.attempt_id, "ok", res.call_control_id, res.call_leg_id,
                               res.call_session_id, sends=res.sends)
        except RateLimited as exc:
            self.stats.rate_limited += 1
            self.metrics.rate_limited.inc()
            self.pacer.on_rate_limited(exc.reset_secs)
            return DialOutcome(job.attempt_id, "rate_limited", error_code=exc.code,
                               error_detail=str(exc))
        except AuthenticationError as exc:
            self.metrics.dial_errors.labels("auth").inc()
            return DialOutcome(job.attempt_id, "auth", error_code=str(exc.status),
                               error_detail=str(exc))
        except InvalidRequest as exc:
            self.metrics.dial_errors.labels("invalid").inc()
            codes = list(exc.codes)
            return DialOutcome(job.attempt_id, "invalid", error_code=",".join(codes)[:32],
                               error_detail=str(exc), codes=codes)
        except NotSent as exc:
            if job.resend:  # the send before the crash may have reached Telnyx
                return DialOutcome(job.attempt_id, "failed", error_code="network",
                                   error_detail=str(exc))
            # Nothing reached Telnyx: not an attempt. Slow down as after a 429 (an unreachable
            # API must not spin through the list), and the contact is dialed again shortly.
            self.metrics.dial_errors.labels("not_sent").inc()
            self.pacer.on_rate_limited(NOT_SENT_PAUSE_SECS)
            return DialOutcome(job.attempt_id, "not_sent", error_code="not_sent",
                               error_detail=str(exc))
        except TelnyxError as exc:
            self.metrics.dial_errors.labels("failed").inc()
            return DialOutcome(job.attempt_id, "failed", error_code=str(exc.status or "network"),
                               error_detail=str(exc))
        except Exception as exc:  # a bug must not strand the attempt: reconciliation takes it
            log.exception("dial of attempt %s failed unexpectedly", job.attempt_id)
            self.metrics.dial_errors.labels("failed").inc()
            return DialOutcome(job.attempt_id, "failed", error_code="internal",
                               error_detail=f"{type(exc).__name__}: {exc}")
