"""Loading the national Do Not Call registry's flat files into `registry_numbers`.

Accepted format (docs/compliance.md): one number per line, as `NPA,NXXXXXX` (the registry's
area code and seven-digit number) or ten digits; blank lines and lines starting with `#` are
skipped. A *full list* has two fields per line and replaces every registered number of the area
codes it contains. A *change list* has a third field, `A` (added) or `D` (deleted). The whole
file is read and checked before anything changes: a bad line raises `RegistryFileError` naming
it, and the table is untouched. PostgreSQL loads by COPY, SQLite by batched inserts; either way in
the caller's transaction, with the copy's date recorded in `registry_copies`.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.dialects import is_postgres, raw_connection
from campaigns.db.models import RegistryCopy, RegistryNumber
from campaigns.db.types import utcnow
from campaigns.errors import CampaignsError

_LINE = re.compile(
    r"^\s*(\d{3})\s*[,;|\t -]?\s*(\d{3})\s*-?\s*(\d{4})\s*(?:[,;|\t]\s*([A-Za-z]+)\s*)?$")
_FLAGS = {"a": True, "add": True, "added": True, "d": False, "del": False, "delete": False,
          "deleted": False}
_BATCH = 10000


class RegistryFileError(CampaignsError):
    """A registry file that cannot be loaded (the message names the line)."""


@dataclass
class RegistryFile:
    kind: str  # full | changes
    additions: array  # 10-digit numbers as ints
    deletions: array[int]
    area_codes: set[str]


@dataclass(frozen=True)
class RegistryLoad:
    """A load's counts: rows inserted and deleted (a full list deletes its area codes' numbers
    and inserts the file's, so both count the numbers kept)."""

    kind: str
    copy_date: date
    added: int
    removed: int
    total: int

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "copy_date": self.copy_date.isoformat(), "added": self.added,
                "removed": self.removed, "total": self.total}


def parse_registry_file(path: Path) -> RegistryFile:
    """Read and check a whole registry file (RegistryFileError names the first bad line)."""
    additions, deletions = array("q"), array("q")
    area_codes: set[str] = set()
    kind: str | None = None
    try:
        fh = path.open(encoding="ascii", newline="")
    except OSError as exc:
        raise RegistryFileError(f"cannot read registry file {str(path)!r}: {exc.strerror}"
                                ) from None
    with fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, start=1):
                # Fast path: the registry's own form, "NPA,NXXXXXX" (full lists).
                s = line.rstrip("\r\n")
                if (len(s) == 11 and s[3] == "," and kind != "changes" and s[:3].isdigit()
                        and s[4:].isdigit() and s[0] not in "01" and s[4] not in "01"):
                    kind = "full"
                    additions.append(int(s[:3] + s[4:]))
                    area_codes.add(s[:3])
                    continue
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                m = _LINE.match(line)
                where = f"{path.name}, line {lineno}"
                if not m:
                    raise RegistryFileError(
                        f"{where}: {line.strip()[:60]!r} is not 'NPA,NXXXXXX' (area code and "
                        "7-digit number) or 'NPA,NXXXXXX,A|D'")
                npa, nxx, last4, flag = m.groups()
                if npa[0] in "01" or nxx[0] in "01":
                    raise RegistryFileError(f"{where}: {npa}{nxx}{last4} is not a valid North "
                                            "American number")
                line_kind = "full" if flag is None else "changes"
                if kind is None:
                    kind = line_kind
                elif kind != line_kind:
                    raise RegistryFileError(f"{where}: a {kind} list cannot mix lines with and "
                                            "without an A/D change flag")
                number = int(npa + nxx + last4)
                if flag is None or _FLAGS.get(flag.lower()) is True:
                    additions.append(number)
                    area_codes.add(npa)
                elif _FLAGS.get(flag.lower()) is False:
                    deletions.append(number)
                else:
                    raise RegistryFileError(f"{where}: change flag {flag!r} is not A or D")
        except UnicodeDecodeError:
            raise RegistryFileError(f"{path.name}, line {lineno + 1}: not plain ASCII text"
                                    ) from None
    if kind is None:
        raise RegistryFileError(f"{path.name}: no numbers in the file")
    return RegistryFile(kind, additions, deletions, area_codes)


def _e164(numbers: array[int]) -> list[str]:
    return [f"+1{n}" for n in numbers]


async def load_registry(session: AsyncSession, path: Path, copy_date: date) -> RegistryLoad:
    """Apply a registry file in the session's transaction and record the copy."""
    parsed = parse_registry_file(path)
    removed = 0
    if parsed.kind == "full" and parsed.area_codes:
        removed += await _delete_area_codes(session, sorted(parsed.area_codes))
    added = await _insert(session, parsed.additions)
    removed += await _delete(session, parsed.deletions)
    session.add(RegistryCopy(copy_date=copy_date, kind=parsed.kind, file_name=path.name,
                             added=added, removed=removed, loaded_at=utcnow()))
    await session.flush()
    total = int(await session.scalar(select(func.count()).select_from(RegistryNumber)) or 0)
    return RegistryLoad(parsed.kind, copy_date, added, removed, total)


async def _delete_area_codes(session: AsyncSession, npas: list[str]) -> int:
    removed = 0
    for npa in npas:
        lo, hi = f"+1{npa}", f"+1{npa}~"
        result = await session.execute(delete(RegistryNumber).where(
            RegistryNumber.phone_e164 >= lo, RegistryNumber.phone_e164 < hi))
        removed += max(getattr(result, "rowcount", 0) or 0, 0)
    return removed


async def _insert(session: AsyncSession, numbers: array[int]) -> int:
    if not numbers:
        return 0
    if is_postgres(session):
        conn = await raw_connection(session)
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS _registry_in (phone_e164 text) "
                           "ON COMMIT DROP")
        await conn.execute("TRUNCATE _registry_in")
        await conn.copy_records_to_table(
            "_registry_in", records=((f"+1{n}",) for n in numbers), columns=["phone_e164"])
        status = await conn.execute(
            "INSERT INTO registry_numbers (phone_e164) SELECT DISTINCT phone_e164 "
            "FROM _registry_in ON CONFLICT (phone_e164) DO NOTHING")
        return int(status.split()[-1])
    conn = await session.connection()
    inserted = 0
    sql = "INSERT INTO registry_numbers (phone_e164) VALUES (?) ON CONFLICT DO NOTHING"
    for i in range(0, len(numbers), _BATCH):
        result = await conn.exec_driver_sql(sql, [(f"+1{n}",) for n in numbers[i:i + _BATCH]])
        inserted += max(result.rowcount, 0)
    return inserted


async def _delete(session: AsyncSession, numbers: array[int]) -> int:
    removed = 0
    for i in range(0, len(numbers), _BATCH):
        part = _e164(numbers[i:i + _BATCH])
        result = await session.execute(delete(RegistryNumber).where(
            RegistryNumber.phone_e164.in_(part)))
        removed += max(getattr(result, "rowcount", 0) or 0, 0)
    return removed


async def registry_status(session: AsyncSession) -> dict[str, object]:
    """The newest copy loaded and how many numbers the table holds."""
    copy = (await session.scalars(select(RegistryCopy).order_by(
        RegistryCopy.copy_date.desc(), RegistryCopy.id.desc()).limit(1))).first()
    total = int(await session.scalar(select(func.count()).select_from(RegistryNumber)) or 0)
    return {"numbers": total,
            "copy_date": copy.copy_date.isoformat() if copy else None,
            "kind": copy.kind if copy else None,
            "file": copy.file_name if copy else None,
            "loaded_at": copy.loaded_at.isoformat() if copy else None}
