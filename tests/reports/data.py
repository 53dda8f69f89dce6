"""A campaign with every kind of contact and attempt, inserted with SQLAlchemy, and an independent
"oracle" that computes from the inserted rows what each report row must say."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campaigns import outcomes as o
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import (
    AttemptState,
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    ContactImport,
    ContactStatus,
)

T0 = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)
#: `now` for summaries: 10 min after the last dial (T0 + 150 min), so one dial is "recent".
NOW = T0 + timedelta(minutes=160)

HEADERS = ["Phone", "First Name", "Last Name", "E-mail", "Account", "Notes", "Balance", "Zip"]
PHONE_COLUMN = "Phone"
CUSTOM = ("Account", "Notes", "Balance")

FORMULAS = ['=HYPERLINK("http://evil","x")', "+cmd", "-1+1", "@SUM(1)", "\t=1+1", "\r=1+1"]


@dataclass
class A:
    """An attempt to insert (times are offsets in seconds from the contact's base time)."""

    state: str
    outcome: str | None
    answered: float | None = None
    ended: float | None = None
    amd: str | None = None
    greeting: str | None = None
    vm: bool = False
    played: bool = False
    cause: str | None = None
    source: str | None = None
    sip: str | None = None
    error_code: str | None = None
    error_detail: str | None = None


@dataclass
class C:
    """A contact to insert, with the uploaded row it came from."""

    phone: str
    row: dict[str, str]
    status: str
    outcome: str | None
    tz: list[str]
    attempts: list[A] = field(default_factory=list)
    next_in: float | None = None  # next_attempt_at offset from NOW (queued)


def _row(phone: str, first: str, last: str, email: str, account: str, notes: str,
         balance: str, zipc: str) -> dict[str, str]:
    return dict(zip(HEADERS, [phone, first, last, email, account, notes, balance, zipc]))


def contacts_spec() -> list[C]:
    ny, kol, lon = ["America/New_York"], ["Asia/Kolkata"], ["Europe/London"]
    ended = AttemptState.ENDED
    specs = [
        C("+14155550101", _row("(415) 555-0101", "Ann", "Lee", "ann@example.com", "A-1",
                               FORMULAS[0], "10.50", "94105"),
          ContactStatus.DONE, o.HUMAN, ny,
          [A(ended, o.HUMAN, 5, 47.25, amd="human", played=True, cause="normal_clearing",
             source="callee", sip="200")]),
        C("+14155550102", _row("+1 415 555 0102", "Bob", "Ng", "bob@example.com", FORMULAS[1],
                               'says "hi", then\nleaves', FORMULAS[2], "10001"),
          ContactStatus.DONE, o.MACHINE, kol,
          [A(ended, o.NO_ANSWER, cause="timeout", source="caller", sip="480"),
           A(ended, o.MACHINE, 4, 30, amd="machine", greeting="beep_detected", vm=True,
             cause="normal_clearing", source="caller", sip="200")]),
        C("+14155550103", _row("415.555.0103", "Zoë", "日本", "z@example.com", FORMULAS[3],
                               FORMULAS[4], FORMULAS[5], "-0103"),
          ContactStatus.QUEUED, o.BUSY, lon,
          [A(ended, o.BUSY, cause="user_busy", source="callee", sip="486")], next_in=300),
        C("+14155550104", _row("4155550104", "Dee", "", "", "A-4", "", "0", "02134"),
          ContactStatus.QUEUED, None, ny, [], next_in=60),
        C("+14155550105", _row("4155550105", "Eve", "X", "", "A-5", "bad number", "", ""),
          ContactStatus.DONE, o.INVALID_NUMBER, ny,
          [A(AttemptState.NOT_PLACED, o.INVALID_NUMBER, error_code="10016",
             error_detail="Invalid 'to' address")]),
        C("+14155550106", _row("4155550106", "Fay", "Y", "", "A-6", "rate limited", "", ""),
          ContactStatus.QUEUED, o.NO_ANSWER, [],
          [A(ended, o.NO_ANSWER, cause="no_answer", source="callee", sip="480"),
           A(AttemptState.NOT_PLACED, None, error_code="429", error_detail="Too many requests")],
          next_in=30),
        C("+14155550107", _row("4155550107", "Gus", "Z", "", "A-7", "", "", ""),
          ContactStatus.DONE, o.CANCELED, ny, []),
        C("+14155550108", _row("4155550108", "Hal", "Q", "", "A-8", "", "", ""),
          ContactStatus.DONE, o.DNC, ny, []),
        C("+14155550109", _row("4155550109", "Ivy", "R", "", "A-9", "", "", ""),
          ContactStatus.IN_CALL, None, ny,
          [A(AttemptState.ANSWERED, None, 3, amd="human")]),
        C("+14155550110", _row("4155550110", "Jo", "S", "", "A-10", "", "", ""),
          ContactStatus.DONE, o.FAX, kol,
          [A(ended, o.FAX, 2, 12, amd="fax_detected", cause="normal_clearing", source="caller")]),
        C("+14155550111", _row("4155550111", "Kim", "T", "", "A-11", "", "", ""),
          ContactStatus.DONE, o.SILENCE, lon,
          [A(ended, o.SILENCE, 2, 9.5, amd="silence", cause="normal_clearing", source="caller")]),
        C("+14155550112", _row("4155550112", "Lu", "U", "", "A-12", "", "", ""),
          ContactStatus.DONE, o.REJECTED, ny,
          [A(ended, o.REJECTED, cause="call_rejected", source="callee", sip="603"),
           A(ended, o.REJECTED, cause="call_rejected", source="callee", sip="603")]),
        C("+14155550113", _row("4155550113", "Mo", "V", "", "A-13", "", "", ""),
          ContactStatus.DONE, o.FAILED, ny,
          [A(ended, o.FAILED, cause="unspecified", source="unknown", sip="403",
             error_code="90018", error_detail="channel limit")]),
        C("+14155550114", _row("4155550114", "Ned", "W", "", "A-14", "", "", ""),
          ContactStatus.DONE, o.NO_WINDOW, ["America/New_York", "Pacific/Honolulu"], []),
        C("+14155550115", _row("4155550115", "Oz", "", "", "A-15", "", "", ""),
          ContactStatus.DIALING, None, ny, [A(AttemptState.DIALED, None)]),
        C("+14155550116", _row("4155550116", "Pia", "", "", "A-16", "", "", ""),
          ContactStatus.DONE, o.HUMAN, ny,
          [A(ended, o.HUMAN, 1, 121, amd="human_residence", cause="normal_clearing",
             source="callee", sip="200")]),
    ]
    return specs


@dataclass
class Built:
    campaign_id: int
    name: str
    specs: list[C]
    contacts: list[Contact]
    attempts: dict[int, list[CallAttempt]]  # contact id -> attempts in order


async def build(url: str, name: str = "spring", status: str = CampaignStatus.RUNNING) -> Built:
    engine = create_engine(url)
    specs = contacts_spec()
    try:
        async with session_factory(engine)() as session, session.begin():
            camp = Campaign(name=name, status=status, from_number="+14155550100",
                            connection_id="123", dial_settings={}, settings={},
                            started_at=T0 - timedelta(minutes=5))
            session.add(camp)
            await session.flush()
            imp = ContactImport(campaign_id=camp.id, file_name="list.csv", columns=HEADERS,
                                phone_column=PHONE_COLUMN, rows_read=len(specs),
                                accepted=len(specs))
            session.add(imp)
            await session.flush()
            contacts: list[Contact] = []
            attempts: dict[int, list[CallAttempt]] = {}
            for i, spec in enumerate(specs):
                base = T0 + timedelta(minutes=10 * i)
                placed = [a for a in spec.attempts if a.state != AttemptState.NOT_PLACED]
                row = spec.row
                contact = Contact(
                    campaign_id=camp.id, import_id=imp.id, source_row=i + 2,
                    phone_e164=spec.phone, phone_raw=row["Phone"],
                    first_name=row["First Name"] or None, last_name=row["Last Name"] or None,
                    email=row["E-mail"] or None, postal_code=row["Zip"] or None,
                    timezones=spec.tz, timezone_source="number" if spec.tz else None,
                    custom_fields={k: row[k] for k in CUSTOM},
                    status=spec.status, outcome=spec.outcome, attempts=len(placed),
                    next_attempt_at=NOW + timedelta(seconds=spec.next_in)
                    if spec.next_in is not None else None,
                    first_attempt_at=base if spec.attempts else None,
                    last_attempt_at=base + timedelta(minutes=len(spec.attempts) - 1)
                    if spec.attempts else None,
                )
                session.add(contact)
                await session.flush()
                rows: list[CallAttempt] = []
                for n, a in enumerate(spec.attempts, start=1):
                    at = base + timedelta(minutes=n - 1)
                    is_call = a.state != AttemptState.NOT_PLACED
                    rows.append(CallAttempt(
                        contact_id=contact.id, campaign_id=camp.id, attempt_no=n,
                        phone_e164=spec.phone, command_id=f"cmd-{contact.id}-{n}",
                        client_state="x", call_control_id=f"v3:cc-{contact.id}-{n}"
                        if is_call else None,
                        state=a.state, created_at=at, dial_sent_at=at if is_call else None,
                        dialed_at=at + timedelta(milliseconds=250) if is_call
                        and a.state != AttemptState.CREATED else None,
                        answered_at=at + timedelta(seconds=a.answered)
                        if a.answered is not None else None,
                        ended_at=at + timedelta(seconds=a.ended) if a.ended is not None else (
                            at + timedelta(seconds=40) if a.state == AttemptState.ENDED else None),
                        hangup_cause=a.cause, hangup_source=a.source, sip_hangup_cause=a.sip,
                        amd_result=a.amd, greeting_result=a.greeting, voicemail_left=a.vm,
                        message_played=a.played, outcome=a.outcome, error_code=a.error_code,
                        error_detail=a.error_detail,
                    ))
                session.add_all(rows)
                contacts.append(contact)
                attempts[contact.id] = rows
            await session.flush()
            return Built(camp.id, name, specs, contacts, attempts)
    finally:
        await engine.dispose()


# ---- oracle -----------------------------------------------------------------------------------

def _local(dt: datetime | None, tz: list[str]) -> datetime | None:
    return dt.astimezone(ZoneInfo(tz[0])) if dt is not None and tz else None


def _talk(a: CallAttempt) -> float | None:
    if a.answered_at is None or a.ended_at is None:
        return None
    return (a.ended_at - a.answered_at).total_seconds()


def expected_contacts(b: Built) -> list[dict[str, Any]]:
    out = []
    for spec, c in zip(b.specs, b.contacts):
        atts = b.attempts[c.id]
        calls = [a for a in atts if a.state != AttemptState.NOT_PLACED]
        last_call = calls[-1] if calls else None
        last_any = atts[-1] if atts else None
        talks = [t for a in atts if (t := _talk(a)) is not None]
        queued = c.status == ContactStatus.QUEUED
        row: dict[str, Any] = dict(spec.row)
        row.update({
            "phone_e164": c.phone_e164, "status": c.status, "outcome": c.outcome,
            "attempts": c.attempts,
            "first_attempt_at_utc": c.first_attempt_at,
            "first_attempt_at_local": _local(c.first_attempt_at, c.timezones),
            "last_attempt_at_utc": c.last_attempt_at,
            "last_attempt_at_local": _local(c.last_attempt_at, c.timezones),
            "timezone": c.timezones[0] if c.timezones else None,
            "amd_result": last_call.amd_result if last_call else None,
            "greeting_result": last_call.greeting_result if last_call else None,
            "voicemail_left": any(a.voicemail_left for a in atts) if atts else None,
            "talk_seconds": float(sum(talks)) if atts else None,
            "hangup_cause": last_call.hangup_cause if last_call else None,
            "hangup_source": last_call.hangup_source if last_call else None,
            "sip_hangup_cause": last_call.sip_hangup_cause if last_call else None,
            "error_code": last_any.error_code if last_any else None,
            "error_detail": last_any.error_detail if last_any else None,
            "next_attempt_at_utc": c.next_attempt_at if queued else None,
            "next_attempt_at_local": _local(c.next_attempt_at, c.timezones) if queued else None,
            "source_row": c.source_row,
        })
        out.append(row)
    return out


def expected_attempts(b: Built) -> list[dict[str, Any]]:
    out = []
    for c in b.contacts:
        for a in b.attempts[c.id]:
            out.append({
                "phone_e164": c.phone_e164, "source_row": c.source_row,
                "attempt_no": a.attempt_no, "state": a.state, "command_id": a.command_id,
                "call_control_id": a.call_control_id, "created_at_utc": a.created_at,
                "dialed_at_utc": a.dialed_at, "dialed_at_local": _local(a.dialed_at, c.timezones),
                "answered_at_utc": a.answered_at, "ended_at_utc": a.ended_at,
                "timezone": c.timezones[0] if c.timezones else None, "talk_seconds": _talk(a),
                "amd_result": a.amd_result, "greeting_result": a.greeting_result,
                "voicemail_left": a.voicemail_left, "message_played": a.message_played,
                "outcome": a.outcome, "hangup_cause": a.hangup_cause,
                "hangup_source": a.hangup_source, "sip_hangup_cause": a.sip_hangup_cause,
                "error_code": a.error_code, "error_detail": a.error_detail,
                "decision": None,
            })
    return out


def build_sync(url: str, name: str = "spring", status: str = CampaignStatus.RUNNING) -> Built:
    """`build` for synchronous tests (the CLI runs its own event loop)."""
    import asyncio

    return asyncio.run(build(url, name, status))
