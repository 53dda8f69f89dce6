"""Template fields against a campaign's contact list: refused at `campaign start` (and at `contacts
import` into a campaign with a script) when a template names a column the list lacks, or when
contacts have an empty value for a field used without a default. Nothing is dialed then."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import templates
from campaigns.db.models import Campaign, Contact, ContactImport, ContactStatus
from campaigns.errors import ImportFailed, InvalidSettings
from campaigns.importing.columns import map_columns
from campaigns.scripts import script_of
from campaigns.settings import settings_of


async def check_campaign_templates(session: AsyncSession, campaign: Campaign) -> None:
    """Raise InvalidSettings naming each field and how many contacts lack it."""
    settings = settings_of(campaign)
    script = script_of(settings)
    tpls = templates.templates_of(settings, script.prompts() if script else ())
    named, _ = templates.requirements(tpls)
    if not named:
        return
    problems: list[str] = []
    imports = (await session.execute(
        select(ContactImport.columns, ContactImport.phone_column)
        .where(ContactImport.campaign_id == campaign.id))).all()
    if imports:  # contacts added without an import (API, tests) have no header to check
        columns: set[str] = set()
        for cols, phone in imports:
            columns.update(cols or [])
            try:
                columns.update(map_columns(cols or [], phone).describe())
            except ImportFailed:  # a header that no longer maps: its names still count
                continue
        problems.extend(templates.check_columns(tpls, columns))
    rows = await session.stream(
        select(Contact.phone_e164, Contact.first_name, Contact.last_name, Contact.email,
               Contact.region, Contact.postal_code, Contact.custom_fields)
        .where(Contact.campaign_id == campaign.id, Contact.status == ContactStatus.QUEUED)
        .execution_options(yield_per=5000))
    fields = [templates.contact_fields(r.phone_e164, dict(r._mapping), r.custom_fields)
              async for r in rows]
    problems.extend(templates.describe_missing(tpls, templates.missing_counts(tpls, fields)))
    if problems:
        raise InvalidSettings(f"campaign {campaign.name!r}: " + "; ".join(problems)
                              + "; nothing was dialed")
