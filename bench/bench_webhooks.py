"""Benchmark of webhook ingestion: signed webhooks from a separate process into `dialer run` on
PostgreSQL; events per second sustained and acknowledgement latency (p50/p99).

Every event is verified and stored durably (committed) before its 200; the receiver groups the
events that arrive together into one commit. The engine runs as its own process (`dialer run`,
no campaigns), this script is the load generator (bodies signed before the clock starts).

    .venv/bin/python bench/bench_webhooks.py [--events 30000] [--concurrency 64] [--sqlite]
        [--webhook-workers N]

With `--webhook-workers N` the load goes to the engine's N worker processes (`dialer run
--webhook-workers N`), which verify, store and acknowledge; the engine processes what they stored.
The figures then also say how long processing ran on after the last acknowledgement
(`processing_drained_after_s`); CPU is the engine's and its workers', counted until then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    cpu_secs,
    free_port,
    postgres_cpu_secs,
    tree_cpu_secs,
    wait_for_port,
)
from campaigns.db.migrate import upgrade  # noqa: E402
from dialer import aio  # noqa: E402
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


def raw_requests(port: int, bodies: list[tuple[bytes, dict[str, str]]]) -> list[bytes]:
    """Each body as the bytes of a whole `POST /webhooks/telnyx` request, built ahead."""
    return [
        b"".join([f"POST /webhooks/telnyx HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  f"Content-Length: {len(body)}\r\n".encode(),
                  *(f"{k}: {v}\r\n".encode() for k, v in headers.items()), b"\r\n", body])
        for body, headers in bodies]


async def read_answer(reader: asyncio.StreamReader) -> int:
    """One HTTP answer read whole; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return int(head[9:12])


async def drive(port: int, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int
                ) -> tuple[float, list[float], int]:
    """Post every body over `concurrency` keep-alive connections and time each answer.

    A bare HTTP/1.1 client on raw streams (requests built before the clock starts): an aiohttp
    client spends more CPU per request than the receiver it measures, on the same 2 cores.
    """
    latencies: list[float] = []
    failures = 0
    it = iter(raw_requests(port, bodies))

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in it:
                t = time.perf_counter()
                writer.write(request)
                status = await read_answer(reader)
                latencies.append(time.perf_counter() - t)
                if status != 200:
                    failures += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies, failures


TRIVIAL_SERVER = """
import asyncio, sys
from aiohttp import web
from dialer import aio

async def answer(request):
    await request.read()
    return web.Response(body=b'{"result":"ok"}', content_type="application/json")

async def main():
    app = web.Application()
    app.router.add_post("/webhooks/telnyx", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    await asyncio.Event().wait()

aio.run(main())
"""


async def wait_processed(db_url: str) -> float:
    """Seconds until the engine has processed every stored event (none left `pending`)."""
    from sqlalchemy import text

    from campaigns.db.engine import create_engine

    db = create_engine(db_url)
    t0 = time.perf_counter()
    try:
        while True:
            async with db.connect() as conn:
                left = await conn.scalar(text(
                    "SELECT count(*) FROM webhook_events WHERE status = 'pending'"))
            if not left:
                return time.perf_counter() - t0
            await asyncio.sleep(0.05)
    finally:
        await db.dispose()


def trivial_baseline(bodies: list[tuple[bytes, dict[str, str]]], concurrency: int
                     ) -> dict[str, float]:
    """The same requests against an aiohttp handler that only reads the body and answers:
    what this machine gives right now, to read the receiver's figures against (the machine's
    speed varies by 2-4x from one hour to the next)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER, str(port)],
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_for_port(port)
        cpu0 = cpu_secs(server.pid)
        elapsed, _, _ = aio.run(drive(port, bodies, concurrency))
        return {"trivial_requests_per_s": round(len(bodies) / elapsed),
                "trivial_server_cpu_us_per_request":
                    round(1e6 * (cpu_secs(server.pid) - cpu0) / len(bodies), 1)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=30000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--webhook-workers", type=int, default=0)
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
    port, worker_port = free_port(), free_port()
    workers = ["--webhook-workers", str(args.webhook_workers), "--webhook-port",
               str(worker_port)] if args.webhook_workers else []
    engine = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli.main", "--database-url", db_url, "run", "--port",
         str(port), "--api-url", "http://127.0.0.1:9/v2", "--api-key", "bench", "--public-key",
         public, *workers], env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.DEVNULL)
    if args.webhook_workers:
        port = worker_port
    try:
        wait_for_port(port)
        time.sleep(1.0)  # every worker listening
        bodies = []
        for i in range(args.events):
            body = event(i)
            bodies.append((body, {**sign(private, body), "content-type": "application/json"}))
        cpu0 = tree_cpu_secs(engine.pid)
        own0 = cpu_secs(os.getpid())
        pg0 = postgres_cpu_secs(pg.data_dir) if pg is not None else 0.0
        elapsed, lat, failures = aio.run(drive(port, bodies, args.concurrency))
        own_ms = 1000 * (cpu_secs(os.getpid()) - own0) / args.events
        drained = aio.run(wait_processed(db_url))
        cpu_ms = 1000 * (tree_cpu_secs(engine.pid) - cpu0) / args.events
        pg_ms = (1000 * (postgres_cpu_secs(pg.data_dir) - pg0) / args.events
                 if pg is not None else 0.0)
        lat.sort()
        print(json.dumps({
            "db": "sqlite" if args.sqlite else "postgresql",
            "events": args.events, "concurrency": args.concurrency,
            "webhook_workers": args.webhook_workers,
            "events_per_s": round(args.events / elapsed),
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * lat[int(0.99 * len(lat)) - 1], 1),
            "max_ms": round(1000 * lat[-1], 1),
            "non_200": failures,
            "processing_drained_after_s": round(drained, 2),
            "processed_per_s": round(args.events / (elapsed + drained)),
            "engine_cpu_ms_per_event": round(cpu_ms, 3),
            "load_generator_cpu_ms_per_event": round(own_ms, 3),
            "postgres_cpu_ms_per_event": round(pg_ms, 3) if pg is not None else None,
            "loadavg_1m": round(os.getloadavg()[0], 2),
            **trivial_baseline(bodies[:min(len(bodies), 10000)], args.concurrency),
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
