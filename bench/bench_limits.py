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
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_pacing import max_in_window, seed  # noqa: E402
from bench.common import (  # noqa: E402
    cpu_secs,
    free_port,
    postgres_cpu_secs,
    start_simulator,
    tree_cpu_secs,
)
from campaigns.db.migrate import upgrade  # noqa: E402
from dialer.telnyx.signatures import generate_keypair, public_key_from_private  # noqa: E402


def quantiles_ms(values: list[float], low: bool = False) -> dict[str, float | None]:
    """p50, p99, p99.9 and max (and min if `low`) of seconds, in milliseconds."""
    xs = sorted(values)

    def at(q: float) -> float | None:
        return round(1000 * xs[min(len(xs) - 1, int(q * len(xs)))], 2) if xs else None
    out = {"p50": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": at(1.0)}
    return {**out, "min": at(0.0)} if low else out


def sends_view(sends_dir: Path, db: str, calls: list[dict[str, Any]]) -> dict[str, object]:
    """The engines' own view (`traced_engine`): when each dial's request was written, how long
    after its slot its send began (`send_after_slot`) and was written (`write_after_slot`), and
    how long from its write to its arrival at the simulator (ledger stamp)."""
    def load(suffix: str) -> list[Any]:
        return [x for f in sorted(sends_dir.glob(f"{db}-*.jsonl{suffix}"))
                for x in json.loads(f.read_text())]
    sends = [json.loads(line) for f in sorted(sends_dir.glob(f"{db}-*.jsonl"))
             for line in f.read_text().splitlines()]
    written = sorted(s["at"] for s in sends)
    at_write = {s["command_id"]: s["at"] for s in sends}
    late = load(".late")
    return {"write_after_slot_ms": quantiles_ms(load(".spread")),
            "send_after_slot_ms": {**quantiles_ms(late),
                                   "over_8ms": sum(x > 0.008 for x in late)},
            "written_max_in_any_1s": max_in_window(written, 1.0),
            "written_max_in_any_100ms": max_in_window(written, 0.1),
            "arrival_after_write_ms": quantiles_ms(
                [float(c["dialed_at"]) - at_write[c["command_id"]] for c in calls
                 if c.get("command_id") in at_write], low=True)}


async def slots_missed(http: aiohttp.ClientSession, port: int) -> int | None:
    """The engine's count of slots given up (its dial could not start in time)."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            text = await r.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith("dialer_dial_slots_missed_total"):
            return int(float(line.split()[-1]))
    return None


async def run(pg: object, sim_url: str, sim_pid: int, public: str, engines: int, rate: float,
              secs: float, db: str, sends_dir: Path, webhook_workers: int = 0
              ) -> dict[str, object]:
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
        ports: list[int] = []
        pg_cpu0 = postgres_cpu_secs(pg.data_dir)  # type: ignore[attr-defined]
        sim_cpu0, t0 = cpu_secs(sim_pid), time.monotonic()
        for i in range(engines):
            port = free_port()
            ports.append(port)
            procs.append(subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "traced_engine.py"),
                 str(sends_dir / f"{db}-{i}.jsonl"), "--database-url", url, "run",
                 "--port", str(port), "--api-url", sim_url + "/v2", "--api-key", "bench",
                 "--public-key", public, "--cps", str(rate), "--max-concurrent", "100000",
                 "--webhook-workers", str(webhook_workers)],
                env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            await asyncio.sleep(1.0 if i else 0.0)  # engines join one after the other
        await asyncio.sleep(secs)
        cpu = [tree_cpu_secs(p.pid) for p in procs]  # with its dial wire (and workers)
        missed = [await slots_missed(http, port) for port in ports]
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
    written = sends_view(sends_dir, db, calls)
    steady = [t for t in times if times[0] + 3.0 <= t <= times[-1] - 1.0] if times else []
    achieved = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return {
        "engines": engines, "rate": rate, "webhook_workers": webhook_workers,
        "calls": len(times),
        "achieved_per_s": round(achieved, 2),
        "achieved_pct": round(100 * achieved / rate, 1),
        "max_in_any_1s": max_in_window(times, 1.0), "limit_1s": math.floor(rate),
        "max_in_any_100ms": max_in_window(times, 0.1),
        "limit_100ms": math.ceil(rate / 10) + 1,
        **written,
        "slots_missed": missed,
        "engine_cpu_pct": [round(100 * c / elapsed, 1) for c in cpu],
        "simulator_cpu_pct": round(100 * sim_cpu / elapsed, 1),
        "postgres_cpu_pct": round(100 * pg_cpu / elapsed, 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="1,2,3")
    ap.add_argument("--rates", default="30,100")
    ap.add_argument("--secs", type=float, default=15.0)
    ap.add_argument("--webhook-workers", type=int, default=0,
                    help="webhook worker processes per engine (`dialer run --webhook-workers`)")
    args = ap.parse_args()
    private, _ = generate_keypair()
    public = public_key_from_private(private)
    sim, sim_url = start_simulator(private, speed=1000, scenarios=REPO / "bench" / "busy.toml")
    from tests.pgserver import start_server

    pg = start_server()
    sends_dir = Path(tempfile.mkdtemp(prefix="sends-"))
    try:
        n = 0
        for engines in (int(e) for e in args.engines.split(",")):
            for rate in (float(r) for r in args.rates.split(",")):
                n += 1
                res = await run(pg, sim_url, sim.pid, public, engines, rate, args.secs, f"l{n}",
                                sends_dir, args.webhook_workers)
                print(json.dumps(res), flush=True)
    finally:
        sim.terminate()
        pg.cleanup()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")


if __name__ == "__main__":
    asyncio.run(main())
