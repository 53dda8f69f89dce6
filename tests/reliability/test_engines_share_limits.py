"""Several `dialer run` processes on one PostgreSQL share the account's limits: the dial rate
(slots from one schedule in the database) and the channels (counted under one lock), while an
engine is killed and another joins mid-campaign."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dialer.telnyx.signatures import generate_keypair
from tests.engine.helpers import FAST_RETRY, numbers, seed, windows_over
from tests.reliability.harness import DbProbe, EngineProcess, SimProcess, audit, wait_until

ACCOUNT_CPS = 20
CHANNELS = 24
CONTACTS = 240


@pytest.mark.slow
@pytest.mark.timing
@pytest.mark.parametrize("shared_url", [True, False], ids=["one-public-url", "own-urls"])
async def test_three_engines_one_killed_one_added(pg_url: str, tmp_path: Path,
                                                  shared_url: bool) -> None:
    """With one public URL (a load balancer) or each engine its own (the killed engine's
    webhooks are lost: reconciliation finishes its calls)."""
    cid = await seed(pg_url, "shared", numbers(CONTACTS), max_attempts=2,
                     max_concurrent=CHANNELS, **FAST_RETRY)
    private, public = generate_keypair()
    # The simulator enforces the channel limit itself (a call over it fails with SIP 403) and
    # does not rate-limit: the engines must hold the rate on their own.
    sim = SimProcess(tmp_path, speed=30, seed=5, private_key=private, channels=CHANNELS,
                     cps_limit=1000)
    await sim.start()
    # Webhooks go to one public address (as behind a load balancer): here the engine that is
    # never killed, whose port every engine's dials name.
    keeper = EngineProcess(tmp_path / "e1", pg_url, sim, public, time_scale=30, cps=ACCOUNT_CPS,
                           max_concurrent=CHANNELS)
    shared = ["--public-url", keeper.base] if shared_url else []
    engines = [EngineProcess(tmp_path / "e0", pg_url, sim, public, time_scale=30,
                             cps=ACCOUNT_CPS, max_concurrent=CHANNELS, extra=shared),
               keeper,
               EngineProcess(tmp_path / "e2", pg_url, sim, public, time_scale=30,
                             cps=ACCOUNT_CPS, max_concurrent=CHANNELS, extra=shared)]
    for e in engines:
        e.workdir.mkdir()
    probe = DbProbe(pg_url)

    async def calls_placed() -> int:
        return int((await sim.stats())["calls_placed"])
    try:
        engines[0].spawn()
        engines[1].spawn()
        await engines[0].wait_healthy()
        await engines[1].wait_healthy()
        await wait_until(lambda: _at_least(calls_placed, 60), timeout=60, what="60 calls")
        engines[0].kill9()
        await asyncio.sleep(0.5)
        engines[2].spawn()
        await engines[2].wait_healthy()

        async def completed() -> bool:
            return await probe.val(f"SELECT status FROM campaigns WHERE id = {cid}") == "completed"
        try:
            await wait_until(completed, timeout=180, poll=0.3, what="campaign completed")
        except AssertionError:
            contacts = await probe.fetch("SELECT status, count(*) FROM contacts GROUP BY 1")
            attempts = await probe.fetch(
                "SELECT state, settled_at IS NULL, count(*) FROM call_attempts GROUP BY 1, 2")
            events = await probe.fetch("SELECT status, count(*) FROM webhook_events GROUP BY 1")
            raise AssertionError(f"not completed: contacts {contacts}, attempts {attempts}, "
                                 f"events {events}") from None
        if shared_url:  # else the dead engine's webhooks are still being retried, in vain
            await sim.wait_idle(timeout=60)
        for e in engines[1:]:
            assert e.stop() == 0, e.logs()[-3000:]
        calls = await sim.calls()
        stats = await sim.stats()
    finally:
        await probe.close()
        for e in engines:
            if e.current is not None and e.current.alive():
                e.kill9()
        await sim.stop()
    logs = "\n".join(e.logs() for e in engines)
    assert "Traceback" not in logs, logs[-5000:]
    # With each engine its own URL the killed engine's last webhooks are lost: reconciliation
    # finishes those calls (as failed: lost_webhook) instead of the ledger's outcome.
    figures = await audit(pg_url, cid, calls, amd="disabled", max_attempts=2,
                          allow_losses=not shared_url)
    print(f"  {figures.line()}")
    ordered = sorted(calls, key=lambda c: c["dialed_at"])
    close = [(round(b["dialed_at"] - a["dialed_at"], 4), a["webhook_url"][-30:],
              b["webhook_url"][-30:], a["to"], b["to"])
             for a, b in zip(ordered, ordered[1:], strict=False)
             if b["dialed_at"] - a["dialed_at"] < 0.03]
    assert windows_over([c["dialed_at"] for c in calls], ACCOUNT_CPS) == [], close
    assert stats["channel_limit_failures"] == 0
    assert stats["rejected_429"] == 0


async def _at_least(read: object, n: int) -> bool:
    return int(await read()) >= n  # type: ignore[operator]
