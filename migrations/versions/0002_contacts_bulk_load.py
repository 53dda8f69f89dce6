"""contacts: no foreign key to campaigns; one status/due index instead of two

Both for the cost of a bulk import (docs/decisions.md, "Contacts table: what a row costs"):

* `contacts.campaign_id` loses its foreign key to `campaigns` (each imported row fired an RI
  trigger: an SPI query with a FOR KEY SHARE lock on the campaign row). Contacts are only written
  by the import, which checks the campaign in its transaction; nothing in the application deletes
  campaigns, so the ON DELETE CASCADE never ran (code that ever deletes a campaign must delete its
  contacts itself, in the same transaction).
* `ix_contacts_due` (partial, status = 'queued') and `ix_contacts_campaign_status` become one
  index `(campaign_id, status, next_attempt_at, id)`, which serves the claim, the due count, the
  stop/cancel updates and the counts by status (EXPLAIN in docs/decisions.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 01:20:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_constraint('fk_contacts_campaign_id_campaigns', type_='foreignkey')
        batch_op.drop_index('ix_contacts_due', postgresql_where=sa.text("status = 'queued'"),
                            sqlite_where=sa.text("status = 'queued'"))
        batch_op.drop_index('ix_contacts_campaign_status')
        batch_op.create_index('ix_contacts_campaign_status_due',
                              ['campaign_id', 'status', 'next_attempt_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_campaign_status_due')
        batch_op.create_index('ix_contacts_campaign_status', ['campaign_id', 'status'],
                              unique=False)
        batch_op.create_index('ix_contacts_due', ['campaign_id', 'next_attempt_at', 'id'],
                              unique=False, postgresql_where=sa.text("status = 'queued'"),
                              sqlite_where=sa.text("status = 'queued'"))
        batch_op.create_foreign_key('fk_contacts_campaign_id_campaigns', 'campaigns',
                                    ['campaign_id'], ['id'], ondelete='CASCADE')
