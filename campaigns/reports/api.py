"""The public entry points: `write_report` and `summary` (the CLI, the engine and the demo call
these). Both read only, and accept a database URL, an engine, a session or a connection."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from campaigns.db.models import Campaign
from campaigns.errors import ReportError
from campaigns.output_paths import check_output_path, protect_database
from campaigns.reports.charts import chart_data
from campaigns.reports.html import render_html
from campaigns.reports.output import (
    Protected,
    atomic_file,
    stdout_bytes,
    stdout_text,
    text_file,
)
from campaigns.reports.pgcopy import copy_csv, copy_parquet
from campaigns.reports.responses import answer_plan
from campaigns.reports.rows import RowStream, attempt_rows, contact_rows, response_rows
from campaigns.reports.source import Conn, Source, dialect_name, open_source, tune_for_report
from campaigns.reports.summary import CampaignSummary, build_summary
from campaigns.reports.writers import CsvWriter, JsonlWriter, ParquetWriter, RowWriter, XlsxWriter
from campaigns.service import get_campaign

FORMATS = ("csv", "jsonl", "xlsx", "parquet", "html")
#: Formats that only go to a file.
FILE_ONLY_FORMATS = ("xlsx", "parquet")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx",
              ".parquet": "parquet", ".pq": "parquet", ".html": "html", ".htm": "html"}


@dataclass
class ReportResult:
    format: str
    #: None: written to stdout.
    path: Path | None
    #: contacts, attempts or html.
    kind: str
    rows: int
    seconds: float
    #: Uploaded headers that could not be given back (see `columns`): their cells are empty.
    unmapped_columns: list[str] = field(default_factory=list)


def resolve_format(path: str | os.PathLike[str] | None, fmt: str | None) -> str:
    """The explicit format, else the one the file's extension names, else csv (stdout)."""
    if path is not None and Path(path).is_dir():
        raise ReportError(f"cannot write the report to {os.fspath(path)}: it is a folder "
                          "(give a file name)")
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ReportError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
    elif path is None:
        fmt = "csv"
    else:
        ext = Path(path).suffix.lower()
        if ext not in EXTENSIONS:
            raise ReportError(f"cannot tell the report format from {os.fspath(path)!r}: name the "
                              f"file .csv, .jsonl, .xlsx, .parquet or .html, or pass --format")
        fmt = EXTENSIONS[ext]
    if path is None and fmt in FILE_ONLY_FORMATS:
        raise ReportError(f"{fmt} is a binary format: write it to a file with -o FILE.{fmt}")
    return fmt


def _database_url(source: Source) -> object:
    """The URL of the database a source reads (to keep the report from overwriting it)."""
    if isinstance(source, str):
        return source
    if isinstance(source, AsyncEngine):
        return source.url
    if isinstance(source, AsyncConnection):
        return source.engine.url
    bind = source.get_bind()
    return getattr(bind, "url", None)


@contextmanager
def _disk_errors(out: Path | None) -> Iterator[None]:
    """An OSError while writing (disk full, I/O error, a closed pipe) as one clear ReportError."""
    try:
        yield
    except BrokenPipeError:
        if out is None:
            raise  # `dialer report X | head`: the reader has what it wanted (click exits 1 quietly)
        raise ReportError(f"cannot write the report to {out}: broken pipe") from None
    except OSError as exc:
        where = "stdout" if out is None else str(out)
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ReportError(f"cannot write the report to {where}: {reason}") from None


@contextmanager
def _open_writer(fmt: str, path: Path | None, stream: RowStream,
                 sheet: str, protect: Protected) -> Iterator[RowWriter]:
    with ExitStack() as stack:
        writer: RowWriter
        if fmt in ("csv", "jsonl"):
            fh: IO[str] = (stdout_text() if path is None
                           else stack.enter_context(text_file(path, protect)))
            writer = (CsvWriter if fmt == "csv" else JsonlWriter)(fh, stream.columns)
        elif fmt == "xlsx":
            assert path is not None
            writer = XlsxWriter(stack.enter_context(atomic_file(path, protect)), stream.columns,
                                sheet)
        else:
            assert path is not None
            writer = ParquetWriter(stack.enter_context(atomic_file(path, protect)),
                                   stream.columns)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.close()
        if path is None:
            fh.flush()


async def write_report(source: Source, campaign_name: str,
                       path: str | os.PathLike[str] | None = None, fmt: str | None = None, *,
                       attempts: bool = False, responses: bool = False,
                       now: datetime | None = None) -> ReportResult:
    """Write campaign `campaign_name`'s report to `path` (None: stdout, csv/jsonl/html only).

    `fmt` is csv, jsonl, xlsx, parquet or html; None: from the extension of `path` (csv on
    stdout). Rows are per contact, per attempt with `attempts=True`, or per keypad answer with
    `responses=True`; html is the summary with charts. `now` is the time the summary's recent
    rate and ETA are measured at (default: now).
    A file appears only complete: it is written to a temp file and renamed into place (removed
    when anything fails or the run is interrupted). The file must not be the database (SQLite)
    nor anything but a regular file, and its folder must exist (`campaigns.output_paths`).
    Raises NotFound (unknown campaign), ReportError (format, disk full) or UnsafeOutput (path).
    """
    fmt = resolve_format(path, fmt)
    out = Path(path) if path is not None else None
    if attempts and responses:
        raise ReportError("--attempts and --responses are two different reports: choose one")
    if fmt == "html" and (attempts or responses):
        which = "--attempts" if attempts else "--responses"
        raise ReportError(f"the html report is the summary with charts: {which} applies to csv, "
                          "jsonl, xlsx and parquet")
    protect: Protected = tuple(protect_database(_database_url(source)))
    if out is not None:
        check_output_path(out, "the report", protect)
    started = time.monotonic()
    async with open_source(source) as conn:
        campaign = await get_campaign(conn, campaign_name)
        await tune_for_report(conn)
        kind = ("html" if fmt == "html" else "attempts" if attempts
                else "responses" if responses else "contacts")
        unmapped: list[str] = []
        with _disk_errors(out):
            if fmt == "html":
                rows = await _write_html(conn, campaign, out, now, protect)
            elif (fmt in ("csv", "parquet") and dialect_name(conn) == "postgresql"
                  and not responses and (attempts or answer_plan(campaign) is None)):
                # Keypad answer columns are added in Python: such contact reports take the
                # row path.
                rows, unmapped = await _write_by_copy(conn, campaign, out, fmt, attempts,
                                                      protect)
            else:
                rows, unmapped = await _write_rows(conn, campaign, out, fmt, kind, protect)
    return ReportResult(fmt, out, kind, rows, time.monotonic() - started, unmapped)


async def _write_html(conn: Conn, campaign: Campaign, out: Path | None,
                      now: datetime | None, protect: Protected) -> int:
    with ExitStack() as stack:
        fh = stdout_text() if out is None else stack.enter_context(text_file(out, protect))
        s = await build_summary(conn, campaign, now)
        fh.write(render_html(s, await chart_data(conn, campaign.id, s)))
        fh.flush()
    return 0


async def _write_by_copy(conn: Conn, campaign: Campaign, out: Path | None, fmt: str,
                         attempts: bool, protect: Protected) -> tuple[int, list[str]]:
    """PostgreSQL: CSV and Parquet rendered by the server (see `pgcopy`)."""
    with ExitStack() as stack:
        if fmt == "parquet":
            assert out is not None
            tmp = stack.enter_context(atomic_file(out, protect))
            _, rows, unmapped = await copy_parquet(conn, campaign, str(tmp), attempts=attempts)
            return rows, unmapped
        if out is None:
            bout = stdout_bytes()
        else:
            tmp = stack.enter_context(atomic_file(out, protect))
            bout = stack.enter_context(open(tmp, "wb"))  # noqa: ASYNC230 - a local file
        _, rows, unmapped = await copy_csv(conn, campaign, bout, attempts=attempts)
        bout.flush()
        return rows, unmapped


async def _write_rows(conn: Conn, campaign: Campaign, out: Path | None, fmt: str,
                      kind: str, protect: Protected) -> tuple[int, list[str]]:
    """Any database, any row format: stream rows through a Python writer. `kind`: contacts,
    attempts or responses."""
    rows_of = {"attempts": attempt_rows, "responses": response_rows}.get(kind, contact_rows)
    stream = await rows_of(conn, campaign)
    with _open_writer(fmt, out, stream, kind, protect) as writer:
        async for chunk in stream.chunks:
            writer.write(chunk)
            await _stop_if_interrupted()
    return writer.rows_written, stream.unmapped_columns


async def _stop_if_interrupted() -> None:
    """A chunk boundary where Ctrl-C takes effect. A fetch served from the driver's prefetch
    buffer (asyncpg server-side cursors) never lets the event loop look at its signal pipe, so
    the loop gets one turn here, and a cancellation already asked for stops the export."""
    await asyncio.sleep(0)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def summary(source: Source, campaign_name: str, *,
                  now: datetime | None = None) -> CampaignSummary:
    """The campaign's summary figures (SQL aggregates; see `campaigns.reports.summary`)."""
    async with open_source(source) as conn:
        campaign = await get_campaign(conn, campaign_name)
        await tune_for_report(conn)
        return await build_summary(conn, campaign, now)
