"""`decide`: properties across DST changes, zone boundaries and state rules, and the cases the
rules exist for (Florida's hours and cap on a New York number, Rhode Island's Sunday, Pioneer
Day)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.compliance import (
    ALLOWED,
    BLOCKED,
    DEFERRED,
    Blackout,
    CampaignRules,
    ContactFacts,
    RecentCalls,
    decide,
    load_rules,
)
from campaigns.compliance.decide import local_span
from campaigns.compliance.states import candidate_states
from campaigns.windows import CallingWindow

pytestmark = pytest.mark.fast
RULES = load_rules()
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
         "America/Los_Angeles", "Pacific/Honolulu", "America/Anchorage"]
STATES = ["AL", "FL", "RI", "UT", "PA", "TX", "KY", "IN", "NY", "CA", "SD", "MS"]
# DST changes of 2026-2028 (second Sunday of March, first Sunday of November).
DST_DAYS = [date(2026, 3, 8), date(2026, 11, 1), date(2027, 3, 14), date(2027, 11, 7),
            date(2028, 3, 12), date(2028, 11, 5)]

instants = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 2), max_value=datetime(2028, 12, 20),
                 timezones=st.just(UTC)),
    st.builds(lambda d, m: datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(minutes=m),
              st.sampled_from(DST_DAYS), st.integers(-2 * 1440, 2 * 1440)),
)
windows = st.builds(
    lambda s, length, days: CallingWindow.parse(
        f"{s // 60:02d}:{s % 60:02d}-{min(s + length, 1440) // 60:02d}:"
        f"{min(s + length, 1440) % 60:02d}", days),
    st.integers(0, 22 * 60).map(lambda m: m - m % 15), st.integers(60, 1440),
    st.sampled_from(["all", "mon-sat", "mon-fri", "sun", "sat,sun"]))
facts_st = st.builds(
    lambda zones, states: ContactFacts("+12125550001", tuple(zones), tuple(sorted(states))),
    st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True),
    st.lists(st.sampled_from(STATES), max_size=2, unique=True))


def _open_everywhere(at: datetime, facts: ContactFacts, window: CallingWindow) -> bool:
    """The rule restated plainly: every zone's local time inside the campaign window, the federal
    8-21 floor and each state's hours of that weekday, on a day that is no state holiday."""
    for name in facts.zones:
        local = at.astimezone(ZoneInfo(name))
        minute = local.hour * 60 + local.minute
        if not window.is_open_local(local) or not 480 <= minute < 1260:
            return False
        for s in facts.states:
            if local.date() in RULES.holidays.get(s, {}):
                return False
            span = RULES.hours.get(s, {}).get(local.weekday(), (0, 1440))
            if span is None or not span[0] <= minute < span[1]:
                return False
    return True


@settings(max_examples=300, deadline=None)
@given(facts_st, windows, instants)
def test_allowed_exactly_when_every_zone_and_state_allows(facts: ContactFacts,
                                                          window: CallingWindow,
                                                          at: datetime) -> None:
    d = decide(facts, CampaignRules(window, 3), RULES, at, RecentCalls())
    assert (d.verdict == ALLOWED) == _open_everywhere(at, facts, window)
    assert d.verdict in (ALLOWED, DEFERRED, BLOCKED)
    assert [z["zone"] for z in d.record["zones"]] == list(facts.zones)


@settings(max_examples=200, deadline=None)
@given(facts_st, windows, instants)
def test_deferred_until_the_first_open_instant(facts: ContactFacts, window: CallingWindow,
                                               at: datetime) -> None:
    campaign = CampaignRules(window, 3)
    d = decide(facts, campaign, RULES, at, RecentCalls())
    if d.verdict != DEFERRED:
        return
    assert d.until is not None and d.until > at
    assert decide(facts, campaign, RULES, d.until, RecentCalls()).verdict == ALLOWED
    # Nothing opens earlier (probed every 5 minutes between, and the minute before).
    probe = at
    while probe < d.until - timedelta(minutes=1):
        assert not _open_everywhere(probe, facts, window), probe
        probe += timedelta(minutes=5)
    assert not _open_everywhere(d.until - timedelta(minutes=1), facts, window)


def _all_day() -> CampaignRules:
    return CampaignRules(CallingWindow.parse("00:00-24:00", "all"), 5)


def test_florida_contact_with_new_york_number_gets_florida_hours_and_cap() -> None:
    states, sources = candidate_states("FL", None, "+12125550001")
    facts = ContactFacts("+12125550001", ("America/New_York",), states, sources)
    # Wednesday 2026-12-02 20:30 New York: federal allows, Florida (08:00-20:00) does not.
    at = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
    d = decide(facts, _all_day(), RULES, at, RecentCalls())
    assert (d.verdict, d.reason) == (DEFERRED, "window")
    assert d.until == datetime(2026, 12, 3, 13, 0, tzinfo=UTC)  # 08:00 New York
    assert d.record["zones"][0]["window"] == "08:00-20:00"
    # Florida's cap of 3 wins over the engine's 5, counted across caller IDs.
    noon = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
    first = noon - timedelta(hours=5)
    d = decide(facts, _all_day(), RULES, noon, RecentCalls(3, first))
    assert (d.verdict, d.reason) == (DEFERRED, "cap")
    assert d.record["cap"] == {"limit": 3, "by": "FL", "count": 3}
    assert d.until is not None and d.until >= first + timedelta(hours=24)
    assert decide(facts, _all_day(), RULES, noon, RecentCalls(2, first)).verdict == ALLOWED
    # The same number in New York alone: the engine's cap and federal hours.
    ny = ContactFacts("+12125550001", ("America/New_York",), ("NY",))
    assert decide(ny, _all_day(), RULES, at, RecentCalls(3, first)).verdict == ALLOWED


def test_rhode_island_not_on_sunday() -> None:
    facts = ContactFacts("+14015550000", ("America/New_York",), ("RI",))
    sunday_noon = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
    d = decide(facts, _all_day(), RULES, sunday_noon, RecentCalls())
    assert (d.verdict, d.reason) == (DEFERRED, "window")
    assert d.until == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # Monday 09:00
    saturday_1730 = datetime(2026, 12, 5, 22, 30, tzinfo=UTC)
    assert decide(facts, _all_day(), RULES, saturday_1730, RecentCalls()).verdict == DEFERRED


def test_utah_not_on_pioneer_day() -> None:
    facts = ContactFacts("+18015550000", ("America/Denver",), ("UT",))
    pioneer_noon = datetime(2026, 7, 24, 18, 0, tzinfo=UTC)
    d = decide(facts, _all_day(), RULES, pioneer_noon, RecentCalls())
    assert (d.verdict, d.reason) == (DEFERRED, "holiday")
    assert d.record["zones"][0]["closed_by"] == "UT: Pioneer Day"
    assert d.until == datetime(2026, 7, 25, 15, 0, tzinfo=UTC)  # Saturday 09:00 Denver
    assert decide(facts, _all_day(), RULES, pioneer_noon + timedelta(days=1),
                  RecentCalls()).verdict == ALLOWED


def test_blackouts_all_states_or_listed() -> None:
    facts = ContactFacts("+15045550000", ("America/Chicago",), ("LA",))
    noon = datetime(2026, 12, 9, 18, 0, tzinfo=UTC)
    rules = RULES.with_blackouts([Blackout(date(2026, 12, 9), frozenset({"LA", "MS"}))])
    d = decide(facts, _all_day(), rules, noon, RecentCalls())
    assert (d.verdict, d.reason) == (DEFERRED, "blackout")
    assert d.until == datetime(2026, 12, 10, 14, 0, tzinfo=UTC)
    other = ContactFacts("+12125550001", ("America/New_York",), ("NY",))
    assert decide(other, _all_day(), rules, noon, RecentCalls()).verdict == ALLOWED
    everywhere = RULES.with_blackouts([Blackout(date(2026, 12, 9))])
    assert decide(other, _all_day(), everywhere, noon, RecentCalls()).reason == "blackout"


def test_blocked_reasons_and_dnc_wins_over_consent() -> None:
    noon = datetime(2026, 12, 9, 18, 0, tzinfo=UTC)
    base = ContactFacts("+12125550001", ("America/New_York",), ("NY",), consent="written")
    need = CampaignRules(CallingWindow.parse("09:00-20:00", "all"), 3, require_consent=True)
    assert decide(base, need, RULES, noon, RecentCalls()).verdict == ALLOWED
    dated = ContactFacts(base.phone, base.zones, base.states, consent="2025-04-01")
    assert decide(dated, need, RULES, noon, RecentCalls()).verdict == ALLOWED
    for consent in (None, "none", "verbal"):
        d = decide(ContactFacts(base.phone, base.zones, consent=consent), need, RULES, noon,
                   RecentCalls())
        assert (d.verdict, d.reason) == (BLOCKED, "consent")
    dnc = ContactFacts(base.phone, base.zones, consent="written", on_dnc=True)
    assert decide(dnc, need, RULES, noon, RecentCalls()).reason == "dnc"
    reg = ContactFacts(base.phone, base.zones, on_registry=True)
    assert decide(reg, _all_day(), RULES, noon, RecentCalls()).reason == "registry"
    # Sunday-only campaign window, contact in Rhode Island: no window ever.
    sunday = CampaignRules(CallingWindow.parse("09:00-20:00", "sun"), 3)
    ri = ContactFacts("+14015550000", ("America/New_York",), ("RI",))
    assert decide(ri, sunday, RULES, noon, RecentCalls()).reason == "no_window"


def test_zones_that_share_no_window() -> None:
    """Honolulu and New York share 14:00-15:00 New York in a 09:00-20:00 window (winter)."""
    facts = ContactFacts("+18085550000", ("America/New_York", "Pacific/Honolulu"), ())
    window = CampaignRules(CallingWindow.parse("09:00-20:00", "all"), 3)
    at = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)
    d = decide(facts, window, RULES, at, RecentCalls())
    assert d.until == datetime(2026, 12, 9, 19, 0, tzinfo=UTC)
    assert local_span(window.window, RULES, ("KY", "FL"), 0) == (600, 1200)
