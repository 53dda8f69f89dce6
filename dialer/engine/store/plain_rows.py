"""Rows as plain objects on the hot paths (the event processor, settling, the claim): loaded
with one Core SELECT of the columns the rules use, changed in memory, written back with one
executemany per table.

Why: an ORM object costs a unit of work: identity map, attribute instrumentation, a flush that
diffs every object and builds its UPDATE. On the processor's path (an attempt per event, its
contact when it settles, the campaign) that was a third of its CPU per event. The rules
(`attempts.apply_event`, `settle`, the call flow, the compliance facts) take any object with the
attributes in `row_types`, so an ORM instance and a `PlainRow` serve alike; only the loading and
the writing differ.

A `PlainRow` records which attributes were set to a different value; `write_changes` writes the
changed rows, with `updated_at` set to the caller's `now` where the table has it (what the
ORM's `onupdate` did), in id order under the locks their SELECT took.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, Select, Table, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.dialects import one_of
from campaigns.db.models import CallAttempt, Campaign, Contact
from campaigns.settings import CampaignSettings
from dialer.engine.row_types import AttemptFields, ContactFields


class PlainRow:
    """A row's columns as attributes; which ones changed since it was loaded."""

    table: ClassVar[Table]
    #: The columns loaded.
    columns: ClassVar[tuple[str, ...]]
    _select_columns: ClassVar[Select[Any] | None] = None

    def __init__(self, values: Mapping[Any, Any]) -> None:
        self.__dict__.update(values)
        self.__dict__["changed"] = set()

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.__dict__:  # every loaded column is there
            raise AttributeError(f"{type(self).__name__} has no column {name!r}")
        if self.__dict__[name] != value:
            self.changed.add(name)
        self.__dict__[name] = value

    changed: set[str]

    @classmethod
    def select_columns(cls) -> Select[Any]:
        """`SELECT` of this row's columns, built once per class (building a statement's column
        list is SQLAlchemy work for every column, every time)."""
        query = cls.__dict__.get("_select_columns")
        if query is None:
            query = select(*(cls.table.c[name] for name in cls.columns))
            cls._select_columns = query
        return query

    @classmethod
    async def load(cls, s: AsyncSession, *where: ColumnElement[bool], lock: bool = True,
                   order_by_id: bool = True) -> list[Any]:
        """The rows matching `where` (locked `FOR UPDATE` unless `lock` is False)."""
        t = cls.table
        query = cls.select_columns().where(*where)
        if order_by_id:
            query = query.order_by(t.c.id)
        if lock:
            query = query.with_for_update()
        return [cls(r._mapping) for r in await s.execute(query)]

    @classmethod
    async def by_ids(cls, s: AsyncSession, ids: Iterable[int], lock: bool = True) -> list[Any]:
        ids = set(ids)
        if not ids:
            return []
        return await cls.load(s, one_of(s, cls.table.c.id, ids), lock=lock)



async def write_changes(s: AsyncSession, rows: Sequence[PlainRow], now: datetime) -> int:
    """Write the changed rows (and `updated_at = now` where the table has one): one executemany
    per table, setting every column any of them changed (a row writes back the value it holds
    for a column it did not change: it is locked, so that value is current). One statement
    rather than one per set of changed columns: round trips are what a batch waits on. Returns
    how many rows were written."""
    by_kind: dict[type[PlainRow], list[PlainRow]] = {}
    for row in rows:
        if row.changed:
            by_kind.setdefault(type(row), []).append(row)
    for kind, changed in by_kind.items():
        names = sorted(set().union(*(row.changed for row in changed)))
        batch = []
        stamps = "updated_at" in kind.table.c and "updated_at" not in names
        for row in sorted(changed, key=lambda r: r.id):  # type: ignore[attr-defined]
            params = {"v_" + name: getattr(row, name) for name in names}
            params["row_id"] = row.id  # type: ignore[attr-defined]
            if stamps:
                params["v_updated_at"] = now
            batch.append(params)
            row.changed.clear()
        await s.execute(_update_of(kind.table, tuple(names)), batch)
    return sum(len(rows) for rows in by_kind.values())


@lru_cache(maxsize=256)
def _update_of(table: Table, names: tuple[str, ...]) -> Update:
    """`UPDATE table SET name = :v_name, ... [, updated_at = :v_updated_at] WHERE id = :row_id`,
    built once per set of columns. (A bind parameter may not be named like a column the
    statement sets.)"""
    values: dict[str, Any] = {name: bindparam("v_" + name) for name in names}
    if "updated_at" in table.c and "updated_at" not in values:
        values["updated_at"] = bindparam("v_updated_at")
    return update(table).where(table.c.id == bindparam("row_id")).values(values)


class AttemptRow(PlainRow, AttemptFields):
    """The columns of a `call_attempts` row that the call flow and settling read and change:
    not the dial's own (its decision document, send count, errors, claim), whose decoding was
    work for every event."""

    table = CallAttempt.__table__  # type: ignore[assignment]
    columns = tuple(AttemptFields.__annotations__)  # the attributes the rules use


class ContactRow(PlainRow, ContactFields):
    """The columns of a contact that settling reads and moves on."""

    table = Contact.__table__  # type: ignore[assignment]
    columns = tuple(ContactFields.__annotations__)


class ClaimedContactRow(PlainRow):
    """The columns of a contact that a claim reads (compliance facts) and changes."""

    table = Contact.__table__  # type: ignore[assignment]
    columns = ("id", "phone_e164", "region", "postal_code", "timezones", "custom_fields",
               "status", "outcome", "attempts", "attempt_seq", "next_attempt_at",
               "deferred_reason", "deferred_until", "first_attempt_at", "last_attempt_at",
               "last_attempt_id", "updated_at")

    id: int
    phone_e164: str
    region: str | None
    postal_code: str | None
    timezones: list[str]
    custom_fields: dict[str, Any]
    status: str
    outcome: str | None
    attempts: int
    attempt_seq: int
    next_attempt_at: datetime | None
    deferred_reason: str | None
    deferred_until: datetime | None
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_attempt_id: int | None
    updated_at: datetime


class CampaignRow(PlainRow):
    """A campaign as the call flow reads it (never written through this object), with its
    settings parsed once."""

    table = Campaign.__table__  # type: ignore[assignment]
    columns = ("id", "name", "status", "dial_settings", "settings", "updated_at")

    id: int
    name: str
    status: str
    dial_settings: dict[str, Any]
    settings: dict[str, Any]
    updated_at: datetime

    def __init__(self, values: Mapping[Any, Any]) -> None:
        super().__init__(values)
        self.__dict__["parsed_settings"] = CampaignSettings(self.settings)

    parsed_settings: CampaignSettings
