"""`dialer status`: when the next queued contact is due and why it waits, and whether an engine
is running; on SQLite and PostgreSQL, and the pure rule on its own."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import (
    AttemptState,
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
    EngineInstance,
)
from campaigns.due import explain_wait, next_due_at
from campaigns.progress import Progress, progress
from campaigns.windows import CallingWindow
from dialer.cli.main import main

#: A Tuesday, 11:00 in New York: the window 09:00-17:00 mon-fri is open.
NOW = datetime(2026, 5, 5, 15, 0, 0, tzinfo=UTC)
NY = ["America/New_York"]
SETTINGS = {"calling_hours": "09:00-17:00", "calling_days": "mon-fri"}
#: Wednesday 09:00 in New York.
WED_OPENING = datetime(2026, 5, 6, 13, 0, 0, tzinfo=UTC)


async def _setup(url: str) -> None:
    """Campaigns whose only queued contact waits for one reason each."""
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            ids = {}
            for name in ("retry", "window", "opening", "cap", "due", "empty"):
                c = Campaign(name=name, status=CampaignStatus.RUNNING, from_number="+14155550100",
                             connection_id="1", settings=SETTINGS)
                s.add(c)
                await s.flush()
                ids[name] = c.id

            def contact(name: str, phone: str, at: datetime | None, outcome: str | None = None,
                        status: str = ContactStatus.QUEUED) -> Contact:
                row = Contact(campaign_id=ids[name], phone_e164=phone, status=status,
                              next_attempt_at=at, outcome=outcome, timezones=NY,
                              attempts=1 if outcome else 0)
                s.add(row)
                return row
            contact("retry", "+12125550001", NOW + timedelta(hours=1), "no_answer")
            contact("window", "+12125550002", NOW + timedelta(hours=6), "busy")  # 17:00 NY
            contact("opening", "+12125550003", WED_OPENING)
            cap_at = NOW + timedelta(hours=2)
            contact("cap", "+12125550004", cap_at)
            # the same number, called in another campaign 24 h + 1 s before: the cap
            done = contact("empty", "+12125550004", None, "human", ContactStatus.DONE)
            await s.flush()
            s.add(CallAttempt(contact_id=done.id, campaign_id=ids["empty"], attempt_no=1,
                              phone_e164="+12125550004", command_id="x", client_state="x",
                              state=AttemptState.ENDED,
                              created_at=cap_at - timedelta(hours=24, seconds=1)))
            contact("due", "+12125550005", NOW - timedelta(minutes=1))
    finally:
        await engine.dispose()


async def _progress(url: str, name: str, now: datetime = NOW) -> Progress:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            return await progress(s, name, now)
    finally:
        await engine.dispose()


async def _heartbeat(url: str, at: datetime | None) -> None:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            row = await s.get(EngineInstance, "e1")
            if at is None:
                if row is not None:
                    await s.delete(row)
            elif row is None:
                s.add(EngineInstance(id="e1", hostname="h", pid=1, started_at=at, heartbeat_at=at))
            else:
                row.heartbeat_at = at
    finally:
        await engine.dispose()


async def _next_due_at(url: str) -> datetime | None:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            return await next_due_at(s)
    finally:
        await engine.dispose()


async def test_status_says_when_and_why_the_next_contact_waits(db_url: str) -> None:
    await _setup(db_url)
    p = await _progress(db_url, "retry")
    assert p.next_due_reason == "retry" and p.next_due_at == NOW + timedelta(hours=1)
    assert p.next_due == "retry (no_answer) at 2026-05-05 16:00:00 UTC"

    p = await _progress(db_url, "window")  # due at 17:00 NY: closed, opens Wednesday 09:00
    assert (p.next_due_reason, p.next_due_at) == ("window", WED_OPENING)
    assert p.next_due == "window opens at 2026-05-06 13:00:00 UTC"

    p = await _progress(db_url, "opening")  # deferred by the claim to the window's opening
    assert (p.next_due_reason, p.next_due_at) == ("window", WED_OPENING)

    p = await _progress(db_url, "cap")
    assert p.next_due_reason == "cap" and p.next_due_at == NOW + timedelta(hours=2)
    assert p.next_due.startswith("cap until 2026-05-05 17:00:00 UTC")

    p = await _progress(db_url, "due")
    assert (p.next_due_reason, p.next_due, p.due_now) == ("due", "due now", 1)

    p = await _progress(db_url, "empty")
    assert p.next_due is None and p.next_due_at is None

    # the earliest queued contact of any running campaign, for a dry run's skip-ahead
    assert await _next_due_at(db_url) == NOW - timedelta(minutes=1)


async def test_status_says_whether_an_engine_runs(db_url: str) -> None:
    await _setup(db_url)
    p = await _progress(db_url, "retry")
    assert p.engines_live == 0 and p.engine_last_seen_secs is None
    assert p.engine == "no engine running: is `dialer run` running?"

    await _heartbeat(db_url, NOW - timedelta(seconds=40))
    p = await _progress(db_url, "retry")
    assert p.engines_live == 0 and p.engine_last_seen_secs == 40.0
    assert p.engine == "no engine seen for 40 s: is `dialer run` running?"

    await _heartbeat(db_url, NOW - timedelta(seconds=2))
    p = await _progress(db_url, "retry")
    assert p.engines_live == 1
    assert p.engine == ("1 engine running; waiting: next contact retry (no_answer) at "
                        "2026-05-05 16:00:00 UTC")
    assert (await _progress(db_url, "due")).engine == "1 engine running; dialing"


async def _later(url: str) -> None:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            c = Campaign(name="later", status=CampaignStatus.RUNNING, from_number="+14155550100",
                         connection_id="1", dry_run=True,
                         settings={"calling_hours": "00:00-24:00", "calling_days": "all"})
            s.add(c)
            await s.flush()
            s.add(Contact(campaign_id=c.id, phone_e164="+12125550009", status="queued",
                          next_attempt_at=datetime(2099, 1, 1, tzinfo=UTC), outcome="busy",
                          timezones=NY, attempts=1))
    finally:
        await engine.dispose()


def test_status_cli_text_and_json(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_later(db_url))
    capsys.readouterr()
    assert main(["--database-url", db_url, "status", "later", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["next_due_reason"] == "retry"
    assert data["next_due_at"].startswith("2099-01-01T00:00:00")
    assert data["next_due"] == "retry (busy) at 2099-01-01 00:00:00 UTC"
    assert data["engine"] == "no engine running: is `dialer run` running?"
    assert data["engines_live"] == 0 and data["dry_run"] is True
    assert main(["--database-url", db_url, "status", "later"]) == 0
    out = capsys.readouterr().out
    assert "retry (busy) at 2099-01-01" in out and "is `dialer run` running?" in out
    assert "dry run" in out


@pytest.mark.fast
def test_explain_wait_rule() -> None:
    window = CallingWindow.parse("09:00-17:00", "mon-fri")
    at = NOW + timedelta(minutes=30)
    assert explain_wait(NOW, at, window=window, zones=NY, last_outcome="busy").reason == "retry"
    assert explain_wait(NOW, at, window=window, zones=NY, last_outcome=None).reason == "scheduled"
    assert explain_wait(NOW, at, window=window, zones=NY, last_outcome="busy",
                        capped=True).reason == "cap"
    # a reason the engine recorded wins over inference
    recorded = explain_wait(NOW, at, window=window, zones=NY, last_outcome="busy",
                            defer_reason="cap")
    assert recorded.reason == "cap" and recorded.text == "cap until 2026-05-05 15:30:00 UTC"
    odd = explain_wait(NOW, at, window=window, zones=NY, last_outcome=None,
                       defer_reason="dnc_check")
    assert odd.reason == "dnc_check" and odd.text.startswith("dnc_check until")
    # due now, but the window is closed now: it waits for the window
    friday_night = datetime(2026, 5, 8, 23, 0, tzinfo=UTC)
    w = explain_wait(friday_night, friday_night - timedelta(hours=1), window=window, zones=NY,
                     last_outcome=None)
    assert w.reason == "window" and w.at == datetime(2026, 5, 11, 13, 0, tzinfo=UTC)
    # zones that never share an opening
    never = explain_wait(NOW, at, window=window, zones=["America/New_York", "Asia/Tokyo"],
                         last_outcome=None)
    assert never.reason == "window" and "never" in never.text


async def test_a_finished_dry_run_is_not_asked_about_its_engine(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s, s.begin():
            c = Campaign(name="dry-done", status=CampaignStatus.COMPLETED,
                         from_number="+14155550100", connection_id="1", dry_run=True,
                         settings={"calling_hours": "00:00-24:00", "calling_days": "all"})
            s.add(c)
            await s.flush()
            contact = Contact(campaign_id=c.id, phone_e164="+12125550010", status="done",
                              outcome="busy", timezones=NY, attempts=1)
            s.add(contact)
            await s.flush()
            # Its attempt's time is simulated: days ahead of the wall clock.
            s.add(CallAttempt(contact_id=contact.id, campaign_id=c.id, attempt_no=1,
                              phone_e164="+12125550010", command_id="x", client_state="y",
                              state="ended", created_at=NOW + timedelta(days=3)))
    finally:
        await engine.dispose()
    await _heartbeat(db_url, NOW - timedelta(seconds=40))  # the engine that ran it, gone
    p = await _progress(db_url, "dry-done")
    assert p.engine_last_seen_secs == 40.0  # wall-clock heartbeats against the wall clock
    assert p.engine == "no engine running (the campaign is completed)"


async def test_the_eta_waits_for_the_last_contact_due_and_the_rate_for_the_time_dialed(
        db_url: str) -> None:
    await _setup(db_url)
    p = await _progress(db_url, "retry")  # its one contact is due in an hour
    assert p.eta_secs is not None and p.eta_secs >= 3600
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s, s.begin():
            cid = await s.scalar(select(Campaign.id).where(Campaign.name == "due"))
            contact = await s.scalar(select(Contact.id).where(Contact.campaign_id == cid))
            for i in range(8):  # 8 dials over the last 4 seconds: 2 a second, not 8/60
                s.add(CallAttempt(contact_id=contact, campaign_id=cid, attempt_no=i + 1,
                                  phone_e164="+12125550005", command_id=f"r{i}",
                                  client_state="x", state=AttemptState.ENDED,
                                  created_at=NOW - timedelta(seconds=4 - i * 0.5)))
    finally:
        await engine.dispose()
    assert (await _progress(db_url, "due")).dials_per_sec == 2.0
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s, s.begin():
            paused = await s.scalar(select(Campaign).where(Campaign.name == "due"))
            assert paused is not None
            paused.status = CampaignStatus.PAUSED
    finally:
        await engine.dispose()
    assert (await _progress(db_url, "due")).eta_secs is None  # it will not finish by itself
