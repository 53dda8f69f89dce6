"""The dialect-specific part of bulk storage, in one place.

PostgreSQL: rows go in with `COPY ... FROM STDIN (FORMAT csv)` on the asyncpg connection of the
caller's transaction, membership tests use `= ANY($1::text[])`, and imports into one campaign are
serialised by a transaction-scoped advisory lock. SQLite: batched `executemany` and `IN (...)`;
its `BEGIN IMMEDIATE` already serialises writers. Everything runs inside the caller's session and
transaction, so a failure rolls it all back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import Contact, DncNumber

#: Columns an import writes, in the order of the Arrow table given to `insert_contacts`.
CONTACT_COLUMNS = (
    "campaign_id", "import_id", "source_row", "phone_e164", "phone_raw", "extension",
    "first_name", "last_name", "email", "region", "postal_code", "timezones", "timezone_source",
    "custom_fields", "status", "attempts", "next_attempt_at", "created_at", "updated_at",
)
_SQLITE_BATCH = 5_000
_SQLITE_IN = 900
#: Arbitrary namespace for advisory locks taken by contact imports.
_IMPORT_LOCK_NS = 0x1D1A1


def dialect(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.dialect.name


def is_postgres(session: AsyncSession) -> bool:
    return dialect(session) == "postgresql"


async def _asyncpg(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's current transaction.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement: make sure it has,
    or what we run on the raw connection would commit on its own.
    """
    raw = await (await session.connection()).get_raw_connection()
    conn: Any = raw.driver_connection
    if not conn.is_in_transaction():
        await session.execute(select(1))
    if not conn.is_in_transaction():  # pragma: no cover - SQLAlchemy always begins one
        raise RuntimeError("no open transaction on the database connection")
    return conn


async def lock_campaign_imports(session: AsyncSession, campaign_id: int) -> None:
    """Serialise imports into one campaign until the transaction ends (PostgreSQL); SQLite's
    write lock does it already. Engine updates of the campaign row are not blocked."""
    if is_postgres(session):
        conn = await _asyncpg(session)
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _IMPORT_LOCK_NS,
                           campaign_id & 0x7FFFFFFF)


async def contacts_exist(session: AsyncSession, campaign_id: int) -> bool:
    found = await session.scalar(
        select(Contact.id).where(Contact.campaign_id == campaign_id).limit(1))
    return found is not None


async def dnc_exists(session: AsyncSession) -> bool:
    return await session.scalar(select(DncNumber.phone_e164).limit(1)) is not None


async def existing_numbers(session: AsyncSession, campaign_id: int,
                           numbers: Collection[str]) -> set[str]:
    """Which of `numbers` (E.164) are contacts of the campaign already."""
    if not numbers:
        return set()
    if is_postgres(session):
        conn = await _asyncpg(session)
        rows = await conn.fetch(
            "SELECT phone_e164 FROM contacts WHERE campaign_id = $1 "
            "AND phone_e164 = ANY($2::text[])", campaign_id, list(numbers))
        return {r[0] for r in rows}
    return await _sqlite_among(
        session, "SELECT phone_e164 FROM contacts WHERE campaign_id = ? AND phone_e164 IN ({})",
        (campaign_id,), list(numbers))


async def numbers_among(session: AsyncSession, table: str, column: str,
                        numbers: Collection[str]) -> set[str]:
    """Which of `numbers` are in `table.column` (a DNC-style list)."""
    if not numbers:
        return set()
    if is_postgres(session):
        conn = await _asyncpg(session)
        rows = await conn.fetch(f"SELECT {column} FROM {table} WHERE {column} = ANY($1::text[])",
                                list(numbers))
        return {r[0] for r in rows}
    return await _sqlite_among(session, f"SELECT {column} FROM {table} WHERE {column} IN ({{}})",
                               (), list(numbers))


async def _sqlite_among(session: AsyncSession, sql: str, head: tuple[Any, ...],
                        numbers: list[str]) -> set[str]:
    conn = await session.connection()
    found: set[str] = set()
    for i in range(0, len(numbers), _SQLITE_IN):
        part = numbers[i:i + _SQLITE_IN]
        result = await conn.exec_driver_sql(sql.format(",".join("?" * len(part))),
                                            (*head, *part))
        found.update(r[0] for r in result)
    return found


def timestamp_text(session: AsyncSession, value: datetime) -> str:
    """A datetime as text in the form the database stores it (through the model's column type),
    for bulk paths that bypass the ORM."""
    dia = session.get_bind().dialect
    proc = Contact.__table__.c.created_at.type.bind_processor(dia)
    out = proc(value) if proc else value
    return out.isoformat(sep=" ") if isinstance(out, datetime) else str(out)


async def insert_contacts(session: AsyncSession, table: pa.Table) -> int:
    """Insert the rows of `table` (columns CONTACT_COLUMNS; timestamps and JSON as text)."""
    if table.num_rows == 0:
        return 0
    table = table.select(list(CONTACT_COLUMNS))
    if is_postgres(session):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False,
                                                        quoting_style="needed"))
        conn = await _asyncpg(session)
        await conn.copy_to_table("contacts", source=memoryview(sink.getvalue()),
                                 columns=list(CONTACT_COLUMNS), format="csv")
        return table.num_rows
    conn = await session.connection()
    sql = (f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) VALUES "
           f"({', '.join('?' * len(CONTACT_COLUMNS))})")
    for start in range(0, table.num_rows, _SQLITE_BATCH):
        part = table.slice(start, _SQLITE_BATCH)
        rows = list(zip(*(part.column(i).to_pylist() for i in range(part.num_columns))))
        await conn.exec_driver_sql(sql, rows)
    return table.num_rows


async def insert_dnc(session: AsyncSession, rows: Sequence[tuple[str, str | None, str | None]],
                     added_at: datetime) -> int:
    """Add (phone_e164, raw_input, source) rows to the DNC list; existing numbers are kept as
    they are. Returns how many were new."""
    if not rows:
        return 0
    if is_postgres(session):
        stamp_utc = added_at.astimezone(UTC).replace(tzinfo=None)
        conn = await _asyncpg(session)
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS _dnc_in "
                           "(phone_e164 text, raw_input text, source text) ON COMMIT DROP")
        await conn.execute("TRUNCATE _dnc_in")
        await conn.copy_records_to_table("_dnc_in", records=list(rows),
                                         columns=["phone_e164", "raw_input", "source"])
        status = await conn.execute(
            "INSERT INTO dnc_numbers (phone_e164, raw_input, source, added_at) "
            "SELECT DISTINCT ON (phone_e164) phone_e164, raw_input, source, $1 FROM _dnc_in "
            "ON CONFLICT (phone_e164) DO NOTHING", stamp_utc)
        return int(status.split()[-1])
    stamp = timestamp_text(session, added_at)
    conn = await session.connection()
    inserted = 0
    sql = ("INSERT INTO dnc_numbers (phone_e164, raw_input, source, added_at) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (phone_e164) DO NOTHING")
    for i in range(0, len(rows), _SQLITE_BATCH):
        part = [(*r, stamp) for r in rows[i:i + _SQLITE_BATCH]]
        result = await conn.exec_driver_sql(sql, part)
        inserted += max(result.rowcount, 0)
    return inserted


async def delete_dnc(session: AsyncSession, numbers: Collection[str]) -> set[str]:
    """Remove numbers from the DNC list; returns those that were on it."""
    present = await numbers_among(session, "dnc_numbers", "phone_e164", numbers)
    if present:
        await session.execute(delete(DncNumber).where(DncNumber.phone_e164.in_(sorted(present))))
    return present


#: The asyncpg connection under a session's open transaction, for the engine's bulk statements.
raw_connection = _asyncpg
