"""Benchmark of the engine's pacing: achieved dials/s and the worst 1 s / 100 ms windows.

The simulator runs as its own process (`dialer simulator`, answering at once: every call is busy
and ends within a fraction of a second); the engine runs in this process on PostgreSQL (a
throwaway server from tests/pgserver.py) or SQLite. For each rate the campaign has enough
contacts for the run; the figures come from the simulator's ledger (`GET /_simulator/calls`).

    .venv/bin/python bench/bench_pacing.py [--rates 10,30,100,300] [--secs 20] [--sqlite-rate 30]
        [--webhook-workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import cpu_secs, postgres_cpu_secs, queued_contacts, start_simulator  # noqa: E402
from bench.traced_engine import load_trace, trace_wire  # noqa: E402
from campaigns.db.engine import create_engine, session_factory  # noqa: E402
from campaigns.db.migrate import upgrade  # noqa: E402
from campaigns.db.models import Contact  # noqa: E402
from campaigns.db.types import utcnow  # noqa: E402
from campaigns.service import change_status, create_campaign  # noqa: E402
from dialer import aio  # noqa: E402
from dialer.engine.runner import Engine, EngineConfig  # noqa: E402
from dialer.telnyx.signatures import generate_keypair, public_key_from_private  # noqa: E402

#: Seconds after the engine's start before CPU per call is counted.
WARMUP_SECS = 2.0


def steady_cpu_per_call(before: tuple[float, float, float, float],
                        after: tuple[float, float, float, float], arrivals: list[float],
                        postgres: bool) -> dict[str, Any]:
    """CPU microseconds per call of the engine (this process), the simulator and PostgreSQL
    between two readings (cpu, simulator cpu, postgres cpu, wall time), per dial that arrived
    at the simulator between them."""
    calls = sum(1 for t in arrivals if before[3] <= t < after[3])
    out: dict[str, Any] = {"steady_calls": calls, "steady_secs": round(after[3] - before[3], 2)}
    for i, part in enumerate(("engine", "simulator", "postgres")):
        if part == "postgres" and not postgres:
            continue
        out[f"{part}_cpu_us_per_call"] = (round(1e6 * (after[i] - before[i]) / calls, 1)
                                          if calls else None)
    return out


def max_in_window(times: list[float], width: float) -> int:
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + width)
        best = max(best, j - i)
    return best


async def seed(url: str, name: str, n: int, cps: float) -> None:
    db = create_engine(url)
    async with session_factory(db)() as s, s.begin():
        await create_campaign(s, name, {
            "from": "+14155550100", "connection_id": "bench", "cps": cps,
            "max_concurrent": 10000, "max_attempts": 1, "calling_hours": "00:00-24:00",
            "calling_days": "mon-sun", "compliance_rules": "off"})
    async with session_factory(db)() as s, s.begin():
        from sqlalchemy import select

        from campaigns.db.models import Campaign
        cid = (await s.scalars(select(Campaign.id).where(Campaign.name == name))).one()
        rows = queued_contacts(cid, n, utcnow())
        from sqlalchemy import insert
        for k in range(0, n, 5000):
            await s.execute(insert(Contact), rows[k:k + 5000])
    async with session_factory(db)() as s, s.begin():
        await change_status(s, name, "start")
    await db.dispose()


async def run_rate(url: str, sim_url: str, sim_pid: int, public_key: str, rate: float,
                   secs: float, name: str, webhook_workers: int = 0,
                   pg_dir: Path | None = None) -> dict[str, Any]:
    await seed(url, name, int(rate * (secs + 2)), rate)
    engine = Engine(EngineConfig(database_url=url, api_url=sim_url + "/v2", api_key="bench",
                                 public_key=public_key, port=0, cps=rate, max_concurrent=100000,
                                 time_scale=1, webhook_workers=webhook_workers))
    async with aiohttp.ClientSession() as http:
        async with http.get(sim_url + "/_simulator/calls") as r:
            before = len((await r.json())["data"])
        async with http.get(sim_url + "/_simulator/stats") as r:
            stats0 = (await r.json())["data"]  # cumulative over the runs: report differences
        # When each dial leaves the engine (its send task starts the request), to tell the
        # engine's spacing from the simulator's (a busy simulator stamps late requests
        # together), and when its request was written to the socket: the wire's trace.
        trace_file = str(Path(tempfile.mkdtemp(prefix="wire-")) / "sends.jsonl")
        trace_wire(trace_file)
        wire_cpu = 0.0

        def engine_cpu() -> float:
            """The engine's process and its dial wire's (while it runs)."""
            nonlocal wire_cpu
            pid = engine.dispatcher.wire.pid
            if pid is not None:
                with contextlib.suppress(OSError):
                    wire_cpu = cpu_secs(pid)
            return time.process_time() + wire_cpu

        cpu0, sim_cpu0, t0 = engine_cpu(), cpu_secs(sim_pid), time.monotonic()
        pg_cpu0 = postgres_cpu_secs(pg_dir) if pg_dir else 0.0
        started_at = time.time()
        await engine.start()
        workers = [p.pid for p in engine.workers._procs.values()] if engine.workers else []
        workers_cpu0 = sum(cpu_secs(pid) for pid in workers)  # their start-up not counted
        # CPU per call in steady state: from WARMUP_SECS after the start to the end of the run,
        # against the dials that arrived in that window (start-up and shutdown not counted).
        warmup = min(WARMUP_SECS, secs / 2)
        await asyncio.sleep(warmup)
        steady0 = (engine_cpu(), cpu_secs(sim_pid),
                   postgres_cpu_secs(pg_dir) if pg_dir else 0.0, time.time())
        await asyncio.sleep(secs - warmup)
        steady1 = (engine_cpu(), cpu_secs(sim_pid),
                   postgres_cpu_secs(pg_dir) if pg_dir else 0.0, time.time())
        workers_cpu = sum(cpu_secs(pid) for pid in workers) - workers_cpu0
        pg_cpu = postgres_cpu_secs(pg_dir) - pg_cpu0 if pg_dir else None
        engine_cpu()  # the wire's CPU, read while it still runs
        await engine.shutdown()
        cpu1, sim_cpu1, t1 = engine_cpu(), cpu_secs(sim_pid), time.monotonic()
        trace = load_trace(trace_file)
        sent, written = trace["begun"], [at for at, _ in trace["written"]]
        async with http.get(sim_url + "/_simulator/calls") as r:
            calls = (await r.json())["data"][before:]
        async with http.get(sim_url + "/_simulator/stats") as r:
            stats = await r.json()
    times = sorted(float(c["dialed_at"]) for c in calls)
    # Steady state: skip the first second (start-up) and the last (shutdown).
    steady = [t for t in times if times[0] + 1.0 <= t <= times[-1] - 1.0] if times else []
    achieved = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return {
        "rate": rate,
        "calls": len(times),
        "engine_sent": len(sent),
        "first_dial_after_s": round(min(sent) - started_at, 2) if sent else None,
        "achieved_per_s": round(achieved, 2),
        "achieved_pct": round(100 * achieved / rate, 1),
        "max_in_any_1s": max_in_window(times, 1.0),
        "max_in_any_100ms": max_in_window(times, 0.1),
        "limit_100ms": math.ceil(rate / 10) + 1,
        "engine_max_in_any_1s": max_in_window(sorted(sent), 1.0),
        "engine_max_in_any_100ms": max_in_window(sorted(sent), 0.1),
        "written_max_in_any_1s": max_in_window(sorted(written), 1.0),
        "written_max_in_any_100ms": max_in_window(sorted(written), 0.1),
        "slots_missed": engine.dispatcher.slots_missed,
        "http_429": stats["data"]["rejected_429"] - stats0["rejected_429"],
        "duplicate_command_ids": (stats["data"]["duplicate_command_ids"]
                                  - stats0["duplicate_command_ids"]),
        "engine_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "webhook_workers": webhook_workers,
        "webhook_workers_cpu_pct": round(100 * workers_cpu / secs, 1),
        "simulator_cpu_pct": round(100 * (sim_cpu1 - sim_cpu0) / (t1 - t0), 1),
        "postgres_cpu_pct": round(100 * pg_cpu / secs, 1) if pg_cpu is not None else None,
        **steady_cpu_per_call(steady0, steady1, times, pg_dir is not None),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="10,30,100,300")
    ap.add_argument("--secs", type=float, default=20.0)
    ap.add_argument("--sqlite-rate", type=float, default=30.0, help="0: no SQLite run")
    ap.add_argument("--webhook-workers", type=int, default=0,
                    help="webhook worker processes of the engine on PostgreSQL")
    args = ap.parse_args()
    private, _ = generate_keypair()
    public = public_key_from_private(private)
    sim, sim_url = start_simulator(private, speed=1000, scenarios=REPO / "bench" / "busy.toml")
    from tests.pgserver import start_server

    pg = start_server()
    results = []
    try:
        for i, rate in enumerate(float(r) for r in args.rates.split(",")):
            url = pg.url()
            if i:
                import asyncpg
                conn = await asyncpg.connect(pg.url())
                await conn.execute(f"CREATE DATABASE b{i}")
                await conn.close()
                url = pg.url(f"b{i}")
            upgrade(url)
            res = await run_rate(url, sim_url, sim.pid, public, rate, args.secs, f"pg{i}",
                                 args.webhook_workers, pg.data_dir)
            res["db"] = "postgresql"
            results.append(res)
            print(json.dumps(res), flush=True)
        if args.sqlite_rate:
            with tempfile.TemporaryDirectory() as d:
                url = f"sqlite:///{d}/bench.db"
                upgrade(url)
                res = await run_rate(url, sim_url, sim.pid, public, args.sqlite_rate, args.secs,
                                     "lite")
                res["db"] = "sqlite"
                results.append(res)
                print(json.dumps(res), flush=True)
    finally:
        sim.terminate()
        pg.cleanup()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")


if __name__ == "__main__":
    aio.run(main())  # the event loop `dialer run` uses
