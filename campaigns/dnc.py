"""The do-not-call list: numbers normalised exactly like contacts (E.164), in `dnc_numbers`.

Imports suppress listed numbers; the engine checks again at dial time
(`campaigns.compliance.store.listed`), in the transaction that claims the contact, and once
more, in batches, as the claimed dials get their slots (`dialer/engine/dnc_screen.py`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import dnc_events
from campaigns.db import storage
from campaigns.db.models import DncNumber
from campaigns.db.types import utcnow
from campaigns.errors import CampaignsError, ImportFailed
from campaigns.importing import reader as rd
from campaigns.importing.columns import clean_header, map_columns
from campaigns.importing.phones import REASONS, PhoneNormalizer, is_valid_region
from campaigns.importing.xlsx import XlsxReader


class InvalidNumber(CampaignsError):
    """A number given on the command line is not a valid phone number."""


async def dnc_numbers_among(session: AsyncSession, numbers: Collection[str]) -> set[str]:
    """Which of `numbers` (E.164) are on the DNC list. For the engine, at dial time."""
    return await storage.numbers_among(session, "dnc_numbers", "phone_e164", numbers)


@dataclass
class DncChange:
    added: int = 0
    already_listed: int = 0
    removed: int = 0
    not_listed: int = 0
    rows_read: int = 0
    #: (row or position, raw text, reason) of values that are not valid numbers.
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"added": self.added, "already_listed": self.already_listed,
                "removed": self.removed, "not_listed": self.not_listed,
                "rows_read": self.rows_read, "invalid": len(self.invalid),
                "invalid_examples": [{"row": r, "value": v, "reason": why}
                                     for r, v, why in self.invalid[:20]]}


def _region(region: str) -> str:
    if not is_valid_region(region):
        raise InvalidNumber(f"unknown --default-region {region!r}: use a 2-letter country code "
                            "like US, CA or GB")
    return region.upper()


def normalize_numbers(raw: Sequence[str], region: str = "US"
                      ) -> tuple[list[tuple[str, str]], list[tuple[int, str, str]]]:
    """([(e164, raw)], [(position, raw, reason)]) for numbers typed by a user."""
    norm = PhoneNormalizer(_region(region))
    out = norm.normalize_array(pa.array(list(raw), pa.string()))
    good, bad = [], []
    for i, value in enumerate(raw):
        code = int(out.reason[i])
        if code == 0:
            good.append((str(out.e164[i].as_py()), value))
        else:
            bad.append((i + 1, value, REASONS[code]))
    return good, bad


def _unique(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for e164, raw in pairs:
        seen.setdefault(e164, raw)
    return list(seen.items())


async def add_numbers(session: AsyncSession, raw: Sequence[str], region: str = "US",
                      source: str | None = "cli") -> DncChange:
    """Add numbers; any invalid one is an error and nothing is added."""
    good, bad = normalize_numbers(raw, region)
    if bad:
        listing = ", ".join(f"{v!r} ({why})" for _, v, why in bad[:10])
        raise InvalidNumber(f"not valid phone numbers: {listing}; nothing was added")
    pairs = _unique(good)
    added = await storage.insert_dnc(session, [(e, r, source) for e, r in pairs], utcnow())
    await dnc_events.announce(session, [e for e, _ in pairs])  # engines withdraw their dials
    return DncChange(added=added, already_listed=len(pairs) - added, rows_read=len(raw),
                     numbers=[e for e, _ in pairs])


async def remove_numbers(session: AsyncSession, raw: Sequence[str],
                         region: str = "US") -> DncChange:
    good, bad = normalize_numbers(raw, region)
    if bad:
        listing = ", ".join(f"{v!r} ({why})" for _, v, why in bad[:10])
        raise InvalidNumber(f"not valid phone numbers: {listing}; nothing was removed")
    numbers = sorted({e for e, _ in good})
    removed = await storage.delete_dnc(session, numbers)
    return DncChange(removed=len(removed), not_listed=len(numbers) - len(removed),
                     rows_read=len(raw), numbers=numbers)


async def list_numbers(session: AsyncSession, limit: int | None = None) -> list[DncNumber]:
    stmt = select(DncNumber).order_by(DncNumber.phone_e164)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.scalars(stmt)).all())


async def import_file(session: AsyncSession, path: Path, region: str = "US",
                      encoding: str | None = None, phone_column: str | None = None,
                      source: str | None = None) -> DncChange:
    """Add every valid number of a CSV/XLSX file (with a header naming the phone column, or a
    plain list of numbers without a header). Invalid values are counted and skipped."""
    norm = PhoneNormalizer(_region(region))
    info = rd.inspect(path, encoding)
    source = source or f"import:{path.name}"
    if info.kind == "xlsx":
        xlsx = XlsxReader(info)
        header, width = xlsx.header, xlsx.width
    else:
        header = rd.read_header(info)
        width = len(header)
    headerless = False
    try:
        phone = map_columns(clean_header(header), phone_column).phone
    except ImportFailed:
        first = norm.normalize(header[0] if header else "")
        if phone_column is not None or first.reason is not None:
            raise
        headerless, phone = True, 0
    change = DncChange()
    pairs: list[tuple[str, str]] = []
    if headerless:
        pairs.append((str(first.e164), header[0]))
        change.rows_read += 1
    batches = xlsx.batches() if info.kind == "xlsx" else rd.CsvReader(info, width).batches()
    try:
        for batch in batches:
            for bad in batch.bad:
                change.invalid.append((bad.row, bad.text, "wrong_field_count"))
                change.rows_read += 1
            if batch.table.num_rows == 0:
                continue
            col = batch.table.column(phone)
            out = norm.normalize_array(col)
            change.rows_read += batch.table.num_rows
            ok = np.nonzero(out.reason == 0)[0]
            e164 = out.e164.take(pa.array(ok)).to_pylist()
            raw = col.take(pa.array(ok)).to_pylist()
            pairs.extend(zip(e164, raw))
            for i in np.nonzero(out.reason > 1)[0].tolist():  # blank cells are skipped quietly
                change.invalid.append((int(batch.rows[i]), col[i].as_py(),
                                       REASONS[int(out.reason[i])]))
    finally:
        if info.kind == "xlsx":
            xlsx.close()
    unique = _unique(pairs)
    change.added = await storage.insert_dnc(session, [(e, r, source) for e, r in unique],
                                            utcnow())
    await dnc_events.announce(session, [e for e, _ in unique])  # up to MAX_ANNOUNCED numbers
    change.already_listed = len(unique) - change.added
    return change
