"""`dialer simulator`: run the Telnyx-compatible simulator until Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import click

from campaigns.output_paths import write_text_file
from dialer import aio, short_gc
from dialer.simulator.config import (
    FaultConfig,
    SimulatorConfig,
    load_keypad_file,
    load_scenarios_file,
)
from dialer.simulator.server import Simulator

DEFAULT_PORT = 8900

_PROBABILITY = click.FloatRange(0.0, 1.0)
_SECONDS = click.FloatRange(min=0.0)


def _fault_option(name: str, help: str) -> Any:
    return click.option(f"--fault-{name}", name.replace("-", "_"), type=_PROBABILITY,
                        default=0.0, show_default=True, help=f"Probability 0..1: {help}")


@click.command("simulator", context_settings={"max_content_width": 100})
@click.option("--host", envvar="DIALER_SIMULATOR_HOST", show_envvar=True, default="127.0.0.1",
              show_default=True, help="Interface to listen on.")
@click.option("--port", envvar="DIALER_SIMULATOR_PORT", show_envvar=True,
              type=click.IntRange(0, 65535),
              default=DEFAULT_PORT, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--api-key", envvar="DIALER_SIMULATOR_API_KEY", show_envvar=True,
              help="Require this Bearer API key (default: any Bearer token is accepted).")
@click.option("--public-key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the webhook public key (base64) to this file.")
@click.option("--private-key", envvar="DIALER_SIMULATOR_PRIVATE_KEY", show_envvar=True,
              help="Base64 Ed25519 private seed that signs webhooks, for a fixed key pair "
                   "(default: a new pair each start).")
@click.option("--cps-limit", type=click.IntRange(min=1), default=30, show_default=True,
              help="Dials per second of the account (over it: 429, code 90103).")
@click.option("--cps-window-secs", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Rolling window over which dials per second are counted.")
@click.option("--channels", type=click.IntRange(min=0), default=10, show_default=True,
              help="Concurrent calls; a dial over it fails with SIP 403.")
@click.option("--speed", envvar="DIALER_SIMULATOR_SPEED", show_envvar=True,
              type=click.FloatRange(min=0.0, min_open=True), default=1.0, show_default=True,
              help="Call time runs this many times faster than real time.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Scenario seed: the same seed replays the same calls.")
@click.option("--scenarios", "scenarios_file", envvar="DIALER_SIMULATOR_SCENARIOS",
              show_envvar=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML/JSON file with a [mix] table (scenario = weight) and a [numbers] table "
                   "(\"+E164\" = scenario).")
@click.option("--webhook-url", envvar="DIALER_SIMULATOR_WEBHOOK_URL", show_envvar=True,
              help="Where webhooks go when a dial has no webhook_url.")
@click.option("--webhook-max-attempts", type=click.IntRange(min=1), default=20, show_default=True,
              help="Deliveries tried per webhook before giving up.")
@click.option("--webhook-retry-secs", type=_SECONDS, default=0.5, show_default=True,
              help="First retry delay; doubles each retry up to --webhook-retry-max-secs.")
@click.option("--webhook-retry-max-secs", type=_SECONDS, default=10.0, show_default=True,
              help="Longest delay between two deliveries of one webhook.")
@_fault_option("duplicate", "deliver a webhook twice (same event id).")
@_fault_option("reorder", "deliver a webhook after the next event of its call (or after "
               "--fault-reorder-hold-secs).")
@click.option("--fault-reorder-hold-secs", "reorder_hold_secs", type=_SECONDS, default=0.5,
              show_default=True, help="Longest a reordered webhook waits for its call's next "
              "event.")
@_fault_option("delay", "hold a webhook back --fault-delay-secs before delivery.")
@click.option("--fault-delay-secs", "delay_secs", type=_SECONDS, default=2.0, show_default=True,
              help="How long a delayed webhook waits.")
@_fault_option("drop", "never deliver a webhook.")
@_fault_option("dial-5xx", "answer a dial with 500 and place no call.")
@_fault_option("dial-5xx-after-place", "place the call but answer the dial with 500.")
@_fault_option("dial-slow", "answer a dial only after --fault-dial-slow-secs.")
@click.option("--fault-dial-slow-secs", "dial_slow_secs", type=_SECONDS, default=2.0,
              show_default=True, help="How long a slow dial answer takes.")
def simulator(
    host: str,
    port: int,
    api_key: str | None,
    public_key_file: Path | None,
    private_key: str | None,
    cps_limit: int,
    cps_window_secs: float,
    channels: int,
    speed: float,
    seed: int,
    scenarios_file: Path | None,
    webhook_url: str | None,
    webhook_max_attempts: int,
    webhook_retry_secs: float,
    webhook_retry_max_secs: float,
    **faults: float,
) -> None:
    """A Telnyx-compatible Call Control server for dry runs and load tests.

    Point the dialer (or the official telnyx SDK) at the printed API URL, and verify webhooks with
    the printed public key. Runs until Ctrl-C or SIGTERM; the ledger of calls is at
    GET /_simulator/calls, counters at GET /_simulator/stats, and faults change at run time with
    POST /_simulator/faults.
    """
    kwargs: dict[str, Any] = {}
    if scenarios_file is not None:
        try:
            kwargs["mix"], kwargs["pinned"] = load_scenarios_file(scenarios_file)
            kwargs.update(load_keypad_file(scenarios_file))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--scenarios") from None
    try:
        config = SimulatorConfig(
            host=host, port=port, api_key=api_key or None, private_key_b64=private_key or None,
            cps_limit=cps_limit, cps_window_secs=cps_window_secs, channels=channels, speed=speed,
            seed=seed, default_webhook_url=webhook_url or None,
            webhook_max_attempts=webhook_max_attempts, webhook_retry_secs=webhook_retry_secs,
            webhook_retry_max_secs=webhook_retry_max_secs,
            faults=FaultConfig(**faults), **kwargs,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if private_key:
        from dialer.telnyx.signatures import public_key_from_private

        try:
            public_key_from_private(private_key)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--private-key") from None
    aio.run(_serve(config, public_key_file))


async def _serve(config: SimulatorConfig, public_key_file: Path | None) -> None:
    sim = Simulator(config)
    try:
        await sim.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc} "
            "(choose another --port, or 0 for any free port)"
        ) from None
    try:
        if public_key_file is not None:
            try:
                write_text_file(public_key_file, sim.public_key_b64 + "\n", "the public key")
            except OSError as exc:
                raise click.ClickException(
                    f"cannot write {public_key_file}: {exc.strerror or exc}"
                ) from None
        def echo(text: str) -> None:
            click.echo(text, err=True)

        echo(f"Telnyx simulator listening: API URL {sim.api_url}")
        echo(f"Webhook public key: {sim.public_key_b64}")
        echo(f"  export TELNYX_API_URL={sim.api_url} TELNYX_PUBLIC_KEY={sim.public_key_b64}")
        echo(f"Speed x{config.speed:g}, {config.cps_limit} dials/s over "
             f"{config.cps_window_secs:g} s, {config.channels} channels, seed {config.seed}. "
             "Ctrl-C to stop.")
        # Arrival stamps are the ledger's dial times: no long collector pauses to bunch them
        # (a full collection once an hour: a simulator's runs are tests and benchmarks).
        short_gc.settle()
        quiet_gc = asyncio.create_task(short_gc.keep_pauses_short(full_every=3600.0))
        await _until_signalled()
        quiet_gc.cancel()
    finally:
        await sim.stop()
    stats = sim.stats()
    click.echo(
        f"Stopped. {stats['calls_placed']} calls placed, {stats['rejected_429']} dials got 429, "
        f"{stats['webhooks_sent']} webhooks delivered, "
        f"{stats['webhook_delivery_failures']} failed deliveries.",
        err=True,
    )


async def _until_signalled() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
