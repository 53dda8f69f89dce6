"""The report rows, streamed from the database in chunks (a server-side cursor), never all loaded.

Each row is a tuple of typed Python values in the order of its column list; `writers` render them.
`pgcopy` builds the same rows as CSV text inside PostgreSQL; both share the joins and the plan of
uploaded columns defined here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, and_, case, func, select, true
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from campaigns.db.models import (
    AttemptResponse,
    AttemptState,
    CallAttempt,
    Campaign,
    Contact,
    ContactImport,
    ContactStatus,
)
from campaigns.reports import responses, sqlexpr
from campaigns.reports.columns import (
    ATTEMPT_COLUMNS,
    CONTACT_COLUMNS,
    RESPONSE_COLUMNS,
    STORED_FIELDS,
    Column,
    report_columns,
    union_headers,
)
from campaigns.reports.source import Conn, dialect_name

#: Rows fetched per round trip; also the unit in which writers write.
CHUNK_ROWS = 5_000

Row = tuple[Any, ...]


@lru_cache(maxsize=512)
def zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local(dt: datetime | None, tz: ZoneInfo | None) -> datetime | None:
    if dt is None or tz is None:
        return None
    return dt.astimezone(tz)


@dataclass
class RowStream:
    """Columns and the async stream of row chunks of one report."""

    columns: list[Column]
    chunks: AsyncIterator[list[Row]]
    #: Uploaded headers that cannot be given back (see `columns`); their cells are empty.
    unmapped_columns: list[str] = field(default_factory=list)


# ---- uploaded columns -------------------------------------------------------------------------

#: How an uploaded header of one import is filled (besides `custom_fields`, which comes first).
PHONE = "phone"  # the import's phone column: phone_raw
CUSTOM = "custom"  # kept in custom_fields
UNMAPPED = "unmapped"  # mapping not replayable, and the header is not in custom_fields
# any other value: a contact field of STORED_FIELDS


@dataclass
class UploadPlan:
    """The uploaded headers of a campaign (union over its imports, in order) and, per import,
    how each of its headers is filled."""

    headers: list[str]
    #: import id -> header -> PHONE | CUSTOM | UNMAPPED | field name
    imports: dict[int, dict[str, str]]

    @property
    def unmapped(self) -> list[str]:
        found = {h for plan in self.imports.values() for h, how in plan.items() if how == UNMAPPED}
        return [h for h in self.headers if h in found]


def import_plan(columns: list[str], phone_column: str | None,
                sample_custom: set[str]) -> dict[str, str]:
    """How each header of one import is filled: the importer's own mapping, replayed."""
    from campaigns.errors import ImportFailed
    from campaigns.importing.columns import map_columns

    try:
        mapping = map_columns(columns, phone_column)
    except ImportFailed:
        # Cannot replay the importer's choice: custom_fields and the phone column only.
        return {h: PHONE if h == phone_column else CUSTOM if h in sample_custom else UNMAPPED
                for h in columns}
    stored = {mapping.fields[f]: f for f in STORED_FIELDS if f in mapping.fields}
    plan: dict[str, str] = {}
    for i, h in enumerate(columns):
        if i == mapping.phone:
            plan[h] = PHONE
        else:
            plan[h] = stored.get(i, CUSTOM)
    return plan


async def upload_plan(conn: Conn, campaign: Campaign) -> UploadPlan:
    rows = (await conn.execute(
        select(ContactImport.id, ContactImport.columns, ContactImport.phone_column)
        .where(ContactImport.campaign_id == campaign.id).order_by(ContactImport.id)
    )).all()
    headers = union_headers([list(r.columns or []) for r in rows])
    imports: dict[int, dict[str, str]] = {}
    for r in rows:
        # One contact tells which headers are in custom_fields (only used when the importer's
        # mapping cannot be replayed): the importer stores the same keys for every row.
        sample = await conn.scalar(
            select(Contact.custom_fields)
            .where(Contact.campaign_id == campaign.id, Contact.import_id == r.id).limit(1))
        imports[r.id] = import_plan([str(h) for h in (r.columns or [])], r.phone_column,
                                    set(sample or {}))
    return UploadPlan(headers, imports)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def uploaded_values(plan: UploadPlan, r: Any) -> list[Any]:
    """The uploaded row of contact `r`: custom_fields first, then the import's plan. A header of
    the contact's own import that is empty comes back as "", one of another import as None."""
    custom = r.custom_fields or {}
    own = plan.imports.get(r.import_id, {}) if r.import_id is not None else {}
    values: list[Any] = []
    for h in plan.headers:
        if h in custom:
            values.append(_text(custom[h]))
            continue
        how = own.get(h)
        if how is None or how == UNMAPPED:
            values.append(None)
        elif how == PHONE:
            values.append(r.phone_raw or "")
        elif how == CUSTOM:
            values.append("")
        else:  # a stored field
            values.append(_text(getattr(r, how)) or "")
    return values


# ---- per contact ------------------------------------------------------------------------------

def first_zone() -> ColumnElement[str]:
    """The contact's first candidate zone (the one local times are shown in), extracted in SQL:
    cheaper than decoding the JSON list in Python for every row."""
    return Contact.timezones[0].as_string().label("tz")


@dataclass
class ContactJoin:
    """Contacts of one campaign with their attempt aggregates, last call and last attempt."""

    agg: Any
    last_call: Any
    last_any: Any
    campaign_id: int
    #: Narrows attempts to a range of contacts: `contact_range(column)` is the condition.
    contact_range: Callable[[Any], ColumnElement[bool]] | None = None

    def select(self, *columns: ColumnElement[Any] | Any) -> Select[Any]:
        c = Contact
        return (
            select(*columns)
            .select_from(c)
            .outerjoin(self.agg, self.agg.c.contact_id == c.id)
            .outerjoin(self.last_call, and_(self.last_call.contact_id == c.id,
                                            self.last_call.attempt_no == self.agg.c.last_call_no,
                                            self._in_range(self.last_call.contact_id)))
            .outerjoin(self.last_any, and_(self.last_any.contact_id == c.id,
                                           self.last_any.attempt_no == self.agg.c.last_no,
                                           self._in_range(self.last_any.contact_id)))
            .where(c.campaign_id == self.campaign_id)
            .order_by(c.id)
        )

    def _in_range(self, column: Any) -> ColumnElement[bool]:
        # Redundant with the join on contact id, but it lets the index scans of the last call
        # and last attempt start at the range (PostgreSQL's merge join otherwise reads every
        # earlier contact's attempts to skip them: ~1 s per range at 1M contacts).
        return self.contact_range(column) if self.contact_range is not None else true()


def contact_join(dialect: str, campaign_id: int,
                 contact_range: Callable[[Any], ColumnElement[bool]] | None = None
                 ) -> ContactJoin:
    """last call = the highest-numbered attempt that was a call (not `not_placed`): AMD result and
    hangup come from it; last attempt = the highest-numbered of all: the error comes from it.
    `contact_range` narrows the attempts to a range of contacts (`contact_range(column)`)."""
    ca = CallAttempt
    attempts_filter = contact_range(ca.contact_id) if contact_range is not None else None
    agg = (
        select(
            ca.contact_id.label("contact_id"),
            func.max(case((ca.state != AttemptState.NOT_PLACED, ca.attempt_no)))
            .label("last_call_no"),
            func.max(ca.attempt_no).label("last_no"),
            func.sum(sqlexpr.talk_seconds(dialect)).label("talk"),
            func.max(case((ca.voicemail_left, 1), else_=0)).label("vm"),
        )
        .where(ca.campaign_id == campaign_id,
               attempts_filter if attempts_filter is not None else true())
        .group_by(ca.contact_id)
        .subquery("agg")
    )
    return ContactJoin(agg, aliased(CallAttempt, name="last_call"),
                       aliased(CallAttempt, name="last_any"), campaign_id, contact_range)


def contact_query(dialect: str, campaign_id: int) -> Select[Any]:
    j = contact_join(dialect, campaign_id)
    c = Contact
    return j.select(
        c.id, c.import_id, c.source_row, c.phone_e164, c.phone_raw, c.extension, c.first_name,
        c.last_name, c.email, c.region, c.postal_code, first_zone(),
        c.custom_fields, c.status, c.outcome, c.attempts, c.next_attempt_at,
        c.first_attempt_at, c.last_attempt_at, c.response, c.script_completed,
        j.agg.c.talk, j.agg.c.vm, j.agg.c.last_no,
        j.last_call.amd_result, j.last_call.greeting_result, j.last_call.hangup_cause,
        j.last_call.hangup_source, j.last_call.sip_hangup_cause,
        j.last_any.error_code, j.last_any.error_detail,
    )


def contact_row(plan: UploadPlan, r: Any) -> Row:
    tz_name = r.tz
    tz = zone(tz_name)
    next_at = r.next_attempt_at if r.status == ContactStatus.QUEUED else None
    talk = r.talk if r.talk is not None else (0.0 if r.last_no is not None else None)
    return (
        *uploaded_values(plan, r),
        r.phone_e164, r.status, r.outcome, r.attempts,
        r.first_attempt_at, local(r.first_attempt_at, tz),
        r.last_attempt_at, local(r.last_attempt_at, tz),
        tz_name, r.amd_result, r.greeting_result,
        bool(r.vm) if r.vm is not None else None,
        round(float(talk), 3) if talk is not None else None,
        r.hangup_cause, r.hangup_source, r.sip_hangup_cause, r.error_code, r.error_detail,
        next_at, local(next_at, tz), r.source_row,
    )


async def _chunks(conn: Conn, stmt: Any, build: Any) -> AsyncIterator[list[Row]]:
    result = await conn.stream(stmt.execution_options(yield_per=CHUNK_ROWS))
    try:
        async for part in result.partitions(CHUNK_ROWS):
            yield [build(r) for r in part]
    finally:
        await result.close()


async def contact_rows(conn: Conn, campaign: Campaign) -> RowStream:
    plan = await upload_plan(conn, campaign)
    stmt = contact_query(dialect_name(conn), campaign.id)
    answers = responses.answer_plan(campaign)
    if answers is not None:  # keypad answers: one column per step, read chunk by chunk
        parts = _parts(conn, stmt)
        return RowStream(report_columns(plan.headers, (*CONTACT_COLUMNS, *answers.columns)),
                         responses.with_answers(conn, campaign.id, answers, parts,
                                                lambda r: contact_row(plan, r)), plan.unmapped)
    return RowStream(report_columns(plan.headers, CONTACT_COLUMNS),
                     _chunks(conn, stmt, lambda r: contact_row(plan, r)), plan.unmapped)


async def _parts(conn: Conn, stmt: Any) -> AsyncIterator[list[Any]]:
    """The database rows in chunks (all fetched before the chunk's answers are read: one
    statement at a time on the connection)."""
    result = await conn.stream(stmt.execution_options(yield_per=CHUNK_ROWS))
    try:
        async for part in result.partitions(CHUNK_ROWS):
            yield list(part)
    finally:
        await result.close()


# ---- per attempt ------------------------------------------------------------------------------

def attempt_query(dialect: str, campaign_id: int) -> Any:
    a = CallAttempt
    c = Contact
    return (
        select(
            c.phone_e164, c.source_row, first_zone(), a.attempt_no, a.state, a.command_id,
            a.call_control_id, a.created_at, a.dialed_at, a.answered_at, a.ended_at,
            sqlexpr.talk_seconds(dialect).label("talk"), a.amd_result, a.greeting_result,
            a.voicemail_left, a.message_played, a.outcome, a.hangup_cause, a.hangup_source,
            a.sip_hangup_cause, a.error_code, a.error_detail, a.decision,
        )
        .join(c, c.id == a.contact_id)
        .where(a.campaign_id == campaign_id)
        .order_by(a.contact_id, a.attempt_no)
    )


def attempt_row(r: Any) -> Row:
    tz_name = r.tz
    return (
        r.phone_e164, r.source_row, r.attempt_no, r.state, r.command_id, r.call_control_id,
        r.created_at, r.dialed_at, local(r.dialed_at, zone(tz_name)), r.answered_at, r.ended_at,
        tz_name, round(float(r.talk), 3) if r.talk is not None else None,
        r.amd_result, r.greeting_result, bool(r.voicemail_left), bool(r.message_played),
        r.outcome, r.hangup_cause, r.hangup_source, r.sip_hangup_cause, r.error_code,
        r.error_detail, decision_text(r.decision),
    )


def decision_text(value: Any) -> str | None:
    """A decision record as JSON text, as PostgreSQL prints a jsonb value (its key order when it
    came from jsonb, ', ' and ': ' separators)."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False)


async def attempt_rows(conn: Conn, campaign: Campaign) -> RowStream:
    stmt = attempt_query(dialect_name(conn), campaign.id)
    return RowStream(report_columns([], ATTEMPT_COLUMNS), _chunks(conn, stmt, attempt_row))


# ---- per keypad answer ------------------------------------------------------------------------

def response_query(campaign_id: int) -> Any:
    r, a, c = AttemptResponse, CallAttempt, Contact
    return (
        select(c.phone_e164, c.source_row, first_zone(), a.attempt_no, r.step, r.try_no,
               r.digits, r.status, r.label, r.at)
        .join(a, a.id == r.attempt_id)
        .join(c, c.id == r.contact_id)
        .where(r.campaign_id == campaign_id)
        .order_by(r.contact_id, a.attempt_no, r.id)
    )


def response_row(menus: frozenset[str]) -> Any:
    def build(r: Any) -> Row:
        tz = zone(r.tz)
        answer = None if r.status == "reached" else responses.answer_of(
            r.label, r.digits, r.status, r.step in menus)
        return (r.phone_e164, r.source_row, r.attempt_no, r.step, r.try_no, r.digits, r.status,
                r.label, answer, r.at, local(r.at, tz), r.tz)
    return build


async def response_rows(conn: Conn, campaign: Campaign) -> RowStream:
    plan = responses.answer_plan(campaign)
    build = response_row(plan.menus if plan is not None else frozenset())
    return RowStream(report_columns([], RESPONSE_COLUMNS),
                     _chunks(conn, response_query(campaign.id), build))
