"""Template fields against a campaign's contact list: refused at `campaign start` and `resume`,
at `campaign set` of a campaign that is not a draft (when a templated setting or the script
changes), and at `contacts import` into a campaign with a script (its dry run too). Refused: a
template naming a column the list lacks (or two columns whose names differ only in punctuation),
contacts with an empty value for a field used without a default, `transfer_to` values that are
not phone numbers, URL values that are not http(s) URLs, spoken texts over Telnyx's 3,000
characters with the contacts' longest values. Nothing is dialed or changed then."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import templates
from campaigns.db.models import Campaign, Contact, ContactImport, ContactStatus
from campaigns.errors import ImportFailed, InvalidSettings
from campaigns.importing.columns import map_columns
from campaigns.scripts import script_of
from campaigns.settings import CampaignSettings, settings_of

#: An import's header and the phone column it named (`ContactImport.columns, .phone_column`).
ImportColumns = tuple[Sequence[str], str | None]


async def check_campaign_templates(session: AsyncSession, campaign: Campaign, *,
                                   settings: Mapping[str, Any] | None = None,
                                   pending_import: ImportColumns | None = None,
                                   refused: str = "nothing was dialed") -> None:
    """Raise InvalidSettings naming each field and how many contacts lack it.

    `settings`: check these instead of the campaign's (a `campaign set` before it applies them).
    `pending_import`: the header of an import not written to the database (a dry run).
    `refused`: what the message ends with (what did not happen)."""
    cs = CampaignSettings(settings) if settings is not None else settings_of(campaign)
    script = script_of(cs)
    tpls = templates.templates_of(cs, script.prompts() if script else ())
    named, _ = templates.requirements(tpls)
    if not named:
        return
    imports: list[ImportColumns] = [
        (cols or [], phone) for cols, phone in (await session.execute(
            select(ContactImport.columns, ContactImport.phone_column)
            .where(ContactImport.campaign_id == campaign.id))).all()]
    if pending_import is not None:
        imports.append(pending_import)
    problems = column_problems(tpls, imports)
    scan = templates.ContactScan(tpls)
    rows = await session.stream(
        select(Contact.phone_e164, Contact.first_name, Contact.last_name, Contact.email,
               Contact.region, Contact.postal_code, Contact.custom_fields)
        .where(Contact.campaign_id == campaign.id, Contact.status != ContactStatus.DONE)
        .execution_options(yield_per=5000))
    async for r in rows:
        scan.add(templates.contact_fields(r.phone_e164, dict(r._mapping), r.custom_fields))
    problems.extend(scan.problems())
    if problems:
        raise InvalidSettings(f"campaign {campaign.name!r}: " + "; ".join(problems)
                              + f"; {refused}")


def column_problems(tpls: list[tuple[str, str, templates.Target]],
                    imports: Iterable[ImportColumns]) -> list[str]:
    """Fields the templates name that no import has a column for, that name two columns (their
    headers differ only in case or punctuation), or that name the phone column by a header
    the engine cannot know (`--phone-column` with an unusual name: write {phone})."""
    imports = list(imports)
    if not imports:  # contacts added without an import (API, tests) have no header to check
        return []
    named, _ = templates.requirements(tpls)
    columns: set[str] = set()
    same_key: dict[str, set[str]] = {}
    unknown_alias: dict[str, str] = {}
    for cols, phone in imports:
        columns.update(cols)
        by_key: dict[str, set[str]] = {}
        for c in cols:
            by_key.setdefault(templates.field_key(c), set()).add(c)
        for key, headers in by_key.items():
            if len(headers) > 1:
                same_key.setdefault(key, set()).update(headers)
        try:
            mapped = map_columns(cols, phone).describe()
        except ImportFailed:  # a header that no longer maps: its names still count
            continue
        columns.update(mapped)  # the attributes: {first_name}, {region}, {phone}
        for attr, header in mapped.items():
            if attr not in (*templates.STORED, "phone"):  # kept in custom_fields by header
                continue
            key = templates.field_key(header)
            if key != templates.field_key(attr) and key not in templates.ALIASES:
                unknown_alias[key] = attr
    problems = templates.check_columns(tpls, columns)
    for r in named:
        if r.key in same_key:
            listed = " and ".join(repr(h) for h in sorted(same_key[r.key]))
            problems.append(f"{r.where} names {{{r.name}}}, which matches the columns {listed} "
                            "(names compare without case, spaces and punctuation): rename one "
                            "in the file")
        elif r.key in unknown_alias:
            problems.append(f"{r.where} names {{{r.name}}}, the column read as the contact's "
                            f"{unknown_alias[r.key]}: write {{{unknown_alias[r.key]}}}")
    return problems
