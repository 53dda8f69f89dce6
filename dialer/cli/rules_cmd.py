"""`dialer rules ...`: the compliance rule set (show, check a file) and blackout dates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.compliance import blackouts as bo
from campaigns.compliance.ruleset import load_rules
from dialer.cli.common import err, out, print_json, with_session

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.group()
def rules() -> None:
    """Compliance rules: state hours, caps, holidays (docs/compliance.md), blackout dates."""


@rules.command("show")
@click.option("--rules", "rules_file", type=click.Path(path_type=Path), metavar="FILE",
              help="A rules file to check and show instead of the shipped one.")
@_JSON
def show(rules_file: Path | None, as_json: bool) -> None:
    """Check a rules file (the shipped one by default) and summarise it."""
    rs = load_rules(rules_file)
    data: dict[str, Any] = {
        "version": rs.version, "date": rs.dated.isoformat(), "file": rs.source,
        "years": f"{rs.first_year}-{rs.last_year}",
        "states_with_hours": sorted(rs.hours), "caps": dict(rs.caps),
        "holidays": {s: len(d) for s, d in sorted(rs.holidays.items())},
    }
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        out.print(f"{key}: {value}")


@rules.group()
def blackout() -> None:
    """Operator blackout dates: no calls on a date (every state, or --states)."""


@blackout.command("add")
@click.argument("day", metavar="DATE")
@click.option("--states", metavar="LIST", help="Only contacts that may be in these states "
                                                "(comma-separated codes, e.g. LA,MS).")
@click.option("--note", help="Why (shown by list).")
def add(day: str, states: str | None, note: str | None) -> None:
    """No calls on DATE (YYYY-MM-DD, the contact's local date)."""
    parsed, codes = bo.parse_day(day), bo.parse_states(states)

    async def _add(session: AsyncSession) -> None:
        await bo.add_blackout(session, parsed, codes, note)

    with_session(_add)
    err.print(f"blackout added: {parsed.isoformat()} ({codes or 'all states'})")


@blackout.command("remove")
@click.argument("day", metavar="DATE")
@click.option("--states", metavar="LIST", help="Only the blackout for these states.")
def remove(day: str, states: str | None) -> None:
    """Remove the blackout(s) of DATE."""
    parsed = bo.parse_day(day)
    codes = bo.parse_states(states) if states is not None else None

    async def _remove(session: AsyncSession) -> int:
        return await bo.remove_blackout(session, parsed, codes)

    n = with_session(_remove)
    err.print(f"{n} blackout(s) removed")


@blackout.command("list")
@_JSON
def list_cmd(as_json: bool) -> None:
    """List blackout dates."""

    async def _list(session: AsyncSession) -> list[dict[str, Any]]:
        return [{"date": b.day.isoformat(), "states": b.states.split(",") if b.states else [],
                 "note": b.note} for b in await bo.list_blackouts(session)]

    rows = with_session(_list)
    if as_json:
        print_json(rows)
        return
    if not rows:
        err.print("no blackout dates: `dialer rules blackout add DATE [--states LA,MS]`")
        return
    table = Table(title=f"Blackout dates ({len(rows)})")
    for col in ("date", "states", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["date"], ",".join(r["states"]) or "all", r["note"] or "")
    out.print(table)
