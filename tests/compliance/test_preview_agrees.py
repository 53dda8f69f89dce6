"""The preview and the claim decide the same (one function): thousands of varied contacts at
random instants, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from campaigns.compliance.preview import preview
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import (
    BlackoutDate,
    CallAttempt,
    Campaign,
    Contact,
    DncNumber,
    RegistryCopy,
    RegistryNumber,
)
from dialer.engine.claims import claim
from tests.compliance.helpers import add_contacts, add_past_calls, make_campaign

N = 1000  # x 5 instants: thousands of decisions, each made by both
AREA = ["212", "305", "801", "401", "504", "215", "512", "808", "415", "502", "405"]
REGIONS = [None, None, "FL", "RI", "UT", "Texas", "PA", "Kentucky", "LA", "NY"]
ZIPS = [None, None, "33101", "02903", "84101", "70112", "19103", "10001", "40202"]
ZONES = [["America/New_York"], ["America/Chicago"], ["America/Denver"],
         ["America/New_York", "America/Chicago"], ["Pacific/Honolulu"],
         ["America/Los_Angeles", "America/Denver"]]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _contacts(rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(N):
        out.append({"phone_e164": f"+1{rng.choice(AREA)}555{i:04d}",
                    "region": rng.choice(REGIONS), "postal_code": rng.choice(ZIPS),
                    "timezones": rng.choice(ZONES),
                    "custom_fields": {"consent": rng.choice(["written", "none", "2025-02-03"])}})
    return out


async def test_preview_and_claim_agree(db_url: str) -> None:
    rng = random.Random(17)
    cid = await make_campaign(db_url, "agree", calling_hours="09:00-20:30",
                              calling_days="mon-sat")
    await add_contacts(db_url, cid, _contacts(rng), START - timedelta(days=400))
    db = create_engine(db_url)
    async with session_factory(db)() as s, s.begin():
        contacts = list((await s.scalars(select(Contact).order_by(Contact.id))).all())
        s.add_all([DncNumber(phone_e164=c.phone_e164) for c in contacts[::97]])
        s.add_all([RegistryNumber(phone_e164=c.phone_e164) for c in contacts[5::89]])
        s.add(RegistryCopy(copy_date=date(2026, 1, 1), kind="full", file_name="x", added=0,
                           removed=0))
        s.add(BlackoutDate(day=date(2026, 12, 24), states=""))
        s.add(BlackoutDate(day=date(2027, 3, 3), states="LA,MS"))
    await db.dispose()
    instants = [datetime(2026, 7, 24, 17, 30, tzinfo=UTC), datetime(2026, 12, 24, 15, tzinfo=UTC)]
    instants += [START + timedelta(minutes=rng.randrange(0, 3 * 365 * 1440)) for _ in range(3)]
    for c in contacts[::50]:  # some numbers called recently (another campaign's calls)
        for at in instants:
            await add_past_calls(db_url, cid, c.id, c.phone_e164,
                                 [at - timedelta(hours=h) for h in (20, 10, 5)])
            break

    db = create_engine(db_url)
    try:
        seen: set[tuple[str, str | None]] = set()
        for at in instants:
            async with session_factory(db)() as s:
                await s.begin()
                p = await preview(s, "agree", at, per_number_cap=3, keep_decisions=True)
                assert p.decisions is not None and len(p.decisions) == N
                campaign = (await s.scalars(select(Campaign).where(Campaign.id == cid))).one()
                await claim(s, campaign, N + 10, at, instance_id="t", per_number_cap=3)
                after = {c.id: c for c in await s.scalars(
                    select(Contact).where(Contact.campaign_id == cid))}
                claimed = {a.contact_id: a for a in await s.scalars(
                    select(CallAttempt).where(CallAttempt.created_at == at))}
                for d in p.decisions:
                    c = after[d["contact_id"]]
                    seen.add((d["verdict"], d["reason"]))
                    if d["verdict"] == "allowed":
                        assert c.status == "dialing" and claimed[c.id].decision == {
                            k: v for k, v in d.items() if k not in ("contact_id", "phone")}
                    elif d["verdict"] == "deferred":
                        assert (c.status, c.deferred_reason) == ("queued", d["reason"])
                        assert c.next_attempt_at is not None
                        assert c.next_attempt_at.isoformat() == d["until"]
                    else:
                        assert (c.status, c.deferred_reason) == ("done", d["reason"]), d
                await s.rollback()
        # The instants exercise every kind of decision.
        kinds = {k for k, _ in seen}
        assert kinds == {"allowed", "deferred", "blocked"}
        assert {("blocked", "dnc"), ("blocked", "registry"), ("deferred", "window"),
                ("deferred", "holiday"), ("deferred", "cap")} <= seen, seen
    finally:
        await db.dispose()
