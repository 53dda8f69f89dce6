"""`dialer demo`: the whole product on embedded defaults, with no account and no setup.

A fresh SQLite database, the built-in simulator at high speed, `sample_data/contacts.csv`
imported into a campaign made from `sample_data/campaign.toml` (AMD on, voicemail drop on
machines, retries on), the engine running until the campaign completes with a live progress
display, then the summary and the CSV and HTML reports.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.live import Live

from campaigns.db.migrate import upgrade
from campaigns.progress import progress
from campaigns.reports import summary, write_report
from campaigns.service import mark_dry_run
from dialer import aio
from dialer.cli.common import err, transaction
from dialer.cli.report_cmd import print_summary
from dialer.cli.run_cmd import engine_takes_clock
from dialer.cli.status_cmd import render
from dialer.engine.clock import SimulatedClock
from dialer.engine.runner import Engine, EngineConfig
from dialer.errors import DialerError
from dialer.telnyx.signatures import generate_keypair, public_key_from_private

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
NAME = "demo"

#: Demo overrides of the sample campaign: call at any hour (the demo runs whenever you do), and
#: retry after seconds instead of hours so that retries happen while you watch.
DEMO_FLAGS = [
    "--calling-hours", "00:00-24:00", "--calling-days", "mon-sun",
    "--cps", "30", "--max-concurrent", "40", "--voicemail-wait-secs", "8",
    "--retry-busy-secs", "2", "--retry-no-answer-secs", "3", "--retry-machine-secs", "3",
    "--retry-silence-secs", "3", "--retry-failed-secs", "2", "--retry-rejected-secs", "3",
    "--retry-jitter-secs", "1",
]


@click.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo database and reports [default: a new temp folder].")
@click.option("--contacts", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=SAMPLE_DIR / "contacts.csv", show_default=True, help="Contact list.")
@click.option("--speed", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="How much faster than real time simulated calls run.")
@click.option("--seed", type=int, default=7, show_default=True, help="Simulator seed.")
def demo(workdir: Path | None, contacts: Path, speed: float, seed: int) -> None:
    """Run a whole campaign against the built-in simulator and write its reports."""
    from dialer.cli.main import main

    workdir = workdir or Path(tempfile.mkdtemp(prefix="dialer-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db_path}"
    err.print(f"[bold]dialer demo[/bold]: database {db_path}")
    upgrade(url)
    steps = [
        ["dnc", "import", str(SAMPLE_DIR / "dnc.csv")],
        ["campaign", "create", NAME, "--config", str(SAMPLE_DIR / "campaign.toml"), *DEMO_FLAGS],
        ["contacts", "import", NAME, str(contacts), "--rejects", str(workdir / "rejects.csv")],
        ["campaign", "start", NAME],
    ]
    for step in steps:
        err.print(f"$ dialer {' '.join(step)}", highlight=False)
        code = main(["--database-url", url, *step])
        if code != 0:
            raise DialerError(f"demo step `dialer {' '.join(step)}` failed (exit {code})")
    started = time.monotonic()
    aio.run(_run(url, speed, seed))
    err.print(f"\ncampaign finished in {time.monotonic() - started:.1f} s")
    s = asyncio.run(summary(url, NAME))
    print_summary(s)
    csv_path, html_path = workdir / "demo-contacts.csv", workdir / "demo-report.html"
    asyncio.run(write_report(url, NAME, csv_path, "csv"))
    asyncio.run(write_report(url, NAME, html_path, "html"))
    err.print(f"reports: {csv_path}\n         {html_path}\n"
              f"explore: dialer --database-url {url} campaign show {NAME}", highlight=False)


async def _run(url: str, speed: float, seed: int) -> None:
    logging.getLogger("dialer").setLevel(logging.WARNING)
    if engine_takes_clock():
        await _run_in_simulated_time(url, speed, seed)
        return
    # The simulator runs as its own process, as Telnyx would be: the engine keeps a core.
    private_key, _ = generate_keypair()
    port = _free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli.main", "simulator", "--host", "127.0.0.1",
         "--port", str(port), "--private-key", private_key, "--cps-limit", "30",
         "--channels", "40", "--speed", str(speed), "--seed", str(seed)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await _wait_for_port(port, sim)
        engine = Engine(EngineConfig(
            database_url=url, api_url=f"http://127.0.0.1:{port}/v2", api_key="demo",
            public_key=public_key_from_private(private_key), port=0, cps=30, max_concurrent=40,
            time_scale=speed, exit_when_idle=True, seed=seed))
        await engine.start()
        try:
            await _watch(url)
        finally:
            await engine.shutdown()
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()


async def _run_in_simulated_time(url: str, speed: float, seed: int) -> None:
    """As `dialer run --simulate`: the simulator in-process, sharing the engine's simulated
    clock (times stored are simulated, the campaign is marked as a dry run)."""
    from dialer.simulator import Simulator, SimulatorConfig

    clock = SimulatedClock(speed)
    sim = Simulator(SimulatorConfig(cps_limit=30, channels=40, speed=speed, seed=seed),
                    time_source=clock.timestamp)
    await sim.start()
    try:
        async with transaction(url) as s:
            await mark_dry_run(s)
        extra: dict[str, Any] = {"clock": clock}
        engine = Engine(EngineConfig(
            database_url=url, api_url=sim.api_url, api_key="demo", public_key=sim.public_key_b64,
            port=0, cps=30, max_concurrent=40, time_scale=speed, exit_when_idle=True, seed=seed,
            **extra))
        await engine.start()
        try:
            await _watch(url)
        finally:
            await engine.shutdown()
    finally:
        await sim.stop()


async def _watch(url: str) -> None:
    async with transaction(url) as s:
        p = await progress(s, NAME)
    with Live(render(p), console=err, refresh_per_second=4, transient=False) as live:
        while True:
            async with transaction(url) as s:
                p = await progress(s, NAME)
            live.update(render(p))
            if p.status in ("completed", "cancelled"):
                return
            await asyncio.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise DialerError("the demo's simulator did not start")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise DialerError("the demo's simulator did not start listening")
