"""`dialer status NAME [--watch]`: live progress of a campaign."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import click
from rich.live import Live
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.types import utcnow
from campaigns.names import display
from campaigns.progress import Progress, progress
from dialer.cli.common import app_context, err, out, print_json, transaction


async def compliance_status(session: AsyncSession, name: str) -> dict[str, Any]:
    """Why the campaign is not dialed (a stale registry copy) and why contacts wait."""
    from campaigns.compliance.store import registry_copy_date, registry_problem
    from campaigns.db.models import Contact, ContactStatus
    from campaigns.service import get_campaign

    c = await get_campaign(session, name)
    stopped = registry_problem(c.settings or {}, await registry_copy_date(session), utcnow())
    rows = await session.execute(
        select(Contact.deferred_reason, func.count())
        .where(Contact.campaign_id == c.id, Contact.status == ContactStatus.QUEUED,
               Contact.deferred_reason.is_not(None))
        .group_by(Contact.deferred_reason))
    return {"stopped": stopped, "waiting": {str(r): int(n) for r, n in rows}}


def render(p: Progress, compliance: dict[str, Any] | None = None) -> Table:
    dry = ", dry run: simulated times" if p.dry_run else ""
    t = Table(title=Text(f"{display(p.name)} ({p.status}{dry})"), show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("contacts", str(p.contacts))
    t.add_row("done", f"{p.done} ({100 * p.done / p.contacts:.1f}%)" if p.contacts else "0")
    t.add_row("queued (due now)", f"{p.queued} ({p.due_now})")
    if p.next_due:
        t.add_row("next due", p.next_due)
    t.add_row("engine", p.engine)
    t.add_row("calls in flight", str(p.in_flight))
    t.add_row("calls placed", str(p.dialed))
    t.add_row("dials/s (last 60 s)", f"{p.dials_per_sec:.2f}")
    t.add_row("429s (last 60 s)", str(p.rate_limited_recent))
    eta = "-" if p.eta_secs is None else str(timedelta(seconds=int(p.eta_secs)))
    t.add_row("ETA", "done" if p.contacts and p.done == p.contacts else eta)
    for outcome, n in sorted(p.outcomes.items(), key=lambda kv: -kv[1]):
        t.add_row(f"  {outcome}", str(n))
    if p.last_error:
        t.add_row("last error", p.last_error)
    if compliance:
        for reason, n in sorted(compliance["waiting"].items()):
            t.add_row(f"waiting ({reason})", str(n))
        if compliance["stopped"]:
            t.add_row("NOT DIALED", compliance["stopped"])
    return t


@click.command()
@click.argument("name")
@click.option("--watch", is_flag=True, help="Refresh every second until interrupted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON once.")
def status(name: str, watch: bool, as_json: bool) -> None:
    """Show live progress of campaign NAME."""
    url = app_context().database_url

    async def _once() -> tuple[Progress, dict[str, Any]]:
        async with transaction(url, read_only=True) as s:
            return await progress(s, name), await compliance_status(s, name)

    async def _watch() -> None:
        p = await _once()
        with Live(render(*p), console=err, refresh_per_second=2) as live:
            while True:
                await asyncio.sleep(1.0)
                live.update(render(*await _once()))

    if watch:
        try:
            asyncio.run(_watch())
        except KeyboardInterrupt:
            pass
        return
    p, compliance = asyncio.run(_once())
    if as_json:
        print_json({**p.as_dict(), "compliance": compliance})
    else:
        out.print(render(p, compliance))
