"""Limits kept in the database; webhook_events.error

- `rate_limits`: one row per limit (the account's dial rate, each campaign's, the channel lock)
  holding its schedule, so every engine on the database and every restart continues the same
  schedule (dialer.engine.slots).
- `engine_instances.cps`, `.max_concurrent`: each engine's account limits; the lowest wins.
- `webhook_events.error`: a stored event that cannot be processed (a value its columns refuse, a
  bug) is kept as `failed` with the reason, so the events after it are processed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 20:30:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('webhook_events', sa.Column('error', sa.String(length=500), nullable=True))
    op.create_table(
        'rate_limits',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('tat', sa.Float(), nullable=False),
        sa.Column('rate', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limits')),
    )
    op.add_column('engine_instances', sa.Column('cps', sa.Float(), nullable=True))
    op.add_column('engine_instances', sa.Column('max_concurrent', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('engine_instances', schema=None) as batch_op:
        batch_op.drop_column('max_concurrent')
        batch_op.drop_column('cps')
    op.drop_table('rate_limits')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_column('error')
