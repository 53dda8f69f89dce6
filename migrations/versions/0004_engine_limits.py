"""webhook_events.error: why an event could not be processed

A stored event that cannot be processed (a value its columns refuse, a bug) is kept as `failed`
with the reason, so that the events after it are processed (it used to stop the processor).

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


def downgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_column('error')
