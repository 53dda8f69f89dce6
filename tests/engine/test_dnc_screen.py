"""The DNC re-check before dials get slots (`dialer/engine/dnc_screen.py`): what happens to a
queued dial whose number went on the list after its claim."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

from dialer.engine import dnc_screen
from dialer.engine.attempts import DialOutcome
from dialer.engine.claims import DialJob
from dialer.engine.dispatcher import DialQueue
from dialer.engine.dnc_screen import DncScreen
from dialer.engine.metrics import Metrics

pytestmark = pytest.mark.fast


def _job(attempt_id: int, phone: str, campaign_id: int = 1, resend: bool = False) -> DialJob:
    return DialJob(attempt_id, campaign_id, attempt_id, 1, phone, f"cmd{attempt_id}", "st",
                   resend=resend)


def test_the_queue_shows_its_front_and_gives_up_a_dial() -> None:
    queue = DialQueue(lambda r: None)
    a, b, c = _job(1, "+14155550101"), _job(2, "+14155550102"), _job(3, "+14155550103")
    queue.push([a, b, c])
    assert queue.front(1, 2) == [a, b] and queue.front(9, 2) == []
    assert queue.remove(b) and not queue.remove(b)
    assert queue.pop(1) == a
    queue.hold(a)
    assert queue.queued(1) == 2  # held for a slot: still counted
    queue.settled(a)
    assert queue.queued(1) == 1 and queue.pop(1) == c and queue.pop(1) is None


async def test_a_listed_number_is_taken_off_the_queue_and_recorded_as_dnc(
        monkeypatch: pytest.MonkeyPatch) -> None:
    listed = {"+14155550102", "+14155550104"}

    async def among(session: Any, numbers: Collection[str]) -> set[str]:
        return set(numbers) & listed
    monkeypatch.setattr(dnc_screen, "dnc_listed", among)
    results: list[DialOutcome] = []
    queue = DialQueue(results.append)
    metrics = Metrics()
    screen = DncScreen(queue=queue, record=results.append, metrics=metrics)
    jobs = [_job(1, "+14155550101"), _job(2, "+14155550102"), _job(3, "+14155550103"),
            _job(4, "+14155550104", resend=True), _job(5, "+14155550102", campaign_id=2)]
    queue.push(jobs)
    sent = jobs[4]
    assert queue.pop(2) == sent  # already given its slot: too late to take back
    taken = await screen.check(None, jobs)  # type: ignore[arg-type]
    assert taken == {1: 2}
    assert queue.front(1, 10) == [jobs[0], jobs[2]]  # the next dials move up to the slots
    assert [(r.attempt_id, r.kind, r.sends, r.error_code) for r in results] == [
        (2, "dnc", 0, "dnc"),
        (4, "failed", 0, None),  # a recovered dial may have been placed: reconciliation tells
    ]
    assert screen.queries == 1 and screen.blocked == 2
