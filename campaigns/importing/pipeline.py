"""The contact import: file in, dialable contacts out, every refused row explained, all in one
transaction.

Per batch of rows (a few MB of the file): normalise the phone column (`phones`), drop duplicates of
earlier rows and of the campaign's contacts, suppress DNC numbers, pick time zones
(`campaigns.timezones`), and bulk-insert what is left (`campaigns.db.storage`). The caller's
session holds the one transaction: if anything fails, nothing of the import remains.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import dnc  # module import: campaigns.dnc imports this package too
from campaigns import timezones as tzs
from campaigns.db import storage
from campaigns.db.models import ContactImport, ContactStatus
from campaigns.db.types import utcnow
from campaigns.errors import ImportFailed
from campaigns.importing import reader as rd
from campaigns.importing import staging
from campaigns.importing.arrowtext import blank_rows, empty_to_null, json_objects, strip_nul
from campaigns.importing.columns import ColumnMapping, clean_header, map_columns
from campaigns.importing.phones import (
    OK,
    REASONS,
    PhoneNormalizer,
    ZoneTable,
    country_zones,
    is_valid_region,
)
from campaigns.importing.xlsx import XlsxReader
from campaigns.output_paths import protect_database
from campaigns.service import get_campaign
from campaigns.settings import settings_of

if TYPE_CHECKING:
    # Imported when a rejects file is asked for: it pulls in campaigns.reports (~0.1 s).
    from campaigns.importing.rejects import RejectsWriter

DUPLICATE = "duplicate"
ALREADY_IN_CAMPAIGN = "already_in_campaign"
DNC = "dnc"
WRONG_FIELD_COUNT = "wrong_field_count"

_SOURCES = (tzs.EXPLICIT, tzs.REGION, tzs.NUMBER, tzs.FALLBACK)
_SRC_EXPLICIT, _SRC_REGION, _SRC_NUMBER, _SRC_FALLBACK = range(4)

#: Rows done, rows expected (approximate; 0 when unknown).
Progress = Callable[[int, int], None]


@dataclass
class ImportOptions:
    phone_column: str | None = None
    default_region: str = "US"
    encoding: str | None = None
    dry_run: bool = False
    rejects_path: Path | None = None
    #: CSV bytes read per batch (tests make it small to get many batches).
    block_size: int = rd.BLOCK_SIZE
    #: SQLite: stage accepted rows in a TEMP table and publish them in one short write
    #: transaction at the end (`campaigns.importing.staging`). The caller's session must be bound
    #: to one connection whose transactions begin deferred (`SQLITE_BEGIN`), as the CLI does.
    staged: bool = False


@dataclass
class ImportSummary:
    campaign: str
    file: str
    dry_run: bool
    import_id: int | None = None
    file_sha256: str | None = None
    columns: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0
    accepted: int = 0
    invalid: int = 0
    duplicates: int = 0
    dnc_suppressed: int = 0
    tz_unknown: int = 0
    tz_ambiguous: int = 0
    blank_rows: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    elapsed_secs: float = 0.0
    rejects_file: str | None = None
    #: Earlier imports of a file with the same content into this campaign.
    same_file_imports: list[int] = field(default_factory=list)

    @property
    def rows_per_sec(self) -> float:
        return self.rows_read / self.elapsed_secs if self.elapsed_secs > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign, "file": self.file, "dry_run": self.dry_run,
            "import_id": self.import_id, "file_sha256": self.file_sha256,
            "phone_column": self.mapping.get("phone"), "mapping": self.mapping,
            "columns": self.columns, "rows_read": self.rows_read, "accepted": self.accepted,
            "invalid": self.invalid, "duplicates": self.duplicates,
            "dnc_suppressed": self.dnc_suppressed, "tz_unknown": self.tz_unknown,
            "tz_ambiguous": self.tz_ambiguous, "blank_rows": self.blank_rows,
            "reasons": dict(sorted(self.reasons.items())),
            "elapsed_secs": round(self.elapsed_secs, 3),
            "rows_per_sec": round(self.rows_per_sec, 1), "rejects_file": self.rejects_file,
            "same_file_imports": self.same_file_imports,
        }


class SeenNumbers:
    """Numbers accepted or refused so far in this file (as E.164 integers) with their first row:
    sorted arrays, 16 bytes a number, so memory stays small however long the file."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, np.int64)
        self.rows = np.zeros(0, np.int64)

    def check_and_add(self, numbers: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each number, the row it duplicates (0 when it is the first)."""
        dup_of = np.zeros(len(numbers), np.int64)
        if len(numbers) == 0:
            return dup_of
        order = np.argsort(numbers, kind="stable")
        ordered = numbers[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
        first_pos = np.maximum.accumulate(np.where(starts, np.arange(len(ordered)), 0))
        first_idx = order[first_pos]
        later = ~starts
        dup_of[order[later]] = rows[first_idx[later]]
        firsts = order[starts]
        if len(self.keys):
            pos = np.searchsorted(self.keys, numbers[firsts])
            pos_ok = np.minimum(pos, len(self.keys) - 1)
            found = self.keys[pos_ok] == numbers[firsts]
            dup_of[firsts[found]] = self.rows[pos_ok[found]]
            # Duplicates of a first-in-batch number that was itself a duplicate point to the
            # same earlier row.
            earlier = dict(zip(numbers[firsts[found]].tolist(),
                               self.rows[pos_ok[found]].tolist()))
            if earlier:
                for i in order[later].tolist():
                    prev = earlier.get(int(numbers[i]))
                    if prev is not None:
                        dup_of[i] = prev
            new = firsts[~found]
        else:
            new = firsts
        keys = np.concatenate([self.keys, numbers[new]])
        rows_all = np.concatenate([self.rows, rows[new]])
        resort = np.argsort(keys, kind="stable")
        self.keys, self.rows = keys[resort], rows_all[resort]
        return dup_of


async def _check_open(campaign: Any) -> None:
    staging.closed_campaign(campaign.name, campaign.status)


def _bind_url(session: AsyncSession) -> object:
    bind = session.get_bind()
    return getattr(bind, "url", None) or getattr(getattr(bind, "engine", None), "url", None)


def _bad_row_values(bad: rd.BadRow, width: int, delimiter: str) -> list[str]:
    try:
        cells = next(csv.reader(io.StringIO(bad.text, newline=""), delimiter=delimiter or ","), [])
    except csv.Error:
        cells = [bad.text]
    return (cells + [""] * width)[:width]


class _ZoneResolver:
    """Final zone tuples of accepted rows, interned, with their JSON text."""

    def __init__(self, norm_zones: ZoneTable, fallback: str) -> None:
        self.norm_zones = norm_zones
        self.table = ZoneTable()
        self.fallback = self.table.id((fallback,))
        self._number: dict[tuple[int, int], int] = {}

    def json(self) -> pa.Array:
        return pa.array([json.dumps(list(z)) for z in self.table.zones], pa.string())

    def number_ids(self, zone_ids: np.ndarray, ccodes: np.ndarray) -> np.ndarray:
        """Output ids (or -1 when the number says nothing) for normaliser zone ids."""
        out = np.full(len(zone_ids), -1, np.int32)
        if len(zone_ids) == 0:
            return out
        pairs = zone_ids.astype(np.int64) * 10_000 + ccodes.astype(np.int64)
        uniq, inv = np.unique(pairs, return_inverse=True)
        ids = np.empty(len(uniq), np.int32)
        for j, key in enumerate(uniq.tolist()):
            zid, cc = divmod(key, 10_000)
            got = self._number.get((zid, cc))
            if got is None:
                zones = tzs.zones_for_number(self.norm_zones.zones[zid] if zid >= 0 else (),
                                             country_zones(cc))
                got = self._number[(zid, cc)] = self.table.id(zones) if zones else -1
            ids[j] = got
        return ids[inv]

    def text_ids(self, col: pa.Array, lookup: Callable[[str | None], tuple[str, ...]]
                 ) -> np.ndarray:
        encoded = pc.dictionary_encode(col)
        ids = np.array([self.table.id(z) if (z := lookup(v)) else -1
                        for v in encoded.dictionary.to_pylist()] or [-1], np.int32)
        return ids[encoded.indices.to_numpy(zero_copy_only=False)]


async def import_contacts(session: AsyncSession, campaign_name: str, path: Path,
                          options: ImportOptions | None = None,
                          progress: Progress | None = None) -> ImportSummary:
    """Import `path` into the campaign inside the session's transaction.

    Raises NotFound for an unknown campaign and ImportFailed for anything that stops the import;
    either way nothing is written (the caller's transaction rolls back).
    """
    options = options or ImportOptions()
    started = time.perf_counter()
    campaign = await get_campaign(session, campaign_name)
    await _check_open(campaign)
    region = options.default_region.upper()
    if not is_valid_region(region):
        raise ImportFailed(f"unknown --default-region {options.default_region!r}: use a 2-letter "
                           "country code like US, CA or GB")
    fallback = str(settings_of(campaign)["fallback_timezone"])
    info = rd.inspect(path, options.encoding)

    xlsx: XlsxReader | None = None
    if info.kind == "xlsx":
        xlsx = XlsxReader(info)
        header, approx = xlsx.header, xlsx.approx_rows
    else:
        header, approx = rd.read_header(info), info.approx_rows
    try:
        columns = clean_header(header)
        mapping = map_columns(columns, options.phone_column)
        summary = ImportSummary(campaign=campaign.name, file=str(path), dry_run=options.dry_run,
                                file_sha256=info.sha256, columns=list(columns),
                                mapping=mapping.describe())
        await storage.lock_campaign_imports(session, campaign.id)
        summary.same_file_imports = list((await session.scalars(
            select(ContactImport.id).where(ContactImport.campaign_id == campaign.id,
                                           ContactImport.file_sha256 == info.sha256)
            .order_by(ContactImport.id))).all())
        record: ContactImport | None = None
        staged = options.staged and not options.dry_run and not storage.is_postgres(session)

        def new_record() -> ContactImport:
            return ContactImport(campaign_id=campaign.id, file_name=path.name,
                                 file_sha256=info.sha256, columns=list(columns),
                                 phone_column=mapping.phone_column)

        if staged:
            await staging.create(session)
        elif not options.dry_run:
            record = new_record()
            session.add(record)
            await session.flush()
            summary.import_id = record.id
        rejects: RejectsWriter | None = None
        if options.rejects_path:
            from campaigns.importing.rejects import RejectsWriter
            rejects = RejectsWriter(options.rejects_path, columns, info.delimiter,
                                    [(path, "the file being imported"),
                                     *protect_database(_bind_url(session))])
        ok = False
        try:
            csv_reader: rd.CsvReader | None = None
            if xlsx is not None:
                batches: Iterator[rd.Batch] = xlsx.batches()
            else:
                csv_reader = rd.CsvReader(info, len(header), options.block_size)
                batches = csv_reader.batches()
            job = _Job(session, summary, mapping, campaign.id, record, region, fallback, rejects,
                       info.delimiter, options.dry_run, info.may_have_nul,
                       into=staging.STAGING_TABLE if staged else "contacts")
            await job.run(batches, progress, approx)
            # What was read must be what was inspected (and hashed in the import record).
            await asyncio.to_thread(rd.check_unchanged, info,
                                    csv_reader.sha256 if csv_reader is not None else None)
            if staged and summary.rows_read:
                await staging.begin_publishing(session)
                await staging.check_still_open(session, campaign.id, campaign.name)
                record = new_record()
                session.add(record)
                await session.flush()
                summary.import_id = record.id
                await staging.publish(session, campaign.id, record.id)
            if summary.rows_read == 0:
                raise ImportFailed(f"{str(path)!r} has a header row but no contacts")
            ok = True
        finally:
            if rejects is not None:
                rejects.close(keep=ok)
        if rejects is not None and options.rejects_path is not None:
            summary.rejects_file = str(options.rejects_path)
        summary.elapsed_secs = time.perf_counter() - started
        if record is not None:
            for name in ("rows_read", "accepted", "invalid", "duplicates", "dnc_suppressed",
                         "tz_unknown", "tz_ambiguous"):
                setattr(record, name, getattr(summary, name))
            record.elapsed_secs = summary.elapsed_secs
            await session.flush()
        return summary
    finally:
        if xlsx is not None:
            xlsx.close()


@dataclass
class _Prepared:
    """Stage one of a batch (no database): what is refused so far, and the rows to insert."""

    rows_read: int = 0
    blank: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    duplicates: int = 0
    #: Refused rows so far, as tables with the rejects schema (row order restored on write).
    rejects: list[pa.Table] = field(default_factory=list)
    table: pa.Table | None = None  # the batch's cells, blank rows dropped
    rows: np.ndarray | None = None  # row numbers of `table`
    cand: np.ndarray | None = None  # positions in `table` of the first occurrences
    e164: pa.Array | None = None  # of cand
    out: storage.ContactRows | None = None  # contact rows for cand (None in a dry run)
    tz_unknown: np.ndarray | None = None  # per cand
    tz_ambiguous: np.ndarray | None = None  # per cand


class _Job:
    """The work of one import. `prepare` (CPU only) runs in a worker thread one batch ahead of
    `finish` (database lookups, the insert), so that Python and the database work at the same
    time."""

    def __init__(self, session: AsyncSession, summary: ImportSummary, mapping: ColumnMapping,
                 campaign_id: int, record: ContactImport | None, region: str, fallback: str,
                 rejects: RejectsWriter | None, delimiter: str, dry_run: bool,
                 may_have_nul: bool = True, into: str = "contacts") -> None:
        self.session = session
        self.into = into
        self.may_have_nul = may_have_nul
        self.summary = summary
        self.mapping = mapping
        self.campaign_id = campaign_id
        self.import_id = record.id if record is not None else None
        self.norm = PhoneNormalizer(region)
        self.zones = _ZoneResolver(self.norm.zones, fallback)
        self.rejects = rejects
        self.delimiter = delimiter
        self.dry_run = dry_run
        self.seen = SeenNumbers()
        self.width = len(mapping.columns)
        self.custom = mapping.custom
        self.custom_names = [mapping.columns[i] for i in self.custom]
        self.has_contacts = False
        self.has_dnc = False
        self.stamp = storage.timestamp_text(session, utcnow())
        self.postgres = storage.is_postgres(session)
        self.schema = pa.schema([pa.field("row", pa.int64()), pa.field("reason", pa.string()),
                                 pa.field("duplicate_of_row", pa.int64()),
                                 pa.field("detail", pa.string())]
                                + [pa.field(f"c{i}", pa.string()) for i in range(self.width)])

    async def run(self, batches: Iterator[rd.Batch], progress: Progress | None,
                  approx: int) -> None:
        self.has_contacts = await storage.contacts_exist(self.session, self.campaign_id)
        self.has_dnc = await storage.dnc_exists(self.session)

        def step() -> _Prepared | None:
            batch = next(batches, None)
            return None if batch is None else self.prepare(batch)

        pending = asyncio.ensure_future(asyncio.to_thread(step))
        try:
            while True:
                prepared = await pending
                if prepared is None:
                    break
                pending = asyncio.ensure_future(asyncio.to_thread(step))
                await self.finish(prepared)
                if progress is not None:
                    progress(self.summary.rows_read, approx)
        finally:
            if not pending.done():
                # The worker thread cannot be interrupted: let it finish its batch first.
                await asyncio.wait([pending])
            if pending.done() and not pending.cancelled():
                pending.exception()  # retrieved: an error after ours is not news

    # -- stage one: no database ---------------------------------------------------------------
    def _rejects_table(self, rows: np.ndarray, reasons: list[str], dup_of: np.ndarray | None,
                       detail: pa.Array | None, values: list[pa.Array]) -> pa.Table:
        n = len(rows)
        dup = (pa.array(dup_of, pa.int64(), mask=dup_of <= 0) if dup_of is not None
               else pa.nulls(n, pa.int64()))
        return pa.Table.from_arrays(
            [pa.array(rows, pa.int64()), pa.array(reasons, pa.string()), dup,
             detail if detail is not None else pa.nulls(n, pa.string()), *values],
            schema=self.schema)

    def _refuse(self, prep: _Prepared, table: pa.Table, rows: np.ndarray, idx: np.ndarray,
                reasons: list[str], dup_of: np.ndarray | None = None,
                detail: pa.Array | None = None) -> None:
        prep.reasons.update(reasons)
        if self.rejects is None or len(idx) == 0:
            return
        take = pa.array(idx)
        values = [table.column(i).take(take) for i in range(self.width)]
        prep.rejects.append(self._rejects_table(rows[idx], reasons, dup_of, detail, values))

    def _bad_rows(self, prep: _Prepared, bad: list[rd.BadRow]) -> None:
        if not bad:
            return
        prep.rows_read += len(bad)
        prep.invalid += len(bad)
        prep.reasons[WRONG_FIELD_COUNT] += len(bad)
        if self.rejects is None:
            return
        cells = [_bad_row_values(b, self.width, self.delimiter) for b in bad]
        values = [pa.array([c[i] for c in cells], pa.string()) for i in range(self.width)]
        detail = pa.array([f"row has {b.fields} fields, the header {self.width}" for b in bad],
                          pa.string())
        prep.rejects.append(self._rejects_table(np.array([b.row for b in bad], np.int64),
                                                [WRONG_FIELD_COUNT] * len(bad), None, detail,
                                                values))

    def prepare(self, batch: rd.Batch) -> _Prepared:
        prep = _Prepared(blank=batch.gap_rows)
        self._bad_rows(prep, batch.bad)
        table = batch.table
        if table.num_rows == 0:
            return prep
        cols = [table.column(i).combine_chunks() for i in range(table.num_columns)]
        if self.may_have_nul:
            cols = [strip_nul(c) for c in cols]
        table = pa.table(cols, names=table.column_names)
        rows = batch.rows
        blank = blank_rows(cols)
        if blank.any():
            prep.blank += int(blank.sum())
            keep = np.nonzero(~blank)[0]
            table, rows = table.take(pa.array(keep)), rows[keep]
        if table.num_rows == 0:
            return prep
        prep.rows_read += table.num_rows
        norm = self.norm.normalize_array(table.column(self.mapping.phone).combine_chunks())

        bad = np.nonzero(norm.reason != OK)[0]
        if len(bad):
            prep.invalid += len(bad)
            self._refuse(prep, table, rows, bad, [REASONS[int(c)] for c in norm.reason[bad]],
                         detail=norm.detail.take(pa.array(bad)))
        valid = np.nonzero(norm.reason == OK)[0]
        if len(valid) == 0:
            return prep
        dup_of = self.seen.check_and_add(norm.e164_int[valid], rows[valid])
        dups = valid[dup_of > 0]
        if len(dups):
            prep.duplicates += len(dups)
            self._refuse(prep, table, rows, dups, [DUPLICATE] * len(dups), dup_of[dup_of > 0])
        cand = valid[dup_of == 0]
        prep.table, prep.rows, prep.cand = table, rows, cand
        prep.e164 = norm.e164.take(pa.array(cand))
        if len(cand):
            self._contacts(prep, norm)
        return prep

    def _contacts(self, prep: _Prepared, norm: Any) -> None:
        """Time zones and, unless a dry run, the contact rows of the candidates."""
        assert prep.table is not None and prep.rows is not None and prep.cand is not None
        table, cand = prep.table, prep.cand
        m = len(cand)
        take = pa.array(cand)
        fields = self.mapping.fields

        def col(pos: int) -> pa.Array:
            return table.column(pos).take(take).combine_chunks()

        def field_or_null(attr: str) -> pa.Array:
            if attr in fields:
                return empty_to_null(col(fields[attr]))
            return pa.nulls(m, pa.string())

        # Time zones: explicit column, then region column, then the number, then the fallback.
        zone = np.full(m, -1, np.int32)
        source = np.full(m, _SRC_FALLBACK, np.int8)
        candidates: list[tuple[int, np.ndarray]] = [
            (_SRC_NUMBER, self.zones.number_ids(norm.zone_id[cand], norm.country_code[cand]))]
        if "region" in fields:
            candidates.append((_SRC_REGION, self.zones.text_ids(col(fields["region"]),
                                                                tzs.zones_for_region)))
        if "timezone" in fields:
            candidates.append((_SRC_EXPLICIT, self.zones.text_ids(col(fields["timezone"]),
                                                                  tzs.zones_for_explicit)))
        for src, ids in candidates:  # later sources win
            hit = ids >= 0
            zone[hit] = ids[hit]
            source[hit] = src
        unknown = zone < 0
        zone[unknown] = self.zones.fallback
        sizes = np.array([len(z) for z in self.zones.table.zones], np.int64)
        prep.tz_unknown = unknown
        prep.tz_ambiguous = sizes[zone] > 1
        if self.dry_run:
            return
        size = pa.array(np.zeros(m, np.int64))
        prep.out = storage.prepare_contacts(pa.table({
            "campaign_id": pa.array(np.full(m, self.campaign_id, np.int64)),
            "import_id": pa.array(np.full(m, self.import_id or 0, np.int64)),
            "source_row": pa.array(prep.rows[cand]),
            "phone_e164": prep.e164,
            "phone_raw": col(self.mapping.phone),
            "extension": norm.extension.take(take),
            "first_name": field_or_null("first_name"),
            "last_name": field_or_null("last_name"),
            "email": field_or_null("email"),
            "region": field_or_null("region"),
            "postal_code": field_or_null("postal_code"),
            "timezones": self.zones.json().take(pa.array(zone)),
            "timezone_source": pa.array(_SOURCES, pa.string()).take(pa.array(source)),
            "custom_fields": json_objects(self.custom_names, [col(i) for i in self.custom], m),
            "status": pa.array([ContactStatus.QUEUED], pa.string()).take(size),
            "attempts": pa.array(np.zeros(m, np.int64)),
            "next_attempt_at": pa.array([self.stamp], pa.string()).take(size),
            "created_at": pa.array([self.stamp], pa.string()).take(size),
            "updated_at": pa.array([self.stamp], pa.string()).take(size),
        }), self.postgres)

    # -- stage two: the database --------------------------------------------------------------
    async def finish(self, prep: _Prepared) -> None:
        s = self.summary
        s.rows_read += prep.rows_read
        s.blank_rows += prep.blank
        s.invalid += prep.invalid
        s.duplicates += prep.duplicates
        s.reasons.update(prep.reasons)
        cand = prep.cand
        if cand is not None and len(cand) and prep.e164 is not None:
            assert prep.table is not None and prep.rows is not None
            drop = np.zeros(len(cand), bool)
            if self.has_contacts:
                existing = await storage.existing_numbers(self.session, self.campaign_id,
                                                          prep.e164.to_pylist())
                if existing:
                    hit = pc.is_in(prep.e164, pa.array(sorted(existing))).to_numpy(
                        zero_copy_only=False)
                    s.duplicates += int(hit.sum())
                    self._refuse_now(prep, cand[hit], ALREADY_IN_CAMPAIGN,
                                     "already a contact of this campaign")
                    drop |= hit
            if self.has_dnc:
                listed = await dnc.dnc_numbers_among(self.session,
                                                 prep.e164.filter(pa.array(~drop)).to_pylist())
                if listed:
                    hit = pc.is_in(prep.e164, pa.array(sorted(listed))).to_numpy(
                        zero_copy_only=False) & ~drop
                    s.dnc_suppressed += int(hit.sum())
                    self._refuse_now(prep, cand[hit], DNC, "on the do-not-call list")
                    drop |= hit
            keep = ~drop
            s.accepted += int(keep.sum())
            assert prep.tz_unknown is not None and prep.tz_ambiguous is not None
            s.tz_unknown += int((prep.tz_unknown & keep).sum())
            s.tz_ambiguous += int((prep.tz_ambiguous & keep).sum())
            if prep.out is not None and keep.any():
                out = prep.out if keep.all() else prep.out.filter(keep)
                await storage.insert_contacts(self.session, out, self.into)
        if self.rejects is not None and prep.rejects:
            refused = pa.concat_tables(prep.rejects)
            order = pc.sort_indices(refused, [("row", "ascending")])
            self.rejects.write_table(refused.take(order))

    def _refuse_now(self, prep: _Prepared, idx: np.ndarray, reason: str, detail: str) -> None:
        self.summary.reasons[reason] += len(idx)
        if self.rejects is None or len(idx) == 0:
            return
        assert prep.table is not None and prep.rows is not None
        take = pa.array(idx)
        values = [prep.table.column(i).take(take) for i in range(self.width)]
        prep.rejects.append(self._rejects_table(prep.rows[idx], [reason] * len(idx), None,
                                                pa.array([detail] * len(idx), pa.string()),
                                                values))
