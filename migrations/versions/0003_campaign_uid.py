"""campaigns.uid: a random identity per campaign, part of every dial's command_id

Telnyx ignores a dial whose `command_id` it saw in the last 60 s on the same account. The
command_id was derived from (campaign id, contact id, attempt number) only, so two databases
dialing on one account (staging and production, a database re-created, a benchmark) produced
the same ids and the second database's dials were silently not placed. Existing campaigns get a
random uid here; attempts already claimed keep the command_id stored with them (re-sends use it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 04:20:00.000000
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('campaigns', sa.Column('uid', sa.String(length=36), nullable=True))
    conn = op.get_bind()
    campaigns = sa.table('campaigns', sa.column('id', sa.BigInteger), sa.column('uid', sa.String))
    for (cid,) in conn.execute(sa.select(campaigns.c.id)).all():
        conn.execute(campaigns.update().where(campaigns.c.id == cid)
                     .values(uid=str(uuid.uuid4())))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('uid')
