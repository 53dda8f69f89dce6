"""Numbers put on the DNC list while their dials wait in the queue are not dialed: the engine
checks the list again as dials get their slots (`dialer/engine/dnc_screen.py`), and the contact ends
`dnc` as if the claim had found it listed."""

from __future__ import annotations

import time

import pytest

from campaigns.db.engine import create_engine, session_factory
from campaigns.dnc import add_numbers
from dialer.engine.dispatcher import SLOT_HORIZON_SECS
from dialer.engine.slots import SEND_TOLERANCE_SECS
from tests.engine.helpers import (
    attempts_of,
    campaign_status,
    check_one_call_per_attempt,
    contacts_of,
    numbers,
    rig,
    seed,
    wait_for,
)

#: A dial's travel from its start to the simulator's ledger, on a busy 2-core host.
TRAVEL_SECS = 0.05
#: The longest from a check of a dial's number to the dial's start: its slot is at most one
#: horizon ahead of the check, and the dial starts at most the tolerance after its slot.
MAX_AGE_SECS = SLOT_HORIZON_SECS + SEND_TOLERANCE_SECS


async def _add_to_dnc(url: str, phones: list[str]) -> float:
    """Commit `phones` to the DNC list as `dialer dnc add` does; the time of the commit."""
    db = create_engine(url)
    try:
        async with session_factory(db)() as s:
            async with s.begin():
                await add_numbers(s, phones, source="cli")
            return time.time()
    finally:
        await db.dispose()


async def test_dials_queued_when_their_numbers_go_on_the_list_are_not_sent(db_url: str) -> None:
    phones = numbers(80)
    cid = await seed(db_url, "queued", phones, max_attempts=1, cps=20, max_concurrent=200)
    # Ticks of 1 s claim ~3 s of dials at a time, while slots go 0.5 s ahead: when the numbers
    # go on the list, most claimed dials are still waiting for their slot.
    async with rig(db_url, mix={"busy": 1}, cps=40, max_concurrent=300, speed=30,
                   tick_secs=1.0) as r:
        await wait_for(lambda: _ledger_has(r.sim, 10), timeout=60, poll=0.02)
        queued_then = r.engine.queue.queued(cid)
        committed = await _add_to_dnc(db_url, phones)

        async def done() -> bool:
            return await campaign_status(db_url, cid) == "completed"
        await wait_for(done, timeout=60)
        late = [c.dialed_at - committed for c in r.sim.ledger
                if c.dialed_at > committed + MAX_AGE_SECS + TRAVEL_SECS]
        screen = r.engine.dispatcher.screen
        blocked, dialed = screen.blocked, len(r.sim.ledger)
    assert queued_then > 0, "dials were waiting in the queue when the numbers were listed"
    assert late == [], f"dials after the DNC commit: {late}"

    contacts = await contacts_of(db_url, cid)
    attempts = await attempts_of(db_url)
    called = {c.to for c in r.sim.ledger}
    dnc = [c for c in contacts if c.phone_e164 not in called]
    assert len(called) == dialed and dialed + len(dnc) == len(phones)  # nothing lost
    assert all(c.status == "done" and c.outcome == "dnc" and c.deferred_reason == "dnc"
               and c.attempts == 0 for c in dnc)
    assert all(c.outcome == "busy" and c.attempts == 1 for c in contacts if c.phone_e164 in called)
    # The dials taken off the queue: their attempts were never placed, with the reason.
    screened = [a for a in attempts if a.state == "not_placed"]
    assert screened and len(screened) == blocked
    assert all(a.outcome == "dnc" and a.error_code == "dnc" and a.dial_sent_at is None
               for a in screened)
    assert {a.contact_id for a in screened} <= {c.id for c in dnc}
    check_one_call_per_attempt(r.sim, attempts)


async def _listed_while_armed(url: str, name: str, *, tell_engine: bool
                              ) -> tuple[int, list[float], int, set[str]]:
    """A campaign dialing with dials queued and armed when its numbers go on the DNC list (by
    another connection; `tell_engine`: and this engine told at once, as its processor does for
    its own opt-outs). Returns the campaign, the dials that started later than a dial's travel
    after the commit (seconds after it), how many armed dials were withdrawn, and the numbers
    the simulator's ledger shows called."""
    phones = numbers(80)
    cid = await seed(url, name, phones, max_attempts=1, cps=20, max_concurrent=200)
    async with rig(url, mix={"busy": 1}, cps=40, max_concurrent=300, speed=30,
                   tick_secs=1.0) as r:
        await wait_for(lambda: _ledger_has(r.sim, 10), timeout=60, poll=0.02)
        committed = await _add_to_dnc(url, phones)
        if tell_engine:
            r.engine.dispatcher.withdraw_numbers(set(phones))

        async def done() -> bool:
            return await campaign_status(url, cid) == "completed"
        await wait_for(done, timeout=60)
        late = [round(c.dialed_at - committed, 3) for c in r.sim.ledger
                if c.dialed_at > committed + 2 * TRAVEL_SECS]
        withdrawn = r.engine.dispatcher.withdrawn
    check_one_call_per_attempt(r.sim, await attempts_of(url))
    return cid, late, withdrawn, {c.to for c in r.sim.ledger}


@pytest.mark.timing
async def test_an_opt_out_in_this_engine_withdraws_its_dials_at_once(db_url: str) -> None:
    """A keypress opt-out committed by this engine's processor (`withdraw_numbers`, called
    after the commit) stops this engine's dials of the number that wait for a slot or are armed
    in the wire: none starts after it, not even within the reservation's horizon."""
    cid, late, withdrawn, called = await _listed_while_armed(db_url, "withdrawn",
                                                             tell_engine=True)
    assert withdrawn > 0, "dials were armed in the wire when the numbers were listed"
    assert late == [], f"dials after the opt-out: {late}"
    contacts = await contacts_of(db_url, cid)
    assert all(c.outcome == "dnc" for c in contacts if c.phone_e164 not in called)


@pytest.mark.timing
async def test_numbers_listed_elsewhere_are_withdrawn_at_once_on_postgresql(pg_url: str) -> None:
    """PostgreSQL: the transaction that lists numbers (here `dnc add`'s; a keypress opt-out in
    another engine's processor does the same) announces them on commit, and this engine
    withdraws its dials of them at once: none starts after it, not even within the horizon."""
    # (SQLite: one engine per database, told by its own processor.)
    _, late, withdrawn, _ = await _listed_while_armed(pg_url, "announced", tell_engine=False)
    assert withdrawn > 0, "dials were armed in the wire when the numbers were listed"
    assert late == [], f"dials after the numbers were listed: {late}"


async def test_the_recheck_costs_no_round_trip_per_dial(db_url: str) -> None:
    """At up to 300 dials/s the checks are batched: a query covers many dials, and the queries
    per second do not grow with the rate (they are bounded by the batch length)."""
    phones = numbers(900)
    await seed(db_url, "fast", phones, max_attempts=1, cps=300, max_concurrent=1000)
    await _add_to_dnc(db_url, [numbers(1, start=5000)[0]])  # a list that is not empty
    async with rig(db_url, mix={"busy": 1}, cps=300, max_concurrent=1000, channels=2000,
                   speed=30) as r:
        await wait_for(lambda: _ledger_has(r.sim, 30), timeout=60, poll=0.02)
        started, before = time.monotonic(), r.engine.dispatcher.screen.queries
        await wait_for(lambda: _ledger_has(r.sim, 900), timeout=60, poll=0.02)
        elapsed = time.monotonic() - started
        screen = r.engine.dispatcher.screen
        queries = screen.queries - before
        dialed = len(r.sim.ledger) - 30
    print(f"{dialed} dials in {elapsed:.2f} s ({dialed / elapsed:.0f}/s): {queries} DNC "
          f"queries ({queries / elapsed:.0f}/s)")
    # One query per reservation, and reservations are at least 20 ms apart: bounded per second
    # whatever the dial rate (no query per dial).
    assert queries <= 50 * elapsed, f"{queries} DNC queries in {elapsed:.1f} s"


async def _ledger_has_async(sim: object, n: int) -> bool:
    return len(sim.ledger) >= n  # type: ignore[attr-defined]


def _ledger_has(sim: object, n: int):  # type: ignore[no-untyped-def]
    return _ledger_has_async(sim, n)

