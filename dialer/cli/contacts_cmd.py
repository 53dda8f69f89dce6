"""`dialer contacts import`: load a CSV/XLSX contact list into a campaign."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.engine import SQLITE_BEGIN, is_sqlite
from campaigns.importing import ImportOptions, ImportSummary, import_contacts
from campaigns.importing.arrowtext import skip_pandas_probe
from campaigns.service import get_campaign
from campaigns.template_check import check_campaign_templates
from campaigns.templates import field_key
from dialer.cli.common import app_context, database, err, print_json, run

#: Seconds before the progress bar appears (short imports print only the summary).
PROGRESS_AFTER = 0.75


@click.group()
def contacts() -> None:
    """Import contact lists into campaigns."""


class _ProgressBar:
    """A rich progress bar on stderr, shown once an import takes more than a moment."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.bar: Progress | None = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < PROGRESS_AFTER:
                return
            self.bar = Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("rows"), TimeElapsedColumn(), console=err,
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task("import", total=max(total, done) or None)
        self.bar.update(self.task, completed=done, total=max(total, done) or None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contacts.command("import")
@click.argument("campaign")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--phone-column", metavar="COL",
              help="Header of the phone column (default: detected from headers like phone, "
                   "mobile, cell, telephone, msisdn).")
@click.option("--default-region", default="US", show_default=True, metavar="CC",
              help="Country for numbers written without +country code (ISO 3166 code).")
@click.option("--encoding", metavar="E",
              help="Text encoding of a CSV file (default: UTF-8, with or without BOM), e.g. "
                   "latin-1, cp1252, utf-16.")
@click.option("--dry-run", is_flag=True, help="Check the file and print the report; write "
                                              "nothing to the database.")
@click.option("--rejects", "rejects", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE", help="Write refused rows to this CSV: row, reason, duplicated "
                                   "row, detail, then the original columns.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def import_cmd(campaign: str, file: Path, phone_column: str | None, default_region: str,
               encoding: str | None, dry_run: bool, rejects: Path | None,
               as_json: bool) -> None:
    """Import contacts from FILE (.csv or .xlsx) into CAMPAIGN, in one transaction.

    Numbers are normalised to E.164; invalid numbers, duplicates (in the file or already in the
    campaign) and numbers on the DNC list are refused and counted. Importing the same file again
    adds nothing.
    """
    url = app_context().database_url
    sqlite = is_sqlite(url)
    options = ImportOptions(phone_column=phone_column, default_region=default_region,
                            encoding=encoding, dry_run=dry_run, rejects_path=rejects,
                            staged=sqlite)
    bar = _ProgressBar()
    skip_pandas_probe()  # nothing here uses pandas

    async def _go() -> ImportSummary:
        async with database(url) as engine, engine.connect() as conn:
            if sqlite:
                # Read and stage without the writer lock; the import takes it only to publish
                # (campaigns.importing.staging). A dry run never takes it.
                conn.info[SQLITE_BEGIN] = "BEGIN"
            async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                try:
                    summary = await import_contacts(session, campaign, file, options, bar)
                    await _check_templates(session, campaign, summary)
                except BaseException:
                    await session.rollback()
                    raise
                if dry_run:
                    await session.rollback()
                else:
                    await session.commit()
                return summary

    try:
        summary = run(_go())
    finally:
        bar.close()
    if as_json:
        print_json(summary.to_dict())
    _print_summary(summary)


def _print_summary(s: ImportSummary) -> None:
    title = f"Import into {s.campaign}" + (" (dry run: nothing written)" if s.dry_run else "")
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows: list[tuple[str, str]] = [
        ("rows read", f"{s.rows_read:,}"),
        ("accepted", f"{s.accepted:,}"),
        ("invalid", f"{s.invalid:,}"),
        ("duplicates", f"{s.duplicates:,}"),
        ("DNC-suppressed", f"{s.dnc_suppressed:,}"),
        ("time zone unknown (fallback)", f"{s.tz_unknown:,}"),
        ("time zone ambiguous", f"{s.tz_ambiguous:,}"),
    ]
    if s.blank_rows:
        rows.append(("blank rows skipped", f"{s.blank_rows:,}"))
    rows += [("elapsed", f"{s.elapsed_secs:.2f} s"), ("rows/s", f"{s.rows_per_sec:,.0f}")]
    for what, count in rows:
        table.add_row(what, count)
    for reason, n in sorted(s.reasons.items()):
        table.add_row(f"  refused: {reason}", f"{n:,}")
    err.print(table)
    err.print(f"phone column: {s.mapping.get('phone')!r}"
              + "".join(f", {k}: {v!r}" for k, v in s.mapping.items() if k != "phone"))
    if s.rejects_file:
        err.print(f"refused rows written to {s.rejects_file}")
    elif s.rows_read > s.accepted:
        err.print("pass --rejects FILE to get the refused rows and why")
    for group in _same_name_columns(s.columns):
        err.print(f"warning: the columns {group} differ only in case or punctuation: a template "
                  "cannot name one of them (campaign start refuses it); rename one in the file",
                  markup=False, highlight=False)
    if s.same_file_imports:
        err.print(f"note: this file was imported into {s.campaign!r} before (import "
                  f"{', '.join(f'#{i}' for i in s.same_file_imports)})")
    if not s.dry_run:
        err.print(f"import #{s.import_id}: {s.accepted:,} contacts added to {s.campaign!r}")


async def _check_templates(session: AsyncSession, name: str, summary: ImportSummary) -> None:
    """A campaign with a script checks its templates against the contacts just imported (the
    import rolls back when they lack a field); others are checked at `campaign start`. A dry run
    writes no import record: its header is checked as the real import's would be (the values of
    contacts it would add are not: `campaign start` counts them)."""
    found = await get_campaign(session, name)
    if (found.settings or {}).get("script"):
        pending = (summary.columns, summary.mapping.get("phone")) if summary.dry_run else None
        await check_campaign_templates(
            session, found, pending_import=pending,
            refused="nothing would be imported" if summary.dry_run else "nothing was imported")


def _same_name_columns(columns: list[str]) -> list[str]:
    """Groups of headers that templates cannot tell apart (`Note` and `note_`)."""
    groups: dict[str, list[str]] = {}
    for c in columns:
        groups.setdefault(field_key(c), []).append(c)
    return [" and ".join(repr(c) for c in g) for g in groups.values() if len(g) > 1]
