"""campaigns.dry_run: the campaign was played against the simulator in simulated time

A dry run (`dialer run --simulate`) stores simulated times (a campaign of several days played in
minutes). Reports and `dialer status` must say so, and a later real run must be able to tell
that the stored times are not real ones.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:40:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('campaigns', sa.Column('dry_run', sa.Boolean(), nullable=False,
                                         server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('dry_run')
