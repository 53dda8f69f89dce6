"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 23:25:16.679137
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import campaigns.db.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('from_number', sa.String(length=32), nullable=False),
    sa.Column('connection_id', sa.String(length=100), nullable=False),
    sa.Column('dial_settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('hangup_requested', sa.Boolean(), nullable=False),
    sa.Column('created_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.Column('started_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('finished_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('name', name=op.f('uq_campaigns_name'))
    )
    op.create_table('dnc_numbers',
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('raw_input', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('added_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('phone_e164', name=op.f('pk_dnc_numbers'))
    )
    op.create_table('engine_instances',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('hostname', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.Column('heartbeat_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_engine_instances'))
    )
    op.create_table('webhook_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('call_control_id', sa.String(length=200), nullable=True),
    sa.Column('attempt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('occurred_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('received_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('processed_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_webhook_events_event_id'))
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_attempt', ['attempt_id'], unique=False)
        batch_op.create_index('ix_webhook_events_call', ['call_control_id'], unique=False)
        batch_op.create_index('ix_webhook_events_pending', ['id'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))

    op.create_table('contact_imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=True),
    sa.Column('columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('phone_column', sa.Text(), nullable=True),
    sa.Column('rows_read', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('invalid', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('dnc_suppressed', sa.Integer(), nullable=False),
    sa.Column('tz_unknown', sa.Integer(), nullable=False),
    sa.Column('tz_ambiguous', sa.Integer(), nullable=False),
    sa.Column('elapsed_secs', sa.Float(), nullable=True),
    sa.Column('created_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_contact_imports_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_imports'))
    )
    with op.batch_alter_table('contact_imports', schema=None) as batch_op:
        batch_op.create_index('ix_contact_imports_campaign', ['campaign_id'], unique=False)

    op.create_table('contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('source_row', sa.Integer(), nullable=True),
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('phone_raw', sa.Text(), nullable=True),
    sa.Column('extension', sa.String(length=40), nullable=True),
    sa.Column('first_name', sa.Text(), nullable=True),
    sa.Column('last_name', sa.Text(), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('region', sa.Text(), nullable=True),
    sa.Column('postal_code', sa.Text(), nullable=True),
    sa.Column('timezones', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('timezone_source', sa.String(length=16), nullable=True),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempt_seq', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('next_attempt_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('first_attempt_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('last_attempt_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('last_attempt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_contacts_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('campaign_id', 'phone_e164', name='uq_contacts_campaign_phone')
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_campaign_status', ['campaign_id', 'status'], unique=False)
        batch_op.create_index('ix_contacts_due', ['campaign_id', 'next_attempt_at', 'id'], unique=False, postgresql_where=sa.text("status = 'queued'"), sqlite_where=sa.text("status = 'queued'"))

    op.create_table('call_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempt_no', sa.Integer(), nullable=False),
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('command_id', sa.String(length=80), nullable=False),
    sa.Column('client_state', sa.String(length=200), nullable=False),
    sa.Column('call_control_id', sa.String(length=200), nullable=True),
    sa.Column('call_leg_id', sa.String(length=64), nullable=True),
    sa.Column('call_session_id', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('flow_state', sa.String(length=24), nullable=True),
    sa.Column('created_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.Column('dial_sent_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('dial_sends', sa.Integer(), nullable=False),
    sa.Column('dialed_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('answered_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('ended_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('hangup_cause', sa.String(length=32), nullable=True),
    sa.Column('hangup_source', sa.String(length=16), nullable=True),
    sa.Column('sip_hangup_cause', sa.String(length=16), nullable=True),
    sa.Column('amd_result', sa.String(length=24), nullable=True),
    sa.Column('greeting_result', sa.String(length=24), nullable=True),
    sa.Column('voicemail_left', sa.Boolean(), nullable=False),
    sa.Column('message_played', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('error_detail', sa.Text(), nullable=True),
    sa.Column('reconcile_after', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('flow_deadline', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('settle_after', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('settled_at', campaigns.db.types.UTCDateTime(), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('updated_at', campaigns.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_call_attempts_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_call_attempts_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_attempts')),
    sa.UniqueConstraint('call_control_id', name=op.f('uq_call_attempts_call_control_id')),
    sa.UniqueConstraint('command_id', name=op.f('uq_call_attempts_command_id')),
    sa.UniqueConstraint('contact_id', 'attempt_no', name='uq_call_attempts_contact_attempt')
    )
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_call_attempts_campaign_state', ['campaign_id', 'state'], unique=False)
        batch_op.create_index('ix_call_attempts_contact', ['contact_id'], unique=False)
        batch_op.create_index('ix_call_attempts_flow_deadline', ['flow_deadline'], unique=False, postgresql_where=sa.text('flow_deadline IS NOT NULL'), sqlite_where=sa.text('flow_deadline IS NOT NULL'))
        batch_op.create_index('ix_call_attempts_in_flight', ['reconcile_after'], unique=False, postgresql_where=sa.text("state IN ('created', 'dialed', 'answered')"), sqlite_where=sa.text("state IN ('created', 'dialed', 'answered')"))
        batch_op.create_index('ix_call_attempts_phone_created', ['phone_e164', 'created_at'], unique=False)
        batch_op.create_index('ix_call_attempts_unsettled', ['settle_after'], unique=False, postgresql_where=sa.text("state = 'ended' AND settled_at IS NULL"), sqlite_where=sa.text("state = 'ended' AND settled_at IS NULL"))



def downgrade() -> None:
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_call_attempts_unsettled', postgresql_where=sa.text("state = 'ended' AND settled_at IS NULL"), sqlite_where=sa.text("state = 'ended' AND settled_at IS NULL"))
        batch_op.drop_index('ix_call_attempts_phone_created')
        batch_op.drop_index('ix_call_attempts_in_flight', postgresql_where=sa.text("state IN ('created', 'dialed', 'answered')"), sqlite_where=sa.text("state IN ('created', 'dialed', 'answered')"))
        batch_op.drop_index('ix_call_attempts_flow_deadline', postgresql_where=sa.text('flow_deadline IS NOT NULL'), sqlite_where=sa.text('flow_deadline IS NOT NULL'))
        batch_op.drop_index('ix_call_attempts_contact')
        batch_op.drop_index('ix_call_attempts_campaign_state')

    op.drop_table('call_attempts')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_due', postgresql_where=sa.text("status = 'queued'"), sqlite_where=sa.text("status = 'queued'"))
        batch_op.drop_index('ix_contacts_campaign_status')

    op.drop_table('contacts')
    with op.batch_alter_table('contact_imports', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_imports_campaign')

    op.drop_table('contact_imports')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_pending', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_webhook_events_call')
        batch_op.drop_index('ix_webhook_events_attempt')

    op.drop_table('webhook_events')
    op.drop_table('engine_instances')
    op.drop_table('dnc_numbers')
    op.drop_table('campaigns')
