"""`decide`: may this contact be called at this instant, and if not, why and until when.

One pure function used by the claim (dialer/engine/claims.py) and by `campaign preview`, so the
two cannot disagree. The effective window is the campaign window intersected with the federal
floor and the rules of every candidate state, evaluated in the local time of every candidate
zone; a local date that is a holiday of a candidate state, or an operator blackout, has no window.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from campaigns.compliance.ruleset import RuleSet, Span
from campaigns.windows import CallingWindow, zone

ALLOWED, DEFERRED, BLOCKED = "allowed", "deferred", "blocked"
# Reasons: deferred ...
WINDOW, HOLIDAY, CAP, BLACKOUT = "window", "holiday", "cap", "blackout"
# ... and blocked.
DNC, REGISTRY, CONSENT, NO_WINDOW = "dnc", "registry", "consent", "no_window"

#: How far ahead the weekly structure is searched for an opening (no opening: no window).
WEEK_HORIZON_DAYS = 8
#: How far ahead holidays and blackouts are searched past; beyond, the contact waits and is
#: decided again then.
LONG_HORIZON_DAYS = 40
_WRITTEN = ("written", "yes", "y", "true", "1", "express written", "signed")


@dataclass(frozen=True)
class ContactFacts:
    phone: str
    zones: tuple[str, ...]
    states: tuple[str, ...] = ()
    state_sources: Mapping[str, str] = field(default_factory=dict)
    on_dnc: bool = False
    on_registry: bool = False
    #: The contact's consent cell as imported (written / none / a date), or None.
    consent: str | None = None


@dataclass(frozen=True)
class CampaignRules:
    window: CallingWindow
    per_number_cap: int
    require_consent: bool = False
    #: The registry copy checked (its date), None when none is loaded.
    registry_version: str | None = None


@dataclass(frozen=True)
class RecentCalls:
    """Calls placed to the number in the last 24 h, across campaigns and caller IDs."""

    count: int = 0
    oldest: datetime | None = None


@dataclass(frozen=True)
class Decision:
    verdict: str
    reason: str | None
    until: datetime | None
    record: dict[str, Any]

    @property
    def allowed(self) -> bool:
        return self.verdict == ALLOWED


def written_consent(value: str | None) -> bool:
    """Whether a consent cell means written consent: 'written' (or yes/true) or a date."""
    if not value or not value.strip():
        return False
    text = value.strip().casefold()
    if text in _WRITTEN:
        return True
    try:
        date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def _fmt(span: Span | None) -> str:
    if span is None:
        return "closed"
    return f"{span[0] // 60:02d}:{span[0] % 60:02d}-{span[1] // 60:02d}:{span[1] % 60:02d}"


def local_span(window: CallingWindow, rules: RuleSet, states: tuple[str, ...],
               weekday: int) -> Span | None:
    """The effective span of one local weekday (before holidays and blackouts)."""
    span: Span | None = ((window.start_minute, window.end_minute)
                         if weekday in window.days else None)
    parts = [rules.federal.get(weekday)] + [
        rules.hours[s][weekday] for s in states if s in rules.hours and weekday in rules.hours[s]]
    for part in parts:
        if span is None or part is None:
            return None
        start, end = max(span[0], part[0]), min(span[1], part[1])
        span = (start, end) if start < end else None
    return span


def _day_closure(rules: RuleSet, states: tuple[str, ...], day: date) -> tuple[str, str] | None:
    """(reason, name) when a local date has no calls for these states."""
    for b in rules.blackouts:
        if b.day == day and b.applies(states):
            return BLACKOUT, "operator blackout" + (f" ({','.join(sorted(b.states))})"
                                                    if b.states else "")
    for s in states:
        name = rules.holidays.get(s, {}).get(day)
        if name:
            return HOLIDAY, f"{s}: {name}"
    return None


def _closed(at: datetime, facts: ContactFacts, campaign: CampaignRules, rules: RuleSet,
            with_days: bool) -> str | None:
    """Why the contact cannot be called at `at` (blackout, holiday, window), None when open."""
    worst: str | None = None
    for name in facts.zones:
        local = at.astimezone(zone(name))
        if with_days:
            closure = _day_closure(rules, facts.states, local.date())
            if closure:
                if closure[0] == BLACKOUT:
                    return BLACKOUT
                worst = HOLIDAY
                continue
        span = local_span(campaign.window, rules, facts.states, local.weekday())
        minute = local.hour * 60 + local.minute
        if span is None or not span[0] <= minute < span[1]:
            worst = worst or WINDOW
    return worst


def _starts(campaign: CampaignRules, rules: RuleSet, states: tuple[str, ...]) -> list[int]:
    minutes = {campaign.window.start_minute}
    minutes.update(s[0] for s in rules.federal.values() if s)
    for st in states:
        minutes.update(s[0] for s in rules.hours.get(st, {}).values() if s)
    return sorted(minutes)


def _candidates(at: datetime, zones: tuple[str, ...], starts: list[int], first: int,
                last: int) -> Iterator[datetime]:
    """Every zone's span starts on local days [first, last) after `at`, in time order."""
    found: set[datetime] = set()
    for name in zones:
        tz = zone(name)
        local_day = at.astimezone(tz).date()
        for offset in range(first, last):
            day = local_day + timedelta(days=offset)
            for m in starts:
                local = datetime.combine(day, time(m // 60, m % 60), tzinfo=tz)
                instant = local.astimezone(UTC)
                if instant > at:
                    found.add(instant)
    yield from sorted(found)


def _day_start(at: datetime, zones: tuple[str, ...], minute: int, offset: int) -> datetime:
    """The earliest of the zones' `minute` on local day `offset` (a bound on later candidates)."""
    out = []
    for name in zones:
        tz = zone(name)
        day = at.astimezone(tz).date() + timedelta(days=offset)
        out.append(datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
                   .astimezone(UTC))
    return min(out)


def next_opening(at: datetime, facts: ContactFacts, campaign: CampaignRules, rules: RuleSet,
                 *, with_days: bool = True, horizon_days: int = LONG_HORIZON_DAYS
                 ) -> datetime | None:
    """The earliest instant >= `at` at which the contact may be called (cap aside), or None.

    Openings begin at one zone's local start of some span; those are tried in time order, a few
    local days at a time (today and tomorrow answer nearly every contact). A candidate is taken
    only when no later stage could produce an earlier one.
    """
    if _closed(at, facts, campaign, rules, with_days) is None:
        return at
    starts = _starts(campaign, rules, facts.states)
    stages = [(-1, 2), (2, WEEK_HORIZON_DAYS + 1), (WEEK_HORIZON_DAYS + 1, horizon_days + 1)]
    pool: list[datetime] = []
    for i, (first, last) in enumerate(stages):
        if first >= last:
            continue
        pool = sorted(set(pool).union(_candidates(at, facts.zones, starts, first, last)))
        bound = _day_start(at, facts.zones, starts[0], last) if i + 1 < len(stages) else None
        rest: list[datetime] = []
        for k, candidate in enumerate(pool):
            if bound is not None and candidate >= bound:
                rest = pool[k:]
                break
            if _closed(candidate, facts, campaign, rules, with_days) is None:
                return candidate
        pool = rest
    return None


def effective_cap(campaign: CampaignRules, rules: RuleSet,
                  states: tuple[str, ...]) -> tuple[int, str]:
    """The lowest matching cap and what set it (a state, or 'engine')."""
    cap, by = campaign.per_number_cap, "engine"
    for s in states:
        if s in rules.caps and rules.caps[s] < cap:
            cap, by = rules.caps[s], s
    return cap, by


def decide(facts: ContactFacts, campaign: CampaignRules, rules: RuleSet, at: datetime,
           recent: RecentCalls) -> Decision:
    """The decision for one contact at one instant, with its JSON-able record."""
    cap, cap_by = effective_cap(campaign, rules, facts.states)
    record: dict[str, Any] = {
        "at": at.astimezone(UTC).isoformat(),
        "zones": [],
        "states": list(facts.states),
        "state_sources": dict(facts.state_sources),
        "rules": rules.label(),
        "campaign_window": f"{_fmt((campaign.window.start_minute, campaign.window.end_minute))}",
        "cap": {"limit": cap, "by": cap_by, "count": recent.count},
        "dnc": {"listed": facts.on_dnc},
        "registry": {"listed": facts.on_registry, "copy": campaign.registry_version},
        "consent": {"value": facts.consent, "written": written_consent(facts.consent),
                    "required": campaign.require_consent},
    }
    for name in facts.zones:
        local = at.astimezone(zone(name))
        closure = _day_closure(rules, facts.states, local.date())
        span = local_span(campaign.window, rules, facts.states, local.weekday())
        entry = {"zone": name, "local": local.isoformat(timespec="minutes"),
                 "window": "closed" if closure else _fmt(span)}
        if closure:
            entry["closed_by"] = closure[1]
        record["zones"].append(entry)
    if not rules.covers(at.date()):
        record["rules_cover"] = f"{rules.first_year}-{rules.last_year} (holidays unknown)"

    def done(verdict: str, reason: str | None, until: datetime | None = None) -> Decision:
        record["verdict"], record["reason"] = verdict, reason
        record["until"] = until.astimezone(UTC).isoformat() if until else None
        return Decision(verdict, reason, until, record)

    if facts.on_dnc:
        return done(BLOCKED, DNC)
    if facts.on_registry:
        return done(BLOCKED, REGISTRY)
    if campaign.require_consent and not written_consent(facts.consent):
        return done(BLOCKED, CONSENT)
    reason = _closed(at, facts, campaign, rules, True)
    if reason is not None:
        opening = next_opening(at, facts, campaign, rules)
        if opening is None:
            if next_opening(at, facts, campaign, rules, with_days=False,
                            horizon_days=WEEK_HORIZON_DAYS) is None:
                return done(BLOCKED, NO_WINDOW)
            opening = at + timedelta(days=LONG_HORIZON_DAYS)  # closed that long: look again then
        return done(DEFERRED, reason, opening)
    if recent.count >= cap and recent.oldest is not None:
        free = recent.oldest + timedelta(hours=24, seconds=1)
        opening = next_opening(free, facts, campaign, rules) or free
        return done(DEFERRED, CAP, opening)
    return done(ALLOWED, None)
