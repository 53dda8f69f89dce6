"""`dialer run`: the engine (pacer + webhook receiver), optionally with the simulator in-process."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from campaigns.service import mark_dry_run
from dialer import aio
from dialer.cli.common import app_context, err, transaction
from dialer.cli.common import run as run_async
from dialer.config import (
    DEFAULT_API_URL,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ENV_API_KEY,
    ENV_API_URL,
    ENV_HOST,
    ENV_PORT,
    ENV_PUBLIC_KEY,
    ENV_PUBLIC_URL,
)
from dialer.engine.clock import Clock, RealClock, SimulatedClock
from dialer.engine.runner import Engine, EngineConfig, run_engine
from dialer.engine.single_writer import single_writer
from dialer.engine.slots import SPREAD_SECS
from dialer.errors import ConfigurationError, EngineCrashed

log = logging.getLogger("dialer.run")


def engine_options(fn: Any) -> Any:
    opts = [
        click.option("--host", envvar=ENV_HOST, show_envvar=True, default=DEFAULT_HOST,
                     show_default=True, help="Address the webhook receiver listens on."),
        click.option("--port", envvar=ENV_PORT, show_envvar=True, type=int, default=DEFAULT_PORT,
                     show_default=True, help="Port of the webhook receiver (0: any free port)."),
        click.option("--public-url", envvar=ENV_PUBLIC_URL, show_envvar=True,
                     help="Public base URL of the receiver; dials send webhooks to "
                          "{public-url}/webhooks/telnyx [default: http://HOST:PORT]"),
        click.option("--api-url", envvar=ENV_API_URL, show_envvar=True, default=DEFAULT_API_URL,
                     show_default=True, help="Telnyx API base URL."),
        click.option("--api-key", envvar=ENV_API_KEY, show_envvar=True, show_default=False,
                     help="Telnyx API key (secret; prefer the environment variable)."),
        click.option("--public-key", envvar=ENV_PUBLIC_KEY, show_envvar=True,
                     help="Base64 Ed25519 public key that verifies webhooks."),
        click.option("--cps", envvar="DIALER_CPS", show_envvar=True, type=click.FloatRange(0.1),
                     default=30.0, show_default=True,
                     help="Account dials per second, shared by all campaigns and engines."),
        click.option("--max-concurrent", envvar="DIALER_MAX_CONCURRENT", show_envvar=True,
                     type=click.IntRange(1), default=10, show_default=True,
                     help="Account channel limit: calls in flight at once."),
        click.option("--pacing-margin-ms", envvar="DIALER_PACING_MARGIN_MS", show_envvar=True,
                     type=click.FloatRange(0, 500), default=SPREAD_SECS * 1000,
                     show_default=True,
                     help="How far dials may stray from their slots by the time Telnyx counts "
                          "them (host and network jitter): every 1 s window absorbs it."),
        click.option("--per-number-cap", envvar="DIALER_PER_NUMBER_CAP", show_envvar=True,
                     type=click.IntRange(1), default=3, show_default=True,
                     help="Calls to one number in any rolling 24 h, across all campaigns."),
        click.option("--insecure-webhooks", is_flag=True,
                     help="Accept unsigned webhooks (trusted networks only; logged loudly)."),
        click.option("--exit-when-idle", is_flag=True,
                     help="Stop once no campaign is running or paused and nothing is in flight."),
        click.option("--webhook-workers", envvar="DIALER_WEBHOOK_WORKERS", show_envvar=True,
                     type=click.IntRange(0, 64), default=0, show_default=True,
                     help="Extra processes that verify, store and acknowledge webhooks "
                          "(PostgreSQL only; for more webhooks/s than one process takes)."),
        click.option("--webhook-port", envvar="DIALER_WEBHOOK_PORT", show_envvar=True,
                     type=click.IntRange(0, 65535),
                     help="Port the webhook workers share; dials send webhooks there unless "
                          "--public-url is set [default: PORT+1]"),
        click.option("--time-scale", envvar="DIALER_TIME_SCALE", show_envvar=True,
                     type=click.FloatRange(min=0.01), default=1.0, show_default=True,
                     help="Divide the engine's call timers (reconciliation, settling, voicemail "
                          "wait) by this: match a Telnyx simulator's --speed. 1 for real traffic."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.command()
@engine_options
@click.option("--simulate", is_flag=True,
              help="Start the Telnyx simulator in-process and dial it (no account needed).")
@click.option("--speed", type=click.FloatRange(min=0.01), default=20.0, show_default=True,
              help="With --simulate: how much faster than real time simulated calls run.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="With --simulate: the seed of the simulated call scenarios.")
@click.option("--rules", "rules_file", envvar="DIALER_RULES_FILE", show_envvar=True,
              type=click.Path(path_type=Path), metavar="FILE",
              help="Compliance rules file replacing the shipped one (campaigns with their own "
                   "rules_file keep it); a malformed file is refused before the engine starts.")
@click.option("--skip-idle/--no-skip-idle", default=True, show_default=True,
              help="With --simulate: when nothing is in flight, jump the simulated clock to the "
                   "next due contact (retries hours apart take no wall time).")
def run(host: str, port: int, public_url: str | None, api_url: str, api_key: str | None,
        public_key: str | None, cps: float, max_concurrent: int, pacing_margin_ms: float,
        per_number_cap: int,
        insecure_webhooks: bool, exit_when_idle: bool, webhook_workers: int,
        webhook_port: int | None, time_scale: float, simulate: bool, speed: float,
        seed: int, rules_file: Path | None, skip_idle: bool) -> None:
    """Run the engine: dial running campaigns and process their webhooks until stopped.

    With --simulate (a dry run) the engine's clock runs at the simulator's --speed: retry
    delays, voicemail waits, calling windows and per-number caps all pass in simulated time,
    which is what the database and the reports record."""
    from campaigns.compliance.store import set_rules_override

    set_rules_override(rules_file)
    clock = make_clock(simulate, speed, skip_idle)
    config = EngineConfig(
        database_url=app_context().database_url, api_url=api_url, api_key=api_key or "",
        public_key=public_key, public_url=public_url, host=host, port=port, cps=cps,
        max_concurrent=max_concurrent, per_number_cap=per_number_cap,
        pacing_margin_secs=pacing_margin_ms / 1000,
        insecure_webhooks=insecure_webhooks, exit_when_idle=exit_when_idle, seed=seed,
        time_scale=time_scale, webhook_workers=webhook_workers, webhook_port=webhook_port,
        clock=clock,
    )
    if not simulate and not api_key:
        raise ConfigurationError("TELNYX_API_KEY is not set (or use --simulate for a dry run)")
    # Before anything starts: a second engine on one SQLite file is refused with one line.
    with single_writer(config.database_url):
        names = run_async(_mark_dry_run(config.database_url)) if simulate else []
        aio.run(_main(config, simulate, speed, seed, clock, names))


def _check(engine: Engine) -> None:
    if engine.crashed:
        raise EngineCrashed(f"the engine stopped: its {engine.crashed} (the log above has the "
                            "details); everything is in the database: run it again")


def make_clock(simulate: bool, speed: float, skip_idle: bool = True) -> Clock:
    """The engine's clock: simulated at `speed` for a dry run, real time otherwise (a real run
    never scales time)."""
    if not simulate:
        return RealClock()
    return SimulatedClock(speed, skip_idle=skip_idle)


async def _main(config: EngineConfig, simulate: bool, speed: float, seed: int,
                clock: Clock, names: list[str]) -> None:
    if not simulate:
        _check(await run_engine(config))
        return
    from dialer.simulator.config import SimulatorConfig
    from dialer.simulator.server import Simulator

    sim = Simulator(SimulatorConfig(cps_limit=max(1, int(config.cps)),
                                    channels=config.max_concurrent, speed=speed, seed=seed),
                    time_source=clock.timestamp if isinstance(clock, SimulatedClock) else None)
    await sim.start()
    try:
        config.api_url = sim.api_url
        config.api_key = config.api_key or "simulated"
        config.public_key = sim.public_key_b64
        what = f"dry run of {', '.join(names)}" if names else "dry run"
        err.print(f"{what}: simulator at {sim.api_url}, speed x{speed:g}, simulated clock; "
                  "engine starting")
        engine = await run_engine(config)
    finally:
        await sim.stop()
    _check(engine)


async def _mark_dry_run(url: str) -> list[str]:
    """Record the dry run on the campaigns it will dial (reports and status say so)."""
    async with transaction(url) as s:
        return await mark_dry_run(s)
