"""Benchmark of webhook ingestion: signed webhooks from a separate process into `dialer run` on
PostgreSQL; events per second sustained and acknowledgement latency (p50/p99).

Every event is verified and stored durably (committed) before its 200; the receiver groups the
events that arrive together into one commit. The engine runs as its own process (`dialer run`,
no campaigns), this script is the load generator (bodies signed before the clock starts).

    .venv/bin/python bench/bench_webhooks.py [--events 30000] [--concurrency 64] [--sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import cpu_secs, free_port  # noqa: E402
from campaigns.db.migrate import upgrade  # noqa: E402
from dialer.telnyx.signatures import generate_keypair, public_key_from_private, sign  # noqa: E402




def event(i: int) -> bytes:
    kind = ("call.initiated", "call.answered", "call.hangup")[i % 3]
    return json.dumps({
        "data": {"record_type": "event", "event_type": kind, "id": str(uuid.uuid4()),
                 "occurred_at": "2026-11-26T12:00:00.000000Z",
                 "payload": {"call_control_id": f"v3:bench-{i // 3}", "call_leg_id": str(i),
                             "call_session_id": str(i), "connection_id": "1",
                             "client_state": None, "from": "+14155550100",
                             "to": "+14155550101", "direction": "outgoing", "state": "bridging",
                             "hangup_cause": "normal_clearing", "sip_hangup_cause": "200"}},
        "meta": {"attempt": 1, "delivered_to": "http://127.0.0.1/webhooks/telnyx"}}).encode()


async def drive(url: str, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int
                ) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    it = iter(bodies)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for body, headers in it:
            t = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    failures += 1
            latencies.append(time.perf_counter() - t)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return elapsed, latencies, failures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=30000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--sqlite", action="store_true")
    args = ap.parse_args()
    private, _ = generate_keypair()
    public = public_key_from_private(private)
    pg = None
    tmp = tempfile.TemporaryDirectory()
    if args.sqlite:
        db_url = f"sqlite:///{tmp.name}/bench.db"
    else:
        from tests.pgserver import start_server
        pg = start_server()
        db_url = pg.url()
    upgrade(db_url)
    port = free_port()
    engine = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli.main", "--database-url", db_url, "run", "--port",
         str(port), "--api-url", "http://127.0.0.1:9/v2", "--api-key", "bench", "--public-key",
         public], env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        bodies = []
        for i in range(args.events):
            body = event(i)
            bodies.append((body, {**sign(private, body), "content-type": "application/json"}))
        url = f"http://127.0.0.1:{port}/webhooks/telnyx"
        cpu0 = cpu_secs(engine.pid)
        elapsed, lat, failures = asyncio.run(drive(url, bodies, args.concurrency))
        cpu_ms = 1000 * (cpu_secs(engine.pid) - cpu0) / args.events
        lat.sort()
        print(json.dumps({
            "db": "sqlite" if args.sqlite else "postgresql",
            "events": args.events, "concurrency": args.concurrency,
            "events_per_s": round(args.events / elapsed),
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * lat[int(0.99 * len(lat)) - 1], 1),
            "max_ms": round(1000 * lat[-1], 1),
            "non_200": failures,
            "engine_cpu_ms_per_event": round(cpu_ms, 3),
        }))
        print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    finally:
        engine.terminate()
        engine.wait(timeout=30)
        if pg is not None:
            pg.cleanup()
        tmp.cleanup()


if __name__ == "__main__":
    main()
