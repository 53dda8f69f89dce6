"""The engine end to end against the simulator over real HTTP on 127.0.0.1, on SQLite and
PostgreSQL: every contact ends once, exactly one call per attempt, limits hold."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter

import pytest

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import DncNumber
from dialer.simulator.config import FaultConfig
from tests.engine.helpers import (
    FAST_RETRY,
    attempts_of,
    campaign_status,
    check_one_call_per_attempt,
    contacts_of,
    expected_outcome,
    numbers,
    rig,
    seed,
    wait_for,
)

MIX = {"human": 4, "machine_beep": 2, "machine_no_beep": 1, "fax": 1, "silence": 1, "busy": 1,
       "no_answer": 1, "rejected": 1, "not_found": 1}
VOICEMAIL = {"on_machine": "voicemail", "voicemail_audio_url": "https://example.com/vm.mp3",
             "voicemail_wait_secs": 5, "on_human": "play",
             "message_audio_url": "https://example.com/msg.mp3"}


def completed(url: str, cid: int):  # type: ignore[no-untyped-def]
    async def _check() -> bool:
        return await campaign_status(url, cid) == "completed"
    return _check


async def test_campaign_completes_with_one_call_per_attempt(db_url: str) -> None:
    cid = await seed(db_url, "c1", numbers(100), answering_machine_detection="premium",
                     max_attempts=2, **VOICEMAIL, **FAST_RETRY)
    async with rig(db_url, mix=MIX, speed=50) as r:
        await wait_for(completed(db_url, cid), timeout=120)
        ledger = {c.command_id: c for c in r.sim.ledger}
    contacts = await contacts_of(db_url, cid)
    attempts = await attempts_of(db_url)
    assert all(c.status == "done" for c in contacts)
    check_one_call_per_attempt(r.sim, attempts)
    for a in attempts:
        call = ledger[a.command_id]
        assert a.outcome == expected_outcome(call.scenario, "premium"), (a.id, call.scenario)
        assert a.call_control_id == call.call_control_id
        if a.voicemail_left:
            assert a.outcome == "machine" and call.playback_completed
    by_contact = Counter(a.contact_id for a in attempts if a.state != "not_placed")
    for c in contacts:
        assert c.attempts == by_contact[c.id] <= 2
    # Voicemail drops happened, and machines with a voicemail were not called again.
    assert any(a.voicemail_left for a in attempts)
    for c in contacts:
        mine = [a for a in attempts if a.contact_id == c.id]
        for earlier in mine[:-1]:
            assert not earlier.voicemail_left
            assert earlier.outcome in ("machine", "silence", "busy", "no_answer", "rejected",
                                       "failed")


async def test_rate_limit_storm_causes_no_extra_attempts(db_url: str) -> None:
    # The account allows 10 dials/s over 1 s; the engine is told 40: a storm of 429s. (The
    # window is the simulator's configuration at start: it builds its rolling window then.)
    # The storm starts at one dial per second, until the first 429s: an engine slowed by a
    # loaded machine may never reach 10 dials in a second on its own.
    cid = await seed(db_url, "storm", numbers(60), max_attempts=1)
    async with rig(db_url, mix={"busy": 1}, cps=40, sim_cps=10, sim_cps_window_secs=1.0,
                   max_concurrent=200, speed=50) as r:
        r.sim._window.limit = 1

        async def stormed() -> bool:
            return int(r.sim.stats()["rejected_429"]) >= 3
        await wait_for(stormed, timeout=30, poll=0.02)
        r.sim._window.limit = 10
        await wait_for(completed(db_url, cid), timeout=120)
        stats = r.sim.stats()
    attempts = await attempts_of(db_url)
    contacts = await contacts_of(db_url, cid)
    assert stats["rejected_429"] > 0
    check_one_call_per_attempt(r.sim, attempts)
    assert all(c.status == "done" and c.outcome == "busy" and c.attempts == 1 for c in contacts)
    not_placed = [a for a in attempts if a.state == "not_placed"]
    assert not_placed and all(a.outcome is None for a in not_placed)


async def test_5xx_and_slow_dials_never_double_dial(db_url: str) -> None:
    cid = await seed(db_url, "faulty", numbers(80), max_attempts=1)
    faults = FaultConfig(dial_5xx=0.15, dial_5xx_after_place=0.2, dial_slow=0.1,
                         dial_slow_secs=0.5)
    async with rig(db_url, mix={"no_answer": 1}, faults=faults, speed=50) as r:
        await wait_for(completed(db_url, cid), timeout=150)
        stats = r.sim.stats()
    attempts = await attempts_of(db_url)
    check_one_call_per_attempt(r.sim, attempts, unanswered_5xx_may_lack_a_call=True)
    assert stats["dial_5xx_after_place_injected"] > 0
    assert stats["duplicate_command_ids"] > 0  # re-sends were deduplicated by command_id
    contacts = await contacts_of(db_url, cid)
    assert all(c.status == "done" for c in contacts)


async def test_dnc_at_dial_time_is_never_dialed(db_url: str) -> None:
    phones = numbers(30)
    cid = await seed(db_url, "dnc", phones, start=True)
    engine = create_engine(db_url)
    async with session_factory(engine)() as s, s.begin():
        s.add_all([DncNumber(phone_e164=p, source="test") for p in phones[:10]])
    await engine.dispose()
    async with rig(db_url, mix={"human": 1}, speed=50) as r:
        await wait_for(completed(db_url, cid), timeout=60)
        dialed = {c.to for c in r.sim.ledger}
    assert not dialed & set(phones[:10])
    contacts = await contacts_of(db_url, cid)
    assert Counter(c.outcome for c in contacts) == {"dnc": 10, "human": 20}


async def test_per_number_cap_across_campaigns(sqlite_url: str) -> None:
    phones = numbers(5)
    a = await seed(sqlite_url, "a", phones, max_attempts=3, **FAST_RETRY)
    b = await seed(sqlite_url, "b", phones, max_attempts=3, **FAST_RETRY)
    async with rig(sqlite_url, mix={"busy": 1}, speed=50, per_number_cap=2) as r:
        async def _deferred() -> bool:
            cs = await contacts_of(sqlite_url, a) + await contacts_of(sqlite_url, b)
            return sum(c.attempts for c in cs) >= 10 and all(
                c.status in ("queued", "done") for c in cs)
        await wait_for(_deferred, timeout=60)
        await asyncio.sleep(1.0)
        calls = Counter(c.to for c in r.sim.ledger)
    assert set(calls.values()) == {2}, calls


async def test_pause_resume_stop_from_another_process(db_url: str) -> None:
    cid = await seed(db_url, "ctl", numbers(120), max_attempts=1)
    cli = [sys.executable, "-m", "dialer.cli.main", "--database-url", db_url, "campaign"]
    async with rig(db_url, mix={"human": 1}, cps=10, max_concurrent=50, speed=50) as r:
        await wait_for(lambda: _ledger_at_least(r, 20), timeout=30)
        proc = await asyncio.to_thread(subprocess.run, [*cli, "pause", "ctl"],
                                       capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        await asyncio.sleep(1.0)  # control takes effect within 1 s
        frozen = len(r.sim.ledger)
        await asyncio.sleep(1.5)
        assert len(r.sim.ledger) == frozen
        assert await campaign_status(db_url, cid) == "paused"
        proc = await asyncio.to_thread(subprocess.run, [*cli, "resume", "ctl"],
                                       capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        await wait_for(lambda: _ledger_at_least(r, frozen + 20), timeout=30)
        proc = await asyncio.to_thread(subprocess.run, [*cli, "stop", "ctl"],
                                       capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        await asyncio.sleep(1.0)
        after_stop = len(r.sim.ledger)
        await asyncio.sleep(1.0)
        assert len(r.sim.ledger) == after_stop
        await r.sim.wait_idle(timeout=30)
        await asyncio.sleep(1.0)
    contacts = await contacts_of(db_url, cid)
    outcomes = Counter(c.outcome for c in contacts)
    assert outcomes["canceled"] > 0 and outcomes["human"] >= frozen
    assert outcomes["canceled"] + outcomes["human"] == 120
    check_one_call_per_attempt(r.sim, await attempts_of(db_url))


async def _ledger_at_least(r, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(r.sim.ledger) >= n


async def test_bad_api_key_pauses_the_campaign(sqlite_url: str) -> None:
    cid = await seed(sqlite_url, "key", numbers(20))
    async with rig(sqlite_url, speed=50) as r:
        r.sim.config.api_key = "the-right-key"  # the engine sends "test-key"
        await wait_for(lambda: _status_is(sqlite_url, cid, "paused"), timeout=30)
        assert len(r.sim.ledger) == 0
    contacts = await contacts_of(sqlite_url, cid)
    assert all(c.status == "queued" and c.attempts == 0 for c in contacts)


async def _status_is(url: str, cid: int, status: str) -> bool:
    return await campaign_status(url, cid) == status


@pytest.mark.parametrize("mode", ["detect", "detect_beep", "detect_words", "greeting_end",
                                  "disabled"])
async def test_every_amd_mode_with_faulty_webhooks(sqlite_url: str, mode: str) -> None:
    cid = await seed(sqlite_url, f"amd-{mode}", numbers(40), answering_machine_detection=mode,
                     max_attempts=1, **VOICEMAIL)
    faults = FaultConfig(duplicate=0.3, reorder=0.3, delay=0.1, delay_secs=0.3)
    async with rig(sqlite_url, mix=MIX, faults=faults, speed=40) as r:
        await wait_for(completed(sqlite_url, cid), timeout=120)
        ledger = {c.command_id: c for c in r.sim.ledger}
        stats = r.sim.stats()
    assert stats["webhooks_duplicated"] > 0 and stats["webhooks_reordered"] > 0
    attempts = await attempts_of(sqlite_url)
    check_one_call_per_attempt(r.sim, attempts)
    for a in attempts:
        assert a.outcome == expected_outcome(ledger[a.command_id].scenario, mode), (
            ledger[a.command_id].scenario, a.amd_result, a.hangup_cause)
        if a.voicemail_left:
            assert a.outcome == "machine"


async def test_two_engines_on_one_postgres_never_dial_a_contact_twice(pg_url: str) -> None:
    from dialer.engine.runner import Engine, EngineConfig

    cid = await seed(pg_url, "twin", numbers(100), max_attempts=2, **FAST_RETRY)
    async with rig(pg_url, mix={"human": 3, "busy": 1, "no_answer": 1}, cps=40,
                   max_concurrent=40, speed=50) as r:
        second = Engine(EngineConfig(database_url=pg_url, api_url=r.sim.api_url,
                                     api_key="test-key", public_key=r.sim.public_key_b64, port=0,
                                     cps=40, max_concurrent=40, time_scale=50))
        await second.start()
        try:
            await wait_for(completed(pg_url, cid), timeout=120)
        finally:
            await second.shutdown()
        sent = (r.engine.stats.dials_sent, second.stats.dials_sent)
    assert all(n > 0 for n in sent), sent  # both engines really dialed
    attempts = await attempts_of(pg_url)
    check_one_call_per_attempt(r.sim, attempts)
    contacts = await contacts_of(pg_url, cid)
    by_contact = Counter(a.contact_id for a in attempts if a.state != "not_placed")
    assert all(c.status == "done" and c.attempts == by_contact[c.id] <= 2 for c in contacts)
