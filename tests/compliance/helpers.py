"""Seeding campaigns, contacts and past attempts for the compliance tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import CallAttempt, Campaign, Contact
from dialer.engine.claims import ClaimResult, claim


async def make_campaign(url: str, name: str, **settings: Any) -> int:
    from campaigns.service import change_status, create_campaign

    db = create_engine(url)
    try:
        async with session_factory(db)() as s, s.begin():
            c = await create_campaign(s, name, {"from": "+14155550100", "connection_id": "1",
                                                "calling_hours": "00:00-24:00",
                                                "calling_days": "mon-sun", **settings})
            await change_status(s, name, "start")
            return c.id
    finally:
        await db.dispose()


async def add_contacts(url: str, campaign_id: int, rows: Sequence[dict[str, Any]],
                       due: datetime) -> None:
    db = create_engine(url)
    try:
        async with session_factory(db)() as s, s.begin():
            s.add_all([Contact(campaign_id=campaign_id, status="queued", next_attempt_at=due,
                               custom_fields=r.pop("custom_fields", {}), **r) for r in rows])
    finally:
        await db.dispose()


async def add_past_calls(url: str, campaign_id: int, contact_id: int, phone: str,
                         times: Sequence[datetime]) -> None:
    db = create_engine(url)
    try:
        async with session_factory(db)() as s, s.begin():
            for i, t in enumerate(times, start=1):
                s.add(CallAttempt(contact_id=contact_id, campaign_id=campaign_id,
                                  attempt_no=100 + i,
                                  phone_e164=phone, command_id=f"past-{contact_id}-{i}",
                                  client_state="x", state="ended", created_at=t))
    finally:
        await db.dispose()


async def run_claim(url: str, name: str, now: datetime, *, limit: int = 100000,
                    cap: int = 3) -> ClaimResult:
    db = create_engine(url)
    try:
        async with session_factory(db)() as s, s.begin():
            c = (await s.scalars(select(Campaign).where(Campaign.name == name))).one()
            return await claim(s, c, limit, now, instance_id="t", per_number_cap=cap)
    finally:
        await db.dispose()


async def rows(url: str, model: Any) -> list[Any]:
    db = create_engine(url)
    try:
        async with session_factory(db)() as s:
            return list((await s.scalars(select(model).order_by(model.id))).all())
    finally:
        await db.dispose()
