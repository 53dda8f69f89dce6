"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes everywhere.

    Stored as naive UTC (SQLite has no time zones and compares the text form; PostgreSQL
    `timestamp without time zone` keeps the comparison semantics identical), returned as aware UTC.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use timezone-aware datetimes")
        return naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


#: JSON on SQLite, JSONB on PostgreSQL.
JSONType: Any = JSON().with_variant(postgresql.JSONB(), "postgresql")


def naive_utc(value: datetime) -> datetime:
    """An aware datetime as the naive UTC value the columns store (for statements that bypass
    the column type: bulk COPY, raw asyncpg)."""
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def aware_utc(value: Any) -> datetime | None:
    """A min()/max() of stored times as aware UTC, whatever the driver returned (an aggregate
    can skip the column type: SQLite gives a naive datetime or its text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
