"""`dialer dnc ...`: the do-not-call list (add, import, remove, list)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import dnc as dnc_list
from dialer.cli.common import err, out, print_json, with_session

_REGION = click.option("--default-region", default="US", show_default=True, metavar="CC",
                       help="Country for numbers written without +country code.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.group()
def dnc() -> None:
    """The do-not-call list: numbers never dialed by any campaign."""


def _report(change: dnc_list.DncChange, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(change.to_dict())
    if verb == "removed":
        err.print(f"{change.removed} removed from the DNC list"
                  + (f", {change.not_listed} were not on it" if change.not_listed else ""))
        return
    err.print(f"{change.added} added to the DNC list"
              + (f", {change.already_listed} already on it" if change.already_listed else "")
              + (f", {len(change.invalid)} not valid numbers (skipped)" if change.invalid
                 else ""))
    for row, value, reason in change.invalid[:10]:
        err.print(f"  row {row}: {value!r}: {reason}")
    if len(change.invalid) > 10:
        err.print(f"  ... and {len(change.invalid) - 10} more")


@dnc.command("add")
@click.argument("numbers", nargs=-1, required=True)
@_REGION
@_JSON
def add(numbers: tuple[str, ...], default_region: str, as_json: bool) -> None:
    """Add NUMBERS to the DNC list (all must be valid, or nothing is added)."""

    async def _add(session: AsyncSession) -> dnc_list.DncChange:
        return await dnc_list.add_numbers(session, numbers, default_region)

    _report(with_session(_add), as_json, "added")


@dnc.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--phone-column", metavar="COL", help="Header of the phone column (default: "
                                                    "detected; a file of bare numbers works).")
@click.option("--encoding", metavar="E", help="Text encoding of a CSV file (default: UTF-8).")
@_REGION
@_JSON
def import_cmd(file: Path, phone_column: str | None, encoding: str | None, default_region: str,
               as_json: bool) -> None:
    """Add every valid number of FILE (.csv/.xlsx) to the DNC list; invalid ones are skipped."""

    async def _import(session: AsyncSession) -> dnc_list.DncChange:
        return await dnc_list.import_file(session, file, default_region, encoding, phone_column)

    _report(with_session(_import), as_json, "added")


@dnc.command("remove")
@click.argument("numbers", nargs=-1, required=True)
@_REGION
@_JSON
def remove(numbers: tuple[str, ...], default_region: str, as_json: bool) -> None:
    """Remove NUMBERS from the DNC list."""

    async def _remove(session: AsyncSession) -> dnc_list.DncChange:
        return await dnc_list.remove_numbers(session, numbers, default_region)

    _report(with_session(_remove), as_json, "removed")


@dnc.command("list")
@_JSON
def list_cmd(as_json: bool) -> None:
    """List the DNC numbers."""

    async def _list(session: AsyncSession) -> list[dict[str, str | None]]:
        return [{"phone_e164": n.phone_e164, "raw_input": n.raw_input, "source": n.source,
                 "added_at": n.added_at.isoformat() if n.added_at else None}
                for n in await dnc_list.list_numbers(session)]

    rows = with_session(_list, read_only=True)
    if as_json:
        print_json(rows)
        return
    if not rows:
        err.print("the DNC list is empty: `dialer dnc add NUMBER...` or `dialer dnc import FILE`")
        return
    table = Table(title=f"Do-not-call list ({len(rows)})")
    for col in ("number", "as entered", "source", "added"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["phone_e164"], r["raw_input"] or "", r["source"] or "",
                      (r["added_at"] or "")[:19])
    out.print(table)


@dnc.group()
def registry() -> None:
    """The national Do Not Call registry copy (separate from the internal DNC list)."""


@registry.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--date", "copy_date", metavar="YYYY-MM-DD",
              help="Date of the registry copy (default: today, UTC).")
@_JSON
def registry_import(file: Path, copy_date: str | None, as_json: bool) -> None:
    """Load a registry flat file: a full list (NPA,NXXXXXX per line) or a change list
    (NPA,NXXXXXX,A|D). A bad line changes nothing."""
    from campaigns.compliance.blackouts import parse_day
    from campaigns.compliance.registry import RegistryLoad, load_registry
    from campaigns.db.types import utcnow

    day = parse_day(copy_date) if copy_date else utcnow().date()

    async def _load(session: AsyncSession) -> RegistryLoad:
        return await load_registry(session, file, day)

    load = with_session(_load)
    if as_json:
        print_json(load.to_dict())
    err.print(f"registry {load.kind} list of {load.copy_date.isoformat()} loaded: "
              f"{load.added} inserted, {load.removed} deleted, {load.total} numbers listed")


@registry.command("status")
@_JSON
def registry_status_cmd(as_json: bool) -> None:
    """The registry copy loaded: its date and size."""
    from campaigns.compliance.registry import registry_status

    async def _status(session: AsyncSession) -> dict[str, object]:
        return await registry_status(session)

    data = with_session(_status)
    if as_json:
        print_json(data)
        return
    if data["copy_date"] is None:
        err.print("no registry copy loaded: `dialer dnc registry import FILE --date YYYY-MM-DD`")
        return
    age = (date.today() - date.fromisoformat(str(data["copy_date"]))).days
    out.print(f"registry copy of {data['copy_date']} ({age} days old), {data['numbers']} "
              f"numbers, last file {data['file']} ({data['kind']} list)")
