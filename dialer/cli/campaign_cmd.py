"""`dialer campaign ...`: create, list, show, and the lifecycle actions."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.models import Campaign
from campaigns.errors import InvalidSettings
from campaigns.names import display
from campaigns.service import (
    CampaignCounts,
    campaign_counts,
    change_status,
    create_campaign,
    get_campaign,
    list_campaigns,
    update_settings,
)
from campaigns.settings import OWN_FIELDS, load_toml
from campaigns.telnyx_schema.dial import CAMPAIGN_DIAL_FIELDS, DIAL_FIELDS, SECRET_DIAL_FIELDS
from campaigns.telnyx_schema.fields import FieldSpec
from dialer.cli.common import err, out, print_json, with_session

SETTING_SPECS: dict[str, FieldSpec] = {
    **OWN_FIELDS,
    **{k: DIAL_FIELDS[k] for k in DIAL_FIELDS if k in CAMPAIGN_DIAL_FIELDS},
}
_JSON_KINDS = ("object", "array")


@click.group()
def campaign() -> None:
    """Create campaigns and control them (start, pause, resume, stop)."""


def _setting_options(fn: Any) -> Any:
    """One flag per settings key, named after it (timeout_secs -> --timeout-secs)."""
    for spec in reversed(list(SETTING_SPECS.values())):
        help_text = spec.help or spec.name
        if spec.enum:
            help_text += f" [{'|'.join(str(v) for v in spec.enum)}]"
        if spec.kind in _JSON_KINDS:
            help_text += " (JSON)"
        if spec.kind == "bool":
            negative = "--no-" + spec.name.replace("_", "-")
            fn = click.option(f"{spec.flag}/{negative}", spec.name, default=None,
                              help=help_text)(fn)
            continue
        ptype: Any = {"int": click.INT, "float": click.FLOAT}.get(spec.kind, click.STRING)
        fn = click.option(spec.flag, spec.name, type=ptype, default=None, help=help_text,
                          metavar=spec.kind.upper() if spec.kind != "str" else "TEXT")(fn)
    return fn


def _flag_value(spec: FieldSpec, raw: Any) -> Any:
    if spec.kind in _JSON_KINDS and isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidSettings(f"{spec.flag}: not valid JSON ({exc.msg})") from None
    if spec.kind == "str_or_array" and isinstance(raw, str) and raw.startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidSettings(f"{spec.flag}: not valid JSON ({exc.msg})") from None
    return raw


@campaign.command("create")
@click.argument("name")
@click.option("--from", "from_number", metavar="+E164", help="Caller ID (+E164).")
@click.option("--connection-id", metavar="ID", help="Telnyx Call Control connection (app) id.")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="TOML file of settings (see sample_data/campaign.toml); flags override it.")
@click.option("--json", "as_json", is_flag=True, help="Print the created campaign as JSON.")
@_setting_options
def create(name: str, from_number: str | None, connection_id: str | None,
           config_file: Path | None, as_json: bool, **flags: Any) -> None:
    """Create campaign NAME (in draft) from a TOML file and/or flags."""
    values: dict[str, Any] = load_toml(config_file) if config_file else {}
    values.pop("name", None)
    for key, raw in flags.items():
        if raw is not None:
            values[key] = _flag_value(SETTING_SPECS[key], raw)
    if from_number is not None:
        values["from"] = from_number
    if connection_id is not None:
        values["connection_id"] = connection_id

    async def _create(session: AsyncSession) -> dict[str, Any]:
        c = await create_campaign(session, name, values)
        return campaign_dict(c, CampaignCounts())

    data = with_session(_create)
    if as_json:
        print_json(data)
    stored = str(data["name"])  # normalised: what later commands match
    arg = shlex.quote(stored)  # the hints are commands to paste into a shell
    err.print(f"campaign {stored!r} created (draft): import contacts with "
              f"`dialer contacts import {arg} FILE`, then `dialer campaign start {arg}`",
              markup=False, highlight=False)


def _redacted(dial: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in SECRET_DIAL_FIELDS and v else v) for k, v in dial.items()}


def campaign_dict(c: Campaign, counts: CampaignCounts) -> dict[str, Any]:
    return {
        "name": c.name,
        "status": c.status,
        "from": c.from_number,
        "connection_id": c.connection_id,
        "dial_settings": _redacted(c.dial_settings or {}),
        "settings": c.settings,
        "last_error": c.last_error,
        "created_at": c.created_at.isoformat() if c.created_at else None,
        "started_at": c.started_at.isoformat() if c.started_at else None,
        "finished_at": c.finished_at.isoformat() if c.finished_at else None,
        "contacts": counts.contacts,
        "contacts_by_status": counts.by_status,
        "outcomes": counts.by_outcome,
    }


@campaign.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List campaigns with their progress."""

    async def _list(session: AsyncSession) -> list[dict[str, Any]]:
        items = await list_campaigns(session)
        counts = await campaign_counts(session, [c.id for c in items])
        return [campaign_dict(c, counts[c.id]) for c in items]

    rows = with_session(_list, read_only=True)
    if as_json:
        print_json(rows)
        return
    table = Table(title="Campaigns")
    for col in ("name", "status", "from", "contacts", "done", "created"):
        table.add_column(col, justify="right" if col in ("contacts", "done") else "left")
    for r in rows:
        table.add_row(Text(display(r["name"])), r["status"], r["from"], str(r["contacts"]),
                      str(r["contacts_by_status"].get("done", 0)), (r["created_at"] or "")[:19])
    if not rows:
        err.print("no campaigns yet: `dialer campaign create NAME --from +E164 --connection-id ID`")
        return
    out.print(table)


@campaign.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(name: str, as_json: bool) -> None:
    """Show one campaign: state, settings, contact counts and outcomes."""

    async def _show(session: AsyncSession) -> dict[str, Any]:
        c = await get_campaign(session, name)
        counts = await campaign_counts(session, [c.id])
        return campaign_dict(c, counts[c.id])

    data = with_session(_show, read_only=True)
    if as_json:
        print_json(data)
        return
    summary = Table(title=Text(f"Campaign {display(data['name'])}"), show_header=False)
    summary.add_column("key")
    summary.add_column("value")
    for key in ("status", "from", "connection_id", "contacts", "created_at", "started_at",
                "finished_at", "last_error"):
        if data.get(key) not in (None, ""):
            summary.add_row(key, str(data[key]))
    for status, n in sorted(data["contacts_by_status"].items()):
        summary.add_row(f"contacts {status}", str(n))
    for outcome, n in sorted(data["outcomes"].items()):
        summary.add_row(f"outcome {outcome}", str(n))
    out.print(summary)
    settings = Table(title="Settings")
    settings.add_column("key")
    settings.add_column("value")
    for key, value in sorted({**data["settings"], **data["dial_settings"]}.items()):
        settings.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    out.print(settings)


def _lifecycle(action: str, doc: str) -> click.Command:
    @click.argument("name")
    def _cmd(name: str, hangup: bool = False) -> None:
        async def _apply(session: AsyncSession) -> str:
            c = await change_status(session, name, action, hangup_live_calls=hangup)
            return c.status

        status = with_session(_apply)
        err.print(f"campaign {name!r} is now {status}", markup=False, highlight=False)

    _cmd.__doc__ = doc
    cmd = click.command(action)(_cmd)
    if action == "stop":
        cmd = click.option("--hangup", is_flag=True,
                           help="Also hang up the campaign's live calls.")(cmd)
    return cmd


for _action, _doc in [
    ("start", "Start dialing NAME (a running `dialer run` picks it up within a second)."),
    ("pause", "Stop new dials for NAME; live calls finish."),
    ("resume", "Resume a paused campaign."),
    ("stop", "Cancel NAME: contacts not yet dialed end as `canceled`."),
]:
    campaign.add_command(_lifecycle(_action, _doc))


@campaign.command("set")
@click.argument("name")
@click.option("--from", "from_number", metavar="+E164", help="Caller ID (+E164).")
@click.option("--connection-id", metavar="ID", help="Telnyx Call Control connection (app) id.")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@_setting_options
def set_cmd(name: str, from_number: str | None, connection_id: str | None, as_json: bool,
            **flags: Any) -> None:
    """Change settings of campaign NAME, running or not (e.g. --cps 5 --max-concurrent 20):
    every engine follows within a second. A bad value changes nothing."""
    values: dict[str, Any] = {k: _flag_value(SETTING_SPECS[k], raw)
                              for k, raw in flags.items() if raw is not None}
    if from_number is not None:
        values["from"] = from_number
    if connection_id is not None:
        values["connection_id"] = connection_id
    if not values:
        raise InvalidSettings("nothing to change: name a setting, e.g. "
                              f"`dialer campaign set {name} --cps 5`")

    async def _set(session: AsyncSession) -> dict[str, Any]:
        _, changed = await update_settings(session, name, values)
        return changed

    changed = with_session(_set)
    if as_json:
        print_json({k: {"old": old, "new": new} for k, (old, new) in changed.items()})
    if not changed:
        err.print(f"campaign {name!r}: nothing changed (the values were already set)")
        return
    shown = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()
                      if k not in SECRET_DIAL_FIELDS)
    err.print(f"campaign {name!r}: {shown}")


@campaign.command("preview")
@click.argument("name")
@click.option("--at", "at_text", metavar="ISO-TIME",
              help="Decide as of this instant (e.g. 2026-12-24T15:00:00Z) instead of now.")
@click.option("--per-number-cap", type=click.IntRange(1), default=3, show_default=True,
              help="The engine's per-number cap in 24 h (a lower state cap wins).")
@click.option("--rules", "rules_file", type=click.Path(path_type=Path), metavar="FILE",
              help="Rules file for campaigns without their own rules_file (as `run --rules`).")
@click.option("--json", "as_json", is_flag=True, help="Print every contact's decision as JSON.")
def preview_cmd(name: str, at_text: str | None, per_number_cap: int, rules_file: Path | None,
                as_json: bool) -> None:
    """Without dialing: which queued contacts of NAME are callable now (or --at), deferred and
    until when, or blocked, and why (the claim's own decision function)."""
    from datetime import UTC, datetime

    from campaigns.compliance.preview import Preview, preview
    from campaigns.compliance.store import set_rules_override
    from campaigns.db.types import utcnow

    if at_text:
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            raise click.BadParameter(f"{at_text!r} is not an ISO time like "
                                     "2026-12-24T15:00:00Z", param_hint="--at") from None
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    else:
        at = utcnow()
    set_rules_override(rules_file)

    async def _preview(session: AsyncSession) -> Preview:
        return await preview(session, name, at, per_number_cap=per_number_cap,
                             keep_decisions=as_json)

    result = with_session(_preview)
    if as_json:
        print_json(result.to_dict())
        return
    _print_preview(result)


def _print_preview(p: Any) -> None:
    out.print(f"campaign {p.campaign!r} at {p.at.isoformat(timespec='minutes')} "
              f"(rules {p.rules}): {p.total} queued contacts")
    if p.stopped:
        out.print(f"  NOT DIALED: {p.stopped}")
    out.print(f"  callable: {p.callable}")
    out.print(f"  deferred: {sum(p.deferred.values())}")
    for reason, n in p.deferred.most_common():
        lo, hi = p.deferred_until[reason]
        out.print(f"    {reason}: {n} (until {lo.isoformat(timespec='minutes')} .. "
                  f"{hi.isoformat(timespec='minutes')})")
    out.print(f"  blocked: {sum(p.blocked.values())}")
    for reason, n in p.blocked.most_common():
        out.print(f"    {reason}: {n}")
    if p.examples:
        out.print("  examples:")
    for key, examples in sorted(p.examples.items()):
        for e in examples:
            zones = ", ".join(f"{z['zone']} {z['local'][11:16]} window {z['window']}"
                              for z in e["zones"])
            until = f" until {e['until'][:16]}" if e.get("until") else ""
            out.print(f"    {key}: {e['phone']} states {','.join(e['states']) or '-'}; "
                      f"{zones}{until}")
