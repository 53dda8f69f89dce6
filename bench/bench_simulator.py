"""Benchmark of the Telnyx simulator: dials/s it accepts and webhooks/s it delivers.

Three processes, as in real use: the simulator (`dialer simulator`, limits raised), a trivial
webhook receiver, and this script as the load generator. Prints the figures; record them in
docs/benchmarks.md ("Simulator").

    .venv/bin/python bench/bench_simulator.py [--dials 10000] [--calls 3000] [--concurrency 32]
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
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]

RECEIVER = r"""
import sys
from aiohttp import web

async def hook(request):
    await request.read()
    return web.Response(text="ok")

app = web.Application()
app.router.add_post("/webhooks", hook)

web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)], text=True)
    return proc, f"http://127.0.0.1:{port}/webhooks"


def start_simulator(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from dialer.cli.simulator_cmd import simulator; simulator()",
         "--port", "0", "--cps-limit", "1000000", "--channels", "1000000", *args],
        cwd=REPO, env=env, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "API URL" in line:
            return proc, line.rsplit(" ", 1)[-1].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("the simulator did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def wait_up(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        try:
            async with session.post(url, data=b"{}") as resp:
                await resp.read()
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def dial_load(api_url: str, total: int, concurrency: int) -> dict[str, Any]:
    """Send `total` dials with `concurrency` in flight; return throughput and latencies."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for i in counter:
                body = json.dumps({"connection_id": "bench", "from": "+15550000000",
                                   "to": f"+1555{i:07d}", "command_id": f"bench-{i}",
                                   "client_state": "YmVuY2g=",
                                   "answering_machine_detection": "premium"}).encode()
                started = time.perf_counter()
                async with session.post(api_url + "/calls", data=body) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "dials": total,
        "seconds": elapsed,
        "dials_per_sec": total / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "statuses": statuses,
    }


async def stats(base_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, \
            session.get(base_url + "/_simulator/stats") as resp:
        data: dict[str, Any] = (await resp.json())["data"]
        return data


async def bench_dials(total: int, concurrency: int) -> dict[str, Any]:
    """Dial acceptance alone: no webhook URL (events are generated and recorded, not sent)."""
    proc, api_url = start_simulator("--speed", "1")
    try:
        return await dial_load(api_url, total, concurrency)
    finally:
        stop(proc)


async def bench_webhooks(calls: int, concurrency: int, speed: float) -> dict[str, Any]:
    """Calls at high speed with every webhook delivered to a receiver in another process."""
    receiver, hook_url = start_receiver()
    try:
        async with aiohttp.ClientSession() as session:
            await wait_up(session, hook_url)
        proc, api_url = start_simulator("--speed", str(speed), "--webhook-url", hook_url)
        base = api_url.removesuffix("/v2")
        try:
            started = time.perf_counter()
            dials = await dial_load(api_url, calls, concurrency)
            while True:
                s = await stats(base)
                done = s["live_calls"] == 0 and s["webhooks_in_flight_calls"] == 0
                if done or time.perf_counter() - started > 600:
                    break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            return {
                "calls": calls,
                "dial_phase_secs": dials["seconds"],
                "total_secs": elapsed,
                "webhooks_generated": s["webhooks_generated"],
                "webhooks_sent": s["webhooks_sent"],
                "failures": s["webhook_delivery_failures"],
                "webhooks_per_sec": s["webhooks_sent"] / elapsed,
            }
        finally:
            stop(proc)
    finally:
        stop(receiver)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dials", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--speed", type=float, default=500.0)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    d = asyncio.run(bench_dials(args.dials, args.concurrency))
    print(f"dials accepted: {d['dials_per_sec']:.0f} dials/s ({d['dials']} dials in "
          f"{d['seconds']:.2f} s, {args.concurrency} in flight; latency p50 {d['p50_ms']:.1f} ms, "
          f"p99 {d['p99_ms']:.1f} ms; statuses {d['statuses']})")
    w = asyncio.run(bench_webhooks(args.calls, args.concurrency, args.speed))
    print(f"webhooks delivered: {w['webhooks_per_sec']:.0f} webhooks/s ({w['webhooks_sent']} of "
          f"{w['webhooks_generated']} webhooks for {w['calls']} calls at speed {args.speed:g}, "
          f"all delivered {w['total_secs']:.2f} s after the first dial; dialing took "
          f"{w['dial_phase_secs']:.2f} s; {w['failures']} failed attempts)")


if __name__ == "__main__":
    main()
