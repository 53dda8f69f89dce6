"""Every fault at once: 429 storms, 5xx and slow dial answers, webhooks duplicated, reordered,
delayed and dropped. The same audit as after kill -9 holds; the only concession is that a call
whose decisive webhook was dropped for good ends with what the delivered facts support
(reconciliation finalises a call whose call.hangup never came as `failed`, error `lost_webhook`,
once Telnyx says it is over)."""

from __future__ import annotations

from collections import Counter

import pytest

from dialer.simulator.config import FaultConfig
from tests.engine.helpers import FAST_RETRY, numbers, seed
from tests.reliability.harness import (
    audit,
    finish_inproc,
    ledger_dicts,
    start_inproc,
    wait_until,
)

MIX = {"human": 4, "machine_beep": 2, "machine_no_beep": 1, "fax": 1, "silence": 1, "busy": 1,
       "no_answer": 1, "rejected": 1, "not_found": 1}
VOICEMAIL = {"on_machine": "voicemail", "voicemail_audio_url": "https://example.com/vm.mp3",
             "voicemail_wait_secs": 5, "on_human": "play",
             "message_audio_url": "https://example.com/msg.mp3"}
STORM = FaultConfig(duplicate=0.3, reorder=0.3, delay=0.2, delay_secs=0.3, drop=0.05,
                    dial_5xx=0.1, dial_5xx_after_place=0.1, dial_slow=0.1, dial_slow_secs=1.0)


@pytest.mark.slow
async def test_all_faults_at_once(db_url: str) -> None:
    amd = "premium" if db_url.startswith("sqlite") else "detect_beep"
    cid = await seed(db_url, "storm", numbers(50), answering_machine_detection=amd,
                     max_attempts=2, **VOICEMAIL, **FAST_RETRY)
    # The account allows 12 dials/s over 1 s; the engine is told 30.
    rig = await start_inproc(db_url, speed=30,
                             sim={"mix": MIX, "faults": STORM, "cps_limit": 12,
                                  "cps_window_secs": 1.0, "seed": 7},
                             engine={"cps": 30, "webhook_grace_secs": 3.0})
    try:
        # A 429 storm first: the account briefly allows one dial per second (the simulator has
        # no run-time knob for its rate limit, so the test sets its window directly).
        # Held until the storm has happened (a fixed sleep could end before a slowed engine
        # dialed more than once).
        rig.sim._window.limit = 1

        async def stormed() -> bool:
            return rig.sim.stats()["rejected_429"] >= 3
        await wait_until(stormed, 30, poll=0.05, what="three 429s")
        rig.sim._window.limit = 12
        await finish_inproc(db_url, cid, rig, timeout=120)
    finally:
        await rig.engine.shutdown()
        await rig.sim.stop()
    stats = rig.sim.stats()
    assert stats["rejected_429"] >= 3, stats
    injected = {k: stats[k] for k in ("rejected_429", "dial_5xx_injected",
                                      "dial_5xx_after_place_injected", "dial_slow_injected",
                                      "duplicate_command_ids", "webhooks_duplicated",
                                      "webhooks_reordered", "webhooks_delayed",
                                      "webhooks_dropped")}
    assert all(injected.values()), injected
    figures = await audit(db_url, cid, ledger_dicts(rig.sim), amd=amd, max_attempts=2,
                          allow_losses=True)
    print(f"\n[fault storm {db_url.split(':', 1)[0]} amd={amd}] faults injected: {injected}")
    print(f"  {figures.line()}")
    assert figures.double_calls == 0


async def test_a_webhook_lost_for_good_is_reconciled(sqlite_url: str) -> None:
    """Every webhook dropped: the engine only has the dial answers. Reconciliation asks Telnyx
    (GET /v2/calls/{id}), hears that each call is over, and finalises it as failed."""
    cid = await seed(sqlite_url, "lost", numbers(12), max_attempts=1)
    rig = await start_inproc(sqlite_url, speed=30,
                             sim={"mix": {"busy": 1, "no_answer": 1},
                                  "faults": FaultConfig(drop=1.0)},
                             engine={"webhook_grace_secs": 2.0})
    try:
        await finish_inproc(sqlite_url, cid, rig, timeout=60)
    finally:
        await rig.engine.shutdown()
        await rig.sim.stop()
    calls = ledger_dicts(rig.sim)
    assert {e["delivery"] for c in calls for e in c["events"]} == {"dropped"}
    figures = await audit(sqlite_url, cid, calls, amd="disabled", max_attempts=1,
                          allow_losses=True)
    assert figures.lost_webhook_attempts == 12 == figures.contacts
    assert Counter(figures.outcomes) == {"failed": 12}
