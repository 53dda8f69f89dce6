"""kill -9 between a keypad answer's webhook being stored and its processing: after the restart
every contact's recorded answers still equal what the simulator's ledger says the callee
pressed, and every opt-out is on the DNC list."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dialer.telnyx.signatures import generate_keypair
from tests.engine.helpers import numbers, seed
from tests.engine.test_scripts_e2e import SETTINGS
from tests.reliability.harness import DbProbe, EngineProcess, SimProcess, wait_until

SPEED = 30.0
KILLS = 4
PENDING_GATHER = ("SELECT count(*) FROM webhook_events WHERE event_type = 'call.gather.ended' "
                  "AND status = 'pending'")


@pytest.mark.slow
async def test_kill_between_a_keypress_and_its_processing(db_url: str, tmp_path: Path) -> None:
    cid = await seed(db_url, "crash-keys", numbers(80), **SETTINGS)
    scenarios = tmp_path / "scenarios.toml"
    scenarios.write_text("[mix]\nhuman = 8\nbusy = 1\nno_answer = 1\n")
    private, public = generate_keypair()
    sim = SimProcess(tmp_path, speed=SPEED, seed=11, private_key=private,
                     extra=["--scenarios", str(scenarios)])
    await sim.start()
    engine = EngineProcess(tmp_path, db_url, sim, public, time_scale=SPEED, cps=40,
                           max_concurrent=40)
    probe = DbProbe(db_url)
    hits = 0
    try:
        for _ in range(KILLS):
            engine.spawn()
            await engine.wait_healthy()
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                if int(await probe.val(PENDING_GATHER)) > 0:
                    hits += 1
                    break
                await asyncio.sleep(0.002)
            engine.kill9()
            await asyncio.sleep(0.2)
        engine.spawn()
        await engine.wait_healthy()

        async def completed() -> bool:
            return await probe.val(f"SELECT status FROM campaigns WHERE id = {cid}") == "completed"
        await wait_until(completed, timeout=150, poll=0.3, what="campaign completed")
        await sim.wait_idle(timeout=60)

        async def drained() -> bool:
            return int(await probe.val(
                "SELECT count(*) FROM webhook_events WHERE status = 'pending'")) == 0
        await wait_until(drained, timeout=30, what="no pending webhook events")
        assert engine.stop() == 0
        calls = {c["command_id"]: c for c in await sim.calls()}
        attempts = await probe.fetch(
            f"SELECT id, command_id, phone_e164 FROM call_attempts WHERE campaign_id = {cid}")
        rows = await probe.fetch("SELECT attempt_id, digits, status FROM attempt_responses "
                                 "WHERE status <> 'reached' ORDER BY id")
        dnc = {r[0] for r in await probe.fetch("SELECT phone_e164 FROM dnc_numbers")}
    finally:
        await probe.close()
        if engine.current is not None and engine.current.alive():
            engine.kill9()
        await sim.stop()
    assert hits >= 2, "the kills must land while a keypad answer waits to be processed"
    recorded: dict[int, list[tuple[str | None, str]]] = {}
    for attempt_id, digits, status in rows:
        recorded.setdefault(int(attempt_id), []).append((digits, status))
    opted = set()
    for attempt_id, command_id, phone in attempts:
        call = calls.get(command_id)
        pressed = [(g["digits"] or None, g["status"]) for g in call["gathers"]] if call else []
        assert recorded.get(int(attempt_id), []) == pressed, (attempt_id, pressed)
        if ("9", "valid") in pressed:
            opted.add(phone)
    assert opted and opted <= dnc
    logs = engine.logs()
    assert "Traceback" not in logs, logs[-3000:]
