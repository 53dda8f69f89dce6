"""Compliance at claim time and retry timing with a frozen clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import CallAttempt, Campaign, Contact
from dialer.engine.attempts import settle
from dialer.engine.claims import claim
from dialer.engine.identity import decode_client_state

UTC = timezone.utc
# Thursday 2026-11-26 15:00 UTC = 10:00 New York, 07:00 Los Angeles, 05:00 Honolulu.
THU_15 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


async def _setup(url: str, zones: dict[str, list[str]], **settings: object) -> None:
    from campaigns.service import change_status, create_campaign

    db = create_engine(url)
    async with session_factory(db)() as s, s.begin():
        await create_campaign(s, "w", {"from": "+14155550100", "connection_id": "1",
                                       "calling_hours": "09:00-20:00", "calling_days": "mon-fri",
                                       "retry_jitter_secs": 0, **settings})
        await change_status(s, "w", "start")
        c = (await s.scalars(select(Campaign))).one()
        for phone, tz in zones.items():
            s.add(Contact(campaign_id=c.id, phone_e164=phone, timezones=tz, custom_fields={},
                          status="queued", next_attempt_at=THU_15 - timedelta(hours=1)))
    await db.dispose()


async def _claim(url: str, now: datetime, cap: int = 3) -> list[str]:
    db = create_engine(url)
    async with session_factory(db)() as s, s.begin():
        c = (await s.scalars(select(Campaign))).one()
        result = await claim(s, c, 100, now, instance_id="t", per_number_cap=cap)
        phones = [j.phone for j in result.jobs]
    await db.dispose()
    return phones


async def _contacts(url: str) -> dict[str, Contact]:
    db = create_engine(url)
    async with session_factory(db)() as s:
        rows = {c.phone_e164: c for c in await s.scalars(select(Contact))}
    await db.dispose()
    return rows


async def test_window_must_hold_in_every_zone(db_url: str) -> None:
    await _setup(db_url, {
        "+12125550001": ["America/New_York"],  # open (10:00)
        "+13105550002": ["America/Los_Angeles"],  # closed (07:00) -> 09:00 LA = 17:00 UTC
        "+18085550003": ["America/New_York", "Pacific/Honolulu"],  # zones disagree
    })
    assert await _claim(db_url, THU_15) == ["+12125550001"]
    contacts = await _contacts(db_url)
    assert contacts["+13105550002"].next_attempt_at == datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    # 09:00 in Honolulu is 19:00 UTC, when New York (14:00) is open too.
    assert contacts["+18085550003"].next_attempt_at == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
    assert contacts["+18085550003"].status == "queued"
    # Nothing is claimed again before the opening; at the opening it is.
    assert await _claim(db_url, THU_15 + timedelta(minutes=30)) == []
    assert await _claim(db_url, datetime(2026, 11, 26, 17, 0, tzinfo=UTC)) == ["+13105550002"]


async def test_claim_creates_committed_attempts_with_identity(db_url: str) -> None:
    await _setup(db_url, {"+12125550001": ["America/New_York"]})
    await _claim(db_url, THU_15)
    db = create_engine(db_url)
    async with session_factory(db)() as s:
        a = (await s.scalars(select(CallAttempt))).one()
        contact = (await s.scalars(select(Contact))).one()
    await db.dispose()
    ref = decode_client_state(a.client_state)
    assert ref is not None and (ref.contact_id, ref.attempt_no) == (contact.id, 1)
    assert a.state == "created" and contact.status == "dialing" and contact.attempts == 1
    assert contact.last_attempt_id == a.id


async def test_retry_lands_at_the_configured_time_and_next_opening(db_url: str) -> None:
    await _setup(db_url, {"+12125550001": ["America/New_York"]}, max_attempts=2,
                 retry_busy_secs=600)
    await _claim(db_url, THU_15)
    db = create_engine(db_url)

    async def _end_busy(at: datetime) -> None:
        async with session_factory(db)() as s, s.begin():
            a = (await s.scalars(select(CallAttempt).order_by(CallAttempt.id.desc()))).first()
            assert a is not None
            a.state, a.hangup_cause, a.sip_hangup_cause = "ended", "user_busy", "486"
            await settle(s, [a], at)

    await _end_busy(THU_15)
    c = (await _contacts(db_url))["+12125550001"]
    assert c.status == "queued" and c.next_attempt_at == THU_15 + timedelta(seconds=600)
    # Second attempt at 19:55 New York; its retry would be 20:05, after closing: it is the last
    # attempt anyway (max_attempts=2), so the contact is done.
    late = datetime(2026, 11, 27, 0, 55, tzinfo=UTC)
    assert await _claim(db_url, late) == ["+12125550001"]
    await _end_busy(late)
    c = (await _contacts(db_url))["+12125550001"]
    assert c.status == "done" and c.outcome == "busy" and c.attempts == 2
    await db.dispose()


async def test_retry_after_closing_moves_to_next_opening(db_url: str) -> None:
    await _setup(db_url, {"+12125550001": ["America/New_York"]}, retry_busy_secs=600)
    late = datetime(2026, 11, 27, 0, 55, tzinfo=UTC)  # Thu 19:55 New York
    assert await _claim(db_url, late) == ["+12125550001"]
    db = create_engine(db_url)
    async with session_factory(db)() as s, s.begin():
        a = (await s.scalars(select(CallAttempt))).one()
        a.state, a.hangup_cause = "ended", "user_busy"
        await settle(s, [a], late)
    await db.dispose()
    c = (await _contacts(db_url))["+12125550001"]
    # Friday 09:00 New York.
    assert c.status == "queued"
    assert c.next_attempt_at == datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


async def test_per_number_cap_defers(sqlite_url: str) -> None:
    await _setup(sqlite_url, {"+12125550001": ["America/New_York"]}, max_attempts=5)
    assert await _claim(sqlite_url, THU_15, cap=1) == ["+12125550001"]
    db = create_engine(sqlite_url)
    async with session_factory(db)() as s, s.begin():
        a = (await s.scalars(select(CallAttempt))).one()
        a.state, a.hangup_cause = "ended", "user_busy"
        await settle(s, [a], THU_15)
    await db.dispose()
    later = THU_15 + timedelta(hours=1)
    assert await _claim(sqlite_url, later, cap=1) == []
    c = (await _contacts(sqlite_url))["+12125550001"]
    assert c.next_attempt_at is not None and c.next_attempt_at > THU_15 + timedelta(hours=24)


async def test_the_same_attempt_in_two_databases_has_different_command_ids(
        tmp_path: Path) -> None:
    """Telnyx ignores a repeated command_id on the account: a campaign, contact and attempt
    with the same ids in another database (staging, a re-created database) must still dial."""
    from campaigns.db.migrate import upgrade_async

    ids = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name}.db"
        await upgrade_async(url)
        await _setup(url, {"+12125550100": ["America/New_York"]})
        db = create_engine(url)
        try:
            async with session_factory(db)() as s, s.begin():
                campaign = (await s.scalars(select(Campaign))).one()
                result = await claim(s, campaign, 1, THU_15, instance_id="t", per_number_cap=3)
                (job,) = result.jobs
                ids.append((campaign.id, job.contact_id, job.attempt_no, job.command_id))
        finally:
            await db.dispose()
    assert ids[0][:3] == ids[1][:3]
    assert ids[0][3] != ids[1][3]
