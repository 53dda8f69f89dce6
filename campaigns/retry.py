"""Retry policy: whether and when a contact is called again after an attempt's outcome."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns import outcomes as o

_DELAY_KEYS = {
    o.BUSY: "retry_busy_secs",
    o.NO_ANSWER: "retry_no_answer_secs",
    o.MACHINE: "retry_machine_secs",
    o.SILENCE: "retry_silence_secs",
    o.FAILED: "retry_failed_secs",
    o.REJECTED: "retry_rejected_secs",
}


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    at: datetime | None
    reason: str


def decide(settings: Mapping[str, Any], outcome: str, *, voicemail_left: bool,
           attempts_made: int, previous_outcomes: Sequence[str], now: datetime,
           rng: random.Random | None = None, script_incomplete: bool = False) -> RetryDecision:
    """Decide the retry of a contact whose latest attempt ended with `outcome`.

    `previous_outcomes` are the outcomes of the contact's earlier attempts (not this one).
    `script_incomplete`: a person answered and the call script did not reach its end (hung up,
    no input): retried only with `retry_incomplete` (off by default: a person who hangs up on a
    script has usually answered all they mean to).
    The calling window and per-number caps are applied by the scheduler when the time comes.
    """
    if script_incomplete and outcome not in _DELAY_KEYS:
        if not settings.get("retry_incomplete"):
            return RetryDecision(False, None, "script not completed (retry_incomplete off)")
        if attempts_made >= settings["max_attempts"]:
            return RetryDecision(False, None, "max attempts reached")
        jitter = float(settings.get("retry_jitter_secs", 0) or 0)
        extra = (rng or random).uniform(0, jitter) if jitter > 0 else 0.0
        delay = float(settings.get("retry_incomplete_secs", 3600)) + extra
        return RetryDecision(True, now + timedelta(seconds=delay), "retry unfinished script")
    if outcome not in settings["retry_on"] or outcome not in _DELAY_KEYS:
        return RetryDecision(False, None, f"{outcome} is final")
    if outcome == o.MACHINE and voicemail_left:
        return RetryDecision(False, None, "voicemail left")
    if outcome == o.REJECTED and o.REJECTED in previous_outcomes:
        return RetryDecision(False, None, "rejected twice")
    if attempts_made >= settings["max_attempts"]:
        return RetryDecision(False, None, "max attempts reached")
    jitter = float(settings.get("retry_jitter_secs", 0) or 0)
    extra = (rng or random).uniform(0, jitter) if jitter > 0 else 0.0
    delay = float(settings[_DELAY_KEYS[outcome]]) + extra
    return RetryDecision(True, now + timedelta(seconds=delay), f"retry {outcome}")
