"""Compliance: each attempt's decision record, why and until when a contact waits, the national
DNC registry (numbers and the copies loaded) and operator blackout dates.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 20:30:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import campaigns.db.types

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_BIGID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.add_column('call_attempts', sa.Column('decision', _JSON, nullable=True))
    op.add_column('contacts', sa.Column('deferred_reason', sa.String(length=16), nullable=True))
    op.add_column('contacts', sa.Column('deferred_until', campaigns.db.types.UTCDateTime(),
                                        nullable=True))
    op.create_table(
        'registry_numbers',
        sa.Column('phone_e164', sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint('phone_e164', name=op.f('pk_registry_numbers')),
    )
    op.create_table(
        'registry_copies',
        sa.Column('id', _BIGID, autoincrement=True, nullable=False),
        sa.Column('copy_date', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('file_name', sa.Text(), nullable=False),
        sa.Column('added', sa.Integer(), nullable=False),
        sa.Column('removed', sa.Integer(), nullable=False),
        sa.Column('loaded_at', campaigns.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_copies')),
    )
    op.create_table(
        'blackout_dates',
        sa.Column('id', _BIGID, autoincrement=True, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('states', sa.String(length=200), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', campaigns.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_blackout_dates')),
        sa.UniqueConstraint('day', 'states', name='uq_blackout_dates_day_states'),
    )


def downgrade() -> None:
    op.drop_table('blackout_dates')
    op.drop_table('registry_copies')
    op.drop_table('registry_numbers')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('deferred_until')
        batch_op.drop_column('deferred_reason')
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.drop_column('decision')
