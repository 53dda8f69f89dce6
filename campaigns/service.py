"""Campaign operations on the database: create, look up, list, change state.

Each function runs inside the caller's session and transaction, so a failure changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import names, outcomes
from campaigns.db.models import (
    AttemptState,
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
)
from campaigns.db.types import utcnow
from campaigns.errors import AlreadyExists, IllegalTransition, InvalidSettings, NotFound
from campaigns.lifecycle import next_status
from campaigns.settings import split_and_validate


async def create_campaign(session: AsyncSession, name: str, values: Mapping[str, Any]) -> Campaign:
    name = names.normalize(name)
    split = split_and_validate(values)
    if await session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
        raise AlreadyExists(f"a campaign named {name!r} already exists: pick another name")
    campaign = Campaign(
        name=name,
        status=CampaignStatus.DRAFT,
        from_number=split.from_number,
        connection_id=split.connection_id,
        dial_settings=split.dial_settings,
        settings=split.settings,
    )
    session.add(campaign)
    try:
        await session.flush()
    except IntegrityError:
        raise AlreadyExists(
            f"a campaign named {name!r} already exists: pick another name") from None
    return campaign


async def get_campaign(session: AsyncSession, name: str, *, for_update: bool = False) -> Campaign:
    # As typed first (a name stored before names were normalised), then normalised.
    spellings = names.lookup_spellings(name)
    stmt = select(Campaign).where(Campaign.name.in_(spellings))
    if for_update:
        stmt = stmt.with_for_update()
    found = {c.name: c for c in await session.scalars(stmt)}
    campaign = next((found[s] for s in spellings if s in found), None)
    if campaign is None:
        known = (await session.scalars(
            select(Campaign.name).order_by(Campaign.name).limit(5))).all()
        hint = (f" (known: {', '.join(names.display(k) for k in known)})" if known
                else " (none exist yet: `dialer campaign create`)")
        raise NotFound(f"no campaign named {name!r}{hint}")
    return campaign


async def change_status(session: AsyncSession, name: str, action: str, *,
                        hangup_live_calls: bool = False) -> Campaign:
    """Apply a lifecycle action. `stop` also cancels every contact not yet dialed."""
    campaign = await get_campaign(session, name, for_update=True)
    target = next_status(campaign.name, campaign.status, action)
    if action in ("start", "resume"):  # the list or the settings may have changed since
        from campaigns.template_check import check_campaign_templates
        await check_campaign_templates(session, campaign)
    now = utcnow()
    if action in ("start", "resume"):
        from campaigns.compliance.store import registry_copy_date, registry_problem

        problem = registry_problem(campaign.settings or {}, await registry_copy_date(session),
                                   now)
        if problem:
            raise IllegalTransition(f"cannot {action} campaign {name!r}: {problem}")
    campaign.status = target
    campaign.updated_at = now
    if action == "start":
        campaign.started_at = now
        campaign.last_error = None
    if action == "resume":
        campaign.last_error = None
    if target in (CampaignStatus.CANCELLED, CampaignStatus.COMPLETED):
        campaign.finished_at = now
    if action == "stop":
        campaign.hangup_requested = hangup_live_calls
        # Contacts locked by an engine transaction right now (a claim in progress) are skipped:
        # waiting for them would deadlock (this transaction holds the campaign row, the claim
        # needs a key-share lock on it to insert its attempt). They leave `queued` with that
        # claim, and one released back to the queue is closed as canceled by the engine's sweep
        # of cancelled campaigns.
        await session.execute(
            update(Contact)
            .where(Contact.id.in_(
                select(Contact.id)
                .where(Contact.campaign_id == campaign.id, Contact.status == ContactStatus.QUEUED)
                .with_for_update(skip_locked=True)))
            .values(status=ContactStatus.DONE, outcome=outcomes.CANCELED, next_attempt_at=None,
                    updated_at=now)
        )
    await session.flush()
    return campaign


@dataclass
class CampaignCounts:
    contacts: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.by_status.get(ContactStatus.DONE, 0)


async def campaign_counts(session: AsyncSession,
                          campaign_ids: list[int]) -> dict[int, CampaignCounts]:
    counts: dict[int, CampaignCounts] = {cid: CampaignCounts() for cid in campaign_ids}
    if not campaign_ids:
        return counts
    rows = await session.execute(
        select(Contact.campaign_id, Contact.status, Contact.outcome, func.count())
        .where(Contact.campaign_id.in_(campaign_ids))
        .group_by(Contact.campaign_id, Contact.status, Contact.outcome)
    )
    for cid, status, outcome, n in rows:
        c = counts[cid]
        c.contacts += n
        c.by_status[status] = c.by_status.get(status, 0) + n
        if outcome:
            c.by_outcome[outcome] = c.by_outcome.get(outcome, 0) + n
    return counts


async def list_campaigns(session: AsyncSession) -> list[Campaign]:
    return list((await session.scalars(select(Campaign).order_by(Campaign.created_at,
                                                                 Campaign.id))).all())


#: Settings whose change is checked against the contacts of a running or paused campaign.
TEMPLATED_KEYS = frozenset({"message_text", "voicemail_text", "message_audio_url",
                            "voicemail_audio_url", "transfer_to", "script", "on_human",
                            "on_machine"})


async def update_settings(session: AsyncSession, name: str,
                          values: Mapping[str, Any]) -> tuple[Campaign, dict[str, Any]]:
    """Change settings of a campaign that is not over (a running one included: every engine
    follows within a second). The whole result is validated as at `create`: a bad value
    changes nothing. Returns the campaign and the settings that changed (old, new)."""
    campaign = await get_campaign(session, name, for_update=True)
    if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        raise InvalidSettings(f"campaign {name!r} is {campaign.status}: its settings can no "
                              "longer change")
    current: dict[str, Any] = {"from": campaign.from_number,
                               "connection_id": campaign.connection_id,
                               **(campaign.dial_settings or {}), **(campaign.settings or {})}
    split = split_and_validate({**current, **values})
    after: dict[str, Any] = {"from": split.from_number, "connection_id": split.connection_id,
                             **split.dial_settings, **split.settings}
    changed = {k: (current.get(k), after.get(k)) for k in sorted(set(current) | set(after))
               if current.get(k) != after.get(k)}
    if {"script", "opt_out_digit"} & set(changed) and await _calls_in_flight(session, campaign):
        # A live call's flow state names its prompt by the step's place in the script: another
        # script under it would take its answer for a different step's.
        raise InvalidSettings(
            f"campaign {name!r} has calls in progress: its script and opt-out key cannot change "
            f"under them. Pause it (`dialer campaign pause {name}`), wait until `dialer status "
            f"{name}` shows no calls in flight, then set them")
    if campaign.status != CampaignStatus.DRAFT and set(changed) & TEMPLATED_KEYS:
        # A draft is checked at start; a running or paused one dials with these at once.
        from campaigns.template_check import check_campaign_templates
        await check_campaign_templates(session, campaign, settings=split.settings,
                                       refused="nothing was changed")
    campaign.from_number = split.from_number
    campaign.connection_id = split.connection_id
    campaign.dial_settings = split.dial_settings
    campaign.settings = split.settings
    campaign.updated_at = utcnow()
    return campaign, changed


async def _calls_in_flight(session: AsyncSession, campaign: Campaign) -> bool:
    """Calls placed and not ended (dials still waiting for a slot have no flow yet)."""
    return bool(await session.scalar(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.campaign_id == campaign.id,
        CallAttempt.state.in_((AttemptState.DIALED, AttemptState.ANSWERED)))))


async def mark_dry_run(session: AsyncSession) -> list[str]:
    """Flag every running or paused campaign as played by a dry run (its times are simulated
    from now on); returns their names. `dialer run --simulate` calls it before dialing."""
    names = list((await session.scalars(select(Campaign.name).where(
        Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.PAUSED)),
        Campaign.dry_run.is_(False)))).all())
    if names:
        await session.execute(update(Campaign).where(Campaign.name.in_(names))
                              .values(dry_run=True))
    return names
