"""The engine's settings (`dialer run` flags) and what they build: the webhook verifier."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dialer.engine.clock import Clock, RealClock
from dialer.engine.slots import SPREAD_SECS
from dialer.engine.webhook_workers import WebhookWorkers, WorkerSettings
from dialer.errors import ConfigurationError
from dialer.telnyx.signatures import WebhookVerifier

log = logging.getLogger("dialer.engine")


@dataclass
class EngineConfig:
    database_url: str
    api_url: str
    api_key: str
    public_key: str | None
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    cps: float = 30.0
    max_concurrent: int = 10
    per_number_cap: int = 3
    #: How often the scheduler claims (each tick is a transaction; it claims for 3 ticks ahead).
    #: Calls that end wake it earlier when a campaign was short of channels.
    tick_secs: float = 0.25
    time_scale: float = 1.0
    insecure_webhooks: bool = False
    #: Stop by itself once no campaign is running or paused and nothing is in flight (demo, tests).
    exit_when_idle: bool = False
    seed: int | None = None
    #: Telnyx retries a webhook it could not deliver (engine down, database down: 503). A call
    #: that Telnyx says is over is only declared to have lost its webhooks once it ended this
    #: long ago AND the receiver has been storing events for this long. Wall-clock (not scaled).
    webhook_grace_secs: float = 15.0
    #: Receiver processes besides the engine's own (PostgreSQL only): they verify, store and
    #: acknowledge webhooks on `webhook_port`; the engine processes what they store.
    webhook_workers: int = 0
    #: The workers' port; None: `port` + 1 (any free port when `port` is 0).
    webhook_port: int | None = None
    #: Where the engine reads the time: real time, or a dry run's simulated clock (every time
    #: it stores and every wait it measures then passes at the simulator's speed).
    clock: Clock = field(default_factory=RealClock)
    #: How far dials may stray from their slots by the time they arrive (send tolerance, network
    #: and host jitter): the 1 s windows of every limit absorb it (dialer.engine.slots).
    pacing_margin_secs: float = SPREAD_SECS


def webhook_verifier(config: EngineConfig) -> WebhookVerifier | None:
    if config.insecure_webhooks:
        log.warning("INSECURE: webhook signatures are NOT verified (--insecure-webhooks); "
                    "anyone who can reach %s:%s can forge call results", config.host, config.port)
        return None
    if not config.public_key:
        raise ConfigurationError(
            "TELNYX_PUBLIC_KEY is not set: webhooks cannot be verified (set it, or run "
            "with --insecure-webhooks on a trusted network only)")
    try:
        return WebhookVerifier(config.public_key)
    except ValueError:
        raise ConfigurationError("TELNYX_PUBLIC_KEY is not a base64 Ed25519 public key") from None


def webhook_workers_for(config: EngineConfig, *, postgres: bool, on_stored: Callable[[bool], None],
                        on_report: Callable[[dict[str, Any]], None],
                        on_lost: Callable[[], None]) -> WebhookWorkers | None:
    """The webhook worker processes `config` asks for (None for none), its settings checked."""
    if not config.webhook_workers:
        return None
    if not postgres:
        raise ConfigurationError("--webhook-workers needs PostgreSQL (SQLite has one "
                                 "writer: extra processes would only wait for it)")
    port = config.webhook_port
    if port is None:
        port = config.port + 1 if config.port else 0
    if port > 65535 or (port and port == config.port):
        raise ConfigurationError(f"--webhook-port {port}: must differ from --port and "
                                 "be at most 65535")
    return WebhookWorkers(
        config.webhook_workers,
        WorkerSettings(config.database_url, config.host, port, config.public_key,
                       config.insecure_webhooks),
        on_stored=on_stored, on_report=on_report, on_lost=on_lost)
