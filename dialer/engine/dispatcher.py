"""The dispatcher: the dial queue, and the reserver that gives each claimed dial its slot.

The scheduler puts claimed attempts on the queue (per campaign); the dispatcher reserves slots
for them from the schedules in the database (`pacer.SlotBook`: the account's and each
campaign's, shared by every engine), pairs each slot with a dial, and the wire
(`wire.DialWire`, a process of its own) sends it in its slot. What came back goes to
`DialResults`, which records it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.engine.attempts import DialOutcome
from dialer.engine.claims import DialJob
from dialer.engine.clock import Clock
from dialer.engine.dnc_screen import DncScreen
from dialer.engine.metrics import Metrics
from dialer.engine.pacer import LocalSlot, SlotBook
from dialer.engine.slots import burst_limit
from dialer.engine.state import RunState
from dialer.engine.transactions import Transactions
from dialer.engine.wire import ArmedDial, DialWire, WireLost, WireReport, WireSettings
from dialer.telnyx.client import MAX_DIAL_SENDS, RESEND_BACKOFF_SECS
from dialer.telnyx.dial import DialRequest, DialResult
from dialer.telnyx.errors import (
    AuthenticationError,
    InvalidRequest,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    ServerError,
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
        #: Dials taken for a slot and not yet sent or given back, per campaign.
        self._in_slots: dict[int, int] = {}

    def queued(self, campaign_id: int) -> int:
        """Dials of the campaign not sent yet: waiting for a slot, or given one."""
        return len(self._queues.get(campaign_id, ())) + self._in_slots.get(campaign_id, 0)

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

    def pop(self, campaign_id: int) -> DialJob | None:
        q = self._queues.get(campaign_id)
        return q.popleft() if q else None

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

    def hold(self, job: DialJob) -> None:
        """`job` (popped) was given a slot: still counted by `queued` until `settled` (so the
        scheduler does not claim its place again)."""
        self._in_slots[job.campaign_id] = self._in_slots.get(job.campaign_id, 0) + 1

    def settled(self, job: DialJob) -> None:
        """A dial held for its slot was sent, given back or released."""
        left = self._in_slots.get(job.campaign_id, 0) - 1
        if left > 0:
            self._in_slots[job.campaign_id] = left
        else:
            self._in_slots.pop(job.campaign_id, None)

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
    """The reserver takes slots for the queued dials from the shared schedules (`SlotBook`, a
    transaction per batch, `SLOT_HORIZON_SECS` ahead) and gives each slot its dial at once; the
    wire (`wire.DialWire`, its own process) starts each dial in its slot. A dial that cannot start
    within `slots.SEND_TOLERANCE_SECS` of its slot gives the slot up and goes back to the queue;
    one whose campaign stopped running meanwhile is released."""

    def __init__(self, *, queue: DialQueue, book: SlotBook, wire: WireSettings,
                 tx: Transactions, state: RunState,
                 views: Callable[[int], CampaignView | None],
                 running: Callable[[], Iterable[int]],
                 webhook_url: Callable[[], str], record: Callable[[DialOutcome], None],
                 metrics: Metrics, stats: Stats, clock: Clock) -> None:
        self.queue = queue
        self.book = book
        self.clock = clock
        self.tx = tx
        self.state = state
        self._views = views
        self._running = running
        self._webhook_url = webhook_url
        self._record = record
        self.metrics = metrics
        self.stats = stats
        self.wire = DialWire(wire, report=self._on_report)
        #: Dials given to the wire whose report has not come back, and the latest slot armed.
        self._armed = 0
        self._armed_until = 0.0
        self._all_reported = asyncio.Event()
        self._all_reported.set()
        #: The DNC list checked again for the dials about to get slots.
        self.screen = DncScreen(queue=queue, record=record, metrics=metrics)
        #: Slots given up because their dial could not start in time (a busy host).
        self.slots_missed = 0
        #: Armed dials asked back from the wire because their numbers opted out.
        self.withdrawn = 0
        #: Dials waiting out their backoff before they are queued again for a slot.
        self._resends: dict[int, tuple[asyncio.TimerHandle, DialJob]] = {}

    async def start(self) -> None:
        """Start the wire's process (before `run`)."""
        await self.wire.start()
        self.sync_allowed()

    async def run(self) -> None:
        """The reserver until stopping, and the wire's reports until `close`."""
        await asyncio.gather(self._reserver(), self._watch_wire())

    async def _watch_wire(self) -> None:
        try:
            await self.wire.watch()
        except WireLost:
            # What it had armed may have been sent: left to recovery after the restart.
            self._all_reported.set()
            raise

    async def close(self) -> None:
        await self.wire.close()

    def sync_allowed(self) -> None:
        """Tell the wire which campaigns may still dial at their slots: the running ones, while
        the engine claims (after each refresh of the campaigns and when claiming stops)."""
        self.wire.allow(self.state.claiming, frozenset(self._running()))

    def _demand(self) -> dict[int, int]:
        """Dials waiting for a slot, per running campaign, up to what one horizon can serve."""
        most = int(self.book.rate * SLOT_HORIZON_SECS) + 1
        return {cid: min(n, most) for cid, n in self.queue.waiting().items()
                if self._views(cid) is not None}

    async def _screened_demand(self, s: AsyncSession) -> dict[int, int]:
        """In the reservation's transaction: the numbers of the dials the new slots will go to
        (the first of each campaign's queue) checked against the DNC list; listed ones are
        taken off the queue, and the demand left is the checked dials now first in line."""
        demand = self._demand()
        jobs = [job for cid, want in demand.items() for job in self.queue.front(cid, want)]
        taken = await self.screen.check(s, jobs)
        left = {cid: want - taken.get(cid, 0) for cid, want in demand.items()}
        return {cid: n for cid, n in left.items() if n > 0}

    async def _reserver(self) -> None:
        """Reserve slots for the queued dials, a batch per transaction, whenever the slots
        armed cover less than half the horizon ahead; new dials wake it."""
        while not self.state.stopping.is_set():
            self.queue.wakeup.clear()
            ahead = self._armed_until - time.monotonic()
            demand = self._demand() if self.state.claiming else {}
            if demand and ahead < SLOT_HORIZON_SECS / 2:
                started = time.monotonic()
                slots = await self.tx.retrying(
                    "reserving dial slots", partial(self.book.reserve, demand, SLOT_HORIZON_SECS,
                                                    self._screened_demand))
                if slots:
                    self._arm(slots)
                    # Batch what comes in meanwhile rather than a transaction per dial.
                    await asyncio.sleep(max(0.0, MIN_RESERVE_GAP_SECS
                                            - (time.monotonic() - started)))
                    continue
                # Every campaign's next slot is beyond the horizon (a slow campaign, a 429's
                # pause): look again a little later, whatever is claimed meanwhile.
                await asyncio.sleep(SLOT_HORIZON_SECS / 4)
                continue
            # Until the slots armed run short, or new dials come.
            timeout = max(MIN_RESERVE_GAP_SECS, ahead - SLOT_HORIZON_SECS / 2)
            try:
                await asyncio.wait_for(self.queue.wakeup.wait(),
                                       timeout=min(timeout, SLOT_HORIZON_SECS / 2))
            except asyncio.TimeoutError:
                pass

    def _arm(self, slots: list[LocalSlot]) -> None:
        """Each slot takes the next dial of its campaign; the wire sends it in the slot."""
        armed = []
        for slot in sorted(slots):
            job = self.queue.pop(slot.campaign_id)
            if job is None:
                continue  # the campaign's dials were released meanwhile: the slot goes unused
            view = self._views(slot.campaign_id)
            if view is None or not self.state.claiming:
                self.queue.release(job)
                continue
            deadline = None
            if job.resend and job.created_at is not None:
                # Re-sends must reach Telnyx while it still remembers the first send's
                # command_id.
                window = RESEND_WINDOW_SECS - self.clock.to_wall(
                    (self.clock.now() - job.created_at).total_seconds())
                if window <= 0:
                    self.queue.release(job)  # to reconciliation: its webhooks will settle it
                    continue
                deadline = time.monotonic() + window
            self.queue.hold(job)
            armed.append(ArmedDial(job, partial(dial_request, job, view, self._webhook_url()),
                                   slot.at, deadline))
            self._armed_until = max(self._armed_until, slot.at)
        if armed:
            self._armed += len(armed)
            self._all_reported.clear()
            self.sync_allowed()
            self.wire.arm(armed, burst_limit(self.book.account_cps))

    def _on_report(self, report: WireReport) -> None:
        """What became of an armed dial (on the main loop)."""
        job = report.dial.job
        self.queue.settled(job)
        self._armed -= 1
        if not self._armed:
            self._all_reported.set()
        if report.kind == "missed":
            self.slots_missed += 1
            self.metrics.slots_missed.inc()
            self.queue.push([job], front=True)
        elif report.kind in ("skipped", "expired"):
            self.queue.release(job)
        elif report.kind == "withdrawn":
            self.screen.not_dialed(job)
        else:
            self.stats.dials_sent += 1
            self.metrics.dials_sent.inc()
            if self._resend_later(job, report.error):
                return
            outcome = self._outcome(job, report.result, report.error)
            if job.sends:
                outcome = replace(outcome, sends=outcome.sends + job.sends)
            self._record(outcome)

    def withdraw_numbers(self, numbers: set[str]) -> None:
        """Numbers just put on the DNC list (a keypress opt-out this engine committed, or one
        another engine or `dialer dnc add` announced on PostgreSQL: `dnc_listener`): their
        dials still waiting for a slot are taken off the queue, and those armed are asked back
        from the wire; both end `dnc` like a dial the reservation's DNC check stops."""
        queued = [job for cid in list(self.queue.waiting())
                  for job in self.queue.front(cid, self.queue.queued(cid))
                  if job.phone in numbers]
        for job in queued:
            self.screen.block(job)
        armed = self.wire.withdraw(numbers)
        self.withdrawn += armed
        if queued or armed:
            log.info("DNC list: %d queued and %d armed dial(s) to %d number(s) just listed "
                     "withdrawn", len(queued), armed, len(numbers))

    def _resend_later(self, job: DialJob, error: BaseException | None) -> bool:
        """Whether `job` goes back to the queue (after its backoff) to be sent again in a new
        slot, so re-sends never arrive outside the schedule: a send that may have reached
        Telnyx (5xx, timeout, connection lost after the write), while the engine claims, within
        the client's bounds (`MAX_DIAL_SENDS`, `RESEND_BACKOFF_SECS` doubling) and Telnyx's
        command_id memory (`RESEND_WINDOW_SECS` from the first send)."""
        if not isinstance(error, (ServerError, OutcomeUnknown)) or not self.state.claiming:
            return False
        sends = job.sends + 1
        delay = RESEND_BACKOFF_SECS * 2 ** (sends - 1)
        first = job.created_at if job.resend and job.created_at is not None else self.clock.now()
        elapsed = self.clock.to_wall((self.clock.now() - first).total_seconds())
        if sends >= MAX_DIAL_SENDS or elapsed + delay >= RESEND_WINDOW_SECS - 1.0:
            return False
        again = replace(job, resend=True, created_at=first, sends=sends)
        log.warning("dial %s: %s; sent again in a slot of its own in %.1f s (send %d of at "
                    "most %d)", job.command_id, error, delay, sends + 1, MAX_DIAL_SENDS)
        handle = asyncio.get_running_loop().call_later(delay, self._resend_due, again)
        self._resends[job.attempt_id] = (handle, again)
        return True

    def _resend_due(self, job: DialJob) -> None:
        self._resends.pop(job.attempt_id, None)
        if self.state.claiming and self._views(job.campaign_id) is not None:
            self.queue.push([job], front=True)
        else:  # paused, stopped or stopping: its webhooks or reconciliation settle it
            self.queue.release(job)

    def release_resends(self) -> None:
        """The engine stops: dials waiting to be sent again are released (as re-sends: their
        webhooks or reconciliation settle them)."""
        for handle, job in self._resends.values():
            handle.cancel()
            self.queue.release(job)
        self._resends.clear()

    async def wait_for_sends(self, timeout: float) -> None:
        """Until every dial given to the wire has been reported (sent, or given back)."""
        if self._armed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._all_reported.wait(), timeout)

    def _outcome(self, job: DialJob, result: DialResult | None,
                 error: BaseException | None) -> DialOutcome:
        """A dial's result, or the error its send raised, as the outcome to record."""
        try:
            if error is not None:
                raise error
            assert result is not None
            res = result
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
