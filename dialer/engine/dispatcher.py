"""The dispatcher: the dial queue, and the one task that sends each claimed dial in its slot.

The scheduler puts claimed attempts on the queue (per campaign); the dispatcher reserves slots
for them from the schedules in the database (`pacer.SlotBook`: the account's and each
campaign's, shared by every engine) and sends each dial as a task in its slot. What came back
goes to `DialResults`, which records it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.engine.attempts import DialOutcome
from dialer.engine.claims import DialJob
from dialer.engine.clock import Clock
from dialer.engine.dnc_screen import SCAN_DIALS, DncScreen
from dialer.engine.metrics import Metrics
from dialer.engine.pacer import LocalSlot, SlotBook
from dialer.engine.slots import SEND_TOLERANCE_SECS
from dialer.engine.state import RunState
from dialer.engine.transactions import Transactions
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
#: How far ahead slots are reserved (a paused campaign or a stopped engine leaves at most this
#: much of the schedule unused; a lowered rate applies to every slot reserved after it).
SLOT_HORIZON_SECS = 0.5
#: Reservations are at least this far apart (what is claimed meanwhile joins the next one).
MIN_RESERVE_GAP_SECS = 0.02
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
    settings: Mapping[str, Any]


@dataclass
class Stats:
    dials_sent: int = 0
    rate_limited: int = 0
    events_processed: int = 0
    started: float = field(default_factory=time.monotonic)


class DialQueue:
    """Claimed dials waiting for their slot, per campaign.

    `tracked` holds the attempts this engine claimed (or recovered) whose dial result is not
    recorded yet: recovery leaves them alone."""

    def __init__(self, record: Callable[[DialOutcome], None]) -> None:
        self._queues: dict[int, deque[DialJob]] = {}
        self._order: deque[int] = deque()
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

    def waiting(self) -> dict[int, int]:
        """Dials queued per campaign (campaigns with none left out)."""
        return {cid: len(q) for cid, q in self._queues.items() if q}

    def pop(self, campaign_id: int, ready: Callable[[DialJob], bool] = lambda job: True,
            within: int | None = None) -> DialJob | None:
        """The campaign's first dial that is `ready` (normally the first of all) among its
        first `within` (all: None), taken off."""
        q = self._queues.get(campaign_id)
        if not q:
            return None
        for i, job in enumerate(itertools.islice(q, within)):
            if ready(job):
                del q[i]
                return job
        return None

    def front(self, campaign_id: int, n: int) -> list[DialJob]:
        """The campaign's next `n` dials, in the order the queue gives them slots."""
        q = self._queues.get(campaign_id)
        return list(itertools.islice(q, n)) if q else []

    def remove(self, job: DialJob) -> bool:
        """Take `job` off the queue; False if it is not there (being sent, or released)."""
        q = self._queues.get(job.campaign_id)
        if q is None or job not in q:
            return False
        q.remove(job)
        return True

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
    """Two loops: the reserver takes slots for the queued dials from the shared schedules
    (`SlotBook`, a transaction per batch, `SLOT_HORIZON_SECS` ahead); the sender waits for each
    slot and starts the dial's send in it. A dial that cannot start within
    `slots.SEND_TOLERANCE_SECS` of its slot gives the slot up and goes back to the queue."""

    def __init__(self, *, queue: DialQueue, book: SlotBook, client: TelnyxClient,
                 tx: Transactions, state: RunState,
                 views: Callable[[int], CampaignView | None],
                 webhook_url: Callable[[], str], record: Callable[[DialOutcome], None],
                 metrics: Metrics, stats: Stats, clock: Clock) -> None:
        self.queue = queue
        self.book = book
        self.clock = clock
        self.client = client
        self.tx = tx
        self.state = state
        self._views = views
        self._webhook_url = webhook_url
        self._record = record
        self.metrics = metrics
        self.stats = stats
        self._sends: set[asyncio.Task[None]] = set()
        self._slots: list[LocalSlot] = []
        self._held: dict[int, int] = {}
        self._slots_ready = asyncio.Event()
        #: The DNC list checked again for the dials about to be sent.
        self.screen = DncScreen(queue=queue, tx=tx, state=state, slots=lambda: self._slots,
                                record=record, metrics=metrics)
        #: Slots given up because their dial could not start in time (a busy loop).
        self.slots_missed = 0

    async def run(self) -> None:
        """Both loops until stopping; a crash of either is raised (the engine stops on it)."""
        loops = {asyncio.create_task(self._reserver(), name="slot-reserver"),
                 asyncio.create_task(self._sender(), name="dial-sender"),
                 asyncio.create_task(self.screen.run(), name="dnc-screen")}
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    def _demand(self) -> dict[int, int]:
        demand = {}
        for cid, n in self.queue.waiting().items():
            want = n - self._held.get(cid, 0)
            if want > 0 and self._views(cid) is not None:
                demand[cid] = want
        return demand

    async def _screened_demand(self, s: AsyncSession) -> dict[int, int]:
        """In the reservation's transaction: the numbers of the dials the new slots will go to
        (those after the dials holding slots) checked against the DNC list; listed ones are
        taken off the queue, and the demand left is what gets slots."""
        jobs = []
        for cid, want in self._demand().items():
            held = self._held.get(cid, 0)
            jobs.extend(self.queue.front(cid, held + want)[held:])
        await self.screen.check(s, jobs)
        return self._demand()

    async def _reserver(self) -> None:
        """Reserve slots for the dials that have none, a batch per transaction, whenever the
        slots held cover less than half the horizon ahead; new dials wake it."""
        loop = asyncio.get_running_loop()
        while not self.state.stopping.is_set():
            self.queue.wakeup.clear()
            ahead = max((slot.at for slot in self._slots), default=loop.time()) - loop.time()
            demand = self._demand() if self.state.claiming else {}
            if demand and ahead < SLOT_HORIZON_SECS / 2:
                started = loop.time()
                slots = await self.tx.retrying(
                    "reserving dial slots", partial(self.book.reserve, demand, SLOT_HORIZON_SECS,
                                                    self._screened_demand))
                for slot in slots:
                    heapq.heappush(self._slots, slot)
                    self._held[slot.campaign_id] = self._held.get(slot.campaign_id, 0) + 1
                if slots:
                    self._slots_ready.set()
                    self.screen.wakeup.set()
                    # Batch what comes in meanwhile rather than a transaction per dial.
                    await asyncio.sleep(max(0.0, MIN_RESERVE_GAP_SECS - (loop.time() - started)))
                    continue
                # Every campaign's next slot is beyond the horizon (a slow campaign, a 429's
                # pause): look again a little later, whatever is claimed meanwhile.
                await asyncio.sleep(SLOT_HORIZON_SECS / 4)
                continue
            # Until the slots held run short, or new dials come.
            timeout = max(MIN_RESERVE_GAP_SECS, ahead - SLOT_HORIZON_SECS / 2)
            try:
                await asyncio.wait_for(self.queue.wakeup.wait(),
                                       timeout=min(timeout, SLOT_HORIZON_SECS / 2))
            except asyncio.TimeoutError:
                pass

    async def _sender(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.state.stopping.is_set():
            if not self._slots:
                self._slots_ready.clear()
                try:
                    await asyncio.wait_for(self._slots_ready.wait(), timeout=0.05)
                except asyncio.TimeoutError:
                    pass
                continue
            delay = self._slots[0].at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            slot = heapq.heappop(self._slots)
            self._held[slot.campaign_id] -= 1
            if loop.time() - slot.at > SEND_TOLERANCE_SECS:
                # Too late for its slot (the loop was busy): sent now, it could arrive bunched
                # with the next dials. The dial waits for a new slot instead.
                self.slots_missed += 1
                self.metrics.slots_missed.inc()
                self.queue.wakeup.set()
                continue
            job = self.queue.pop(slot.campaign_id, self.screen.cleared, SCAN_DIALS)
            if job is None:
                if self.queue.queued(slot.campaign_id):
                    # No queued dial of the campaign was checked against the DNC list lately
                    # (a slow check): the slot goes unused, the dials wait for their check.
                    self.metrics.dnc_unchecked_slots.inc()
                    self.screen.wakeup.set()
                    self.queue.wakeup.set()
                continue  # or the campaign's dials were released meanwhile
            view = self._views(slot.campaign_id)
            if view is None or not self.state.claiming:
                self.queue.release(job)
                continue
            await self.book.guard()
            task = asyncio.create_task(self.send(job, view, slot))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            # Let the send start now, in its slot, rather than after whatever else is ready (the
            # loop runs ready callbacks in order: it starts before this loop takes another slot).
            await asyncio.sleep(0)

    async def wait_for_sends(self, timeout: float) -> None:
        if self._sends:
            await asyncio.wait(self._sends, timeout=timeout)

    async def send(self, job: DialJob, view: CampaignView, slot: LocalSlot | None = None) -> None:
        if slot is not None and asyncio.get_running_loop().time() - slot.at > SEND_TOLERANCE_SECS:
            # Checked again as the send starts (the loop may have run other work since).
            self.slots_missed += 1
            self.metrics.slots_missed.inc()
            self.queue.push([job], front=True)
            return
        self.book.started()
        window = None
        if job.resend and job.created_at is not None:
            # Re-sends must reach Telnyx while it still remembers the first send's command_id.
            window = RESEND_WINDOW_SECS - self.clock.to_wall(
                (self.clock.now() - job.created_at).total_seconds())
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
            self.book.on_rate_limited(exc.reset_secs)
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
            self.book.on_rate_limited(NOT_SENT_PAUSE_SECS)
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
