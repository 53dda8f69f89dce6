"""PostgreSQL fast path for CSV: the server renders the report rows as CSV (`COPY (SELECT ...) TO
STDOUT WITH (FORMAT csv)`) and Python only relays bytes to the file.

Why: decoding a million rows of ~40 values into Python objects and formatting them again costs
far more than the query; PostgreSQL formats them in C, in its own process(es). A large report is
split into contact-id ranges copied concurrently on several connections that share one snapshot
(`pg_export_snapshot`); the first range streams into the output, the others into temp files
appended in order, so memory stays flat and the rows keep their order.

The text is the generic path's (`rows` + `writers.CsvWriter`): same columns, formula guard, ISO
8601 times (`writers.iso`), talk seconds with three decimals. Byte-level differences only:
PostgreSQL quotes an empty string (`""`) and leaves NULL bare, and ends rows with LF where the csv
module writes CRLF; CSV readers read both the same. The round-trip tests run this path.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import (
    Numeric,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import column, table
from sqlalchemy.sql.elements import ColumnElement

from campaigns.db.models import CallAttempt, Campaign, Contact, ContactStatus
from campaigns.reports import sqlexpr
from campaigns.reports.columns import ATTEMPT_COLUMNS, CONTACT_COLUMNS, Column, report_columns
from campaigns.reports.rows import CUSTOM, PHONE, UNMAPPED, UploadPlan, contact_join, upload_plan
from campaigns.reports.safety import DANGEROUS_FIRST_CHARS, csv_text
from campaigns.reports.source import SESSION_SETTINGS, Conn

Expr = ColumnElement[Any]
#: Code points of the characters the formula guard protects against (`ascii()` of the first one).
_DANGER_CODES = sorted(ord(ch) for ch in DANGEROUS_FIRST_CHARS)
#: Time zone names PostgreSQL knows: a local time in an unknown zone stays empty, as in Python.
#: Probed as `IN (SELECT ...)`, a hashed subplan (a join would cost the contacts' id order).
_PG_ZONES = table("pg_timezone_names", column("name", Text))
#: Split a report with at least this many contacts into ranges copied in parallel.
PARALLEL_MIN_ROWS = 100_000
MAX_PARTS = 4


def _guard(value: Any) -> Expr:
    """Text, quote-prefixed when it starts with a character a spreadsheet would run. `value` is
    referenced twice: pass a column, not an expensive expression."""
    v = type_coerce(value, Text)
    return case((func.ascii(v).in_(_DANGER_CODES), literal("'", Text) + v), else_=v)


def utc_text(ts: Any) -> Expr:
    """`writers.iso` of a stored UTC time: 2026-03-02T15:00:00.25+00:00 (DateStyle ISO)."""
    return func.replace(cast(ts, Text), " ", "T") + "+00:00"


def local_text(utc: Any, wall: Any) -> Expr:
    """The wall time of `utc` in the contact's zone with its offset: 2026-03-02T10:00:00-05:00.
    The offset is wall - utc as an interval (IntervalStyle postgres: -05:00:00 / 05:30:00)."""
    offset = cast(wall - utc, Text)
    sign = case((wall < utc, func.left(offset, 6)), else_="+" + func.left(offset, 5))
    return func.replace(cast(wall, Text), " ", "T") + sign


def _talk_text(talk: Any) -> Expr:
    return cast(func.round(cast(talk, Numeric), 3), Text)


def uploaded_sql(plan: UploadPlan) -> list[Expr]:
    """`rows.uploaded_values` in SQL (unguarded)."""
    custom = Contact.custom_fields
    out: list[Expr] = []
    for h in plan.headers:
        key = literal(h, Text)
        hows = {imp: by_header[h] for imp, by_header in plan.imports.items() if h in by_header}
        value = type_coerce(custom.op("->>")(key), Text)
        if all(how == CUSTOM for how in hows.values()):
            # the common case: one key lookup; "" for a contact of an import that has the column
            empty = case((Contact.import_id.in_(list(hows)), literal("", Text))) if hows else None
            out.append(func.coalesce(value, empty) if empty is not None else value)
            continue
        whens: list[tuple[Any, Any]] = [(custom.op("?", is_comparison=True)(key), value)]
        for import_id, how in hows.items():
            if how == UNMAPPED:
                continue
            if how == PHONE:
                filled: Any = func.coalesce(Contact.phone_raw, "")
            elif how == CUSTOM:
                filled = literal("", Text)
            else:  # a stored field (STORED_FIELDS)
                filled = func.coalesce(getattr(Contact, how), "")
            whens.append((Contact.import_id == import_id, filled))
        out.append(case(*whens))
    return out


def _zone_lateral(timezones: Any) -> Any:
    """The contact's first zone (name) and the same if PostgreSQL knows it (known). Memoized by
    PostgreSQL per `timezones` value: the inner subquery references the column once, so the
    cache key is one value, hashed once per row (not once per reference)."""
    first = (select(type_coerce(timezones.op("->>")(literal(0)), Text).label("tz"))
             .correlate(Contact).subquery("first_zone"))
    tz = first.c.tz
    return (select(tz.label("name"), case((tz.in_(select(_PG_ZONES.c.name)), tz)).label("known"))
            .select_from(first).correlate(Contact).offset(0).lateral("zone"))


def _wall(zone: Any, ts: Any) -> Expr:
    return func.timezone(zone.c.known, func.timezone("UTC", ts))


@dataclass
class Range:
    """Contacts with lo <= id < hi (None: unbounded)."""

    lo: int | None = None
    hi: int | None = None

    def where(self, col: Any) -> Expr:
        conds = [c for c in ((col >= self.lo) if self.lo is not None else None,
                             (col < self.hi) if self.hi is not None else None) if c is not None]
        return and_(true(), *conds)


def _plain(value: Any) -> Expr:
    return type_coerce(value, Text)


def contacts_select(plan: UploadPlan, campaign_id: int, part: Range,
                    guarded: bool = True) -> Select[Any]:
    """The per-contact report as text columns; `guarded`: with the formula guard (CSV)."""
    guard = _guard if guarded else _plain
    j = contact_join("postgresql", campaign_id, part.where)
    c = Contact
    zone = _zone_lateral(c.timezones)
    next_at = case((c.status == ContactStatus.QUEUED, c.next_attempt_at))
    v = (select(*(u.label(f"u{i}") for i, u in enumerate(uploaded_sql(plan))),
                _wall(zone, c.first_attempt_at).label("first_wall"),
                _wall(zone, c.last_attempt_at).label("last_wall"),
                next_at.label("next_at"), _wall(zone, next_at).label("next_wall"))
         .correlate(c, zone).offset(0).lateral("v"))
    talk = case((j.agg.c.talk.is_not(None), _talk_text(j.agg.c.talk)),
                (j.agg.c.last_no.is_not(None), literal_column("'0.000'")))
    stmt = j.select(
        *(guard(v.c[f"u{i}"]) for i in range(len(plan.headers))),
        guard(c.phone_e164), guard(c.status), guard(c.outcome), cast(c.attempts, Text),
        utc_text(c.first_attempt_at), local_text(c.first_attempt_at, v.c.first_wall),
        utc_text(c.last_attempt_at), local_text(c.last_attempt_at, v.c.last_wall),
        guard(zone.c.name), guard(j.last_call.amd_result), guard(j.last_call.greeting_result),
        case((j.agg.c.vm == 1, "true"), (j.agg.c.vm == 0, "false")),
        talk,
        guard(j.last_call.hangup_cause), guard(j.last_call.hangup_source),
        guard(j.last_call.sip_hangup_cause), guard(j.last_any.error_code),
        guard(j.last_any.error_detail),
        utc_text(v.c.next_at), local_text(v.c.next_at, v.c.next_wall), cast(c.source_row, Text),
    )
    return (stmt.join(zone, true()).join(v, true()).where(part.where(c.id)))


def attempts_select(campaign_id: int, part: Range, guarded: bool = True) -> Any:
    """The per-attempt report as text columns; `guarded`: with the formula guard (CSV)."""
    guard = _guard if guarded else _plain
    a = CallAttempt
    c = Contact
    zone = _zone_lateral(c.timezones)
    talk = sqlexpr.talk_seconds("postgresql")
    dialed_wall = _wall(zone, a.dialed_at)
    return (
        select(
            guard(c.phone_e164), cast(c.source_row, Text), cast(a.attempt_no, Text),
            guard(a.state), guard(a.command_id), guard(a.call_control_id), utc_text(a.created_at),
            utc_text(a.dialed_at), local_text(a.dialed_at, dialed_wall), utc_text(a.answered_at),
            utc_text(a.ended_at), guard(zone.c.name), case((talk.is_not(None), _talk_text(talk))),
            guard(a.amd_result), guard(a.greeting_result),
            case((a.voicemail_left, "true"), else_="false"),
            case((a.message_played, "true"), else_="false"),
            guard(a.outcome), guard(a.hangup_cause), guard(a.hangup_source),
            guard(a.sip_hangup_cause), guard(a.error_code), guard(a.error_detail),
            guard(cast(a.decision, Text)),
        )
        .select_from(a)
        .join(c, c.id == a.contact_id)
        .join(zone, true())
        .where(a.campaign_id == campaign_id, part.where(a.contact_id))
        .order_by(a.contact_id, a.attempt_no)
    )


# ---- running the COPY -------------------------------------------------------------------------

Sink = Callable[[bytes], Awaitable[None]]


def part_count() -> int:
    """Ranges copied at once: one PostgreSQL backend per core, at most MAX_PARTS."""
    return max(1, min(MAX_PARTS, os.cpu_count() or 1))


async def _ranges(conn: Conn, campaign_id: int) -> list[Range]:
    """Contact-id ranges of about equal width. The id span stands in for the number of contacts
    (an upper bound): min and max are two index probes, where a count(*) scanned the whole table
    (~0.5 s, on every core, at 1M contacts) before the export could start."""
    lo, hi = (await conn.execute(
        select(func.min(Contact.id), func.max(Contact.id))
        .where(Contact.campaign_id == campaign_id))).one()
    parts = part_count()
    if lo is None or hi - lo + 1 < PARALLEL_MIN_ROWS or parts < 2:
        return [Range()]
    step = (hi - lo) // parts + 1
    bounds = [lo + i * step for i in range(1, parts)]
    return [Range(None, bounds[0]), *(Range(a, b) for a, b in itertools.pairwise(bounds)),
            Range(bounds[-1], None)]


def _engine_of(conn: Conn) -> AsyncEngine | None:
    """The engine behind a session, to open the extra connections (None: a session with several
    binds; the ranges then run one after the other)."""
    bind = conn.bind
    if isinstance(bind, AsyncEngine):
        return bind
    if isinstance(bind, AsyncConnection):
        return bind.engine
    return None


async def _copy(driver: Any, sql: str, sink: Sink) -> int:
    status = await driver.copy_from_query(sql, output=sink, format="csv")
    return int(str(status).rsplit(" ", 1)[-1])


async def _copy_in_snapshot(engine: AsyncEngine, snapshot: str, sql: str, sink: Sink) -> int:
    """COPY on a second connection that sees exactly the first connection's snapshot."""
    async with engine.connect() as extra:
        driver = (await extra.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            await driver.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            for setting in SESSION_SETTINGS:
                await driver.execute(setting)
            return await _copy(driver, sql, sink)
        finally:
            await driver.execute("ROLLBACK")


@dataclass
class CopyJob:
    """One report as COPY statements, one per contact-id range (in output order)."""

    columns: list[Column]
    unmapped: list[str]
    statements: list[str]


async def prepare(conn: Conn, campaign: Campaign, *, attempts: bool, guarded: bool) -> CopyJob:
    sa_conn = await conn.connection()
    parts = await _ranges(conn, campaign.id)
    if attempts:
        columns, unmapped = report_columns([], ATTEMPT_COLUMNS), []
        selects = [attempts_select(campaign.id, p, guarded) for p in parts]
    else:
        plan = await upload_plan(conn, campaign)
        columns, unmapped = report_columns(plan.headers, CONTACT_COLUMNS), plan.unmapped
        selects = [contacts_select(plan, campaign.id, p, guarded) for p in parts]
    statements = [str(s.compile(dialect=sa_conn.dialect, compile_kwargs={"literal_binds": True}))
                  for s in selects]
    return CopyJob(columns, unmapped, statements)


async def run(conn: Conn, job: CopyJob, sinks: list[Sink]) -> int:
    """Run the job's statements at once, statement i into sinks[i]; returns the rows copied.
    The first runs on `conn`; the others on extra connections sharing its snapshot."""
    driver = (await (await conn.connection()).get_raw_connection()).driver_connection
    assert driver is not None
    engine = _engine_of(conn)
    if len(job.statements) == 1 or engine is None:
        return sum([await _copy(driver, sql, sink) for sql, sink in zip(job.statements, sinks)])
    snapshot = await driver.fetchval("SELECT pg_export_snapshot()")
    counts = await asyncio.gather(
        _copy(driver, job.statements[0], sinks[0]),
        *(_copy_in_snapshot(engine, snapshot, sql, sink)
          for sql, sink in zip(job.statements[1:], sinks[1:])))
    return sum(counts)


#: A COPY chunk smaller than this makes the sink wait COALESCE_SECONDS before asking for the next
#: one: asyncpg stops reading the socket while the sink runs, so the kernel gathers the server's
#: output and the next chunk comes in one large read. Without it Python wakes up for every ~16 KB
#: the server sends (~18,000 event-loop rounds for a 1M-contact report, ~2 s of CPU). The server
#: never waits for it: at most ~COALESCE_SECONDS x its output rate (~200 KB) is held in the socket.
COALESCE_BYTES = 256 << 10
COALESCE_SECONDS = 0.01


def _file_sink(f: IO[bytes]) -> Sink:
    async def write(chunk: bytes) -> None:
        f.write(chunk)
        if len(chunk) < COALESCE_BYTES:
            await asyncio.sleep(COALESCE_SECONDS)
    return write


def _append(src: IO[bytes], out: IO[bytes]) -> None:
    """Append the whole of file `src` to `out`: in the kernel (`os.sendfile`) when both are real
    files (or `out` a pipe), else through a 1 MB buffer."""
    src.seek(0)
    try:
        out_fd, in_fd = out.fileno(), src.fileno()
    except (AttributeError, OSError, ValueError):
        shutil.copyfileobj(src, out, 1 << 20)
        return
    out.flush()
    size = os.fstat(in_fd).st_size
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(out_fd, in_fd, offset, size - offset)
            if sent == 0:
                break
            offset += sent
    except OSError:
        if offset:
            raise  # part of it is written: cannot fall back without duplicating it
        shutil.copyfileobj(src, out, 1 << 20)


async def copy_csv(conn: Conn, campaign: Campaign, out: IO[bytes], *,
                   attempts: bool) -> tuple[list[Column], int, list[str]]:
    """Write the report as CSV to the binary stream `out`; returns (columns, rows, unmapped
    headers). `conn` must have had `source.tune_for_report`."""
    job = await prepare(conn, campaign, attempts=attempts, guarded=True)
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([csv_text(c.name) for c in job.columns])
    out.write(header.getvalue().encode("utf-8"))
    with ExitStack() as stack:
        spools = [stack.enter_context(tempfile.TemporaryFile(dir=_spool_dir(out)))
                  for _ in job.statements[1:]]
        rows = await run(conn, job, [_file_sink(out), *(_file_sink(f) for f in spools)])
        for f in spools:
            _append(f, out)
    return job.columns, rows, job.unmapped


async def copy_parquet(conn: Conn, campaign: Campaign, path: str, *,
                       attempts: bool) -> tuple[list[Column], int, list[str]]:
    """Write the report as Parquet: COPY (no formula guard: Parquet is typed and read by programs)
    into temp CSV spools, parsed by Arrow's CSV reader in blocks into typed columns and written in
    row groups. Bounded memory; the CSV parsing runs in a worker thread."""
    job = await prepare(conn, campaign, attempts=attempts, guarded=False)
    with ExitStack() as stack:
        spools = [stack.enter_context(tempfile.TemporaryFile(dir=os.path.dirname(path) or None))
                  for _ in job.statements]
        rows = await run(conn, job, [_file_sink(f) for f in spools])
        await asyncio.to_thread(_csv_spools_to_parquet, spools, job.columns, path)
    return job.columns, rows, job.unmapped


def _csv_spools_to_parquet(spools: Sequence[IO[bytes]], columns: list[Column], path: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from campaigns.reports.writers import PARQUET_ROW_GROUP, parquet_schema

    schema = parquet_schema(columns)
    names = [f"c{i}" for i in range(len(columns))]
    read = pacsv.ReadOptions(column_names=names, block_size=2 << 20)  # ~290 MB peak at 1M rows
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types={n: f.type for n, f in zip(names, schema)},
        strings_can_be_null=True, quoted_strings_can_be_null=False)  # NULL bare, "" quoted
    with pq.ParquetWriter(path, schema) as writer:
        pending: list[Any] = []
        pending_rows = 0
        for f in spools:
            if f.seek(0, os.SEEK_END) == 0:
                continue  # an empty range (Arrow refuses an empty CSV)
            f.seek(0)
            for batch in pacsv.open_csv(f, read_options=read, parse_options=parse,
                                        convert_options=convert):
                pending.append(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
                pending_rows += batch.num_rows
                if pending_rows >= PARQUET_ROW_GROUP:
                    writer.write_table(pa.Table.from_batches(pending, schema=schema),
                                       row_group_size=pending_rows)
                    pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema=schema),
                               row_group_size=pending_rows)


def _spool_dir(out: IO[bytes]) -> str | None:
    """Spool next to the output file (same disk), else in the system temp folder."""
    name = getattr(out, "name", None)
    return os.path.dirname(os.path.abspath(name)) if isinstance(name, str) else None
