"""The campaign summary, computed with SQL aggregates (a handful of queries whatever the size).

Definitions (docs/reports.md repeats them for users):

* placed attempt: an attempt in state dialed / answered / ended (a call was really placed;
  `not_placed` ones such as a 429 and `created` ones not yet sent are not calls).
* answered attempt: placed, and answered (an answer time, or an outcome only an answer gives:
  human, machine, fax, silence).
* answer rate = answered / placed; human rate = human / placed; machine rate = machine / placed.
* talk time of an attempt = ended_at - answered_at (both known); average and median over those.
* attempts per contact = placed attempts / contacts with at least one placed attempt.
* dials per hour = placed attempts / hours between the first and the last dial; recent dials per
  hour = placed attempts in the last RECENT_WINDOW before `now` (or since the first dial, when
  that is later), scaled to an hour.
* remaining = contacts not done (queued, dialing, in call). ETA = remaining / recent dial rate: it
  assumes one more dial per remaining contact (retries make it longer), and is given only while the
  campaign is running and dialing.

Median: PostgreSQL's `percentile_cont(0.5)`; on SQLite, the middle one or two values of the sorted
talk times (`ORDER BY ... LIMIT 2 OFFSET (n-1)/2`), which SQLite sorts with bounded memory
(external merge sort), so neither loads the rows into Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from campaigns import outcomes
from campaigns.db.models import (
    AttemptState,
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
)
from campaigns.db.types import aware_utc, utcnow
from campaigns.reports import sqlexpr
from campaigns.reports.responses import answer_counts, opted_out_count
from campaigns.reports.source import Conn, dialect_name

RECENT_WINDOW = timedelta(minutes=15)


@dataclass
class OutcomeCount:
    outcome: str
    contacts: int
    contacts_share: float
    attempts: int
    attempts_share: float


@dataclass
class CampaignSummary:
    campaign: str
    status: str
    generated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    contacts: int
    contacts_by_status: dict[str, int]
    contacts_remaining: int
    contacts_attempted: int
    outcomes: list[OutcomeCount]
    attempts_placed: int
    attempts_not_placed: int
    attempts_in_flight: int
    answered: int
    human: int
    machine: int
    voicemails_left: int
    answer_rate: float | None
    human_rate: float | None
    machine_rate: float | None
    talk_seconds_total: float
    talk_seconds_avg: float | None
    talk_seconds_median: float | None
    attempts_per_contact: float | None
    first_dial_at: datetime | None
    last_dial_at: datetime | None
    dials_per_hour: float | None
    recent_dials_per_hour: float | None
    eta_seconds: float | None
    eta_at: datetime | None
    notes: list[str] = field(default_factory=list)
    #: Keypad answers: script step -> answer -> contacts (campaigns with a script or opt-out key),
    #: steps in the order a call meets them.
    answers: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Contacts who opted out by keypress (None: the campaign has no keypad answers).
    opted_out: int | None = None
    #: Played by a dry run (`dialer run --simulate`): no call was placed, times are simulated.
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 strings."""
        def conv(v: Any) -> Any:
            if isinstance(v, datetime):
                return v.isoformat()
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, list):
                return [conv(x) for x in v]
            return v

        return {k: conv(v) for k, v in asdict(self).items()}


DRY_RUN_NOTE = ("Dry run: played against the simulator (`dialer run --simulate`), no call was "
                "placed; times are simulated times (retries and calling windows as a real run "
                "would space them).")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


async def median_talk(conn: Conn, campaign_id: int) -> float | None:
    dialect = dialect_name(conn)
    talk = sqlexpr.talk_seconds(dialect)
    where = and_(CallAttempt.campaign_id == campaign_id, CallAttempt.answered_at.is_not(None),
                 CallAttempt.ended_at.is_not(None))
    if dialect == "postgresql":
        value = await conn.scalar(
            select(func.percentile_cont(0.5).within_group(talk)).where(where))
        return float(value) if value is not None else None
    n = int(await conn.scalar(select(func.count()).select_from(CallAttempt).where(where)) or 0)
    if n == 0:
        return None
    middle = (select(talk.label("t")).where(where).order_by(talk)
              .limit(2 - n % 2).offset((n - 1) // 2))
    values = [float(v) for v in (await conn.execute(middle)).scalars()]
    return sum(values) / len(values)


async def build_summary(conn: Conn, campaign: Campaign,
                        now: datetime | None = None) -> CampaignSummary:
    explicit_now = now is not None
    now = generated = now or utcnow()
    dialect = dialect_name(conn)
    a = CallAttempt
    cid = campaign.id

    by_status: dict[str, int] = {}
    contacts_by_outcome: dict[str, int] = {}
    for status, outcome, n in await conn.execute(
        select(Contact.status, Contact.outcome, func.count()).where(Contact.campaign_id == cid)
        .group_by(Contact.status, Contact.outcome)
    ):
        by_status[status] = by_status.get(status, 0) + n
        key = outcome or "pending"
        contacts_by_outcome[key] = contacts_by_outcome.get(key, 0) + n
    contacts = sum(by_status.values())

    placed = sqlexpr.is_placed()
    talk = sqlexpr.talk_seconds(dialect)
    dial_time = sqlexpr.dial_time()
    span = (await conn.execute(
        select(func.min(dial_time), func.max(dial_time), func.count(func.distinct(a.contact_id)))
        .where(a.campaign_id == cid, placed)
    )).one()
    first_dial, last_dial = aware_utc(span[0]), aware_utc(span[1])
    dialed_contacts = int(span[2] or 0)
    dry_run = bool(campaign.dry_run)
    if dry_run and not explicit_now and last_dial is not None and last_dial > now:
        # A dry run's times are simulated and run ahead of the wall clock: "recent" and the
        # ETA are measured at its last dial, not at a wall-clock time before all of them.
        now = last_dial
    recent_since = now - RECENT_WINDOW
    row = (await conn.execute(
        select(
            sqlexpr.count_if(placed).label("placed"),
            sqlexpr.count_if(a.state == AttemptState.NOT_PLACED).label("not_placed"),
            sqlexpr.count_if(a.state.in_(AttemptState.IN_FLIGHT)).label("in_flight"),
            sqlexpr.count_if(and_(placed, sqlexpr.is_answered())).label("answered"),
            sqlexpr.count_if(and_(placed, a.outcome == outcomes.HUMAN)).label("human"),
            sqlexpr.count_if(and_(placed, a.outcome == outcomes.MACHINE)).label("machine"),
            sqlexpr.count_if(a.voicemail_left.is_(True)).label("voicemails"),
            sqlexpr.count_if(and_(placed, dial_time >= recent_since)).label("recent"),
            func.count(talk).label("talk_n"),
            func.sum(talk).label("talk_sum"),
        ).where(a.campaign_id == cid)
    )).one()

    attempts_by_outcome: dict[str, int] = {}
    for outcome, n in await conn.execute(
        select(a.outcome, func.count()).where(a.campaign_id == cid, placed).group_by(a.outcome)
    ):
        key = outcome or "pending"
        attempts_by_outcome[key] = attempts_by_outcome.get(key, 0) + n

    n_placed = int(row.placed)
    order = [o for o in (*outcomes.ALL_OUTCOMES, "pending")
             if o in contacts_by_outcome or o in attempts_by_outcome]
    order += sorted((set(contacts_by_outcome) | set(attempts_by_outcome)) - set(order))
    outcome_rows = [
        OutcomeCount(o, contacts_by_outcome.get(o, 0),
                     _ratio(contacts_by_outcome.get(o, 0), contacts) or 0.0,
                     attempts_by_outcome.get(o, 0),
                     _ratio(attempts_by_outcome.get(o, 0), n_placed) or 0.0)
        for o in order
    ]

    hours = ((last_dial - first_dial).total_seconds() / 3600) if first_dial and last_dial else 0.0
    dials_per_hour = n_placed / hours if hours > 0 else None
    # A campaign dialing for less than the window: its rate over the time it has dialed.
    window = RECENT_WINDOW
    if first_dial is not None and now - first_dial < RECENT_WINDOW:
        window = max(now - first_dial, timedelta(seconds=1))
    recent_per_hour = int(row.recent) * (timedelta(hours=1) / window)
    remaining = contacts - by_status.get(ContactStatus.DONE, 0)
    notes: list[str] = [DRY_RUN_NOTE] if dry_run else []
    eta_seconds: float | None = None
    if remaining and campaign.status != CampaignStatus.RUNNING:
        notes.append(f"no ETA: the campaign is {campaign.status}")
    elif remaining and recent_per_hour == 0:
        notes.append(f"no ETA: no dials in the last {int(RECENT_WINDOW.total_seconds() // 60)} min")
    elif remaining:
        eta_seconds = remaining / recent_per_hour * 3600
    talk_n = int(row.talk_n)
    return CampaignSummary(
        campaign=campaign.name,
        status=campaign.status,
        generated_at=generated,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        contacts=contacts,
        contacts_by_status=by_status,
        contacts_remaining=remaining,
        contacts_attempted=dialed_contacts,
        outcomes=outcome_rows,
        attempts_placed=n_placed,
        attempts_not_placed=int(row.not_placed),
        attempts_in_flight=int(row.in_flight),
        answered=int(row.answered),
        human=int(row.human),
        machine=int(row.machine),
        voicemails_left=int(row.voicemails),
        answer_rate=_ratio(int(row.answered), n_placed),
        human_rate=_ratio(int(row.human), n_placed),
        machine_rate=_ratio(int(row.machine), n_placed),
        talk_seconds_total=round(float(row.talk_sum or 0.0), 3),
        talk_seconds_avg=round(float(row.talk_sum) / talk_n, 3) if talk_n else None,
        talk_seconds_median=_round(await median_talk(conn, cid)),
        attempts_per_contact=_ratio(n_placed, dialed_contacts),
        first_dial_at=first_dial,
        last_dial_at=last_dial,
        dials_per_hour=dials_per_hour,
        recent_dials_per_hour=recent_per_hour,
        eta_seconds=round(eta_seconds, 1) if eta_seconds is not None else None,
        eta_at=now + timedelta(seconds=eta_seconds) if eta_seconds is not None else None,
        notes=notes,
        answers=await answer_counts(conn, campaign),
        opted_out=await opted_out_count(conn, campaign),
        dry_run=dry_run,
    )


def _round(v: float | None) -> float | None:
    return round(v, 3) if v is not None else None


