"""What keypad events do to attempts, contacts and the DNC list, inside the processor's transaction.

Two calls from the event processor, which keeps one `Notes` per transaction:
- `collect(attempt, campaign, step, at, notes)`, synchronous, from `attempts.apply_event` for
  every flow step: notes the step's responses (`attempt_responses` rows), opt-outs and final
  answers.
- `await flush(session, notes, actions, now)` once per batch, before the commit: the responses
  are stored and the opt-outs go on the DNC list (the same transaction as the events that caused
  them, so a crash loses neither or both), contacts get their final response, and the actions to
  send get their templates rendered with the contact's fields (`render_actions`, also used by
  the timers' sweep).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import dnc_events, templates
from campaigns.db import dialects
from campaigns.db.models import AttemptResponse, CallAttempt, Contact, DncNumber
from dialer.engine.flow import Action, FlowStep
from dialer.engine.row_types import AttemptFields, CampaignFields
from dialer.engine.script_flow import parse_state

log = logging.getLogger("dialer.engine")
#: Flow states entered on a person's verdict whose first action is what the person hears.
FIRST_WORDS_STATES = ("message", "transfer")


@dataclass
class Notes:
    """What one transaction's flow steps said about scripts, stored by `flush`."""

    response_rows: list[dict[str, Any]] = field(default_factory=list)  # attempt_responses
    opt_outs: dict[str, str] = field(default_factory=dict)  # number -> source
    responses: dict[int, str] = field(default_factory=dict)  # contact id -> final answer
    completed: dict[int, bool] = field(default_factory=dict)  # contact id -> script_completed


def collect(attempt: AttemptFields, campaign: CampaignFields, step: FlowStep | None,
            at: datetime, notes: Notes | None) -> None:
    """Record what a flow step says about the script (see module doc) in `notes` (None: the
    step's actions are stamped, nothing is stored). No I/O."""
    if step is None:
        return
    if attempt.flow_state in (None, "awaiting_amd") and (
            step.flow_state in FIRST_WORDS_STATES or parse_state(step.flow_state) is not None):
        step.actions[:] = [dataclasses.replace(a, verdict_at=at) for a in step.actions]
    if step.script_completed is not None and attempt.script_completed is not True:
        attempt.script_completed = step.script_completed
        if notes is not None:  # the contact's too, whether or not the step recorded an answer
            notes.completed[attempt.contact_id] = attempt.script_completed
    if notes is None or (not step.responses and not step.opt_out):
        return
    for r in step.responses:
        notes.response_rows.append(dict(
            attempt_id=attempt.id, contact_id=attempt.contact_id,
            campaign_id=attempt.campaign_id, step=r.step[:40], try_no=r.try_no,
            digits=(r.digits or None), status=r.status[:16],
            label=(r.label or None) and str(r.label)[:64], at=at))
        answer = r.label or (r.digits if r.status == "valid" else None)
        if answer and answer != "repeat":  # "say that again" is no answer to keep
            notes.responses[attempt.contact_id] = str(answer)[:64]
    if step.opt_out:
        notes.opt_outs[attempt.phone_e164] = (
            f"keypress in campaign {campaign.name!r} at {at.isoformat(timespec='seconds')}")


async def flush(session: AsyncSession, notes: Notes, actions: list[Any], now: datetime
                ) -> list[Any]:
    """Store what `collect` noted in this transaction; returns `actions` with templates rendered.
    `actions` are PendingActions (attempt_id, action, ...)."""
    if notes.response_rows:
        await session.execute(insert(AttemptResponse), notes.response_rows)
        notes.response_rows = []
    if notes.opt_outs:
        await add_opt_outs(session, notes.opt_outs, now)
    # One executemany per batch (contacts by primary key), not a statement per contact.
    answers = [{"id": cid, "response": a} for cid, a in sorted(notes.responses.items())]
    done = [{"id": cid, "script_completed": d} for cid, d in sorted(notes.completed.items())]
    if answers:
        await session.execute(update(Contact), answers)
    if done:
        await session.execute(update(Contact), done)
    return await render_actions(session, actions)


async def add_opt_outs(session: AsyncSession, numbers: dict[str, str], now: datetime) -> None:
    """The numbers go on the DNC list (a number already there keeps its first source)."""
    rows = [{"phone_e164": n, "raw_input": n, "source": src, "added_at": now}
            for n, src in sorted(numbers.items())]
    ins = pg_insert(DncNumber) if dialects.is_postgres(session) else sqlite_insert(DncNumber)
    await session.execute(ins.values(rows).on_conflict_do_nothing(index_elements=["phone_e164"]))
    await dnc_events.announce(session, numbers)  # every engine withdraws their dials on commit
    log.info("%d number(s) opted out by keypress and added to the DNC list", len(rows))


def _templated(act: Action) -> bool:
    return any(v and "{" in v for v in (act.text, act.audio_url, act.to))


async def render_actions(session: AsyncSession, actions: Sequence[Any]) -> list[Any]:
    """Actions whose text, audio URL or number name contact fields, rendered for their contact."""
    need = [pa for pa in actions if _templated(pa.action)]
    if not need:
        return list(actions)
    rows = (await session.execute(
        select(CallAttempt.id, Contact.phone_e164, Contact.first_name,
               Contact.last_name,
               Contact.email, Contact.region, Contact.postal_code, Contact.custom_fields)
        .join(Contact, Contact.id == CallAttempt.contact_id)
        .where(CallAttempt.id.in_({pa.attempt_id for pa in need})))).all()
    fields = {r.id: templates.contact_fields(r.phone_e164, dict(r._mapping), r.custom_fields)
              for r in rows}
    out = []
    for pa in actions:
        f = fields.get(pa.attempt_id)
        if f is None or not _templated(pa.action):
            out.append(pa)
            continue
        out.append(dataclasses.replace(pa, action=render_action(pa.action, f)))
    return out


def render_action(act: Action, fields: dict[str, str]) -> Action:
    """One action with the contact's fields in its text (SSML), audio URL and number."""
    changes: dict[str, Any] = {}
    if act.text and "{" in act.text:
        changes.update(text=templates.render(act.text, fields, "speech"), ssml=True)
    if act.audio_url and "{" in act.audio_url:
        changes["audio_url"] = templates.render(act.audio_url, fields, "url")
    if act.to and "{" in act.to:
        changes["to"] = templates.render(act.to, fields, "number")
    return dataclasses.replace(act, **changes)
