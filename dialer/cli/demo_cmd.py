"""`dialer demo`: the whole product on embedded defaults, with no account and no setup.

A fresh SQLite database, the built-in simulator at high speed, `sample_data/contacts.csv`
imported into a campaign made from `sample_data/campaign.toml` (AMD on, voicemail drop on
machines, retries on) with the short call script of `sample_data/script.toml` for people
(confirm / talk to us / opt out), the engine running until the campaign completes with a live
progress display, then the summary (with the keypad answers) and the CSV and HTML reports.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path

import click
from rich.live import Live

from campaigns.db.migrate import upgrade
from campaigns.progress import progress
from campaigns.reports import summary, write_report
from campaigns.service import mark_dry_run
from dialer import aio
from dialer.cli.common import err, transaction
from dialer.cli.report_cmd import print_summary
from dialer.cli.status_cmd import render
from dialer.engine.clock import SimulatedClock
from dialer.engine.runner import Engine, EngineConfig
from dialer.errors import DialerError

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
NAME = "demo"

#: Demo overrides of the sample campaign: call at any hour (the demo runs whenever you do; the
#: simulated calls are not telemarketing, so no federal or state hours), and
#: retry after seconds instead of hours so that retries happen while you watch.
DEMO_FLAGS = [
    "--calling-hours", "00:00-24:00", "--calling-days", "mon-sun", "--compliance-rules", "off",
    "--cps", "30", "--max-concurrent", "40", "--voicemail-wait-secs", "8",
    "--retry-busy-secs", "2", "--retry-no-answer-secs", "3", "--retry-machine-secs", "3",
    "--retry-silence-secs", "3", "--retry-failed-secs", "2", "--retry-rejected-secs", "3",
    "--retry-jitter-secs", "1",
    "--on-human", "script", "--opt-out-digit", "9", "--transfer-to", "+14155550199",
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
    config = workdir / "demo-campaign.toml"  # the sample campaign with the sample script
    config.write_text((SAMPLE_DIR / "campaign.toml").read_text(encoding="utf-8") + "\n"
                      + (SAMPLE_DIR / "script.toml").read_text(encoding="utf-8"), encoding="utf-8")
    steps = [
        ["dnc", "import", str(SAMPLE_DIR / "dnc.csv")],
        ["campaign", "create", NAME, "--config", str(config), *DEMO_FLAGS],
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
    """As `dialer run --simulate`: the simulator in-process, sharing the engine's simulated
    clock (times stored are simulated, the campaign is marked as a dry run)."""
    from dialer.simulator import Simulator, SimulatorConfig

    logging.getLogger("dialer").setLevel(logging.WARNING)
    clock = SimulatedClock(speed)
    sim = Simulator(SimulatorConfig(cps_limit=30, channels=40, speed=speed, seed=seed),
                    time_source=clock.timestamp)
    await sim.start()
    try:
        async with transaction(url) as s:
            await mark_dry_run(s)
        engine = Engine(EngineConfig(
            database_url=url, api_url=sim.api_url, api_key="demo", public_key=sim.public_key_b64,
            port=0, cps=30, max_concurrent=40, exit_when_idle=True, seed=seed, clock=clock))
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


