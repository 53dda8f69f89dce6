"""The DNC re-check before sending (`dialer/engine/dnc_screen.py`): when dials are checked, and
what happens to a queued dial whose number went on the list after its claim."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import pytest

from dialer.engine import dnc_screen
from dialer.engine.attempts import DialOutcome
from dialer.engine.claims import DialJob
from dialer.engine.dispatcher import DialQueue
from dialer.engine.dnc_screen import (
    CHECK_BATCH_SECS,
    CHECK_LEAD_SECS,
    MAX_AGE_SECS,
    DncScreen,
    due_checks,
    needs_check,
)
from dialer.engine.metrics import Metrics
from dialer.engine.pacer import LocalSlot
from dialer.engine.state import RunState

pytestmark = pytest.mark.fast


def _job(attempt_id: int, phone: str, campaign_id: int = 1, resend: bool = False) -> DialJob:
    return DialJob(attempt_id, campaign_id, attempt_id, 1, phone, f"cmd{attempt_id}", "st",
                   resend=resend)


def test_a_dial_needs_a_check_begun_within_the_max_age_of_its_slot() -> None:
    assert needs_check(10.0, None)
    assert not needs_check(10.0, 9.95)
    assert needs_check(10.0, 10.0 - MAX_AGE_SECS)  # it may start a little after its slot


def test_checks_are_batched_just_before_the_slots() -> None:
    now = 100.0
    pairs: list[tuple[float, float | None]] = [
        (now + 0.01, None),               # due at once
        (now + 0.02, now - 0.01),         # checked lately: nothing to do
        (now + CHECK_LEAD_SECS + CHECK_BATCH_SECS - 0.001, None),  # joins this batch
        (now + 0.3, None),                # later: look again at its slot minus the lead
        (now + 0.5, None),
    ]
    due, later = due_checks(pairs, now)
    assert due == [0, 2]
    assert later == pytest.approx(now + 0.3 - CHECK_LEAD_SECS)
    # Everything checked at once is still fresh when its dial starts.
    assert all(not needs_check(pairs[i][0], now) for i in due)
    assert due_checks([(now + 1, now + 0.95)], now) == ([], None)


async def test_the_queue_gives_a_slot_to_the_first_cleared_dial() -> None:
    queue = DialQueue(lambda r: None)
    a, b, c = _job(1, "+14155550101"), _job(2, "+14155550102"), _job(3, "+14155550103")
    queue.push([a, b, c])
    assert queue.front(1, 2) == [a, b] and queue.front(9, 2) == []
    assert queue.pop(1, lambda j: j.attempt_id != 1) == b
    assert queue.remove(c) and not queue.remove(c)
    assert queue.pop(1, lambda j: False) is None
    assert queue.pop(1) == a and queue.pop(1) is None


async def test_a_listed_number_is_taken_off_the_queue_and_recorded_as_dnc(
        monkeypatch: pytest.MonkeyPatch) -> None:
    listed = {"+14155550102", "+14155550104"}

    async def among(session: Any, numbers: Collection[str]) -> set[str]:
        return set(numbers) & listed
    monkeypatch.setattr(dnc_screen, "dnc_numbers_among", among)
    results: list[DialOutcome] = []
    queue = DialQueue(results.append)
    metrics = Metrics()
    slots: list[LocalSlot] = []
    screen = DncScreen(queue=queue, tx=None, state=RunState(),  # type: ignore[arg-type]
                       slots=lambda: slots, record=results.append, metrics=metrics)
    jobs = [_job(1, "+14155550101"), _job(2, "+14155550102"), _job(3, "+14155550103"),
            _job(4, "+14155550104", resend=True), _job(5, "+14155550102", campaign_id=2)]
    queue.push(jobs)
    sent = jobs[4]
    assert queue.pop(2) == sent  # already being sent: too late to take back
    taken = await screen.check(None, jobs)  # type: ignore[arg-type]
    assert taken == {1: 2}
    assert queue.front(1, 10) == [jobs[0], jobs[2]]  # the next dials move up to the slots
    assert [(r.attempt_id, r.kind, r.sends, r.error_code) for r in results] == [
        (2, "dnc", 0, "dnc"),
        (4, "failed", 0, None),  # a recovered dial may have been placed: reconciliation tells
    ]
    assert screen.cleared(jobs[0]) and not screen.cleared(jobs[1])
    assert screen.queries == 1 and screen.blocked == 2
    await asyncio.sleep(MAX_AGE_SECS + 0.02)
    assert not screen.cleared(jobs[0])  # a check too old no longer clears a dial
