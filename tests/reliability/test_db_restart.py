"""The database goes away in the middle of a campaign: PostgreSQL is stopped, stays down for a few
seconds, and comes back. The engine logs, waits, reconnects and finishes without losing or
duplicating anything; meanwhile the webhook receiver answers 503 (Telnyx retries), never 200 for
an event it could not store."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from dialer.telnyx.signatures import generate_keypair
from tests.engine.helpers import FAST_RETRY, numbers, seed
from tests.pgserver import PgServer
from tests.reliability.harness import (
    DbProbe,
    audit,
    event_body,
    finish_inproc,
    free_port,
    ledger_dicts,
    signed_post,
    start_inproc,
    wait_until,
)

MIX = {"human": 4, "machine_beep": 2, "machine_no_beep": 1, "fax": 1, "silence": 1, "busy": 1,
       "no_answer": 1, "rejected": 1, "not_found": 1}
VOICEMAIL = {"on_machine": "voicemail", "voicemail_audio_url": "https://example.com/vm.mp3",
             "voicemail_wait_secs": 5, "on_human": "play",
             "message_audio_url": "https://example.com/msg.mp3"}


async def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(url, data=body, headers=headers) as resp:
            return resp.status


@pytest.mark.slow
@pytest.mark.parametrize("webhook_workers", [0, 2])
async def test_postgres_restart_in_the_middle_of_a_campaign(
        pg_url: str, pg_server: PgServer | None, caplog: pytest.LogCaptureFixture,
        webhook_workers: int) -> None:
    """With webhook workers too: their connections die with the server, and they must not
    keep handing out dead ones (they would answer 503 for ever)."""
    if pg_server is None:
        pytest.skip("an external PostgreSQL (DIALER_TEST_POSTGRES_URL) is not ours to stop")
    caplog.set_level(logging.INFO, logger="dialer")
    cid = await seed(pg_url, "dbr", numbers(50), answering_machine_detection="premium",
                     max_attempts=2, **VOICEMAIL, **FAST_RETRY)
    private, _ = generate_keypair()
    workers = {"webhook_workers": webhook_workers, "webhook_port": free_port()}
    rig = await start_inproc(pg_url, speed=30, sim={"mix": MIX, "private_key_b64": private},
                             engine=workers if webhook_workers else None)
    hook = rig.engine.webhook_url
    probe = DbProbe(pg_url)
    outage = 0.0
    while_down: list[int] = []
    event = event_body()
    try:
        await wait_until(lambda: _at_least(rig, 25), 60, what="25 calls placed")
        failures_before = rig.sim.stats()["webhook_delivery_failures"]
        down = time.monotonic()
        await asyncio.to_thread(pg_server.stop)
        # A validly signed event while the database is down: 503, so Telnyx keeps it.
        while_down.append(await _post(hook, event, signed_post(private, event)))
        await asyncio.sleep(3.0)
        while_down.append(await _post(hook, event, signed_post(private, event)))
        await asyncio.to_thread(pg_server.start)
        outage = time.monotonic() - down
        # Telnyx's next retry is stored and acknowledged.
        assert await _post(hook, event, signed_post(private, event)) == 200
        assert rig.sim.stats()["webhook_delivery_failures"] > failures_before
        await finish_inproc(pg_url, cid, rig, timeout=120)
        stored = await probe.val(
            f"SELECT count(*) FROM webhook_events WHERE event_id = '{_event_id(event)}'")
    finally:
        await probe.close()
        await rig.engine.shutdown()
        await rig.sim.stop()
    assert while_down == [503, 503]
    assert stored == 1
    unavailable = rig.engine.metrics.webhooks.labels("unavailable")._value.get()
    assert unavailable >= 2
    assert "database unavailable" in caplog.text
    figures = await audit(pg_url, cid, ledger_dicts(rig.sim), amd="premium", max_attempts=2,
                          foreign_events=frozenset({_event_id(event)}))
    warnings = caplog.text.count("database unavailable")
    print(f"\n[database restart] PostgreSQL down {outage:.1f}s; receiver answered 503 "
          f"{unavailable:.0f} times; engine logged {warnings} waits; "
          f"{rig.sim.stats()['webhook_delivery_failures']} deliveries retried")
    print(f"  {figures.line()}")


async def _at_least(rig, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(rig.sim.ledger) >= n


def _event_id(body: bytes) -> str:
    import json

    return str(json.loads(body)["data"]["id"])
