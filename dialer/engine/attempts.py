"""Attempt state changes: dial results, webhook facts, the call flow, and settling.

Every change here is forward-only (an attempt never moves back, a fact once known is kept), and
the outcome is computed from accumulated facts when the attempt settles, so duplicated, reordered
and late webhooks cannot change a result. Rows are locked (`FOR UPDATE`) while they change, so
several engines on one PostgreSQL can process events for the same call safely.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import outcomes as o
from campaigns import retry
from campaigns.db.dialects import one_of, pairs_in
from campaigns.db.models import AttemptState, CallAttempt, CampaignStatus, ContactStatus
from campaigns.settings import settings_of
from campaigns.windows import CallingWindow
from dialer.engine import flow, script_events
from dialer.engine.events import parse_time
from dialer.engine.identity import action_command_id, decode_client_state, tagged_client_state
from dialer.engine.row_types import AttemptFields, CampaignFields, ContactFields
from dialer.engine.store.plain_rows import AttemptRow, CampaignRow, ContactRow, write_changes

log = logging.getLogger("dialer.engine")

_STATE_ORDER = {AttemptState.CREATED: 0, AttemptState.DIALED: 1, AttemptState.ANSWERED: 2,
                AttemptState.ENDED: 3}


@dataclass
class Timing:
    """Engine time constants, divided by the time scale when running against a fast simulator."""

    scale: float = 1.0
    settle_grace_secs: float = 10.0
    reconcile_grace_secs: float = 60.0
    reconcile_recheck_secs: float = 300.0
    lost_dial_secs: float = 120.0

    #: Waits for webhooks are never shorter than this in wall-clock time, however fast the
    #: simulated calls: network delays and retries do not speed up with the simulator.
    min_wait_secs: float = 2.0
    #: Seconds of the engine's clock per wall second (a dry run's simulated clock: its speed).
    wall_scale: float = 1.0

    def secs(self, value: float) -> timedelta:
        return timedelta(seconds=value / self.scale)

    def wait(self, value: float) -> timedelta:
        """A wait for webhooks that may come late: scaled, but not below `min_wait_secs`."""
        return timedelta(seconds=max(value / self.scale,
                                     min(value, self.min_wait_secs) * self.wall_scale))


@dataclass(frozen=True)
class PendingAction:
    """A Call Control action to send after the transaction that decided it commits."""

    attempt_id: int
    call_control_id: str
    command_id: str
    action: flow.Action
    settings: Mapping[str, Any]


def pending_action(attempt: AttemptFields, act: flow.Action, settings: Mapping[str, Any],
                   key: str | None = None) -> PendingAction:
    """`act` of `attempt`'s current flow step, as it is sent: a command_id of its own (from the
    attempt's, the action and the flow state: the same step decided again after a crash gives
    the same one, which Telnyx ignores) and, like the dial, a client_state naming the attempt,
    tagged with the flow state the command belongs to (a gather's webhooks say which prompt they
    answer; the others keep the tag the call has, so a prompt's end caused by them still
    matches). `key` replaces the action and flow state in the command_id."""
    assert attempt.call_control_id is not None
    state = attempt.flow_state
    if act.client_state is None:
        act = replace(act, client_state=tagged_client_state(attempt.client_state,
                                                            act.tag or state))
    return PendingAction(attempt.id, attempt.call_control_id,
                         action_command_id(attempt.command_id, key or act.key + str(state)),
                         act, settings)


@dataclass
class DialOutcome:
    """What the dial request for one attempt came back with."""

    attempt_id: int
    #: ok | rate_limited (429) | released (never sent: paused, stopping) | not_sent (the
    #: connection could not be made) | dnc (never sent: the number went on the DNC list after
    #: the claim) | invalid | auth | failed (outcome unknown)
    kind: str
    call_control_id: str | None = None
    call_leg_id: str | None = None
    call_session_id: str | None = None
    sends: int = 1
    error_code: str | None = None
    error_detail: str | None = None
    codes: list[str] = field(default_factory=list)


def advance(attempt: AttemptFields, state: str) -> None:
    """Move the attempt forward to `state`; never back."""
    new = advanced(attempt.state, state)
    if new != attempt.state:
        attempt.state = new


def amd_mode(campaign: CampaignFields) -> str:
    return str((campaign.dial_settings or {}).get("answering_machine_detection", "disabled"))


def first_reconcile(campaign: CampaignFields, now: datetime, timing: Timing) -> datetime:
    """When to ask Telnyx about a call whose hangup never came: after it must have stopped
    ringing (timeout_secs) plus a grace; re-checked later while the call is alive."""
    return reconcile_from(campaign.dial_settings, now, timing)


def reconcile_from(dial_settings: dict[str, Any] | None, now: datetime,
                   timing: Timing) -> datetime:
    """`first_reconcile` from a campaign's dial settings alone."""
    ring = float((dial_settings or {}).get("timeout_secs", 30))
    return now + timing.secs(ring) + timing.wait(timing.reconcile_grace_secs)


def advanced(state: str, to: str) -> str:
    """The state `advance` would leave: forward only, and never out of `not_placed`."""
    if state == AttemptState.NOT_PLACED:
        return state
    return to if _STATE_ORDER.get(to, 0) > _STATE_ORDER.get(state, 0) else state


def finish_contact(contact: ContactFields, outcome: str, now: datetime) -> None:
    """The contact is done with `outcome`: nothing more will be dialed."""
    contact.status = ContactStatus.DONE
    contact.outcome = outcome
    contact.next_attempt_at = None
    contact.updated_at = now


class EventLike(Protocol):
    id: int
    payload: dict[str, Any]
    call_control_id: str | None
    attempt_id: int | None


async def find_attempts(session: AsyncSession, events: Sequence[EventLike]
                        ) -> dict[int, AttemptRow]:
    """Attempts named by the events (client_state first, call_control_id as fallback), locked,
    as plain rows (`store.plain_rows`: the caller writes their changes); sets
    `event.attempt_id` for each event that found one."""
    refs = {}
    for ev in events:
        ref = decode_client_state((ev.payload.get("data", {}).get("payload") or {})
                                  .get("client_state"))
        if ref is not None:
            refs[ev.id] = ref
    attempts: dict[int, AttemptRow] = {}
    t = CallAttempt.__table__.c
    if refs:
        pairs = {(r.contact_id, r.attempt_no) for r in refs.values()}
        rows = await AttemptRow.load(session, pairs_in(session, t.contact_id, t.attempt_no,
                                                       sorted(pairs)))
        by_pair = {(a.contact_id, a.attempt_no): a for a in rows}
        for ev in events:
            ref = refs.get(ev.id)
            a = by_pair.get((ref.contact_id, ref.attempt_no)) if ref else None
            if a is not None:
                ev.attempt_id = a.id
                attempts[a.id] = a
    missing = [ev for ev in events if ev.attempt_id is None and ev.call_control_id]
    if missing:
        rows = await AttemptRow.load(session, one_of(
            session, t.call_control_id, {ev.call_control_id for ev in missing}))
        by_cc = {a.call_control_id: a for a in rows}
        for ev in missing:
            a = by_cc.get(ev.call_control_id)
            if a is not None:
                ev.attempt_id = attempts.setdefault(a.id, a).id
    return attempts


def apply_event(attempt: AttemptFields, campaign: CampaignFields, event_type: str,
                payload: dict[str, Any], occurred_at: datetime | None,
                now: datetime, timing: Timing,
                notes: script_events.Notes | None = None) -> list[flow.Action]:
    """Merge one event's facts into the attempt and advance its call flow. Returns the actions
    to send (none once the call has ended). Script responses and opt-outs go in `notes`."""
    at = occurred_at or now
    # Ids longer than their columns are not Telnyx's: storing one would fail the whole batch
    # on PostgreSQL, and the processor would retry that batch forever.
    if attempt.call_control_id is None and _fits(payload.get("call_control_id"), 200):
        attempt.call_control_id = payload["call_control_id"]
    for attr in ("call_leg_id", "call_session_id"):
        if getattr(attempt, attr) is None and _fits(payload.get(attr), 64):
            setattr(attempt, attr, payload[attr])
    if attempt.state == AttemptState.NOT_PLACED:
        log.warning("event %s for attempt %s that was recorded as not placed", event_type,
                    attempt.id)
        return []

    settings = settings_of(campaign)
    mode = amd_mode(campaign)
    if event_type == "call.initiated":
        attempt.dialed_at = attempt.dialed_at or at
        advance(attempt, AttemptState.DIALED)
    elif event_type == "call.answered":
        attempt.answered_at = attempt.answered_at or at
        advance(attempt, AttemptState.ANSWERED)
    if (event_type in ("call.initiated", "call.answered") and attempt.reconcile_after is None
            and attempt.state in (AttemptState.DIALED, AttemptState.ANSWERED)):
        # A call exists even if its dial's result was never recorded (the engine that sent it
        # died between this webhook and its result batch): if its hangup never comes here,
        # reconciliation must look for it (recovery only takes attempts still `created`).
        attempt.reconcile_after = first_reconcile(campaign, now, timing)
    elif event_type == "call.hangup":
        advance(attempt, AttemptState.ENDED)
        attempt.ended_at = attempt.ended_at or parse_time(payload.get("end_time")) or at
        attempt.hangup_cause = attempt.hangup_cause or _str(payload.get("hangup_cause"))
        attempt.hangup_source = attempt.hangup_source or _str(payload.get("hangup_source"), 16)
        attempt.sip_hangup_cause = attempt.sip_hangup_cause or _str(
            payload.get("sip_hangup_cause"), 16)
        attempt.reconcile_after = None
        attempt.flow_deadline = None
    elif event_type in flow.DETECTION_EVENTS:
        attempt.amd_result = attempt.amd_result or _str(payload.get("result"), 24)
    elif event_type in flow.GREETING_EVENTS:
        attempt.greeting_result = attempt.greeting_result or _str(payload.get("result"), 24)

    step = flow.step(attempt.flow_state, event_type, payload, settings, mode,
                     greeting_seen=attempt.greeting_result == "beep_detected")
    script_events.collect(attempt, campaign, step, at, notes)  # responses, opt-out, gathers
    actions: list[flow.Action] = []
    if step is not None:
        attempt.flow_state = step.flow_state
        if step.voicemail_left:
            attempt.voicemail_left = True
        if step.message_played:
            attempt.message_played = True
        attempt.flow_deadline = (now + timing.secs(step.timer_secs)
                                 if step.timer_secs is not None else None)
        if attempt.state != AttemptState.ENDED:
            actions = step.actions
    if attempt.state == AttemptState.ENDED:
        attempt.flow_deadline = None
        if attempt.settled_at is None:
            attempt.settle_after = (now if not facts_pending(attempt, mode)
                                    else attempt.settle_after or now + timing.wait(
                                        timing.settle_grace_secs))
    return actions


def _str(v: Any, size: int = 32) -> str | None:
    """A fact from a payload, cut to its column's size (a longer value is not Telnyx's)."""
    return str(v)[:size] if v is not None else None


def _fits(v: Any, size: int) -> bool:
    return isinstance(v, str) and 0 < len(v) <= size


def answered(attempt: AttemptFields) -> bool:
    return o.was_answered(attempt.answered_at is not None, attempt.hangup_cause,
                          attempt.sip_hangup_cause, attempt.amd_result)


def facts_pending(attempt: AttemptFields, mode: str) -> bool:
    """Facts that may still arrive after the hangup and would change the result."""
    if attempt.flow_state in ("message", "voicemail"):
        return True  # the media-ended event says whether the message/voicemail completed
    if mode != flow.AMD_DISABLED and answered(attempt) and attempt.amd_result is None \
            and attempt.greeting_result != "beep_detected":
        return True
    return False


def facts_of(attempt: AttemptFields, canceled: bool = False) -> o.CallFacts:
    return o.CallFacts(answered=answered(attempt), amd_result=attempt.amd_result,
                       greeting_result=attempt.greeting_result,
                       hangup_cause=attempt.hangup_cause,
                       sip_hangup_cause=attempt.sip_hangup_cause,
                       hangup_source=attempt.hangup_source, canceled=canceled)


async def settle(session: AsyncSession, attempts: Sequence[AttemptFields], now: datetime,
                 rng: random.Random | None = None,
                 campaigns: Mapping[int, CampaignFields] | None = None) -> None:
    """Give ended attempts their outcome and move their contacts on (retry or done).

    The attempts' changes are the caller's to write (ORM instances are flushed with the
    session, plain rows by `plain_rows.write_changes`); their contacts are written here.
    `campaigns`: the campaigns already at hand (read if missing)."""
    todo = [a for a in attempts if a.settled_at is None]
    if not todo:
        return
    wanted = {a.campaign_id for a in todo}
    known: Mapping[int, CampaignFields] = campaigns or {}
    if not wanted <= known.keys():
        known = {**known, **{c.id: c for c in await CampaignRow.by_ids(
            session, wanted - known.keys(), lock=False)}}
    contacts = {c.id: c for c in await ContactRow.by_ids(session, {a.contact_id for a in todo})}
    history: dict[int, list[tuple[int, str]]] = {}
    rows = await session.execute(
        select(CallAttempt.contact_id, CallAttempt.id, CallAttempt.outcome)
        .where(one_of(session, CallAttempt.contact_id, contacts), CallAttempt.outcome.is_not(None),
               CallAttempt.state != AttemptState.NOT_PLACED))
    for cid, aid, outcome in rows:
        if outcome is not None:
            history.setdefault(cid, []).append((aid, outcome))
    for attempt in todo:
        campaign = known[attempt.campaign_id]
        contact = contacts[attempt.contact_id]
        if attempt.outcome is None:
            attempt.outcome = o.classify(facts_of(attempt))
        attempt.settled_at = now
        attempt.settle_after = None
        attempt.reconcile_after = None
        attempt.flow_deadline = None
        if contact.last_attempt_id != attempt.id or contact.status == ContactStatus.DONE:
            continue
        contact.outcome = attempt.outcome
        contact.updated_at = now
        if campaign.status == CampaignStatus.CANCELLED:
            finish_contact(contact, attempt.outcome, now)
            continue
        settings = settings_of(campaign)
        previous = [out for aid, out in history.get(contact.id, []) if aid != attempt.id]
        decision = retry.decide(settings, attempt.outcome, voicemail_left=attempt.voicemail_left,
                                attempts_made=contact.attempts, previous_outcomes=previous,
                                now=now, rng=rng,
                                script_incomplete=attempt.script_completed is False)
        if not decision.retry or decision.at is None:
            finish_contact(contact, attempt.outcome, now)
            continue
        window = CallingWindow.parse(settings["calling_hours"], settings["calling_days"])
        at = window.next_opening(decision.at, contact.timezones or [settings["fallback_timezone"]])
        if at is None:
            finish_contact(contact, attempt.outcome, now)
            continue
        contact.status = ContactStatus.QUEUED
        contact.next_attempt_at = at
    await write_changes(session, list(contacts.values()), now)
