"""`dialer run --webhook-workers N`: receiver processes that verify, store and acknowledge; the
engine processes what they stored. Real processes, real HTTP, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from campaigns.db.types import utcnow
from dialer.aio import run as aio_run
from dialer.engine.event_log import EventStore
from dialer.engine.events import parse_envelope
from dialer.engine.runner import Engine, EngineConfig
from dialer.engine.webhook_workers import WorkerSettings, _Outbox
from dialer.errors import ConfigurationError
from dialer.telnyx.signatures import sign
from tests.engine.helpers import (
    attempts_of,
    check_one_call_per_attempt,
    contacts_of,
    numbers,
    rig,
    seed,
    wait_for,
)
from tests.engine.test_engine import VOICEMAIL, completed
from tests.engine.test_receiver import PRIVATE, PUBLIC, envelope, stored

REPO = Path(__file__).resolve().parents[2]


async def _post(port: int, body: bytes, headers: dict[str, str]) -> int:
    url = f"http://127.0.0.1:{port}/webhooks/telnyx"
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers) as r:
        return r.status


async def _metric(engine: Engine, name: str, **labels: str) -> float:
    url = f"http://127.0.0.1:{engine.bound_port}/metrics"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        text = await r.text()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v
                                              for k, v in labels.items()))


async def test_receivers_storing_the_same_events_in_opposite_orders_never_refuse_them(
        pg_url: str) -> None:
    """Two receivers (workers) storing the same events at once, in opposite orders: the rows go
    in in the order of their event ids, so neither waits on a row the other will wait on
    (no deadlock, even without the store's retry), and each event is stored once, its row id
    in the order of arrival of the batch that stored it."""
    conns = [await asyncpg.connect(pg_url.replace("postgresql://", "postgres://"))
             for _ in range(2)]
    try:
        for round_no in range(10):
            envs = [parse_envelope(envelope(event_id=f"d{round_no}-{i}")) for i in range(300)]
            batches = (envs, envs[::-1])
            rows = await asyncio.gather(
                EventStore._insert_pg(conns[0], batches[0], utcnow()),
                EventStore._insert_pg(conns[1], batches[1], utcnow()))
            stored = [event_id for batch in rows for _, event_id in batch]
            assert sorted(stored) == sorted(e.event_id for e in envs)  # each once
            for batch, stored_rows in zip(batches, rows):
                arrival = {env.event_id: n for n, env in enumerate(batch)}
                by_row_id = [event_id for _, event_id in sorted(stored_rows)]
                assert by_row_id == sorted(by_row_id, key=arrival.__getitem__)
    finally:
        for conn in conns:
            await conn.close()


async def test_workers_store_acknowledge_and_the_engine_processes(pg_url: str) -> None:
    engine = Engine(EngineConfig(database_url=pg_url, api_url="http://127.0.0.1:9/v2",
                                 api_key="k", public_key=PUBLIC, port=0, webhook_workers=2))
    await engine.start()
    try:
        assert engine.workers is not None and engine.workers.alive == 2
        port = engine.workers.port
        assert port is not None and port != engine.bound_port
        assert engine.webhook_url == f"http://127.0.0.1:{port}/webhooks/telnyx"
        bodies = [envelope(event_id=f"w-{i}") for i in range(60)]
        # Many connections, so the kernel spreads them over both workers; each event twice.
        statuses = await asyncio.gather(*(_post(port, b, sign(PRIVATE, b))
                                          for b in bodies + bodies))
        assert set(statuses) == {200}
        forged = envelope(event_id="forged")
        assert await _post(port, forged, sign(PRIVATE, forged + b" ")) == 403

        async def processed() -> bool:
            events = await stored(pg_url)
            return len(events) == 60 and set(events.values()) == {"orphan"}
        await wait_for(processed, timeout=30)  # unknown calls: kept as orphans, processed once
        assert "forged" not in await stored(pg_url)

        async def reported() -> bool:  # the workers' answers reach the engine's /metrics
            return (await _metric(engine, "dialer_webhooks_received_total", result="stored") == 60
                    and await _metric(engine, "dialer_webhooks_received_total",
                                      result="duplicate") == 60
                    and await _metric(engine, "dialer_webhooks_received_total",
                                      result="forbidden") == 1)
        await wait_for(reported, timeout=10)
        assert await _metric(engine, "dialer_webhook_ack_seconds_count") == 121
        health = engine.health()
        assert health["webhook_workers"] == 2
    finally:
        await engine.shutdown()
    assert engine.workers.alive == 0


async def test_a_worker_that_dies_is_started_again(pg_url: str) -> None:
    engine = Engine(EngineConfig(database_url=pg_url, api_url="http://127.0.0.1:9/v2",
                                 api_key="k", public_key=PUBLIC, port=0, webhook_workers=1))
    await engine.start()
    try:
        assert engine.workers is not None and engine.workers.port is not None
        engine.workers._procs[0].kill()

        async def down() -> bool:
            assert engine.workers is not None
            return engine.workers.alive == 0
        await wait_for(down, timeout=10, poll=0.02)
        assert engine.health()["status"] == "degraded"

        async def replaced() -> bool:
            assert engine.workers is not None
            return engine.workers.restarts == 1 and engine.workers.alive == 1
        await wait_for(replaced, timeout=30)
        body = envelope(event_id="after-restart")
        assert await _post(engine.workers.port, body, sign(PRIVATE, body)) == 200
        assert "after-restart" in await stored(pg_url)
    finally:
        await engine.shutdown()


def test_a_worker_exits_when_its_engine_is_gone(pg_url: str) -> None:
    """Its stdin is the lifeline: closed (the engine stopped or was killed) -> it exits; signals
    to the process group do not stop it."""
    proc = subprocess.Popen([sys.executable, "-m", "dialer.engine.webhook_workers"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdin is not None and proc.stdout is not None
        settings = WorkerSettings(pg_url, "127.0.0.1", 0, PUBLIC, False)
        proc.stdin.write(json.dumps(settings.__dict__).encode() + b"\n")
        proc.stdin.flush()
        ready = proc.stdout.readline()
        assert "ready" in json.loads(ready)
        # A terminal's Ctrl-C or a service manager's SIGTERM to the group: the engine's to handle.
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        body = envelope(event_id="after-signals")
        assert aio_run(_post(json.loads(ready)["ready"], body, sign(PRIVATE, body))) == 200
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_workers_need_postgres_and_a_port_of_their_own(sqlite_url: str,
                                                              pg_url: str) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        Engine(EngineConfig(database_url=sqlite_url, api_url="http://127.0.0.1:9/v2",
                            api_key="k", public_key=PUBLIC, port=0, webhook_workers=1))
    for port, webhook_port in [(8080, 8080), (65535, None)]:
        with pytest.raises(ConfigurationError, match="webhook-port"):
            Engine(EngineConfig(database_url=pg_url, api_url="http://127.0.0.1:9/v2",
                                api_key="k", public_key=PUBLIC, port=port, webhook_workers=1,
                                webhook_port=webhook_port))


def test_a_worker_never_blocks_on_a_slow_engine() -> None:
    """Its lines go through a non-blocking pipe: while the engine does not read, wake-up pings
    are dropped and reports wait; what the engine reads later are whole lines."""
    read_fd, write_fd = os.pipe()
    try:
        outbox = _Outbox(write_fd)
        report = {"answers": {"stored": 1}, "latency": [0.001] * 20_000, "store_failed": False}
        for _ in range(20):  # ~2.4 MB: far more than a pipe holds
            outbox.send(report)
            outbox.wake()
        received = b""
        while True:
            outbox.flush()
            try:
                os.set_blocking(read_fd, False)
                chunk = os.read(read_fd, 1 << 20)
            except BlockingIOError:
                break
            received += chunk
        lines = received.split(b"\n")
        assert lines[-1] == b""
        messages = [json.loads(line) for line in lines[:-1]]
        assert [m for m in messages if "answers" in m] == [report] * 20
        assert messages[-1] == {"stored": 1}  # the wake-ups folded into one, after the reports
    finally:
        os.close(read_fd)
        os.close(write_fd)


async def test_campaign_with_webhook_workers_completes_one_call_per_attempt(pg_url: str) -> None:
    """The call flow (message on humans, voicemail on machines) runs on events the workers
    stored: the dials' webhook_url is theirs."""
    cid = await seed(pg_url, "workers", numbers(60), answering_machine_detection="detect_beep",
                     max_attempts=1, **VOICEMAIL)
    async with rig(pg_url, mix={"human": 2, "machine_beep": 2, "busy": 1}, speed=50,
                   webhook_workers=2) as r:
        assert r.engine.workers is not None and r.engine.workers.port is not None
        await wait_for(completed(pg_url, cid), timeout=120)
        ledger = {c.command_id: c for c in r.sim.ledger}
        assert {call.webhook_url for call in r.sim.ledger} == {r.engine.webhook_url}
        own = await _metric(r.engine, "dialer_webhooks_received_total", result="stored")
    attempts = await attempts_of(pg_url)
    check_one_call_per_attempt(r.sim, attempts)
    assert all(c.status == "done" for c in await contacts_of(pg_url, cid))
    outcomes = Counter(a.outcome for a in attempts)
    assert set(outcomes) <= {"human", "machine", "busy"} and len(outcomes) == 3, outcomes
    for a in attempts:  # (at 50x speed a loaded machine may miss a recording window)
        if a.voicemail_left:
            assert a.outcome == "machine" and ledger[a.command_id].playback_completed
    assert any(a.voicemail_left for a in attempts)
    assert own > 0  # every event counted, though none reached the engine's own port
