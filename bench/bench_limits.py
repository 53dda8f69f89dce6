"""Benchmark of limits shared by several engines: 1, 2 and 3 `dialer run` processes on one
PostgreSQL, one account limit, measured at the simulator (its ledger: arrival times) and at the
engines (their dial-slot figures). Achieved rate, the worst 1 s and 100 ms windows, CPU of each
engine, of the simulator and of PostgreSQL.

    .venv/bin/python bench/bench_limits.py [--engines 1,2,3] [--rates 30,100] [--secs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_pacing import max_in_window, seed  # noqa: E402
from bench.common import cpu_secs, free_port, postgres_cpu_secs, start_simulator  # noqa: E402
from campaigns.db.migrate import upgrade  # noqa: E402
from dialer.telnyx.signatures import generate_keypair, public_key_from_private  # noqa: E402


async def run(pg: object, sim_url: str, sim_pid: int, public: str, engines: int, rate: float,
              secs: float, db: str) -> dict[str, object]:
    admin = await asyncpg.connect(pg.url())  # type: ignore[attr-defined]
    await admin.execute(f"CREATE DATABASE {db}")
    await admin.close()
    url = pg.url(db)  # type: ignore[attr-defined]
    upgrade(url)
    await seed(url, "limits", int(rate * (secs + 3) * 1.1), rate)
    async with aiohttp.ClientSession() as http:
        async with http.get(sim_url + "/_simulator/calls") as r:
            before = len((await r.json())["data"])
        procs = []
        pg_cpu0 = postgres_cpu_secs(pg.data_dir)  # type: ignore[attr-defined]
        sim_cpu0, t0 = cpu_secs(sim_pid), time.monotonic()
        for i in range(engines):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "dialer.cli.main", "--database-url", url, "run",
                 "--port", str(port), "--api-url", sim_url + "/v2", "--api-key", "bench",
                 "--public-key", public, "--cps", str(rate), "--max-concurrent", "100000"],
                env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            await asyncio.sleep(1.0 if i else 0.0)  # engines join one after the other
        await asyncio.sleep(secs)
        cpu = [cpu_secs(p.pid) for p in procs]
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        elapsed = time.monotonic() - t0
        sim_cpu = cpu_secs(sim_pid) - sim_cpu0
        pg_cpu = postgres_cpu_secs(pg.data_dir) - pg_cpu0  # type: ignore[attr-defined]
        async with http.get(sim_url + "/_simulator/calls") as r:
            calls = (await r.json())["data"][before:]
    times = sorted(float(c["dialed_at"]) for c in calls)
    steady = [t for t in times if times[0] + 3.0 <= t <= times[-1] - 1.0] if times else []
    achieved = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return {
        "engines": engines, "rate": rate, "calls": len(times),
        "achieved_per_s": round(achieved, 2),
        "achieved_pct": round(100 * achieved / rate, 1),
        "max_in_any_1s": max_in_window(times, 1.0), "limit_1s": math.floor(rate),
        "max_in_any_100ms": max_in_window(times, 0.1),
        "limit_100ms": math.ceil(rate / 10) + 1,
        "engine_cpu_pct": [round(100 * c / elapsed, 1) for c in cpu],
        "simulator_cpu_pct": round(100 * sim_cpu / elapsed, 1),
        "postgres_cpu_pct": round(100 * pg_cpu / elapsed, 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="1,2,3")
    ap.add_argument("--rates", default="30,100")
    ap.add_argument("--secs", type=float, default=15.0)
    args = ap.parse_args()
    private, _ = generate_keypair()
    public = public_key_from_private(private)
    sim, sim_url = start_simulator(private, speed=1000, scenarios=REPO / "bench" / "busy.toml")
    from tests.pgserver import start_server

    pg = start_server()
    try:
        n = 0
        for engines in (int(e) for e in args.engines.split(",")):
            for rate in (float(r) for r in args.rates.split(",")):
                n += 1
                res = await run(pg, sim_url, sim.pid, public, engines, rate, args.secs, f"l{n}")
                print(json.dumps(res), flush=True)
    finally:
        sim.terminate()
        pg.cleanup()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")


if __name__ == "__main__":
    asyncio.run(main())
