"""Pure rules: calling windows, outcome mapping, retry policy, settings validation."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from campaigns import outcomes as o
from campaigns.errors import InvalidSettings
from campaigns.retry import decide
from campaigns.settings import split_and_validate, with_defaults
from campaigns.windows import CallingWindow, WindowError, parse_days

UTC = timezone.utc


def test_parse_days() -> None:
    assert parse_days("mon-sat") == frozenset(range(6))
    assert parse_days("mon,wed,fri") == frozenset({0, 2, 4})
    assert parse_days("sat-mon") == frozenset({5, 6, 0})
    with pytest.raises(WindowError):
        parse_days("funday")


def test_window_all_zones_must_be_open() -> None:
    w = CallingWindow.parse("09:00-20:00", "mon-sun")
    # 2026-11-26 14:00 UTC: 09:00 in New York, 04:00 in Honolulu.
    t = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    assert w.is_open(t, ["America/New_York"])
    assert not w.is_open(t, ["America/New_York", "Pacific/Honolulu"])
    nxt = w.next_opening(t, ["America/New_York", "Pacific/Honolulu"])
    assert nxt == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)  # 09:00 in Honolulu
    assert w.is_open(nxt, ["America/New_York", "Pacific/Honolulu"])


def test_window_end_exclusive_and_all_day() -> None:
    w = CallingWindow.parse("09:00-20:00", "mon-sun")
    ny = ["America/New_York"]
    assert not w.is_open(datetime(2026, 11, 27, 1, 0, tzinfo=UTC), ny)  # 20:00 local
    assert CallingWindow.parse("00:00-24:00", "mon-sun").is_open(
        datetime(2026, 11, 27, 4, 59, tzinfo=UTC), ny)


def test_window_skips_closed_days() -> None:
    w = CallingWindow.parse("09:00-17:00", "mon-fri")
    sat = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert w.next_opening(sat, ["America/New_York"]) == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def test_window_zones_that_never_overlap() -> None:
    w = CallingWindow.parse("09:00-10:00", "mon-sun")
    assert w.next_opening(datetime(2026, 11, 26, tzinfo=UTC),
                          ["America/New_York", "Asia/Tokyo"]) is None


@pytest.mark.parametrize("facts, expected", [
    (o.CallFacts(answered=True), o.HUMAN),
    (o.CallFacts(answered=True, amd_result="human_business"), o.HUMAN),
    (o.CallFacts(answered=True, amd_result="machine"), o.MACHINE),
    (o.CallFacts(answered=True, greeting_result="beep_detected"), o.MACHINE),
    (o.CallFacts(answered=True, amd_result="fax_detected"), o.FAX),
    (o.CallFacts(answered=True, amd_result="silence"), o.SILENCE),
    (o.CallFacts(answered=True, amd_result="not_sure"), o.SILENCE),
    (o.CallFacts(hangup_cause="user_busy", sip_hangup_cause="486"), o.BUSY),
    (o.CallFacts(hangup_cause="timeout"), o.NO_ANSWER),
    (o.CallFacts(hangup_cause="no_answer"), o.NO_ANSWER),
    (o.CallFacts(hangup_cause="call_rejected", sip_hangup_cause="603"), o.REJECTED),
    (o.CallFacts(hangup_cause="not_found", sip_hangup_cause="404"), o.INVALID_NUMBER),
    (o.CallFacts(hangup_cause="unspecified", sip_hangup_cause="403"), o.FAILED),
    (o.CallFacts(hangup_cause="unspecified"), o.FAILED),
])
def test_classify(facts: o.CallFacts, expected: str) -> None:
    assert o.classify(facts) == expected


def test_was_answered_from_hangup_alone() -> None:
    assert o.was_answered(False, "normal_clearing", "200", None)
    assert not o.was_answered(False, "user_busy", "486", None)
    assert o.was_answered(False, "originator_cancel", None, "human")


def _policy(**kw: object) -> dict:
    return with_defaults({"retry_jitter_secs": 0, **kw})


def test_retry_delays_and_caps() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    p = _policy()
    d = decide(p, o.BUSY, voicemail_left=False, attempts_made=1, previous_outcomes=[], now=now)
    assert d.retry and d.at == now + timedelta(seconds=300)
    d = decide(p, o.NO_ANSWER, voicemail_left=False, attempts_made=3, previous_outcomes=[],
               now=now)
    assert not d.retry
    assert not decide(p, o.HUMAN, voicemail_left=False, attempts_made=1, previous_outcomes=[],
                      now=now).retry
    assert not decide(p, o.MACHINE, voicemail_left=True, attempts_made=1, previous_outcomes=[],
                      now=now).retry
    assert decide(p, o.REJECTED, voicemail_left=False, attempts_made=1, previous_outcomes=[],
                  now=now).retry
    assert not decide(p, o.REJECTED, voicemail_left=False, attempts_made=2,
                      previous_outcomes=[o.REJECTED], now=now).retry
    assert not decide(p, o.INVALID_NUMBER, voicemail_left=False, attempts_made=1,
                      previous_outcomes=[], now=now).retry


def test_retry_jitter_bounded() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    p = _policy(retry_jitter_secs=60)
    rng = random.Random(1)
    for _ in range(50):
        d = decide(p, o.BUSY, voicemail_left=False, attempts_made=1, previous_outcomes=[],
                   now=now, rng=rng)
        assert d.at is not None and 300 <= (d.at - now).total_seconds() <= 360


def test_settings_unknown_key_suggests() -> None:
    with pytest.raises(InvalidSettings, match="did you mean 'timeout_secs'"):
        split_and_validate({"from": "+14155550100", "connection_id": "1", "timeout_sec": 30})


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast
