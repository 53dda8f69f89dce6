"""SQLAlchemy 2 models of the core tables (DESIGN.md, "Data model").

Alembic migrations in `migrations/` are the only way the schema is created; a test proves the two
agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from campaigns.db.types import JSONType, UTCDateTime, utcnow


def new_uid() -> str:
    return str(uuid.uuid4())

# Deterministic constraint names, so that migrations and models compare equal everywhere.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger ids on PostgreSQL; INTEGER PRIMARY KEY (rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CampaignStatus:
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ContactStatus:
    QUEUED = "queued"
    DIALING = "dialing"
    IN_CALL = "in_call"
    DONE = "done"


class AttemptState:
    CREATED = "created"
    DIALED = "dialed"
    ANSWERED = "answered"
    ENDED = "ended"
    NOT_PLACED = "not_placed"

    #: States in which an attempt holds a channel (a call may be alive).
    IN_FLIGHT = ("created", "dialed", "answered")


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT)
    from_number: Mapped[str] = mapped_column(String(32))
    connection_id: Mapped[str] = mapped_column(String(100))
    #: Telnyx Dial fields that apply to every call of the campaign, with Telnyx names.
    dial_settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: The dialer's own keys (pacing, call flow, retry policy, calling window); see
    #: `campaigns.settings.CampaignSettings`.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Set by `campaign stop --hangup`: the engine hangs up the campaign's live calls.
    hangup_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A random identity that no other database shares: it goes into every dial's command_id,
    #: which Telnyx deduplicates per account (a campaign with the same id in another database
    #: on the same account must not have its dials ignored as repeats).
    uid: Mapped[str | None] = mapped_column(String(36), default=new_uid)
    #: Dialed by a dry run (`dialer run --simulate`): its stored times are simulated times
    #: (migration 0007). Reports and `dialer status` say so.
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ContactImport(Base):
    __tablename__ = "contact_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    file_name: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    columns: Mapped[list[str]] = mapped_column(JSONType, default=list)
    phone_column: Mapped[str | None] = mapped_column(Text)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    dnc_suppressed: Mapped[int] = mapped_column(Integer, default=0)
    tz_unknown: Mapped[int] = mapped_column(Integer, default=0)
    tz_ambiguous: Mapped[int] = mapped_column(Integer, default=0)
    elapsed_secs: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_contact_imports_campaign", "campaign_id"),)


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: The campaign. No foreign key (migration 0002): its per-row check was the largest single
    #: cost of a bulk import; contacts are only ever written by the import, which checks the
    #: campaign in its own transaction, and campaigns are never deleted (docs/decisions.md).
    campaign_id: Mapped[int] = mapped_column(BigId)
    #: The contact_imports row it came from. An audit link without a foreign key: the key's
    #: per-row check was most of the cost of a bulk COPY into contacts.
    import_id: Mapped[int | None] = mapped_column(BigId)
    source_row: Mapped[int | None] = mapped_column(Integer)
    phone_e164: Mapped[str] = mapped_column(String(20))
    phone_raw: Mapped[str | None] = mapped_column(Text)
    extension: Mapped[str | None] = mapped_column(String(40))
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(Text)
    postal_code: Mapped[str | None] = mapped_column(Text)
    #: Candidate IANA zones; the calling window must hold in all of them.
    timezones: Mapped[list[str]] = mapped_column(JSONType, default=list)
    #: How the zones were found: explicit, region, number, fallback.
    timezone_source: Mapped[str | None] = mapped_column(String(16))
    #: Every other column of the uploaded row, by original header, as text.
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=ContactStatus.QUEUED)
    outcome: Mapped[str | None] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Attempt rows created so far (calls and not-placed ones): the next attempt_no is this + 1.
    attempt_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_id: Mapped[int | None] = mapped_column(BigId)
    #: Why the claim last put the contact off (window, holiday, cap, blackout) or blocked it
    #: (dnc, registry, consent, no_window), and until when it waits (docs/compliance.md).
    deferred_reason: Mapped[str | None] = mapped_column(String(16))
    deferred_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


    #: The callee's final answer to the script (the last label, else digits; "opt_out"), and
    #: whether the script reached its end (None: no script was run).
    response: Mapped[str | None] = mapped_column(String(64))
    script_completed: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("campaign_id", "phone_e164", name="uq_contacts_campaign_phone"),
        # One index for the scheduler's claim (campaign, status 'queued', next_attempt_at <= now,
        # in next_attempt_at, id order: a range of it) and for counts by status (campaign and
        # status lead, so "not done yet" is an index-only scan). Migration 0002 made it from the
        # partial ix_contacts_due and ix_contacts_campaign_status: one index less for every
        # imported row to maintain.
        Index("ix_contacts_campaign_status_due", "campaign_id", "status", "next_attempt_at", "id"),
    )


class CallAttempt(Base):
    __tablename__ = "call_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    phone_e164: Mapped[str] = mapped_column(String(20))
    #: Deterministic per attempt: a re-send after a timeout/5xx reuses it (Telnyx dedupes 60 s).
    command_id: Mapped[str] = mapped_column(String(80), unique=True)
    #: Base64 sent as client_state on dial: identifies the attempt in every webhook.
    client_state: Mapped[str] = mapped_column(String(200))
    call_control_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    call_leg_id: Mapped[str | None] = mapped_column(String(64))
    call_session_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=AttemptState.CREATED)
    #: Where the AMD call flow is (none, message, awaiting_greeting, voicemail, transfer, hangup).
    flow_state: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dial_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dial_sends: Mapped[int] = mapped_column(Integer, default=0)
    dialed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hangup_cause: Mapped[str | None] = mapped_column(String(32))
    hangup_source: Mapped[str | None] = mapped_column(String(16))
    sip_hangup_cause: Mapped[str | None] = mapped_column(String(16))
    amd_result: Mapped[str | None] = mapped_column(String(24))
    greeting_result: Mapped[str | None] = mapped_column(String(24))
    voicemail_left: Mapped[bool] = mapped_column(Boolean, default=False)
    message_played: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(Text)
    #: When to ask Telnyx whether the call is still alive (no call.hangup seen by then).
    reconcile_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Deadline of the call flow's timer (voicemail fallback when no greeting event comes).
    flow_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: An ended attempt waits until this for late facts (AMD result, playback end) before settling.
    settle_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: None: no script ran; False: it started and has not ended; True: it reached its end.
    script_completed: Mapped[bool | None] = mapped_column(Boolean)
    #: The `dialer run` instance that claimed it (crash recovery re-sends only a dead owner's).
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    #: The compliance decision that allowed the call (campaigns.compliance.decide's record).
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("contact_id", "attempt_no", name="uq_call_attempts_contact_attempt"),
        Index("ix_call_attempts_phone_created", "phone_e164", "created_at"),
        Index("ix_call_attempts_campaign_state", "campaign_id", "state"),
        Index(
            "ix_call_attempts_in_flight",
            "reconcile_after",
            postgresql_where=text("state IN ('created', 'dialed', 'answered')"),
            sqlite_where=text("state IN ('created', 'dialed', 'answered')"),
        ),
        Index("ix_call_attempts_contact", "contact_id"),
        Index(
            "ix_call_attempts_flow_deadline",
            "flow_deadline",
            postgresql_where=text("flow_deadline IS NOT NULL"),
            sqlite_where=text("flow_deadline IS NOT NULL"),
        ),
        Index(
            "ix_call_attempts_unsettled",
            "settle_after",
            postgresql_where=text("state = 'ended' AND settled_at IS NULL"),
            sqlite_where=text("state = 'ended' AND settled_at IS NULL"),
        ),
    )


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    call_control_id: Mapped[str | None] = mapped_column(String(200))
    attempt_id: Mapped[int | None] = mapped_column(BigId)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: pending -> processed | ignored | orphan | failed (could not be processed: see `error`)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Why a `failed` event could not be processed (one line).
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index(
            "ix_webhook_events_pending",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_events_call", "call_control_id"),
        Index("ix_webhook_events_attempt", "attempt_id"),
    )


class AttemptResponse(Base):
    """One keypad prompt's result on one attempt (a script step, or the plain message's opt-out
    prompt): written in the transaction that processes its `call.gather.ended`."""

    __tablename__ = "attempt_responses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("call_attempts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId)
    campaign_id: Mapped[int] = mapped_column(BigId)
    step: Mapped[str] = mapped_column(String(40))
    try_no: Mapped[int] = mapped_column(Integer, default=1)
    #: The keypad keys pressed (cleaned of anything else, at most 32).
    digits: Mapped[str | None] = mapped_column(String(32))
    #: valid | invalid | timeout | call_hangup | cancelled | cancelled_amd | reached (a step
    #: with a label was reached)
    status: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_attempt_responses_campaign_contact", "campaign_id", "contact_id"),
        Index("ix_attempt_responses_attempt", "attempt_id"),
    )


class DncNumber(Base):
    __tablename__ = "dnc_numbers"

    phone_e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    raw_input: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RateLimit(Base):
    """One limit's schedule, shared by every engine: see `dialer.engine.slots`."""

    __tablename__ = "rate_limits"

    #: "account", "campaign:<id>", "channels"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The earliest instant of the next dial under this limit (seconds, database clock).
    tat: Mapped[float] = mapped_column(Float, default=0.0)
    #: The account's rate in force (the lowest --cps of the live engines); informational for
    #: campaigns (their rate is their `cps` setting).
    rate: Mapped[float | None] = mapped_column(Float)


class RegistryNumber(Base):
    """A number on the national Do Not Call registry (the loaded copy; kept apart from the
    internal, entity-specific list in dnc_numbers)."""

    __tablename__ = "registry_numbers"

    phone_e164: Mapped[str] = mapped_column(String(20), primary_key=True)


class RegistryCopy(Base):
    """One registry file loaded: the copy's date decides whether scrubbing campaigns may dial."""

    __tablename__ = "registry_copies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    copy_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))  # full | changes
    file_name: Mapped[str] = mapped_column(Text)
    added: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BlackoutDate(Base):
    """An operator's no-call date, for every state ('' ) or a comma-separated list of states."""

    __tablename__ = "blackout_dates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    states: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("day", "states", name="uq_blackout_dates_day_states"),)


class EngineInstance(Base):
    """A running `dialer run` process: heartbeats let instances share the account's dial rate and
    find the work of an instance that died."""

    __tablename__ = "engine_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: This engine's account limits (`dialer run --cps/--max-concurrent`): the lowest wins.
    cps: Mapped[float | None] = mapped_column(Float)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
