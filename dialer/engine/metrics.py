"""Prometheus metrics of one engine (own registry, so several engines can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.dials_sent = Counter("dialer_dials_sent", "Dial requests sent", registry=r)
        self.dials_ok = Counter("dialer_dials_accepted", "Dials Telnyx accepted", registry=r)
        self.slots_missed = Counter("dialer_dial_slots_missed",
                                    "Dial slots given up because the dial could not start in "
                                    "time", registry=r)
        self.dnc_rechecks = Counter("dialer_dnc_rechecks",
                                    "Queries checking queued dials against the DNC list",
                                    registry=r)
        self.dnc_blocked = Counter("dialer_dials_dnc_blocked",
                                   "Claimed dials not sent: the number went on the DNC list",
                                   registry=r)
        self.rate_limited = Counter("dialer_dials_rate_limited", "Dials answered 429",
                                    registry=r)
        self.dial_errors = Counter("dialer_dial_errors", "Dials refused or failed", ["kind"],
                                   registry=r)
        self.in_flight = Gauge("dialer_calls_in_flight", "Attempts holding a channel",
                               registry=r)
        self.outcomes = Counter("dialer_attempts_settled", "Attempts settled, by outcome",
                                ["outcome"], registry=r)
        self.webhooks = Counter("dialer_webhooks_received", "Webhooks by result", ["result"],
                                registry=r)
        self.first_words = Histogram(
            "dialer_first_words_seconds",
            "From a person's verdict (AMD result, or the answer without AMD) to the first "
            "command for them being sent",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0), registry=r)
        self.webhook_latency = Histogram(
            "dialer_webhook_ack_seconds", "Time from request to acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=r)
