"""The DNC list checked again right before dials get their slots: claimed dials of numbers
listed since their claim are not sent.

The claim checks the DNC list (`claims.py`), but a dial claimed before its number went on the list
(a keypress opt-out in another campaign or engine, `dialer dnc add`, an import) waits in the
`DialQueue`. The reservation that gives dials their slots checks the numbers of exactly those
dials first, in its own transaction (one query for the batch, before the limits' rows are
locked): a listed one is taken off the queue and gets no slot, so the slot serves the campaign's
next dial. Slots are reserved at most `dispatcher.SLOT_HORIZON_SECS` (0.5 s) ahead, so no dial
starts more than that (plus `slots.SEND_TOLERANCE_SECS`) after a check of its number that found
it unlisted: one query per reservation (~15 dials at 300 dials/s), never one per dial.

A listed dial's attempt becomes `not_placed` with outcome and `error_code` `dnc` and its contact
ends `dnc`, as at the claim (`dial_results.apply_dial_outcomes`, kind `dnc`). A recovered dial
(it may have been placed before a crash) is not re-sent: its webhooks or reconciliation settle it.

A keypress opt-out processed by this engine withdraws its dials of the number at once
(`Dispatcher.withdraw_numbers`: off the queue, and asked back from the wire if armed); on
PostgreSQL so do numbers listed by other engines or `dialer dnc add` (`dnc_listener`). What
remains: a dial whose request is already being written, and the 0.5 s bound when a listing is not
announced (a large import, SQLite's CLI, a lost listening connection).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns.compliance.store import dnc_listed
from dialer.engine.attempts import DialOutcome
from dialer.engine.claims import DialJob
from dialer.engine.metrics import Metrics

NOT_DIALED = "on the DNC list at dial time (listed after the claim)"


class DialQueueLike(Protocol):
    """What the screen needs of `dispatcher.DialQueue` (which imports this module)."""

    def front(self, campaign_id: int, n: int) -> list[DialJob]: ...

    def remove(self, job: DialJob) -> bool: ...


class DncScreen:
    """The DNC re-check of the dials about to get slots (see the module's docstring)."""

    def __init__(self, *, queue: DialQueueLike, record: Callable[[DialOutcome], None],
                 metrics: Metrics) -> None:
        self.queue = queue
        self._record = record
        self.metrics = metrics
        #: Queries run and dials taken off the queue (for measurements and tests).
        self.queries = 0
        self.blocked = 0

    async def check(self, s: AsyncSession, jobs: Sequence[DialJob]) -> dict[int, int]:
        """Check `jobs`' numbers in this transaction; a listed one is taken off the queue at once
        and recorded as not dialed. Returns how many were taken off, per campaign."""
        if not jobs:
            return {}
        listed = await dnc_listed(s, sorted({job.phone for job in jobs}))
        self.queries += 1
        self.metrics.dnc_rechecks.inc()
        taken: dict[int, int] = {}
        for job in jobs:
            if job.phone in listed and self.block(job):
                taken[job.campaign_id] = taken.get(job.campaign_id, 0) + 1
        return taken

    def block(self, job: DialJob) -> bool:
        """Take `job` off the queue as not dialed (its number is listed); False when it is not
        there any more."""
        if not self.queue.remove(job):
            return False  # already being sent (or released): too late for this one
        self.not_dialed(job)
        return True

    def not_dialed(self, job: DialJob) -> None:
        """`job` (off the queue, or withdrawn from the wire) is not sent: its number is listed."""
        self.blocked += 1
        if job.resend:
            # It may have been placed before a crash: its webhooks or reconciliation tell.
            self._record(DialOutcome(job.attempt_id, "failed", sends=0))
        else:
            self._record(DialOutcome(job.attempt_id, "dnc", sends=0, error_code=o.DNC,
                                     error_detail=NOT_DIALED))
            self.metrics.outcomes.labels(o.DNC).inc()
        self.metrics.dnc_blocked.inc()
