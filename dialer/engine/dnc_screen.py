"""The DNC list checked again right before each dial: claimed dials of numbers listed since.

The claim checks the DNC list (`claims.py`), but a dial claimed before a number went on the list
(a keypress opt-out in another campaign or engine, `dialer dnc add`, an import) waits in the
`DialQueue` for its slot. So no dial leaves unless a check of its number that *began* at most
`MAX_AGE_SECS` before the dial starts found the number unlisted:

- the reservation that gives dials their slots checks the numbers of those dials first, in its
  own transaction (one query for the batch, before the limits' rows are locked), and takes no
  slot for a listed one;
- `DncScreen.run` checks again, one query per batch, the dials whose slots come within
  `CHECK_LEAD_SECS + CHECK_BATCH_SECS` and whose last check would be too old by then
  (`due_checks`, pure): at 300 dials/s that is one query per ~15 dials, never one per dial;
- the sender takes the campaign's first queued dial that is `cleared`; a dial whose check is
  missing or stale keeps its place for the next check, and the slot goes to the next dial.

A listed dial is taken off the queue before its slot, so that slot serves the campaign's next
dial. Its attempt becomes `not_placed` with outcome and `error_code` `dnc` and its contact ends
`dnc`, as at the claim (`dial_results.apply_dial_outcomes`, kind `dnc`). A recovered dial (it may
have been placed before a crash) is not re-sent: its webhooks or reconciliation settle it.

What remains: a number committed to the list while a dial's last check is under way or just
done is still dialed if that dial's slot comes within `MAX_AGE_SECS` (0.25 s), and so is a dial
whose request is already being written.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.dnc import dnc_numbers_among
from dialer.engine.attempts import DialOutcome
from dialer.engine.claims import DialJob
from dialer.engine.metrics import Metrics
from dialer.engine.pacer import LocalSlot
from dialer.engine.slots import SEND_TOLERANCE_SECS
from dialer.engine.state import RunState
from dialer.engine.transactions import Transactions

#: A dial starts only if a check of its number began at most this long before.
MAX_AGE_SECS = 0.25
#: A slot's check is started at least this long before the slot (the query's round trip, and a
#: busy event loop's late timers: measured up to ~40 ms on a loaded 2-core host).
CHECK_LEAD_SECS = 0.1
#: One check covers the dials of this much of the schedule.
CHECK_BATCH_SECS = 0.14
#: The sender looks this far into a campaign's queue for a dial cleared to go.
SCAN_DIALS = 8
assert CHECK_LEAD_SECS + CHECK_BATCH_SECS + SEND_TOLERANCE_SECS <= MAX_AGE_SECS

NOT_DIALED = "on the DNC list at dial time (listed after the claim)"


class DialQueueLike(Protocol):
    """What the screen needs of `dispatcher.DialQueue` (which imports this module)."""

    tracked: set[int]

    def front(self, campaign_id: int, n: int) -> list[DialJob]: ...

    def remove(self, job: DialJob) -> bool: ...


def needs_check(slot_at: float, checked_at: float | None) -> bool:
    """Whether a dial due at `slot_at` (it may start up to `SEND_TOLERANCE_SECS` late) needs a
    newer check than the one begun at `checked_at`."""
    return checked_at is None or checked_at < slot_at + SEND_TOLERANCE_SECS - MAX_AGE_SECS


def due_checks(pairs: Sequence[tuple[float, float | None]], now: float
               ) -> tuple[list[int], float | None]:
    """For dials holding slots, `(slot time, when their last check began or None)`: the indexes
    to check now, and when to look again (None: not before something changes)."""
    now_due: list[int] = []
    later = math.inf
    for i, (slot_at, checked_at) in enumerate(pairs):
        if not needs_check(slot_at, checked_at):
            continue
        if slot_at <= now + CHECK_LEAD_SECS + CHECK_BATCH_SECS:
            now_due.append(i)
        else:
            later = min(later, slot_at - CHECK_LEAD_SECS)
    return now_due, (later if math.isfinite(later) else None)


class DncScreen:
    """This engine's DNC re-checks of its queued dials (see the module's docstring)."""

    def __init__(self, *, queue: DialQueueLike, tx: Transactions, state: RunState,
                 slots: Callable[[], Iterable[LocalSlot]],
                 record: Callable[[DialOutcome], None], metrics: Metrics) -> None:
        self.queue = queue
        self.tx = tx
        self.state = state
        self._slots = slots
        self._record = record
        self.metrics = metrics
        #: Attempt id -> loop time at which the last check that found its number unlisted began.
        self._checked: dict[int, float] = {}
        self.wakeup = asyncio.Event()
        #: Queries run, numbers checked, dials taken off the queue (for measurements and tests).
        self.queries = 0
        self.numbers_checked = 0
        self.blocked = 0

    def cleared(self, job: DialJob) -> bool:
        """May `job` start now? Its number was found unlisted by a check begun lately."""
        checked = self._checked.get(job.attempt_id)
        return checked is not None and asyncio.get_running_loop().time() - checked <= MAX_AGE_SECS

    async def check(self, s: AsyncSession, jobs: Sequence[DialJob]) -> dict[int, int]:
        """Check `jobs`' numbers in this transaction; a listed one is taken off the queue at once
        and recorded as not dialed. Returns how many were taken off, per campaign."""
        if not jobs:
            return {}
        started = asyncio.get_running_loop().time()
        listed = await dnc_numbers_among(s, {job.phone for job in jobs})
        self.queries += 1
        self.numbers_checked += len(jobs)
        self.metrics.dnc_rechecks.inc()
        taken: dict[int, int] = {}
        for job in jobs:
            if job.phone not in listed:
                self._checked[job.attempt_id] = max(started,
                                                    self._checked.get(job.attempt_id, started))
            elif self._block(job):
                taken[job.campaign_id] = taken.get(job.campaign_id, 0) + 1
        return taken

    def _block(self, job: DialJob) -> bool:
        self._checked.pop(job.attempt_id, None)
        if not self.queue.remove(job):
            return False  # already being sent (or released): too late for this one
        self.blocked += 1
        if job.resend:
            # It may have been placed before a crash: its webhooks or reconciliation tell.
            self._record(DialOutcome(job.attempt_id, "failed", sends=0))
        else:
            self._record(DialOutcome(job.attempt_id, "dnc", sends=0, error_code=o.DNC,
                                     error_detail=NOT_DIALED))
            self.metrics.outcomes.labels(o.DNC).inc()
        self.metrics.dnc_blocked.inc()
        return True

    def _holding(self) -> list[tuple[float, DialJob]]:
        """Each dial holding a slot, paired with it: a campaign's slots go to its queued dials
        in order (the sender may pass over a dial not cleared yet; the pairing is then off by
        one until the next look, and the sender's own test still holds)."""
        by_campaign: dict[int, list[float]] = {}
        for slot in self._slots():
            by_campaign.setdefault(slot.campaign_id, []).append(slot.at)
        pairs: list[tuple[float, DialJob]] = []
        for cid, times in by_campaign.items():
            times.sort()
            pairs.extend(zip(times, self.queue.front(cid, len(times)), strict=False))
        return pairs

    async def run(self) -> None:
        """Check the dials whose slots come soon, one query per batch, until stopping."""
        loop = asyncio.get_running_loop()
        while not self.state.stopping.is_set():
            self.wakeup.clear()
            holding = self._holding()
            due, later = due_checks(
                [(at, self._checked.get(job.attempt_id)) for at, job in holding], loop.time())
            if due:
                step = partial(self.check, jobs=[holding[i][1] for i in due])
                await self.tx.retrying("checking queued dials against the DNC list",
                                       partial(self.tx.read, step))
                self._forget_gone()
                continue
            timeout = 0.25 if later is None else max(0.0, later - loop.time())
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    def _forget_gone(self) -> None:
        """Drop the checks of dials no longer queued (sent, released, recorded)."""
        if len(self._checked) > 64 + 2 * len(self.queue.tracked):
            gone = [aid for aid in self._checked if aid not in self.queue.tracked]
            for aid in gone:
                del self._checked[aid]
