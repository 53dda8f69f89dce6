"""Efficiency as ratios to what this machine does in the same run (its speed moves 2x in an hour).

Each measurement is taken beside a baseline of the same kind, one after the other:

- a trivial aiohttp server (reads the body, answers 200) under the same raw HTTP client: its CPU
  per request and its requests/s as fast as it answers, and its CPU per request when the
  requests come paced at 30 and at 300 per second like the dials (reported beside, as
  `..._paced_...`: a paced request cannot share its wake-up with others);
- the engine dialing busy calls (dial + ~3.5 webhooks each) at 30 and at 300 calls/s on
  PostgreSQL against the simulator: engine, simulator and PostgreSQL CPU per call, the achieved
  rate and the worst 1 s / 100 ms windows at the simulator;
- signed webhooks into `dialer run` (durable before the 200) against the trivial server;
- `dialer contacts import` of a generated CRM export (CLI, end to end) against a plain COPY of the
  very rows it stored, into the same table with its indexes.

    .venv/bin/python bench/bench_ratios.py [--quick] [--json]

`--quick` (~3 minutes) runs shorter dial runs, fewer webhooks and a smaller list; without it the
import also runs at 1,000,000 rows (peak RSS flat in the number of rows).
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_import import generate, run_import  # noqa: E402
from bench.bench_pacing import run_rate  # noqa: E402
from bench.bench_webhooks import (  # noqa: E402
    TRIVIAL_SERVER,
    drive,
    event,
    raw_requests,
    read_answer,
    wait_processed,
)
from bench.common import (  # noqa: E402
    cpu_secs,
    free_port,
    postgres_cpu_secs,
    start_simulator,
    tree_cpu_secs,
    wait_for_port,
)
from campaigns.db.migrate import upgrade  # noqa: E402
from dialer import aio  # noqa: E402
from dialer.telnyx.signatures import generate_keypair, public_key_from_private, sign  # noqa: E402


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def signed_bodies(private: str, n: int) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for i in range(n):
        body = event(i)
        out.append((body, {**sign(private, body), "content-type": "application/json"}))
    return out


def trivial_server(bodies: list[tuple[bytes, dict[str, str]]], concurrency: int
                   ) -> dict[str, float]:
    """The baseline: an aiohttp handler that reads the body and answers, under the same client."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER, str(port)],
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_for_port(port)
        aio.run(drive(port, bodies[:500], concurrency))  # warm up
        cpu0 = cpu_secs(server.pid)
        elapsed, lat, _ = aio.run(drive(port, bodies, concurrency))
        lat.sort()
        return {"requests_per_s": len(bodies) / elapsed,
                "cpu_us_per_request": 1e6 * (cpu_secs(server.pid) - cpu0) / len(bodies),
                "p99_ms": 1000 * lat[int(0.99 * len(lat)) - 1]}
    finally:
        server.terminate()
        server.wait(timeout=30)


async def drive_paced(port: int, bodies: list[tuple[bytes, dict[str, str]]], rate: float,
                      secs: float) -> int:
    """Post one body every 1/`rate` s for `secs` over 8 keep-alive connections (the dials'
    own cadence); returns how many were answered."""
    requests = raw_requests(port, bodies)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    loop = asyncio.get_running_loop()
    done = 0

    async def one(request: bytes) -> None:
        nonlocal done
        reader, writer = await pool.get()
        writer.write(request)
        await read_answer(reader)
        pool.put_nowait((reader, writer))
        done += 1

    t0, tasks = loop.time(), []
    for i in range(int(rate * secs)):
        await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
        tasks.append(asyncio.create_task(one(requests[i % len(requests)])))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return done


def trivial_paced(bodies: list[tuple[bytes, dict[str, str]]], rate: float, secs: float
                  ) -> dict[str, float]:
    """The trivial server's CPU per request when requests come at a paced rate, as the dials
    do, instead of as fast as it answers: the fixed cost of waking up for each one is then not
    shared by a batch (a fairer baseline for a paced engine; reported beside the other)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER, str(port)],
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_for_port(port)
        aio.run(drive(port, bodies[:500], 8))  # warm up
        cpu0 = cpu_secs(server.pid)
        n = aio.run(drive_paced(port, bodies, rate, secs))
        return {"rate": rate, "requests": n,
                "cpu_us_per_request": 1e6 * (cpu_secs(server.pid) - cpu0) / n}
    finally:
        server.terminate()
        server.wait(timeout=30)


def webhooks(pg: Any, private: str, bodies: list[tuple[bytes, dict[str, str]]],
             concurrency: int) -> dict[str, float]:
    """Signed webhooks into `dialer run` on PostgreSQL: stored durably before each 200."""
    public = public_key_from_private(private)
    url = create_database(pg, "webhooks")
    port = free_port()
    engine = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli.main", "--database-url", url, "run", "--port",
         str(port), "--api-url", "http://127.0.0.1:9/v2", "--api-key", "bench", "--public-key",
         public], env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        time.sleep(1.0)
        cpu0, pg0 = tree_cpu_secs(engine.pid), postgres_cpu_secs(pg.data_dir)
        elapsed, lat, failures = aio.run(drive(port, bodies, concurrency))
        drained = aio.run(wait_processed(url))
        n = len(bodies)
        lat.sort()
        return {"events_per_s": n / elapsed, "p50_ms": 1000 * statistics.median(lat),
                "p99_ms": 1000 * lat[int(0.99 * len(lat)) - 1], "non_200": failures,
                "processing_drained_after_s": drained,
                "engine_cpu_us_per_event": 1e6 * (tree_cpu_secs(engine.pid) - cpu0) / n,
                "postgres_cpu_us_per_event":
                    1e6 * (postgres_cpu_secs(pg.data_dir) - pg0) / n}
    finally:
        engine.terminate()
        engine.wait(timeout=30)


def create_database(pg: Any, name: str) -> str:
    async def create() -> None:
        import asyncpg
        conn = await asyncpg.connect(pg.url())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
    aio.run(create())
    url: str = pg.url(name)
    upgrade(url)
    return url


def dialing(pg: Any, private: str, rate: float, secs: float) -> dict[str, Any]:
    """Busy calls at `rate` through an engine on PostgreSQL: CPU per call of each part."""
    sim, sim_url = start_simulator(private, speed=1000, scenarios=REPO / "bench" / "busy.toml")
    try:
        url = create_database(pg, f"dial{int(rate)}")
        res = aio.run(run_rate(url, sim_url, sim.pid, public_key_from_private(private), rate,
                               secs, f"r{int(rate)}", 0, pg.data_dir))
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    return res  # with the steady-state CPU per call of each part (bench_pacing.run_rate)


def copy_same_rows(url: str, campaign: str) -> dict[str, float]:
    """A plain COPY of the rows the import stored (as CSV, in their stored order) into `contacts`
    under another campaign, inside a rolled-back transaction: the same table, same indexes."""
    async def run() -> dict[str, float]:
        import io

        import asyncpg

        from campaigns.db.storage import CONTACT_COLUMNS
        conn = await asyncpg.connect(url)
        try:
            cid = await conn.fetchval("SELECT id FROM campaigns WHERE name = $1", campaign)
            other = await conn.fetchval(
                "INSERT INTO campaigns (name, status, from_number, connection_id, "
                "dial_settings, settings, hangup_requested, created_at, updated_at) "
                "SELECT $1, 'draft', from_number, connection_id, dial_settings, settings, "
                "false, now(), now() FROM campaigns WHERE id = $2 RETURNING id",
                campaign + "-copy", cid)
            cols = [c for c in CONTACT_COLUMNS if c != "campaign_id"]
            buf = io.BytesIO()
            await conn.copy_from_query(
                f"SELECT {other}, {', '.join(cols)} FROM contacts WHERE campaign_id = {cid} "
                "ORDER BY id", output=buf, format="csv")
            rows = await conn.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = $1",
                                       cid)
            data = buf.getvalue()
            best = 0.0
            for _ in range(2):
                tx = conn.transaction()
                await tx.start()
                t = time.perf_counter()
                await conn.copy_to_table("contacts", source=io.BytesIO(data),
                                         columns=["campaign_id", *cols], format="csv")
                best = max(best, rows / (time.perf_counter() - t))
                await tx.rollback()
            await conn.execute("DELETE FROM campaigns WHERE id = $1", other)
            return {"rows": rows, "copy_rows_per_s": best}
        finally:
            await conn.close()
    return aio.run(run())


def importing(pg: Any, rows_list: list[int], work: Path) -> dict[str, Any]:
    url = create_database(pg, "import")
    out: dict[str, Any] = {}
    for rows in rows_list:
        path = work / f"contacts-{rows}.csv"
        generate(path, rows)
        name = f"imp{rows}"
        subprocess.run([sys.executable, "-m", "dialer.cli.main", "--database-url", url,
                        "campaign", "create", name, "--from", "+14155550100",
                        "--connection-id", "1"], cwd=REPO, check=True, capture_output=True)
        res = run_import(url, name, path)
        copy = copy_same_rows(url, name)
        out[str(rows)] = {
            "rows_read": res["rows_read"], "accepted": res["accepted"],
            "import_rows_per_s": res["rows_per_sec"],
            "import_accepted_rows_per_s": res["accepted"] / res["wall_secs"],
            "copy_rows_per_s": copy["copy_rows_per_s"], "peak_rss_mb": res["peak_rss_mb"]}
        path.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~3 minutes")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--only", default="trivial,dial,webhooks,import",
                    help="comma-separated parts to run")
    args = ap.parse_args()
    only = set(args.only.split(","))
    secs = 15.0 if args.quick else 30.0
    n_events = 10_000 if args.quick else 30_000
    import_rows = [300_000] if args.quick else [300_000, 1_000_000]
    private, _ = generate_keypair()
    from tests.pgserver import start_server

    raw: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"),
                           "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                                      f"{platform.python_version()}",
                           "loadavg_1m_at_start": os.getloadavg()[0]}
    pg = start_server()
    work = Path(tempfile.mkdtemp(prefix="bench-ratios-"))
    try:
        bodies = signed_bodies(private, n_events)
        if "trivial" in only:
            log("trivial aiohttp server")
            raw["trivial"] = trivial_server(bodies, 64)
            for rate in (30.0, 300.0):
                raw[f"trivial_paced_{int(rate)}"] = trivial_paced(bodies, rate, secs / 3)
        if "dial" in only:
            for rate in (30.0, 300.0):
                log(f"dialing busy calls at {rate:g}/s for {secs:g} s")
                raw[f"dial_{int(rate)}"] = dialing(pg, private, rate, secs)
        if "webhooks" in only:
            log(f"{n_events} signed webhooks into dialer run")
            raw["webhooks"] = webhooks(pg, private, bodies, 64)
            if "trivial" in only:  # the baseline again, after: the machine's speed moves
                raw["trivial_after"] = trivial_server(bodies, 64)
        if "import" in only:
            log(f"import of {', '.join(map(str, import_rows))} rows")
            raw["import"] = importing(pg, import_rows, work)
    finally:
        pg.cleanup()
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    ratios = compute_ratios(raw)
    doc = {"ratios": ratios, "raw": raw}
    if args.json:
        print(json.dumps(doc, indent=2, default=float))
    else:
        for key, value in ratios.items():
            print(f"{key:45s} {value}")
        print(json.dumps(raw, default=float))


def paced(raw: dict[str, Any], rate: int) -> float | None:
    got = raw.get(f"trivial_paced_{rate}")
    return float(got["cpu_us_per_request"]) if got else None


def compute_ratios(raw: dict[str, Any]) -> dict[str, float | None]:
    def r(x: float | None, y: float | None, digits: int = 2) -> float | None:
        return None if x is None or not y else round(x / y, digits)

    trivial = [t for t in (raw.get("trivial"), raw.get("trivial_after")) if t]
    trivial_us = statistics.mean(t["cpu_us_per_request"] for t in trivial) if trivial else None
    trivial_rps = statistics.mean(t["requests_per_s"] for t in trivial) if trivial else None
    d30, d300 = raw.get("dial_30"), raw.get("dial_300")
    wh = raw.get("webhooks")
    imp = raw.get("import", {})
    first = imp[min(imp, key=int)] if imp else None
    return {
        "engine_cpu_per_call_vs_trivial_request":
            r(d300 and d300["engine_cpu_us_per_call"], trivial_us, 1),
        "engine_cpu_per_call_30cps_vs_trivial_request":
            r(d30 and d30["engine_cpu_us_per_call"], trivial_us, 1),
        "engine_cpu_per_call_30cps_vs_300cps":
            r(d30 and d30["engine_cpu_us_per_call"], d300 and d300["engine_cpu_us_per_call"]),
        # Against the trivial server answering requests paced like the dials (see
        # `trivial_paced`): reported beside the ratios above, not instead of them.
        "engine_cpu_per_call_vs_trivial_request_paced_300":
            r(d300 and d300["engine_cpu_us_per_call"], paced(raw, 300), 1),
        "engine_cpu_per_call_30cps_vs_trivial_request_paced_30":
            r(d30 and d30["engine_cpu_us_per_call"], paced(raw, 30), 1),
        "trivial_request_paced_30_vs_300": r(paced(raw, 30), paced(raw, 300)),
        "simulator_vs_engine_cpu_per_call":
            r(d300 and d300["simulator_cpu_us_per_call"], d300 and d300["engine_cpu_us_per_call"]),
        # The rows the import stored, per second of the CLI's wall time, against COPY of them.
        "import_vs_copy": r(first and first["import_accepted_rows_per_s"],
                            first and first["copy_rows_per_s"]),
        "import_peak_rss_mb_largest": (round(imp[max(imp, key=int)]["peak_rss_mb"])
                                       if imp else None),
        "webhooks_vs_trivial_server": r(wh and wh["events_per_s"], trivial_rps),
        "webhooks_p99_ack_ms": round(wh["p99_ms"], 1) if wh else None,
        "achieved_300cps_pct": d300["achieved_pct"] if d300 else None,
        "max_in_any_1s_300cps": d300["max_in_any_1s"] if d300 else None,
        "max_in_any_100ms_300cps": d300["max_in_any_100ms"] if d300 else None,
    }


if __name__ == "__main__":
    main()
