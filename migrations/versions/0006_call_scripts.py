"""Call scripts: keypad responses per attempt, the contact's final response

* `attempt_responses`: one row per keypad prompt's end (step, try, digits, status, label, time),
  written in the transaction that processes the `call.gather.ended` event.
* `contacts.response` / `contacts.script_completed`: the final answer and whether the script
  reached its end (reports and the retry of unfinished scripts read them).
* `call_attempts.script_completed`: the same per attempt (the retry policy decides per attempt).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 20:40:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from campaigns.db.types import UTCDateTime

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'attempt_responses',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('attempt_id', BigId, nullable=False),
        sa.Column('contact_id', BigId, nullable=False),
        sa.Column('campaign_id', BigId, nullable=False),
        sa.Column('step', sa.String(length=40), nullable=False),
        sa.Column('try_no', sa.Integer(), nullable=False),
        sa.Column('digits', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('label', sa.String(length=64), nullable=True),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'],
                                name=op.f('fk_attempt_responses_attempt_id_call_attempts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_attempt_responses')),
    )
    op.create_index('ix_attempt_responses_campaign_contact', 'attempt_responses',
                    ['campaign_id', 'contact_id'])
    op.create_index('ix_attempt_responses_attempt', 'attempt_responses', ['attempt_id'])
    op.add_column('contacts', sa.Column('response', sa.String(length=64), nullable=True))
    op.add_column('contacts', sa.Column('script_completed', sa.Boolean(), nullable=True))
    op.add_column('call_attempts', sa.Column('script_completed', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.drop_column('script_completed')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('script_completed')
        batch_op.drop_column('response')
    op.drop_index('ix_attempt_responses_attempt', table_name='attempt_responses')
    op.drop_index('ix_attempt_responses_campaign_contact', table_name='attempt_responses')
    op.drop_table('attempt_responses')
