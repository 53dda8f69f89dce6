"""What `decide` needs, read from the database: the same code for the claim and the preview.

`facts_for` turns a stored contact into `ContactFacts` (states derived from its stored state,
ZIP and number at every call: see states.py); `CampaignContext` holds what one campaign's
decisions share (rule set with blackouts, window, cap, consent and registry settings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.compliance.decide import CampaignRules, ContactFacts, RecentCalls
from campaigns.compliance.ruleset import Blackout, RuleSet, RulesFileError, load_rules
from campaigns.compliance.states import candidate_states
from campaigns.db.dialects import one_of
from campaigns.db.models import (
    AttemptState,
    BlackoutDate,
    CallAttempt,
    DncNumber,
    RegistryCopy,
    RegistryNumber,
)
from campaigns.db.types import UTCDateTime
from campaigns.windows import CallingWindow

#: A scrubbing campaign needs a registry copy at most this old (16 C.F.R. § 310.4(b)(3)(iv)).
REGISTRY_MAX_AGE_DAYS = 31

_override: Path | None = None


def set_rules_override(path: Path | None) -> None:
    """`dialer run --rules FILE`: the rules file of campaigns without their own `rules_file`."""
    global _override
    if path is not None:
        load_rules(path)  # a malformed file is refused here, before anything runs
    _override = path


#: `compliance_rules = off`: no federal floor, no state rules (the campaign window only).
def _off_rules() -> RuleSet:
    return RuleSet("off", date(2000, 1, 1), 1900, 2199, "compliance_rules=off",
                   {d: (0, 1440) for d in range(7)}, {}, {}, {})


async def load_blackouts(session: AsyncSession) -> list[Blackout]:
    rows = (await session.scalars(select(BlackoutDate))).all()
    return [Blackout(r.day, frozenset(s for s in r.states.split(",") if s)) for r in rows]


async def registry_copy_date(session: AsyncSession) -> date | None:
    """The date of the newest registry copy loaded, or None."""
    value = await session.scalar(select(func.max(RegistryCopy.copy_date)))
    return value if isinstance(value, date) else None


def registry_problem(settings: Mapping[str, Any], copy: date | None, now: datetime) -> str | None:
    """Why a `registry_scrub` campaign may not dial now, or None."""
    if not settings.get("registry_scrub"):
        return None
    if copy is None:
        return ("registry_scrub is on and no national DNC registry copy is loaded "
                "(`dialer dnc registry import FILE --date YYYY-MM-DD`)")
    age = (now.astimezone(UTC).date() - copy).days
    if age > REGISTRY_MAX_AGE_DAYS:
        return (f"registry_scrub is on and the national DNC registry copy of {copy.isoformat()} "
                f"is {age} days old (at most {REGISTRY_MAX_AGE_DAYS}): load a newer copy with "
                "`dialer dnc registry import FILE --date YYYY-MM-DD`")
    return None


@dataclass(frozen=True)
class CampaignContext:
    rules: RuleSet
    campaign: CampaignRules
    fallback_zone: str
    registry_copy: date | None
    #: Why the campaign may not dial at all now (a stale registry copy), or None.
    stopped: str | None


async def campaign_context(session: AsyncSession, settings: Mapping[str, Any],
                           per_number_cap: int, now: datetime) -> CampaignContext:
    """Everything one campaign's decisions share (`settings` filled with defaults)."""
    stopped: str | None = None
    if settings.get("compliance_rules", "on") == "off":
        rules = _off_rules()
    else:
        try:
            rules = load_rules(settings.get("rules_file") or _override)
        except RulesFileError as exc:  # edited into a bad state while running: dial nothing
            rules, stopped = _off_rules(), f"the rules file cannot be used: {exc}"
    rules = rules.with_blackouts(await load_blackouts(session))
    copy = await registry_copy_date(session)
    window = CallingWindow.parse(settings["calling_hours"], settings["calling_days"])
    campaign = CampaignRules(window, per_number_cap, bool(settings.get("require_consent")),
                             copy.isoformat() if copy else None)
    return CampaignContext(rules, campaign, settings["fallback_timezone"], copy,
                           stopped or registry_problem(settings, copy, now))


def consent_of(custom_fields: Mapping[str, Any] | None) -> str | None:
    """The contact's consent cell: the imported column named `consent` (any case)."""
    for key, value in (custom_fields or {}).items():
        if key.strip().casefold() == "consent":
            return None if value is None else str(value)
    return None


class StoredContact(Protocol):
    """What `facts_for` reads of a contact (an ORM row or the claim's plain row)."""

    phone_e164: str
    region: str | None
    postal_code: str | None
    timezones: list[str]
    custom_fields: dict[str, Any]


def facts_for(contact: StoredContact, fallback_zone: str, dnc: set[str],
              registry: set[str]) -> ContactFacts:
    states, sources = candidate_states(contact.region, contact.postal_code, contact.phone_e164)
    return ContactFacts(
        phone=contact.phone_e164,
        zones=tuple(contact.timezones or [fallback_zone]),
        states=states,
        state_sources=sources,
        on_dnc=contact.phone_e164 in dnc,
        on_registry=contact.phone_e164 in registry,
        consent=consent_of(contact.custom_fields),
    )


@dataclass
class Screening:
    """What the database says about a batch of numbers at dial time."""

    dnc: set[str]  # on the internal DNC list
    registry: set[str]  # on the national registry copy
    recent: dict[str, RecentCalls]  # calls placed in the 24 h before `now`


async def screen(session: AsyncSession, phones: Sequence[str], now: datetime) -> Screening:
    """The DNC list, the registry and each number's calls in the 24 h before `now` (across all
    campaigns and caller IDs; attempts never placed do not count), in one statement per 5,000
    numbers: the claim asks at every tick, and each round trip costs it more than the rows."""
    out = Screening(set(), set(), {})
    for i in range(0, len(phones), 5000):
        chunk = phones[i:i + 5000]
        no_count, no_time = literal(0), literal(None, type_=UTCDateTime)
        query = union_all(
            select(literal("dnc"), DncNumber.phone_e164, no_count, no_time)
            .where(one_of(session, DncNumber.phone_e164, chunk)),
            select(literal("registry"), RegistryNumber.phone_e164, no_count, no_time)
            .where(one_of(session, RegistryNumber.phone_e164, chunk)),
            select(literal("recent"), CallAttempt.phone_e164, func.count(),
                   func.min(CallAttempt.created_at))
            .where(one_of(session, CallAttempt.phone_e164, chunk),
                   CallAttempt.created_at > now - timedelta(hours=24),
                   CallAttempt.created_at <= now,
                   CallAttempt.state != AttemptState.NOT_PLACED)
            .group_by(CallAttempt.phone_e164))
        for kind, phone, n, oldest in await session.execute(query):
            if kind == "dnc":
                out.dnc.add(phone)
            elif kind == "registry":
                out.registry.add(phone)
            else:
                out.recent[phone] = RecentCalls(int(n), oldest)
    return out


async def dnc_listed(session: AsyncSession, phones: Sequence[str]) -> set[str]:
    """The numbers among `phones` on the internal DNC list (the engine's check at the claim and
    again before dials get their slots; no bulk-storage imports)."""
    return await _among(session, DncNumber.phone_e164, phones)


async def _among(session: AsyncSession, column: Any, phones: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(phones), 5000):
        found.update((await session.scalars(
            select(column).where(one_of(session, column, phones[i:i + 5000])))).all())
    return found
