"""Which database a session talks to, and its driver connection: the small part of the
dialect-specific code that the engine needs (the bulk storage in `storage` brings numpy and Arrow,
which `dialer run` has no use for and would import at every start)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession


def dialect(target: AsyncSession | AsyncEngine | AsyncConnection) -> str:
    """The dialect's name ("postgresql" or "sqlite") of a session, engine or connection: the
    one way the code asks which database it talks to."""
    if isinstance(target, AsyncSession):
        return target.get_bind().dialect.name
    return target.dialect.name


def is_postgres(target: AsyncSession | AsyncEngine | AsyncConnection) -> bool:
    return dialect(target) == "postgresql"


def is_sqlite(target: AsyncSession | AsyncEngine | AsyncConnection) -> bool:
    return dialect(target) == "sqlite"


async def raw_connection(session: AsyncSession) -> Any:
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


def one_of(target: AsyncSession | AsyncEngine | AsyncConnection, column: Any,
           values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (values)` whose statement text does not depend on how many values there are.

    On PostgreSQL `column = ANY($1)` with one array parameter: one prepared statement serves
    every batch size (an IN list renders a new statement, and a PREPARE round trip, for each
    length). Elsewhere a plain IN list.
    """
    values = list(values)
    if is_postgres(target):
        array = bindparam(None, values, type_=ARRAY(column.type))
        return column == any_(array)
    return column.in_(values)


def pairs_in(target: AsyncSession | AsyncEngine | AsyncConnection, first: Any, second: Any,
             pairs: Iterable[tuple[Any, Any]]) -> ColumnElement[bool]:
    """`(first, second) IN (pairs)` whose statement text does not depend on how many pairs
    there are: on PostgreSQL the pairs go as two arrays, unnested (see `one_of`)."""
    pairs = list(pairs)
    if not is_postgres(target):
        return tuple_(first, second).in_(pairs)
    firsts = bindparam(None, [p[0] for p in pairs], type_=ARRAY(first.type))
    seconds = bindparam(None, [p[1] for p in pairs], type_=ARRAY(second.type))
    both = func.unnest(firsts, seconds).table_valued("a", "b").render_derived()
    return tuple_(first, second).in_(select(both.c.a, both.c.b))
