"""The summary's figures against the same figures computed from the inserted rows."""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest

from campaigns import outcomes as o
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import CallAttempt, CampaignStatus
from campaigns.reports import summary
from campaigns.reports.summary import median_talk
from tests.reports import data

PLACED = ("dialed", "answered", "ended")


async def test_summary_figures(db_url: str) -> None:
    built = await data.build(db_url)
    s = await summary(db_url, "spring", now=data.NOW)
    atts = [a for rows in built.attempts.values() for a in rows]
    placed = [a for a in atts if a.state in PLACED]
    answered = [a for a in placed if a.answered_at or a.outcome in o.ANSWERED_OUTCOMES]
    talks = [(a.ended_at - a.answered_at).total_seconds() for a in atts
             if a.answered_at and a.ended_at]

    assert s.contacts == len(built.specs) == 16
    assert s.contacts_remaining == 5  # 3 queued, 1 dialing, 1 in call
    assert s.attempts_placed == len(placed) == 13
    assert s.attempts_not_placed == 2
    assert s.answered == len(answered)
    assert s.answer_rate == pytest.approx(len(answered) / len(placed))
    assert s.human == 2 and s.human_rate == pytest.approx(2 / 13)
    assert s.machine == 1 and s.machine_rate == pytest.approx(1 / 13)
    assert s.voicemails_left == 1
    assert s.talk_seconds_total == pytest.approx(sum(talks))
    assert s.talk_seconds_avg == pytest.approx(statistics.mean(talks), abs=1e-3)
    assert s.talk_seconds_median == pytest.approx(statistics.median(talks), abs=1e-3)
    dialed_contacts = {a.contact_id for a in placed}
    assert s.contacts_attempted == len(dialed_contacts)
    assert s.attempts_per_contact == pytest.approx(len(placed) / len(dialed_contacts))
    first = min(a.dialed_at or a.created_at for a in placed)
    last = max(a.dialed_at or a.created_at for a in placed)
    assert s.first_dial_at == first and s.last_dial_at == last
    assert s.dials_per_hour == pytest.approx(len(placed) / ((last - first).total_seconds() / 3600))
    # one dial in the last 15 min -> 4 per hour; 5 contacts left -> 1 h 15 min
    assert s.recent_dials_per_hour == pytest.approx(4.0)
    assert s.eta_seconds == pytest.approx(5 / 4 * 3600)
    assert s.eta_at == data.NOW + timedelta(seconds=4500)
    # Early in a campaign (dialing for less than the 15 min window) the recent rate is over the
    # time it has dialed, not the whole window.
    early = first + timedelta(seconds=40)
    n = len(placed)  # every dial is within the window's 15 min of `early` (none before first)
    young = await summary(db_url, "spring", now=early)
    assert n and young.recent_dials_per_hour == pytest.approx(n * 3600 / 40)

    by = {x.outcome: x for x in s.outcomes}
    assert by["human"].contacts == 2 and by["human"].contacts_share == pytest.approx(2 / 16)
    assert by["pending"].contacts == 3  # in flight and never-dialed queued
    assert by["no_answer"].attempts == 2 and by["no_answer"].attempts_share == pytest.approx(2 / 13)
    assert sum(x.contacts for x in s.outcomes) == 16
    assert sum(x.attempts for x in s.outcomes) == 13
    d = s.to_dict()
    assert d["eta_at"] == (data.NOW + timedelta(seconds=4500)).isoformat()


async def test_median_even_count_and_no_eta_when_paused(db_url: str) -> None:
    built = await data.build(db_url, status=CampaignStatus.PAUSED)
    engine = create_engine(db_url)
    async with session_factory(engine)() as s, s.begin():
        c = built.contacts[3]
        s.add(CallAttempt(contact_id=c.id, campaign_id=built.campaign_id, attempt_no=1,
                          phone_e164=c.phone_e164, command_id="cmd-extra", client_state="x",
                          state="ended", created_at=data.T0, dialed_at=data.T0,
                          answered_at=data.T0, ended_at=data.T0 + timedelta(seconds=13),
                          outcome="human"))
    async with session_factory(engine)() as s:
        # talks: 7.5, 10, 13, 26, 42.25, 120 -> (13 + 26) / 2
        assert await median_talk(s, built.campaign_id) == pytest.approx(19.5)
    await engine.dispose()
    summ = await summary(db_url, "spring", now=data.NOW)
    assert summ.eta_seconds is None and summ.notes == ["no ETA: the campaign is paused"]


async def test_summary_of_empty_campaign(sqlite_url: str) -> None:
    from campaigns.db.models import Campaign

    engine = create_engine(sqlite_url)
    async with session_factory(engine)() as s, s.begin():
        s.add(Campaign(name="empty", from_number="+14155550100", connection_id="1"))
    await engine.dispose()
    got = await summary(sqlite_url, "empty")
    assert (got.contacts, got.attempts_placed, got.answer_rate, got.talk_seconds_median) == (
        0, 0, None, None)
    assert got.outcomes == [] and got.eta_seconds is None
