"""`campaign preview`: what the claim would decide for every queued contact at one instant,
without dialing. The same `facts_for`, `campaign_context` and `decide` as the claim."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.compliance.decide import ALLOWED, BLOCKED, DEFERRED, RecentCalls, decide
from campaigns.compliance.store import campaign_context, facts_for, screen
from campaigns.db.models import Contact, ContactStatus
from campaigns.service import get_campaign
from campaigns.settings import settings_of

EXAMPLES = 3
_BATCH = 5000


@dataclass
class Preview:
    campaign: str
    at: datetime
    rules: str
    stopped: str | None
    total: int = 0
    callable: int = 0
    #: reason -> count, for deferred and blocked contacts
    deferred: Counter[str] = field(default_factory=Counter)
    blocked: Counter[str] = field(default_factory=Counter)
    #: reason -> earliest and latest "until" of the deferred contacts
    deferred_until: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    #: "verdict:reason" -> a few (phone, record) examples
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Every contact's decision (for --json), when asked for.
    decisions: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign, "at": self.at.isoformat(), "rules": self.rules,
            "stopped": self.stopped, "total": self.total, "callable": self.callable,
            "deferred": dict(self.deferred), "blocked": dict(self.blocked),
            "deferred_until": {k: [a.isoformat(), b.isoformat()]
                               for k, (a, b) in self.deferred_until.items()},
            "examples": self.examples,
            **({"decisions": self.decisions} if self.decisions is not None else {}),
        }


async def preview(session: AsyncSession, name: str, at: datetime, *, per_number_cap: int = 3,
                  keep_decisions: bool = False) -> Preview:
    """Decide every queued contact of campaign `name` at `at` (read-only)."""
    campaign = await get_campaign(session, name)
    settings = settings_of(campaign)
    ctx = await campaign_context(session, settings, per_number_cap, at)
    result = Preview(name, at, ctx.rules.label(), ctx.stopped,
                     decisions=[] if keep_decisions else None)
    last_id = 0
    while True:
        contacts = list((await session.scalars(
            select(Contact).where(Contact.campaign_id == campaign.id,
                                  Contact.status == ContactStatus.QUEUED, Contact.id > last_id)
            .order_by(Contact.id).limit(_BATCH))).all())
        if not contacts:
            break
        last_id = contacts[-1].id
        phones = [c.phone_e164 for c in contacts]
        screening = await screen(session, phones, at)
        dnc, registry, recent = screening.dnc, screening.registry, screening.recent
        for contact in contacts:
            facts = facts_for(contact, ctx.fallback_zone, dnc, registry)
            if contact.attempts >= settings["max_attempts"] and not (facts.on_dnc
                                                                      or facts.on_registry):
                # The claim closes it without deciding (as it does).
                _count(result, contact, BLOCKED, "attempts", None, {"attempts": contact.attempts})
                continue
            d = decide(facts, ctx.campaign, ctx.rules, at,
                       recent.get(contact.phone_e164, RecentCalls()))
            _count(result, contact, d.verdict, d.reason, d.until, d.record)
    return result


def _count(result: Preview, contact: Contact, verdict: str, reason: str | None,
           until: datetime | None, record: dict[str, Any]) -> None:
    result.total += 1
    key = verdict if verdict == ALLOWED else f"{verdict}:{reason}"
    if verdict == ALLOWED:
        result.callable += 1
    elif verdict == DEFERRED and reason and until:
        result.deferred[reason] += 1
        lo, hi = result.deferred_until.get(reason, (until, until))
        result.deferred_until[reason] = (min(lo, until), max(hi, until))
    elif verdict == BLOCKED and reason:
        result.blocked[reason] += 1
    entry = {"contact_id": contact.id, "phone": contact.phone_e164, **record}
    examples = result.examples.setdefault(key, [])
    if len(examples) < EXAMPLES:
        examples.append(entry)
    if result.decisions is not None:
        result.decisions.append(entry)
