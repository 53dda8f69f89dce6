"""The claim decides with the compliance rules, on SQLite and PostgreSQL: decision records on
attempts, why and until when contacts wait, caps across campaigns, consent, the registry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from campaigns.compliance import ALLOWED, CampaignRules, ContactFacts, RecentCalls, decide
from campaigns.compliance.registry import RegistryFileError, load_registry
from campaigns.compliance.ruleset import load_rules
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import CallAttempt, Contact, RegistryNumber
from campaigns.errors import IllegalTransition
from campaigns.windows import CallingWindow
from tests.compliance.helpers import add_contacts, add_past_calls, make_campaign, rows, run_claim

# Wednesday 2026-12-02 20:30 in New York.
WED_2030_NY = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
WED_NOON_NY = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
NY = ["America/New_York"]


async def test_florida_contact_with_new_york_number(db_url: str) -> None:
    cid = await make_campaign(db_url, "fl")
    await add_contacts(db_url, cid, [
        {"phone_e164": "+12125550001", "region": "FL", "timezones": NY},  # Florida resident
        {"phone_e164": "+12125550002", "region": "NY", "timezones": NY},
    ], WED_2030_NY - timedelta(hours=1))
    result = await run_claim(db_url, "fl", WED_2030_NY)
    assert [j.phone for j in result.jobs] == ["+12125550002"] and result.deferred == 1
    fl, _ny = await rows(db_url, Contact)
    assert (fl.deferred_reason, fl.deferred_until) == ("window", datetime(2026, 12, 3, 13, 0,
                                                                          tzinfo=UTC))
    assert fl.next_attempt_at == fl.deferred_until and fl.status == "queued"
    attempt = (await rows(db_url, CallAttempt))[0]
    record = attempt.decision
    assert record["verdict"] == "allowed" and record["states"] == ["NY"]
    assert record["zones"][0]["local"].startswith("2026-12-02T20:30")
    assert record["rules"] == load_rules().label() and record["cap"]["limit"] == 3


async def test_florida_cap_counts_other_campaigns_and_caller_ids(db_url: str) -> None:
    other = await make_campaign(db_url, "other", **{"from": "+14155550199"})
    await add_contacts(db_url, other, [{"phone_e164": "+12125550001", "timezones": NY}],
                       WED_NOON_NY)
    first = (await rows(db_url, Contact))[0]
    calls = [WED_NOON_NY - timedelta(hours=h) for h in (3, 2, 1)]  # from 09:00 New York
    await add_past_calls(db_url, other, first.id, "+12125550001", calls)
    cid = await make_campaign(db_url, "fl")
    await add_contacts(db_url, cid, [{"phone_e164": "+12125550001", "region": "Florida",
                                      "timezones": NY}], WED_NOON_NY)
    # Florida's cap (3) wins over the engine's 5: deferred until the oldest call is 24 h old.
    result = await run_claim(db_url, "fl", WED_NOON_NY, cap=5)
    assert result.jobs == [] and result.deferred == 1
    contact = next(c for c in await rows(db_url, Contact) if c.campaign_id == cid)
    assert contact.deferred_reason == "cap"
    assert contact.deferred_until == calls[0] + timedelta(hours=24, seconds=1)
    # Without the Florida link the engine's cap of 5 allows the call.
    cid2 = await make_campaign(db_url, "ny")
    await add_contacts(db_url, cid2, [{"phone_e164": "+12125550001", "timezones": NY}],
                       WED_NOON_NY)
    assert len((await run_claim(db_url, "ny", WED_NOON_NY, cap=5)).jobs) == 1


async def test_consent_required_and_dnc_wins(db_url: str) -> None:
    cid = await make_campaign(db_url, "c", require_consent=True)
    await add_contacts(db_url, cid, [
        {"phone_e164": "+12125550001", "timezones": NY, "custom_fields": {"Consent": "written"}},
        {"phone_e164": "+12125550002", "timezones": NY, "custom_fields": {"consent": "none"}},
        {"phone_e164": "+12125550003", "timezones": NY},
        {"phone_e164": "+12125550004", "timezones": NY,
         "custom_fields": {"consent": "2026-01-15"}},
        {"phone_e164": "+12125550005", "timezones": NY, "custom_fields": {"consent": "written"}},
    ], WED_NOON_NY)
    from campaigns.db.models import DncNumber

    db = create_engine(db_url)
    async with session_factory(db)() as s, s.begin():
        s.add(DncNumber(phone_e164="+12125550005"))
    await db.dispose()
    result = await run_claim(db_url, "c", WED_NOON_NY)
    assert sorted(j.phone for j in result.jobs) == ["+12125550001", "+12125550004"]
    by_phone = {c.phone_e164: c for c in await rows(db_url, Contact)}
    assert by_phone["+12125550002"].outcome == "no_consent"
    assert by_phone["+12125550003"].outcome == "no_consent"
    assert by_phone["+12125550005"].outcome == "dnc"
    assert result.suppressed == 1 and result.closed == 2


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def _load(url: str, path: Path, day: date) -> None:
    db = create_engine(url)
    try:
        async with session_factory(db)() as s, s.begin():
            await load_registry(s, path, day)
    finally:
        await db.dispose()


async def test_registry_scrub_and_age(db_url: str, tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(IllegalTransition, match="no national DNC registry copy"):
        await make_campaign(db_url, "scrub", registry_scrub=True)
    full = _write(tmp_path / "212.txt", "212,5550001\n212,5550009\n")
    await _load(db_url, full, date(2026, 11, 20))
    cid = await make_campaign(db_url, "scrub", registry_scrub=True)
    await add_contacts(db_url, cid, [{"phone_e164": "+12125550001", "timezones": NY},
                                     {"phone_e164": "+12125550002", "timezones": NY}],
                       WED_NOON_NY)
    result = await run_claim(db_url, "scrub", WED_NOON_NY)
    assert [j.phone for j in result.jobs] == ["+12125550002"] and result.suppressed == 1
    listed = next(c for c in await rows(db_url, Contact) if c.phone_e164 == "+12125550001")
    assert listed.outcome == "registry"
    record = (await rows(db_url, CallAttempt))[0].decision
    assert record["registry"] == {"listed": False, "copy": "2026-11-20"}
    # 32 days after the copy: nothing is claimed, and the reason is given.
    await add_contacts(db_url, cid, [{"phone_e164": "+12125550003", "timezones": NY}],
                       WED_NOON_NY)
    late = datetime(2026, 12, 22, 17, 0, tzinfo=UTC)
    with caplog.at_level("WARNING", logger="dialer.engine.claims"):
        result = await run_claim(db_url, "scrub", late)
    assert result.jobs == [] and result.stopped and "32 days old" in result.stopped
    assert "'scrub' is not dialed" in caplog.text and "32 days old" in caplog.text


async def test_registry_files(db_url: str, tmp_path: Path) -> None:
    await _load(db_url, _write(tmp_path / "a.txt", "212,5550001\n212-555-0002\n3105550003\n"),
                date(2026, 11, 1))
    await _load(db_url, _write(tmp_path / "c.txt", "212,5550004,A\n212,5550001,D\n"),
                date(2026, 11, 8))
    assert sorted(r.phone_e164 for r in await rows_registry(db_url)) == [
        "+12125550002", "+12125550004", "+13105550003"]
    # A full list of 212 replaces 212 only.
    await _load(db_url, _write(tmp_path / "f.txt", "212,5550007\n"), date(2026, 11, 9))
    assert sorted(r.phone_e164 for r in await rows_registry(db_url)) == [
        "+12125550007", "+13105550003"]
    bad = _write(tmp_path / "bad.txt", "212,5550008\n# note\n212,555000\n")
    with pytest.raises(RegistryFileError, match=r"bad.txt, line 3: '212,555000'"):
        await _load(db_url, bad, date(2026, 11, 10))
    mixed = _write(tmp_path / "mixed.txt", "212,5550008\n212,5550009,A\n")
    with pytest.raises(RegistryFileError, match="line 2: a full list cannot mix"):
        await _load(db_url, mixed, date(2026, 11, 10))
    assert sorted(r.phone_e164 for r in await rows_registry(db_url)) == [
        "+12125550007", "+13105550003"]


async def rows_registry(url: str) -> list[RegistryNumber]:
    from sqlalchemy import select

    db = create_engine(url)
    try:
        async with session_factory(db)() as s:
            return list((await s.scalars(select(RegistryNumber))).all())
    finally:
        await db.dispose()


@pytest.mark.fast
def test_recheck_of_a_record_agrees() -> None:
    """A decision record re-checked against the rules at its time gives the same verdict."""
    rules = load_rules()
    facts = ContactFacts("+18015550000", ("America/Denver",), ("UT",))
    campaign = CampaignRules(CallingWindow.parse("00:00-24:00", "all"), 3)
    at = datetime(2026, 7, 23, 18, 0, tzinfo=UTC)
    d = decide(facts, campaign, rules, at, RecentCalls())
    again = decide(facts, campaign, rules, datetime.fromisoformat(d.record["at"]), RecentCalls())
    assert d.verdict == again.verdict == ALLOWED and d.record == again.record


async def test_rules_file_broken_while_running_stops_claiming(db_url: str,
                                                              tmp_path: Path) -> None:
    from campaigns.compliance.ruleset import DEFAULT_RULES

    rules = tmp_path / "rules.csv"
    rules.write_text(DEFAULT_RULES.read_text())
    cid = await make_campaign(db_url, "r", rules_file=str(rules))
    await add_contacts(db_url, cid, [{"phone_e164": "+12125550001", "timezones": NY}],
                       WED_NOON_NY)
    rules.write_text(DEFAULT_RULES.read_text() + "cap,FL,,,0,,x,src,unverified\n")
    result = await run_claim(db_url, "r", WED_NOON_NY)
    assert result.jobs == [] and result.stopped and "cap '0'" in result.stopped
    rules.write_text(DEFAULT_RULES.read_text())
    assert len((await run_claim(db_url, "r", WED_NOON_NY)).jobs) == 1
