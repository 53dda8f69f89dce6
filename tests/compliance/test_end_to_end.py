"""An end-to-end campaign with the compliance rules on (engine + simulator): every attempt has a
decision record, and re-checking each record against the rules at its time agrees."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from campaigns.compliance import RecentCalls, decide
from campaigns.compliance.store import campaign_context, facts_for
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import Campaign, Contact
from campaigns.settings import with_defaults
from tests.engine.helpers import (
    FAST_RETRY,
    attempts_of,
    campaign_status,
    contacts_of,
    numbers,
    rig,
    seed,
    wait_for,
)


def _zone_at_one_pm() -> str:
    """A fixed-offset zone where it is now about 13:00 (inside every rule's hours, any day)."""
    offset = (13 - datetime.now(UTC).hour + 12) % 24 - 12
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def test_every_attempt_has_a_decision_that_rechecks(db_url: str) -> None:
    cid = await seed(db_url, "e2e", numbers(20), compliance_rules="on", max_attempts=2,
                     calling_hours="00:00-24:00", calling_days="all", **FAST_RETRY)
    db = create_engine(db_url)
    async with session_factory(db)() as s, s.begin():
        await s.execute(update(Contact).values(timezones=[_zone_at_one_pm()]))
    await db.dispose()

    async def done() -> bool:
        return await campaign_status(db_url, cid) == "completed"

    async with rig(db_url, speed=50, mix={"human": 1, "busy": 1, "no_answer": 1}):
        await wait_for(done, timeout=120)
    attempts = await attempts_of(db_url)
    contacts = {c.id: c for c in await contacts_of(db_url, cid)}
    assert len(attempts) >= 20
    db = create_engine(db_url)
    try:
        async with session_factory(db)() as s:
            campaign = (await s.scalars(select(Campaign).where(Campaign.id == cid))).one()
            for a in attempts:
                record = a.decision
                assert record is not None and record["verdict"] == "allowed", a.id
                at = datetime.fromisoformat(record["at"])
                assert abs((at - a.created_at).total_seconds()) < 1
                ctx = await campaign_context(s, with_defaults(campaign.settings), 3, at)
                facts = facts_for(contacts[a.contact_id], ctx.fallback_zone, set(), set())
                again = decide(facts, ctx.campaign, ctx.rules, at,
                               RecentCalls(record["cap"]["count"], None))
                assert again.record == record
                assert record["states"] == ["CA"] and record["rules"] == ctx.rules.label()
    finally:
        await db.dispose()
