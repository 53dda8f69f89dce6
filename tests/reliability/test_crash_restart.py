"""kill -9 at any moment, restart, and every contact still ends exactly once.

A standalone simulator process (fixed key pair and seed) plays two hundred calls or so of every
scenario; `dialer run` processes are killed with SIGKILL at seeded random moments, chosen to hit
the dangerous windows (right after a claim commits, right after a dial is sent, right after a
webhook is stored, right after webhooks are processed and before their actions go out, during
start-up and recovery, or just any time), and restarted on the same port. The simulator keeps
retrying webhooks while the engine is down. The audit then checks the ledger against the database.

Seed: RELIABILITY_SEED (default below); the kill plan is printed, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from dialer.engine.runner import Engine
from dialer.telnyx.signatures import generate_keypair
from tests.engine.helpers import FAST_RETRY, attempts_of, numbers, seed, windows_over
from tests.reliability.harness import (
    DbProbe,
    EngineProcess,
    SimProcess,
    audit,
    children_of,
    finish_inproc,
    free_port,
    ledger_dicts,
    start_inproc,
    wait_until,
)

SEED = int(os.environ.get("RELIABILITY_SEED", "20240917"))
SPEED = 30.0
#: The kills fall within the first few dozen calls; the rest of the campaign runs after them.
CONTACTS = 150
KILLS = 10
MAX_ATTEMPTS = 3
#: The campaign's own rate, below the engine's (account) 60.
CAMPAIGN_CPS = 40
MIX = {"human": 4, "machine_beep": 2, "machine_no_beep": 1, "fax": 1, "silence": 1, "busy": 1,
       "no_answer": 1, "rejected": 1, "not_found": 1}
VOICEMAIL = {"on_machine": "voicemail", "voicemail_audio_url": "https://example.com/vm.mp3",
             "voicemail_wait_secs": 5, "on_human": "play",
             "message_audio_url": "https://example.com/msg.mp3"}

#: When to kill: each waits for its moment (or gives up after a few seconds and kills anyway).
MODES = ("startup", "claim", "dial", "stored", "processed", "any")


async def _grew(read: Callable[[], Awaitable[int]], timeout: float, poll: float) -> bool:
    """Wait until `read()` grows past its current value; False when it did not in time."""
    start = await read()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(poll)
        if await read() > start:
            return True
    return False


def _scenario_file(tmp: Path) -> Path:
    path = tmp / "scenarios.toml"
    path.write_text("[mix]\n" + "".join(f"{k} = {v}\n" for k, v in MIX.items()))
    return path


async def run_with_kills(db_url: str, tmp: Path, *, amd: str, kills: int, seed_: int,
                         engine_extra: Sequence[str] = (), contacts: int = CONTACTS
                         ) -> tuple[list[str], object]:
    rng = random.Random(f"{seed_}:{db_url.split(':', 1)[0]}")
    cid = await seed(db_url, "crash", numbers(contacts), answering_machine_detection=amd,
                     max_attempts=MAX_ATTEMPTS, cps=CAMPAIGN_CPS, **VOICEMAIL, **FAST_RETRY)
    private, public = generate_keypair()
    sim = SimProcess(tmp, speed=SPEED, seed=seed_, private_key=private,
                     extra=["--scenarios", str(_scenario_file(tmp))])
    await sim.start()
    engine = EngineProcess(tmp, db_url, sim, public, time_scale=SPEED, cps=60, max_concurrent=60,
                           extra=engine_extra)
    probe = DbProbe(db_url)
    plan: list[str] = []

    async def attempts() -> int:
        return int(await probe.val("SELECT count(*) FROM call_attempts"))

    async def processed() -> int:
        return int(await probe.val(
            "SELECT count(*) FROM webhook_events WHERE status <> 'pending'"))

    async def dials() -> int:
        return int((await sim.stats())["dials_received"])

    async def stored() -> int:
        return int((await sim.stats())["webhooks_sent"])

    async def done() -> int:
        return int(await probe.val(
            f"SELECT count(*) FROM contacts WHERE campaign_id = {cid} AND status = 'done'"))

    try:
        for n in range(kills):
            mode = MODES[n] if n < len(MODES) else rng.choice(MODES)
            engine.spawn()
            started = time.monotonic()
            if mode == "startup":
                # Somewhere in start-up: imports, migrations check, recovery, first claims.
                await asyncio.sleep(rng.uniform(0.5, 2.8))
                hit = True
            else:
                await engine.wait_healthy()
                await asyncio.sleep(rng.uniform(0.0, 0.6))
                if mode == "claim":
                    hit = await _grew(attempts, 5, 0.005)
                elif mode == "dial":
                    hit = await _grew(dials, 5, 0.005)
                elif mode == "stored":
                    hit = await _grew(stored, 5, 0.005)
                elif mode == "processed":
                    hit = await _grew(processed, 5, 0.005)
                else:
                    await asyncio.sleep(rng.uniform(0.2, 1.6))
                    hit = True
            workers = children_of(engine.current.pid) if engine.current else []
            engine.kill9()
            await _all_exit(workers)  # webhook workers follow their engine: no orphans
            plan.append(f"{mode}{'' if hit else '(timeout)'}@{time.monotonic() - started:.2f}s"
                        f"/calls={(await sim.stats())['calls_placed']}/done={await done()}")
            await asyncio.sleep(rng.uniform(0.0, 0.3))

        # One clean stop too (SIGTERM in the middle of the work): claimed dials not yet sent are
        # released, recovered ones handed to reconciliation, results recorded; exit status 0.
        engine.spawn()
        await engine.wait_healthy()
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        assert engine.stop() == 0, engine.current.output()[-3000:] if engine.current else ""
        plan.append(f"sigterm/calls={(await sim.stats())['calls_placed']}/done={await done()}")

        engine.spawn()
        await engine.wait_healthy()

        async def completed() -> bool:
            return await probe.val(f"SELECT status FROM campaigns WHERE id = {cid}") == "completed"
        await wait_until(completed, timeout=120, poll=0.3, what="campaign completed")
        await sim.wait_idle(timeout=60)

        async def drained() -> bool:
            return await probe.val(
                "SELECT count(*) FROM webhook_events WHERE status = 'pending'") == 0
        await wait_until(drained, timeout=30, what="no pending webhook events")
        assert engine.stop() == 0, engine.current.output()[-3000:] if engine.current else ""
        calls = await sim.calls()
        stats = await sim.stats()
    finally:
        await probe.close()
        if engine.current is not None and engine.current.alive():
            engine.kill9()
        await sim.stop()

    logs = engine.logs()
    assert "Traceback" not in logs and "crashed" not in logs, logs[-5000:]
    figures = await audit(db_url, cid, calls, amd=amd, max_attempts=MAX_ATTEMPTS)
    # The campaign's own rate and the account's held across every kill and restart: each limit's
    # schedule lives in the database, so a restarted engine continues it (arrival times at the
    # simulator, as Telnyx counts them).
    arrivals = [c["dialed_at"] for c in calls]
    assert windows_over(arrivals, CAMPAIGN_CPS) == [], plan
    resent = sum(int(m) for m in re.findall(r"recovery: re-sending (\d+) dials", logs))
    actions = sum(int(m) for m in re.findall(r"re-sending the actions of (\d+) live calls", logs))
    print(f"\n[crash-restart {db_url.split(':', 1)[0]} amd={amd} seed={seed_}] kills: {plan}")
    print(f"  {figures.line()}")
    print(f"  dials re-sent with their command_id after a kill: {resent}; simulator deduplicated "
          f"{stats['duplicate_command_ids']}; webhook delivery failures (engine down): "
          f"{stats['webhook_delivery_failures']}; live calls whose flow actions were re-sent: "
          f"{actions}")
    return plan, figures


async def _all_exit(pids: Sequence[int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"processes left behind: {pids}"
        await asyncio.sleep(0.1)


def never_send_actions(engine: Engine) -> list[object]:
    """Make `engine` decide call actions but never send them, as if killed right after the
    commit; returns the list the dropped actions are collected in."""
    lost: list[object] = []

    async def crash_before_sending(pa: object) -> None:
        lost.append(pa)
    engine.actions.send = crash_before_sending  # type: ignore[assignment]
    return lost


@pytest.mark.slow
@pytest.mark.timing
async def test_kill_minus_9_and_restart(db_url: str, tmp_path: Path) -> None:
    amd = "premium" if db_url.startswith("sqlite") else "detect_beep"
    plan, _ = await run_with_kills(db_url, tmp_path, amd=amd, kills=KILLS, seed_=SEED)
    kills = [p for p in plan if not p.startswith("sigterm")]
    assert len(kills) >= 10
    modes = Counter(p.split("@")[0].split("(")[0] for p in kills)
    assert set(modes) == set(MODES), modes


@pytest.mark.timing
async def test_kill_minus_9_with_webhook_workers(pg_url: str, tmp_path: Path) -> None:
    """The same with `--webhook-workers 2`: events stored by workers of a killed engine are
    processed after the restart, and the workers of a killed engine exit by themselves."""
    plan, _ = await run_with_kills(pg_url, tmp_path, amd="detect_beep", kills=3, seed_=SEED + 1,
                                   engine_extra=("--webhook-workers", "2", "--webhook-port",
                                                 str(free_port())), contacts=60)
    assert len([p for p in plan if not p.startswith("sigterm")]) == 3


async def test_actions_lost_in_a_crash_are_sent_after_restart(sqlite_url: str) -> None:
    """The window between committing a flow step and sending its action (play the message,
    leave the voicemail, hang up): the first engine decides the actions but never sends them
    (as if killed right after the commit); the engine that takes over sends them, with the
    same command_id, while the calls are still up."""
    cid = await seed(sqlite_url, "flow", numbers(6), max_attempts=1, on_human="play",
                     message_audio_url="https://example.com/msg.mp3")
    port = free_port()
    first = await start_inproc(sqlite_url, speed=4, port=port, sim={"mix": {"human": 1}})
    lost = never_send_actions(first.engine)
    second = None
    try:
        async def all_in_message() -> bool:
            return len(lost) == 6
        await wait_until(all_in_message, 30, what="six flow steps decided")
        await first.engine.shutdown()
        assert all(not c.actions for c in first.sim.ledger)
        second = await start_inproc(sqlite_url, speed=4, port=port, existing_sim=first.sim)
        await finish_inproc(sqlite_url, cid, second, timeout=60)
    finally:
        if second is not None:
            await second.engine.shutdown()
        await first.sim.stop()
    calls = ledger_dicts(first.sim)
    assert [[a["action"] for a in c["actions"]] for c in calls] == [
        ["playback_start", "hangup"]] * 6, [c["actions"] for c in calls]
    assert all(c["playback_completed"] for c in calls)
    attempts = await attempts_of(sqlite_url)
    assert all(a.outcome == "human" and a.message_played for a in attempts)
    await audit(sqlite_url, cid, calls, amd="disabled", max_attempts=1)


async def test_a_dead_engine_on_this_host_is_recognised_at_once(sqlite_url: str) -> None:
    """After kill -9 and a restart, the old instance's heartbeat is still fresh; its process is
    gone, so its work is taken over at once. A live process, or an instance in another process
    space (another host, or a container with its own PID namespace), is left alone until its
    heartbeat expires."""
    import subprocess
    import sys
    from datetime import timedelta

    from campaigns.db.engine import create_engine, session_factory
    from campaigns.db.models import EngineInstance
    from campaigns.db.types import utcnow
    from dialer.engine.runner import PROCESS_SPACE, Engine, EngineConfig

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    now = utcnow()
    db = create_engine(sqlite_url)
    try:
        async with session_factory(db)() as s, s.begin():
            for iid, space, pid in [("killed", PROCESS_SPACE, gone.pid),
                                    ("running", PROCESS_SPACE, alive.pid),
                                    ("elsewhere", "otherhost pid:[4026531836]", gone.pid)]:
                s.add(EngineInstance(id=iid, hostname=space, pid=pid, started_at=now,
                                     heartbeat_at=now - timedelta(seconds=2)))
        engine = Engine(EngineConfig(database_url=sqlite_url, api_url="http://127.0.0.1:9/v2",
                                     api_key="k", public_key=None, insecure_webhooks=True))
        try:
            assert await engine.instances.live(utcnow()) == {"running", "elsewhere"}
        finally:
            await engine.client.close()
            await engine.db.dispose()
        async with session_factory(db)() as s:
            rows = set((await s.scalars(select(EngineInstance.id))).all())
        assert rows == {"running", "elsewhere"}
    finally:
        alive.kill()
        alive.wait()
        await db.dispose()


async def test_stop_hangup_survives_a_crash(sqlite_url: str) -> None:
    """`campaign stop --hangup` decided, then the engine dies before the hangups go out: the next
    engine hangs the calls up (before, the request was cleared with the decision)."""
    from campaigns.db.engine import create_engine, session_factory
    from campaigns.service import change_status

    cid = await seed(sqlite_url, "stop", numbers(4), max_attempts=1, timeout_secs=60)
    port = free_port()
    first = await start_inproc(sqlite_url, speed=4, port=port, sim={"mix": {"no_answer": 1}})
    lost = never_send_actions(first.engine)
    second = None
    probe = DbProbe(sqlite_url)
    try:
        async def dialed() -> bool:
            return await probe.val("SELECT count(*) FROM call_attempts "
                                   "WHERE call_control_id IS NOT NULL") == 4
        await wait_until(dialed, 30, what="four calls ringing")
        db = create_engine(sqlite_url)
        async with session_factory(db)() as s, s.begin():
            await change_status(s, "stop", "stop", hangup_live_calls=True)
        await db.dispose()

        async def decided() -> bool:
            return len(lost) == 4
        await wait_until(decided, 30, what="four hangups decided")
        await first.engine.shutdown()
        assert all(not c.actions for c in first.sim.ledger)
        second = await start_inproc(sqlite_url, speed=4, port=port, existing_sim=first.sim)

        async def all_done() -> bool:
            return await probe.val(f"SELECT count(*) FROM contacts WHERE campaign_id = {cid} "
                                   "AND status <> 'done'") == 0
        await wait_until(all_done, 30, what="every contact done")
    finally:
        await probe.close()
        if second is not None:
            await second.engine.shutdown()
        await first.sim.stop()
    calls = ledger_dicts(first.sim)
    assert [[a["action"] for a in c["actions"]] for c in calls] == [["hangup"]] * 4
    assert {c["hangup_cause"] for c in calls} == {"originator_cancel"}


async def test_recovered_dials_are_resent_only_inside_the_command_id_window(
        sqlite_url: str) -> None:
    """A dead engine's unconfirmed dials: one claimed 40 s ago is re-sent (Telnyx would still
    deduplicate it); one claimed 55 s ago is not (a repeat could place a second call): it is left
    to reconciliation, which finds no call and ends it `failed`/`lost_webhook`."""
    from datetime import timedelta

    from campaigns.db.engine import create_engine, session_factory
    from campaigns.db.models import CallAttempt, Campaign
    from campaigns.db.types import utcnow
    from dialer.engine.claims import claim

    phones = numbers(2)
    cid = await seed(sqlite_url, "window", phones, max_attempts=1)
    db = create_engine(sqlite_url)
    try:
        async with session_factory(db)() as s, s.begin():
            campaign = await s.get(Campaign, cid)
            assert campaign is not None
            got = await claim(s, campaign, 2, utcnow(), instance_id="dead-engine",
                              per_number_cap=3)
            assert len(got.jobs) == 2
            for job, age in zip(got.jobs, (40, 55), strict=True):
                attempt = await s.get(CallAttempt, job.attempt_id)
                assert attempt is not None
                attempt.created_at = utcnow() - timedelta(seconds=age)
    finally:
        await db.dispose()
    rig = await start_inproc(sqlite_url, speed=30, sim={"mix": {"busy": 1}},
                             engine={"webhook_grace_secs": 1.0})
    try:
        await finish_inproc(sqlite_url, cid, rig, timeout=60)
    finally:
        await rig.engine.shutdown()
        await rig.sim.stop()
    assert [c.to for c in rig.sim.ledger] == [phones[0]]
    attempts = await attempts_of(sqlite_url)
    assert [(a.outcome, a.error_code) for a in attempts] == [("busy", None),
                                                            ("failed", "lost_webhook")]
