"""What the engine's rules read and change of an attempt, a contact and a campaign.

The rules (`attempts.apply_event`, `settle`, the call flow, `script_events.collect`) take any
object with these attributes: an ORM instance (the sweeps, recovery, the tests) or a plain row
from `store.plain_rows` (the event processor's hot path), which loads exactly these attributes
as its columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class AttemptFields(Protocol):
    id: int
    contact_id: int
    campaign_id: int
    attempt_no: int
    phone_e164: str
    command_id: str
    client_state: str
    call_control_id: str | None
    call_leg_id: str | None
    call_session_id: str | None
    state: str
    flow_state: str | None
    dialed_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_cause: str | None
    hangup_source: str | None
    sip_hangup_cause: str | None
    amd_result: str | None
    greeting_result: str | None
    voicemail_left: bool
    message_played: bool
    outcome: str | None
    reconcile_after: datetime | None
    flow_deadline: datetime | None
    settle_after: datetime | None
    settled_at: datetime | None
    script_completed: bool | None


class ContactFields(Protocol):
    id: int
    status: str
    outcome: str | None
    attempts: int
    timezones: list[str]
    next_attempt_at: datetime | None
    last_attempt_id: int | None
    updated_at: datetime


class CampaignFields(Protocol):
    id: int
    name: str
    status: str
    dial_settings: dict[str, Any]
    settings: dict[str, Any]
