"""outbox updates

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows all create a resource: the server default fills them in.
    with op.batch_alter_table("writeback_outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("operation", sa.String(length=8), server_default="create", nullable=False)
        )
        batch_op.add_column(sa.Column("target_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_writeback_outbox_target_id"), ["target_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("writeback_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_writeback_outbox_target_id"))
        batch_op.drop_column("target_id")
        batch_op.drop_column("operation")
